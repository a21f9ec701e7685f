// Package watchlist holds the named lists of plates, IMSIs, IMEIs and MAC
// addresses that rules match readings against. An entry ending in `*`
// matches by prefix (`428*`: every Mongolian SIM).
package watchlist

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/luhn"
	"github.com/fenceline/fenceline/internal/model"
)

// Kinds of watchlist.
const (
	KindPlate = "plate"
	KindIMSI  = "imsi"
	KindIMEI  = "imei"
	KindMAC   = "mac"
)

// List is one compiled watchlist. It is immutable after Build and safe for
// concurrent readers.
type List struct {
	Name, Kind string

	exact    map[string]struct{}
	prefixes map[string]struct{}
	// minimal holds the prefixes that no shorter prefix covers, sorted: a
	// prefix-free set, in which the only candidate prefix of a value v is
	// the greatest entry <= v (any entry between a prefix p of v and v
	// itself would begin with p). Match finds it by binary search among
	// the entries of v's first byte (byFirst[c] is the index of the first
	// entry that begins with c or a greater byte), or scans a short list.
	minimal []string
	byFirst *[257]int32
	norm    func(string) (string, error)
	imei    bool // Kind is KindIMEI: normal values are cut to imeiKey
}

// maxLineBytes bounds one line of a list file; no identifier is near it.
const maxLineBytes = 4096

// maxFileBytes bounds a list file (a million plates take 12 MiB), and
// maxFileProblems the lines of one reported one by one: past them a file
// is more likely the wrong one than a list with typos.
const (
	maxFileBytes    = 64 << 20
	maxFileProblems = 20
)

// Build compiles the watchlist called name from spec.Entries and the lines
// of spec.File (relative paths against baseDir; blank lines and `#`
// comments ignored). file is the rules file's path, named in problems.
// Entries are normalised as readings are, so that `蒙b7k3q2 ` in a list
// matches the reading `蒙B7K3Q2`. Every problem is returned; the List
// holds the entries that were good.
func Build(name string, spec config.WatchlistSpec, baseDir, file string) (*List, config.Problems) {
	var probs config.Problems
	key := "watchlists." + name
	l := &List{
		Name:     name,
		Kind:     spec.Kind,
		exact:    make(map[string]struct{}, len(spec.Entries)),
		prefixes: make(map[string]struct{}),
	}
	if msg := config.LineProblem(name); msg != "" {
		probs.Add(file, key, "the watchlist's name %s", msg) // it goes into summaries ("on watchlist …")
	}
	l.norm = normaliser(spec.Kind)
	l.imei = spec.Kind == KindIMEI
	if l.norm == nil {
		probs.Add(file, key+".kind", "unknown watchlist kind %q (plate, imsi, imei or mac)", spec.Kind)
		return l, probs
	}
	for i, e := range spec.Entries {
		if err := l.add(e); err != nil {
			probs.Add(file, fmt.Sprintf("%s.entries[%d]", key, i), "%v", err)
		}
	}
	if spec.File != "" {
		probs = append(probs, l.addFile(spec.File, baseDir, file, key)...)
	}
	sorted := make([]string, 0, len(l.prefixes))
	for p := range l.prefixes {
		sorted = append(sorted, p)
	}
	slices.Sort(sorted)
	// Sorted, the entries a prefix p covers follow p directly.
	for _, p := range sorted {
		if n := len(l.minimal); n > 0 && strings.HasPrefix(p, l.minimal[n-1]) {
			continue
		}
		l.minimal = append(l.minimal, p)
	}
	if len(l.minimal) > linearPrefixes {
		l.byFirst = new([257]int32)
		i := 0
		for c := range 257 {
			for i < len(l.minimal) && int(l.minimal[i][0]) < c {
				i++
			}
			l.byFirst[c] = int32(i)
		}
	}
	return l, probs
}

