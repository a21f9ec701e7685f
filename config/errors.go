package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Problem is one configuration problem, naming the file, the key (a path
// such as `rules[3].window`) and, where known, the line.
type Problem struct {
	File string
	Key  string
	Line int
	Msg  string
	// Of names the device, zone or rule the key is in, when it has an id
	// ("rule crowd-at-ruins"): `rules[12].when` alone makes the operator
	// count. It ends the line, so that "file:line: key: " stays as it is.
	Of string
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Of != "" {
		fmt.Fprintf(&b, " (%s)", p.Of)
	}
	return oneLine(b.String())
}

// oneLine escapes the control characters of s: a problem is one line, and
// a key or value from the file with a line break in it would otherwise
// break it into lines that read as problems of their own. Invisible
// formatting characters are escaped too: a right-to-left override in a
// key would show the problem's line backwards.
func oneLine(s string) string {
	escape := func(r rune) bool { return unicode.IsControl(r) || invisibleFormat(r) }
	if !strings.ContainsFunc(s, escape) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r) // '\n', '\x00'
			b.WriteString(q[1 : len(q)-1])
			continue
		case escape(r):
			// QuoteRune leaves printable marks (a variation selector) as
			// they are: written out, whatever they are.
			if r > 0xFFFF {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Problems is every problem found in one load; it is an error when not empty.
type Problems []Problem

func (ps Problems) Error() string {
	ps = ps.capped()
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns ps as an error, or nil when there are none.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps.capped()
}

// maxProblems bounds the problems told at once: a file with a mistake on
// every line (a list of 500,000 values where devices go, plates in an IMSI
// list) made a reload answer and a log line of hundreds of MB, and the
// daemon's memory with them. The first ones say what is wrong.
const maxProblems = 200

// capped is ps, or its first maxProblems and a last one saying how many
// more there are.
func (ps Problems) capped() Problems {
	if len(ps) <= maxProblems+1 {
		return ps
	}
	more := Problem{File: ps[maxProblems].File, Msg: fmt.Sprintf("and %d more problems, not told: correct these and check again", len(ps)-maxProblems)}
	return append(ps[:maxProblems:maxProblems], more)
}

// Add appends a problem about key in file.
func (ps *Problems) Add(file, key, format string, args ...any) {
	*ps = append(*ps, Problem{File: file, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Except returns the problems of ps about keys that none of others is about:
// a value refused when it was read (a bad duration, decoded as 0) is not
// reported again by the checks that then find it 0.
func (ps Problems) Except(others Problems) Problems {
	if len(others) == 0 {
		return ps
	}
	seen := make(map[string]bool, len(others))
	for _, p := range others {
		seen[p.Key] = true
	}
	var out Problems
	for _, p := range ps {
		if p.Key == "" || !seen[p.Key] {
			out = append(out, p)
		}
	}
	return out
}