func (l *List) addFile(name, baseDir, file, key string) config.Problems {
	var probs config.Problems
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	// Stat first: opening a FIFO would hold the start (or a reload) for
	// ever, and a device such as /dev/zero holds no lines to bound a read.
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		if err == nil {
			err = fmt.Errorf("%s %w", path, config.ErrNotRegular)
		}
		probs.Add(file, key+".file", "cannot read watchlist file: %v", err)
		return probs
	}
	f, err := os.Open(path)
	if err != nil {
		probs.Add(file, key+".file", "cannot read watchlist file: %v", err)
		return probs
	}
	defer f.Close()
	// Bounded: a path naming the wrong file (a device, a log) must not
	// take the daemon's memory.
	sc := bufio.NewScanner(io.LimitReader(f, maxFileBytes+1))
	sc.Buffer(make([]byte, 0, 1024), maxLineBytes)
	sc.Split(scanLines)
	line, read, refused, entries := 0, 0, 0, 0
	for sc.Scan() {
		read += len(sc.Bytes()) + 1
		if read > maxFileBytes {
			probs = append(probs, config.Problem{File: path, Line: line + 1, Key: key + ".file",
				Msg: fmt.Sprintf("watchlist file larger than %d MiB", maxFileBytes>>20)})
			break
		}
		line++
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\uFEFF")) // editors on Windows add a BOM
		}
		// No identifier holds '#', so a comment may also follow an entry.
		if i := bytes.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		s := strings.TrimFunc(string(text), unicode.IsSpace)
		if s == "" {
			continue
		}
		err := errNotUTF8
		if utf8.ValidString(s) {
			err = l.add(s)
		}
		if err == nil {
			entries++
			continue
		}
		refused++
		if refused > maxFileProblems {
			continue
		}
		// The line, not its text: a secret's file named by mistake
		// would be printed by check and the reload answer.
		msg := err.Error()
		var ee *entryError
		if errors.As(err, &ee) {
			msg = "entry " + ee.why
		}
		probs = append(probs, config.Problem{File: path, Line: line, Key: key + ".file", Msg: msg})
	}
	if refused > maxFileProblems {
		probs = append(probs, config.Problem{File: path, Key: key + ".file",
			Msg: fmt.Sprintf("and %d more lines refused (%d in all: is it the right file?)", refused-maxFileProblems, refused)})
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		probs = append(probs, config.Problem{File: path, Line: line + 1, Key: key + ".file",
			Msg: fmt.Sprintf("a line longer than %d bytes: is it a list, one entry a line?", maxLineBytes)})
	} else if err != nil {
		probs = append(probs, config.Problem{File: path, Line: line + 1, Key: key + ".file",
			Msg: fmt.Sprintf("cannot read watchlist file: %v", err)})
	} else if entries == 0 && refused == 0 {
		// A list file emptied, or cut short, while it was written would
		// switch its rules off without a word, as a rules file cut short
		// would.
		probs = append(probs, config.Problem{File: path, Key: key + ".file",
			Msg: "the file holds no entry (emptied or cut short while it was written?): the rules using this watchlist would never fire; " +
				"to empty the watchlist on purpose, leave out `file` (entries: [])"})
	}
	return probs
}

// errNotUTF8 is the problem of a list file's line in another encoding (GBK,
// Windows' default for Chinese): its plates would read as garbage.
var errNotUTF8 = errors.New("not UTF-8 text: save the file as UTF-8 (GBK and other encodings are not read)")

// add normalises one entry and stores it as exact or prefix.
func (l *List) add(e string) error {
	e = strings.TrimFunc(e, unicode.IsSpace)
	prefix := strings.HasSuffix(e, "*")
	if prefix {
		e = strings.TrimFunc(strings.TrimSuffix(e, "*"), unicode.IsSpace)
		if e == "" {
			return errors.New("a * alone would match everything: give the prefix before it")
		}
		if strings.HasSuffix(e, "*") {
			return badEntry(e+"*", "one * at the end makes a prefix")
		}
	}
	if e == "" {
		return errors.New("empty entry")
	}
	if l.Kind == KindPlate {
		// Its characters as written (normalised): the key it is compared
		// by keeps letters and digits only, and would hide a typo.
		if err := checkPlate(model.NormalisePlate(e)); err != nil {
			return err
		}
	}
	n, err := l.norm(e)
	if err != nil {
		return err
	}
	if n == "" {
		// Only what the list's form leaves out (spaces, hyphens, dots):
		// as a prefix it would match everything, as an entry nothing.
		if prefix {
			return errors.New("a * after only spaces, hyphens or dots would match everything: give the prefix before it")
		}
		return errors.New("an entry of only spaces, hyphens or dots, which would never match")
	}
	if prefix {
		if err := checkPrefix(l.Kind, n); err != nil {
			return err
		}
		if l.Kind == KindIMEI {
			n = imeiKey(n)
		}
		l.prefixes[n] = struct{}{}
		return nil
	}
	if err := checkExact(l.Kind, n); err != nil {
		return err
	}
	if l.Kind == KindIMEI {
		n = imeiKey(n)
	}
	l.exact[n] = struct{}{}
	return nil
}

// Match reports whether v is on the list, exactly or by a prefix. v is
// normalised first; an already normal value (as the decoder produces)
// costs no allocation.
func (l *List) Match(v string) bool {
	n, ok := l.Normalise(v)
	return ok && l.MatchNormal(n)
}

// Normalise returns v in the form the list compares (the same for every
// list of a kind), false when v cannot be of the kind. A caller matching
// one value against several lists of a kind normalises it once.
func (l *List) Normalise(v string) (string, bool) {
	if l == nil || l.norm == nil {
		return "", false
	}
	n, err := l.norm(v)
	if l.imei {
		n = imeiKey(n)
	}
	return n, err == nil && n != ""
}

// imeiKey is the part of an IMEI that names the handset: its first 14
// digits (type allocation code and serial number). A 15-digit IMEI adds a
// check digit and a 16-digit IMEISV a software version, so an entry in one
// form matches reports in the others.
func imeiKey(n string) string {
	if len(n) > 14 {
		return n[:14]
	}
	return n
}

// MatchNormal is Match for a value Normalise returned.
func (l *List) MatchNormal(n string) bool {
	if l == nil || n == "" {
		return false
	}
	if len(l.exact) > 0 {
		if _, ok := l.exact[n]; ok {
			return true
		}
	}
	return l.hasPrefix(n)
}

// linearPrefixes is the length up to which a scan of the prefixes beats a
// binary search.
const linearPrefixes = 8

// hasPrefix reports whether one of the list's prefixes begins n.
func (l *List) hasPrefix(n string) bool {
	ps := l.minimal
	if len(ps) <= linearPrefixes {
		for _, p := range ps {
			// The first and last bytes tell most prefixes off without a
			// call: IMSI prefixes (country and network codes) mostly
			// share their first digit.
			if len(p) <= len(n) && p[0] == n[0] && p[len(p)-1] == n[len(p)-1] && n[:len(p)] == p {
				return true
			}
		}
		return false
	}
	// The greatest entry <= n is the only candidate; entries are not empty,
	// so it begins with n's first byte.
	lo, hi := int(l.byFirst[n[0]]), int(l.byFirst[int(n[0])+1]) // ps[:lo] <= n < ps[hi:]
	base := lo
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ps[m] <= n {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > base && strings.HasPrefix(n, ps[lo-1])
}

// Len is the number of distinct entries, exact and prefix.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.exact) + len(l.prefixes)
}

func normaliser(kind string) func(string) (string, error) {
	switch kind {
	case KindPlate:
		// Without its separators (model.PlateKey): a camera reads "1598
		// УБА" as often as "1598УБА", and an operator types "蒙B·12345"
		// for the camera's "蒙B12345".
		return func(s string) (string, error) { return model.PlateKey(model.NormalisePlate(s)), nil }
	case KindIMSI, KindIMEI:
		return normaliseDigits
	case KindMAC:
		return normaliseMAC
	}
	return nil
}

// normaliseDigits keeps IMSIs and IMEIs as bare digits: spaces and dashes
// (`49-015420-323751-8`, as printed on phone labels) are dropped, anything
// else is an error.
func normaliseDigits(s string) (string, error) {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			clean = false
			break
		}
	}
	if clean {
		return s, nil
	}
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= '０' && r <= '９':
			b.WriteRune(r - 0xFEE0)
		case r == ' ' || r == '-':
		default:
			return "", badEntry(s, "not a number (digits only)")
		}
	}
	return b.String(), nil
}

// normaliseMAC writes a MAC address (or a prefix of one, such as an OUI)
// in the decoder's form: lower-case hex pairs joined by colons. It takes
// the colon, dash, Cisco-dot and bare forms.
func normaliseMAC(s string) (string, error) {
	if macIsNormal(s) {
		return s, nil
	}
	var hex []byte
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f':
			hex = append(hex, byte(r))
		case r >= 'A' && r <= 'F':
			hex = append(hex, byte(r)+('a'-'A'))
		case r == ':' || r == '-' || r == '.':
		default:
			return "", badEntry(s, "not a MAC address")
		}
		if len(hex) > 12 {
			return "", badEntry(s, "a MAC address has 12 hex digits")
		}
	}
	b := make([]byte, 0, 17)
	for i, c := range hex {
		if i > 0 && i%2 == 0 {
			b = append(b, ':')
		}
		b = append(b, c)
	}
	return string(b), nil
}

// macIsNormal reports whether s is already lower-case colon form (whole
// or a prefix: "a4:5e:6").
func macIsNormal(s string) bool {
	if len(s) == 0 || len(s) > 17 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' || i == len(s)-1 {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// checkExact validates a normalised whole entry for its kind, so that a
// mistyped entry is reported instead of silently never matching.
func checkExact(kind, n string) error {
	switch kind {
	case KindIMSI:
		if len(n) < 6 || len(n) > 15 {
			return badEntry(n, "an IMSI has 6 to 15 digits (end it with * for a prefix)")
		}
	case KindIMEI:
		if len(n) < 14 || len(n) > 16 {
			return badEntry(n, "an IMEI has 14 to 16 digits (end it with * for a prefix)")
		}
		// The decoder rejects such readings, so the entry could never match.
		if len(n) == 15 && !luhn.Valid(n) {
			return badEntry(n, "15-digit IMEI with a wrong Luhn check digit")
		}
	case KindMAC:
		if len(n) != 17 {
			return badEntry(n, "a MAC address has 12 hex digits (end it with * for a prefix)")
		}
	case KindPlate:
		if model.IsNoPlate(n) {
			// Passes without a plate read are no vehicle of interest: a list
			// never matches them, and this entry would go unheard.
			return badEntry(n, "means no plate was read, which no list matches: to alert on unread plates, use a rule with when: 'plate == \"无牌\"'")
		}
	}
	return nil
}

func checkPrefix(kind, n string) error {
	switch kind {
	case KindIMSI:
		if len(n) > 15 {
			return badEntry(n, "an IMSI prefix has at most 15 digits")
		}
	case KindIMEI:
		if len(n) > 16 {
			return badEntry(n, "an IMEI prefix has at most 16 digits")
		}
	case KindPlate:
		if strings.HasPrefix(n, model.NoPlate) || strings.HasPrefix(n, "無牌") {
			// What begins so is a way of writing 无牌, not a plate.
			return badEntry(n+"*", "begins with 无牌 (no plate read), which no list matches")
		}
	}
	return nil
}

// maxPlateRunes is generous: Chinese plates have 7 or 8 characters,
// Mongolian ones 8 with the space.
const maxPlateRunes = 16

// checkPlate accepts letters of any script (the province character, Latin,
// Cyrillic), digits, single spaces and the separators seen on plates.
func checkPlate(n string) error {
	if !utf8.ValidString(n) {
		return badEntry(n, "not valid UTF-8")
	}
	if utf8.RuneCountInString(n) > maxPlateRunes {
		return badEntry(n, "longer than %d characters for a plate", maxPlateRunes)
	}
	for i, r := range []rune(n) {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || r == '-' || r == '·' || r == '.') {
			// By position: the line of a file named by mistake is not
			// printed, not even a character of it.
			return badEntry(n, "character %d is not a plate character (letters, digits, spaces, - · .)", i+1)
		}
	}
	return nil
}

// entryError is an entry refused: the entry and why. Its message quotes
// the entry for an entry of the rules file; for a line of a list file it
// names the line instead (see addFile), since a list file named by mistake
// (a secret's) must not be printed by check or the reload answer.
type entryError struct {
	entry, why string
}

func (e *entryError) Error() string { return quote(e.entry) + ": " + e.why }

func badEntry(entry, format string, args ...any) error {
	return &entryError{entry: entry, why: fmt.Sprintf(format, args...)}
}

// quote quotes an entry for a message, cut short: a line of garbage
// should not flood `fenceline check`.
func quote(s string) string {
	const maxRunes = 40
	if utf8.RuneCountInString(s) <= maxRunes {
		return strconv.Quote(s)
	}
	return strconv.Quote(string([]rune(s)[:maxRunes])) + "…"
}

// Digest is a hash of the list's kind and entries (in their normal form):
// two lists with the same digest match the same values. A rule's
// fingerprint takes it for a list with a file, whose spec names only the
// file.
func (l *List) Digest() string {
	entries := make([]string, 0, len(l.exact)+len(l.prefixes))
	for e := range l.exact {
		entries = append(entries, "="+e)
	}
	for p := range l.prefixes {
		entries = append(entries, "*"+p)
	}
	slices.Sort(entries)
	h := sha256.New()
	h.Write([]byte(l.Kind))
	for _, e := range entries {
		h.Write([]byte{0})
		h.Write([]byte(e))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// scanLines splits a list file into lines ended by \n, \r\n or a lone \r:
// a list exported as "CSV (Macintosh)" ends its lines with \r alone, and
// would read as one line far too long.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0 && atEOF && len(data) > 0:
		return len(data), data, nil
	case i < 0:
		return 0, nil, nil // more to read, or nothing left
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data) && data[i+1] == '\n':
		return i + 2, data[:i], nil
	case i+1 < len(data) || atEOF:
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a \r at the end of what was read: its \n may follow
}
