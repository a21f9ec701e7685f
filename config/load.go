package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds a configuration file: a larger one is a mistake.
const MaxFileBytes = 64 << 20

// Load reads the daemon configuration file at path over Default(), resolves
// relative paths against its folder and validates it. Every problem found is
// returned (as Problems) at once. When the file decodes but has problems,
// the configuration is returned with them, so that `check` can look at the
// files it names too; nothing else may use it.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: err.Error()}}
	}
	cfg := Default()
	lines, ps, ok := decodeStrict(path, data, &cfg)
	if !ok {
		return nil, ps
	}
	cfg.Path = path
	cfg.lines = lines
	cfg.applyDefaults()
	cfg.resolvePaths(filepath.Dir(path))
	vs := cfg.Validate()
	for i := range vs {
		vs[i].File = path
		vs[i].Line = lines.of(vs[i].Key)
	}
	if ps = append(ps, vs.Except(ps)...); len(ps) > 0 {
		return &cfg, ps
	}
	return &cfg, nil
}

// LoadRules reads a rules file strictly. It checks only the structure (YAML
// shape, known keys, types); the alert engine's compiler checks meaning and
// reports its problems through Rules.Locate so that they carry lines too.
// When the file decodes but has unknown keys, the rules are returned with
// the problems (a Problems error), so that a caller can report the
// compiler's problems too.
func LoadRules(path string) (*Rules, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: err.Error()}}
	}
	return parseRules(path, data)
}

// LoadRules is LoadRules of the rules file c names; a file that cannot be
// read is a problem of c's rules_file key.
func (c *Config) LoadRules() (*Rules, error) {
	if c.RulesFile == "" {
		return nil, c.Locate(Problems{{Key: "rules_file", Msg: "must name the rules file"}})
	}
	data, err := readFile(c.RulesFile)
	if err != nil {
		return nil, c.Locate(Problems{{Key: "rules_file", Msg: c.RulesFile + ": " + err.Error()}})
	}
	return parseRules(c.RulesFile, data)
}

func parseRules(path string, data []byte) (*Rules, error) {
	var r Rules
	lines, ps, ok := decodeStrict(path, data, &r)
	if !ok {
		return nil, ps
	}
	r.Path = path
	r.lines = lines
	return &r, r.Locate(ps).Err()
}

// Dir is the folder relative paths of the rules file resolve against.
func (r *Rules) Dir() string { return filepath.Dir(r.Path) }

// Locate fills in the file and line of problems found in r.
func (r *Rules) Locate(ps Problems) Problems {
	for i := range ps {
		if ps[i].File == "" {
			ps[i].File = r.Path
		}
		if ps[i].Line == 0 && ps[i].File == r.Path {
			ps[i].Line = r.lines.of(ps[i].Key)
		}
		if ps[i].Of == "" && ps[i].File == r.Path {
			ps[i].Of = r.idOf(ps[i].Key)
		}
	}
	return ps
}

// Lacks reports whether the file r was read from has no key (a path such
// as "zones[2].circle.lat"): a number left out decodes as 0, which for a
// circle's centre is a place. False when r was not read from a file.
func (r *Rules) Lacks(key string) bool {
	if r.lines == nil {
		return false
	}
	_, ok := r.lines[key]
	return !ok
}

// SectionUnset reports whether the top-level section key ("zones",
// "watchlists", "rules") is missing from the file r was read from, or there
// without a value: `rules:` and nothing after it, which a file cut short
// right after that line is (valid YAML). A section emptied on purpose is
// written empty (`rules: []`, `watchlists: {}`). False when r was not read
// from a file.
func (r *Rules) SectionUnset(key string) bool {
	if r.lines == nil {
		return false
	}
	switch key {
	case "zones":
		return r.Zones == nil
	case "watchlists":
		return r.Watchlists == nil
	case "rules":
		return r.Rules == nil
	}
	return r.Lacks(key)
}

// idOf names the device, zone or rule key is in ("rules[3].when": "rule
// crowd-at-ruins", the fourth rule), "" when it has no id.
func (r *Rules) idOf(key string) string {
	for _, list := range []struct {
		prefix, what string
		ids          func(i int) (string, bool)
	}{
		{"devices[", "device", func(i int) (string, bool) { return at(r.Devices, i, func(d DeviceSpec) string { return d.ID }) }},
		{"zones[", "zone", func(i int) (string, bool) { return at(r.Zones, i, func(z ZoneSpec) string { return z.ID }) }},
		{"rules[", "rule", func(i int) (string, bool) { return at(r.Rules, i, func(s RuleSpec) string { return s.ID }) }},
	} {
		rest, ok := strings.CutPrefix(key, list.prefix)
		if !ok {
			continue
		}
		n, _, ok := strings.Cut(rest, "]")
		i, err := strconv.Atoi(n)
		if !ok || err != nil {
			return ""
		}
		if id, ok := list.ids(i); ok && plainID(id) {
			return list.what + " " + id
		}
		return ""
	}
	return ""
}

// plainID reports whether id is fit to name its entry in a problem: one
// the checks would refuse (empty, a line break in it) may say nothing or
// break the line.
func plainID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// at is the id of s[i], false when i is out of range.
func at[T any](s []T, i int, id func(T) string) (string, bool) {
	if i < 0 || i >= len(s) {
		return "", false
	}
	return id(s[i]), true
}

func readFile(path string) ([]byte, error) { return ReadFile(path, MaxFileBytes) }

// maxSecretBytes bounds a secret's file: a password, a token or a key is a
// line, and a path naming the wrong file is read no further.
const maxSecretBytes = 64 << 10

// ErrNotRegular is ReadFile's error for a path that is not a file.
var ErrNotRegular = errors.New("is not a regular file (a folder, a FIFO or a device)")

// ReadFile reads a file the configuration names, whole, if it holds at most
// limit bytes. Only a regular file (or a link to one) is opened: a FIFO
// would hold the start (or check, or a reload) for ever, a device such as
// /dev/zero never ends. Errors do not name the path: the caller's problem
// does (or withholds it, for a secret's).
func ReadFile(path string, limit int) ([]byte, error) {
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		return nil, ErrNotRegular
	}
	var f *os.File
	if err == nil {
		f, err = os.Open(path)
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the problem already
		}
		return nil, fmt.Errorf("cannot open: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// SecretPath is path, a secret file's, for an error or a log line: itself
// when something is there, else withheld. A password or token written where
// its file's path belongs ("token_file: writer:S3cr3t") names no file, and
// "cannot read writer:S3cr3t" would print the secret.
func SecretPath(path string) string {
	if _, err := os.Stat(path); err != nil {
		return "(its name not shown: no such file, and perhaps the secret itself written in place of a path)"
	}
	return path
}

// errEmptySecret is ReadSecret's error for a file without a secret.
var errEmptySecret = errors.New("is empty")

// errSecretLines: a secret file holds the secret alone. A second line is a
// mistake (an editor's, a copy's) that would go into the HMAC key or the
// password, and fail every delivery or login far from its cause.
var errSecretLines = errors.New("holds more than one line: the file must hold the secret alone")

// ReadSecret reads a secret from a file, without its trailing newline; a
// file holding nothing else is an error (an empty webhook secret would turn
// signing off unnoticed). The error names the file, never the content.
func ReadSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := ReadFile(path, maxSecretBytes)
	if err != nil {
		return "", fmt.Errorf("secret file %s: %w", SecretPath(path), err)
	}
	s := strings.TrimRight(string(data), "\r\n")
	if strings.TrimSpace(s) == "" { // blanks are no key either
		return "", fmt.Errorf("secret file %s: %w", path, errEmptySecret)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("secret file %s: %w", path, errSecretLines)
	}
	return s, nil
}

// keyLines maps a key path (`rules[3].when`) to its line in the file.
type keyLines map[string]int

// of returns the line of key, or of its closest ancestor that has one.
func (l keyLines) of(key string) int {
	for key != "" {
		if n, ok := l[key]; ok {
			return n
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// decodeStrict decodes data into out, reporting unknown keys and type errors
// by key path and line, and returns where each key stands. ok is false when
// out could not be decoded at all; unknown keys alone leave it true (they
// are skipped), so that the rest of the file can be checked too.
func decodeStrict(file string, data []byte, out any) (_ keyLines, _ Problems, ok bool) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return keyLines{}, nil, true // an empty file: all defaults
		}
		return nil, Problems{yamlProblem(file, data, err)}, false
	}
	lines := keyLines{}
	var ps Problems
	// One document per file: a second one (after a "---") would be read by
	// nobody, and the rules or keys in it silently never take effect.
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, Problems{yamlProblem(file, data, err)}, false
		}
		if isEmptyDoc(&next) {
			continue // a trailing "---": nothing in it
		}
		ps = append(ps, Problem{File: file, Line: next.Line,
			Msg: "a second YAML document starts here (---): fenceline reads one document per file; merge them into one"})
		break
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return lines, ps, true
	}
	if line, ok := aliasesWithinBound(doc); !ok {
		return nil, Problems{{File: file, Line: line, Msg: fmt.Sprintf(
			"its aliases (*name) expand to more than %d keys and values: refused (aliases of aliases multiply, and a few hundred bytes can expand to billions); a long list or a large zone that several entries share goes in a file each names (file:)",
			maxAliasedNodes)}}, false
	}
	walk(file, doc, "", reflect.TypeOf(out).Elem(), lines, &ps)
	if len(ps) > 0 && ps[len(ps)-1].Msg == notOursMsg {
		// yaml's own errors about it (a key given twice) would quote it.
		return lines, ps, false
	}
	if err := doc.Decode(out); err != nil {
		msgs := []string{err.Error()}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msgs = te.Errors
		}
		for _, m := range msgs {
			e := errors.New(m)
			line := yamlErrLine(e)
			key := lines.at(line)
			if m := duplicateKeyRE.FindStringSubmatch(m); m != nil {
				key = lines.named(line, m[1])
			}
			ps = append(ps, Problem{File: file, Line: line, Key: key, Msg: trimYAMLErr(e)})
		}
		return lines, ps, false
	}
	return lines, ps, true
}

// maxAliasedNodes bounds the nodes a file's aliases bring in, counted as
// often as each is brought: anchors used as defaults for every device or
// rule of a large deployment bring in some hundred thousand; an alias of an
// alias of an alias… (a "billion laughs") brings in billions from a few
// hundred bytes, and walking or decoding them would take all the memory.
const maxAliasedNodes = 1_000_000

// aliasesWithinBound reports whether the nodes doc's aliases bring in stay
// within maxAliasedNodes, and else the line of an alias past the bound. The
// size of each anchored node is counted once (memoised), so the count
// costs the file's size, not its expansion.
func aliasesWithinBound(doc *yaml.Node) (line int, ok bool) {
	sizes := map[*yaml.Node]int{}
	aliased := 0
	var size func(n *yaml.Node) int
	size = func(n *yaml.Node) int {
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return 1
			}
			s, seen := sizes[n.Alias]
			if !seen {
				sizes[n.Alias] = 1 // an alias inside its own anchor: yaml refuses it
				s = size(n.Alias)
				sizes[n.Alias] = s
			}
			if aliased += s; aliased > maxAliasedNodes && line == 0 {
				line = n.Line
			}
			return s
		}
		s := 1
		for _, c := range n.Content {
			if s += size(c); s > maxAliasedNodes {
				s = maxAliasedNodes + 1 // no overflow, however deep
			}
		}
		return s
	}
	size(doc)
	return line, aliased <= maxAliasedNodes
}

// isEmptyDoc reports whether a document holds nothing (null).
func isEmptyDoc(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// at returns the deepest key on the given line ("" if none).
func (l keyLines) at(line int) string {
	best := ""
	for k, n := range l {
		if n == line && len(k) > len(best) {
			best = k
		}
	}
	return best
}

// named returns the key on the given line whose last element is name: the
// key a duplicate-key error is about, on a line that may hold others (flow
// style). The deepest such key wins; without one, the deepest key there.
func (l keyLines) named(line int, name string) string {
	best := ""
	for k, n := range l {
		if n == line && len(k) > len(best) && (k == name || strings.HasSuffix(k, "."+name)) {
			best = k
		}
	}
	if best == "" {
		return l.at(line)
	}
	return best
}

// duplicateKeyRE matches yaml's error for a key given twice in a mapping.
var duplicateKeyRE = regexp.MustCompile(`mapping key "([^"]*)" already defined`)

var durationType = reflect.TypeFor[Duration]()

// walk records the line of every key and reports keys that the Go type does
// not have (yaml's own strict mode names Go types, not key paths), and
// durations that do not parse: yaml's decoding stops at the first of those,
// and names only its line, which holds several keys in flow style. A bad
// duration is reported here and decoded as 0, so that every one is
// reported, each with its key.
func walk(file string, n *yaml.Node, path string, t reflect.Type, lines keyLines, ps *Problems) {
	if path != "" {
		if _, ok := lines[path]; !ok {
			lines[path] = n.Line
		}
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if t == durationType && n.Kind != yaml.ScalarNode && n.Kind != yaml.AliasNode {
		*ps = append(*ps, Problem{File: file, Key: path, Line: n.Line, Msg: "must be a duration (Go style: 90s, 15m, 2h), not " + nodeShape(n)})
		n.Kind, n.Value, n.Tag, n.Style, n.Content = yaml.ScalarNode, "0s", "!!str", 0, nil
		return
	}
	if t == durationType && n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		var d Duration
		if err := d.UnmarshalText([]byte(n.Value)); err != nil {
			*ps = append(*ps, Problem{File: file, Key: path, Line: n.Line, Msg: err.Error()})
			n.Value, n.Tag, n.Style = "0s", "!!str", 0
		}
		return
	}
	if t != nil && t != durationType && !customDecoded(t) && isNumber(t) && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		// yaml decodes it as 0 without a word: a circle's `lat: ~` would
		// centre a zone on the equator.
		*ps = append(*ps, Problem{File: file, Key: path, Line: n.Line, Msg: "is null: give a number (a key left out takes its default, where it has one)"})
		return
	}
	if t != nil && !customDecoded(t) && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		if msg := shapeProblem(n, t); msg != "" {
			if path == "" && n.Kind == yaml.ScalarNode {
				// A whole file that is one value: most likely the wrong
				// file named (a key's or a password's), whose text must not
				// be printed.
				msg = "must be a mapping (key: value lines), not a single value (not shown: is it the file you meant?)"
			}
			// yaml would stop at it and name only its line (and, in flow
			// style, nobody could tell which key of the line it meant):
			// reported with its key, and decoded as the type's zero value
			// so that the rest is checked too.
			*ps = append(*ps, Problem{File: file, Key: path, Line: n.Line, Msg: msg})
			neutralise(n, t)
			return
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = yamlFields(t)
		}
		if path == "" && fields != nil && noKeyKnown(n, fields) {
			// Not a file of fenceline's (a secret's, "Tok3n:"): its keys
			// are not printed.
			*ps = append(*ps, Problem{File: file, Line: n.Line, Msg: notOursMsg})
			return
		}
		dropDuplicateKeys(file, n, path, ps)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				walkMerge(file, v, path, t, lines, ps)
				continue
			}
			key := k.Value
			child := key
			if path != "" {
				child = path + "." + key
			}
			lines[child] = k.Line
			var ct reflect.Type
			switch {
			case fields != nil:
				ft, ok := fields[key]
				if !ok {
					*ps = append(*ps, Problem{File: file, Key: child, Line: k.Line, Msg: "unknown key" + suggest(key, fields)})
					continue
				}
				ct = ft
			case t != nil && t.Kind() == reflect.Map:
				ct = t.Elem()
			}
			walk(file, v, child, ct, lines, ps)
		}
	case yaml.SequenceNode:
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i, c := range n.Content {
			item := path + "[" + strconv.Itoa(i) + "]"
			if c.Kind == yaml.ScalarNode && c.Tag == "!!null" && c.Value == "" {
				// "- " with nothing after it: most likely a file cut short or
				// a line half written; yaml would skip it without a word.
				lines[item] = c.Line
				*ps = append(*ps, Problem{File: file, Key: item, Line: c.Line, Msg: "empty entry (a file cut short, or a line half written?)"})
				continue
			}
			walk(file, c, item, et, lines, ps)
		}
	}
}

// dropDuplicateKeys reports each key given a second time in the mapping n
// (as yaml would) and takes it out, so that decoding goes on and the rest
// of the file is checked too: yaml stops at the first, and `check` would
// show one problem of a file that has seventeen.
func dropDuplicateKeys(file string, n *yaml.Node, path string, ps *Problems) {
	first := map[string]int{}
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag != "!!merge" {
			if line, dup := first[k.Value]; dup {
				child := k.Value
				if path != "" {
					child = path + "." + k.Value
				}
				*ps = append(*ps, Problem{File: file, Key: child, Line: k.Line, Msg: fmt.Sprintf("mapping key %q already defined at line %d", k.Value, line)})
				continue
			}
			first[k.Value] = k.Line
		}
		kept = append(kept, k, v)
	}
	n.Content = kept
}

// notOursMsg is the problem of a file none of whose keys fenceline knows.
const notOursMsg = "none of its keys is one fenceline knows (not shown: is it the file you meant?)"

// noKeyKnown reports whether no key of the mapping n is a field, or near
// one (a typo suggest would name).
func noKeyKnown(n *yaml.Node, fields map[string]reflect.Type) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Tag == "!!merge" {
			// A merge of a mapping brings keys in (known or not: walked
			// then); one of anything else is no file of ours.
			if v := n.Content[i+1]; v.Kind == yaml.MappingNode || v.Kind == yaml.AliasNode || v.Kind == yaml.SequenceNode {
				return false
			}
			continue
		}
		if _, ok := fields[k.Value]; ok || suggest(k.Value, fields) != "" {
			return false
		}
	}
	return len(n.Content) > 0
}

// walkMerge checks the mapping a merge key ("<<: *defaults", or a list of
// anchors) brings into a mapping of type t at path: its keys are that
// mapping's own, and yaml decodes them so.
func walkMerge(file string, v *yaml.Node, path string, t reflect.Type, lines keyLines, ps *Problems) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		walk(file, v, path, t, lines, ps)
	case yaml.SequenceNode:
		for _, c := range v.Content {
			if c.Kind == yaml.AliasNode && c.Alias != nil {
				c = c.Alias
			}
			if c.Kind != yaml.MappingNode {
				*ps = append(*ps, Problem{File: file, Key: path, Line: c.Line, Msg: "a merge key (<<) takes mappings, not " + nodeShape(c)})
				continue
			}
			walk(file, c, path, t, lines, ps)
		}
	default:
		*ps = append(*ps, Problem{File: file, Key: path, Line: v.Line, Msg: "a merge key (<<) takes a mapping (an anchor such as *defaults), not " + nodeShape(v)})
		if v.Kind == yaml.ScalarNode {
			neutralise(v, mapType) // merges nothing: yaml would stop at it
		}
	}
}

var mapType = reflect.TypeOf(map[string]any(nil))

var (
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// customDecoded reports whether values of t decode themselves (and so check
// their own shape).
func customDecoded(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return pt.Implements(yamlUnmarshalerType) || pt.Implements(textUnmarshalerType)
}

// shapeProblem says why node n cannot be decoded into a value of type t
// ("" if it can): a list where a mapping is due, a word where a number is.
func shapeProblem(n *yaml.Node, t reflect.Type) string {
	if n.Kind == yaml.AliasNode {
		return ""
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			return "must be a mapping (key: value, or {key: value, …}), not " + nodeShape(n)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return "must be a list (- item, or [item, …]), not " + nodeShape(n)
		}
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64, reflect.String:
		if n.Kind != yaml.ScalarNode {
			return "must be a single value, not " + nodeShape(n)
		}
		if t.Kind() == reflect.String {
			return ""
		}
		isInt := t.Kind() != reflect.Bool && t.Kind() != reflect.Float32 && t.Kind() != reflect.Float64
		if isInt && n.ShortTag() == "!!float" {
			// yaml cuts 2.9 down to 2 without a word.
			if f, err := strconv.ParseFloat(n.Value, 64); err != nil || f != math.Trunc(f) {
				return fmt.Sprintf("%q is not a whole number", shownValue(n.Value))
			}
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			want := "a whole number"
			switch t.Kind() {
			case reflect.Bool:
				want = "true or false"
				if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
					want += ", unquoted" // "true" is a word, not the value
				}
			case reflect.Float32, reflect.Float64:
				want = "a number"
			default:
				if digits := strings.TrimLeft(n.Value, "+-"); digits != "" && strings.Trim(digits, "0123456789") == "" {
					want = "a whole number in range" // 99999999999999999999 is one, too large
				}
			}
			return fmt.Sprintf("%q is not %s", shownValue(n.Value), want)
		}
	}
	return ""
}

func nodeShape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("the value %q", shownValue(n.Value))
}

// shownValue is a value from the file for a problem's text, without the
// user info of anything that looks like a URL: a broker or webhook URL
// with its password, given where a list belongs, must not be printed back.
func shownValue(v string) string {
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok {
		return v
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "://…@" + rest[at+1:]
	}
	return v
}

// neutralise makes n decode as t's zero value.
func neutralise(n *yaml.Node, t reflect.Type) {
	n.Content, n.Style, n.Alias = nil, 0, nil
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		n.Kind, n.Tag, n.Value = yaml.MappingNode, "!!map", ""
	case reflect.Slice, reflect.Array:
		n.Kind, n.Tag, n.Value = yaml.SequenceNode, "!!seq", ""
	default:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", ""
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

// suggest names a known key close to a misspelt one, or the file key of a
// secret written inline (password: … where password_file is the key).
func suggest(key string, fields map[string]reflect.Type) string {
	if _, ok := fields[key+"_file"]; ok {
		if key == "rules" {
			// devices, zones and rules at the top of the file given
			// with --config: the rules file itself.
			return " (the rules live in their own file, named by \"rules_file\": is this the rules file? --config takes fenceline.yaml)"
		}
		return fmt.Sprintf(" (secrets are never inline: put it in a file named by %q)", key+"_file")
	}
	best, bestD := "", 3
	for k := range fields {
		// Keys are lower case: MQTT is mqtt.
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// Closest returns the name of names closest to word (in edit distance,
// case-blind), if one is within two edits: the one a misspelt word meant.
func Closest(word string, names []string) (string, bool) {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(word), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best, best != ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// parserErrRE matches the errors of yaml.v3's parser, as against its
// scanner's (which share some of the words): their line is one short.
var parserErrRE = regexp.MustCompile(`did not find expected (key|'-' indicator|node content|',' or '[\]}]'|<document start>)$`)

func yamlErrLine(err error) int {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// yamlLinePrefixRE is the "line N:" a yaml message starts with (the
// problem's own line, reported apart); a "line N" later in the message
// ("already defined at line 3") is part of what it says.
var yamlLinePrefixRE = regexp.MustCompile(`^line \d+:?`)

// yamlProblem is a syntax error of file (holding data), with its line,
// and what a tab did when the line has one: YAML indents with spaces only,
// and the parser's own words do not say so.
func yamlProblem(file string, data []byte, err error) Problem {
	msg := unknownAnchorRE.ReplaceAllString(trimYAMLErr(err), "an alias (*name) of an anchor (&name) not defined before it")
	p := Problem{File: file, Line: yamlErrLine(err), Msg: "invalid YAML: " + msg}
	if p.Line > 0 && parserErrRE.MatchString(p.Msg) {
		// yaml.v3 numbers the lines of its parser's errors (not its
		// scanner's) from 0: an unclosed { on line 19 is "line 18".
		p.Line = min(p.Line+1, lineCount(data))
		// And a block's error names the line the block starts on: find
		// the line in it that is not one of its entries.
		switch {
		case strings.HasSuffix(p.Msg, "did not find expected key"):
			p.Line = strayLine(data, p.Line, func(l string) bool { return mappingKeyRE.MatchString(l) })
		case strings.HasSuffix(p.Msg, "did not find expected '-' indicator"):
			p.Line = strayLine(data, p.Line, func(l string) bool { return l == "-" || strings.HasPrefix(l, "- ") })
		}
	}
	if lines := bytes.Split(data, []byte("\n")); p.Line > 0 && p.Line <= len(lines) && bytes.IndexByte(lines[p.Line-1], '\t') >= 0 {
		p.Msg += " (the line holds a tab: YAML indents with spaces)"
	}
	return p
}

// unknownAnchorRE matches yaml's error for an alias of no anchor, which
// quotes the name: a secret's file starting with * (a password) named as a
// configuration file would have it printed.
var unknownAnchorRE = regexp.MustCompile(`unknown anchor '[^']*' referenced`)

// mappingKeyRE matches a line (trimmed) that is a mapping's entry: a key
// and its colon.
var mappingKeyRE = regexp.MustCompile(`^("[^"]*"|'[^']*'|[^\s"'#-][^:#]*|-[^\s:][^:#]*)\s*:(\s|$)`)

// strayLine returns the first line after start (1-based, where a block
// begins) at the block's indentation that is not one of its entries
// (entry tells), or start when there is none before the block ends.
func strayLine(data []byte, start int, entry func(trimmed string) bool) int {
	lines := strings.Split(string(data), "\n")
	if start < 1 || start > len(lines) {
		return start
	}
	indent := func(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }
	want := indent(lines[start-1])
	levels := []int{want} // the indentations of the blocks open at a line
	// A list item's content ("- from: x") is a block at its own column.
	item := func(l string, in int) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "-"); ok && strings.HasPrefix(rest, " ") {
			if content := strings.TrimLeft(rest, " "); content != "" && !strings.HasPrefix(content, "#") {
				levels = append(levels, in+1+len(rest)-len(content))
			}
		}
	}
	item(lines[start-1], want)
	for i := start; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		in := indent(lines[i])
		switch {
		case in < want:
			return start
		case in == want && !entry(l):
			return i + 1
		case in > levels[len(levels)-1]:
			levels = append(levels, in) // a nested block
			item(l, in)
			continue
		}
		// Back out to an enclosing block's indentation; one between two
		// of them belongs to none (a line indented one space short).
		for len(levels) > 1 && levels[len(levels)-1] > in {
			levels = levels[:len(levels)-1]
		}
		if levels[len(levels)-1] != in {
			return i + 1
		}
		item(l, in)
	}
	return start
}

// lineCount is the number of lines of data, the last one with or without
// its line break.
func lineCount(data []byte) int {
	n := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return max(n, 1)
}

func trimYAMLErr(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n  ")
	return strings.TrimSpace(yamlLinePrefixRE.ReplaceAllString(s, ""))
}

// resolvePaths makes the file paths of c absolute against dir.
func (c *Config) resolvePaths(dir string) {
	for _, p := range []*string{
		&c.MQTT.PasswordFile, &c.MQTT.TLS.CAFile, &c.MQTT.TLS.CertFile, &c.MQTT.TLS.KeyFile,
		&c.Influx.TokenFile, &c.Influx.TLS.CAFile, &c.Influx.TLS.CertFile, &c.Influx.TLS.KeyFile,
		&c.Storage.Dir, &c.RulesFile,
		&c.HTTP.TokenFile, &c.HTTP.TLS.CertFile, &c.HTTP.TLS.KeyFile,
		&c.Ingest.Signatures.KeyFile, &c.Privacy.KeyFile,
	} {
		*p = Resolve(dir, *p)
	}
	for i := range c.Webhooks {
		c.Webhooks[i].SecretFile = Resolve(dir, c.Webhooks[i].SecretFile)
		c.Webhooks[i].CAFile = Resolve(dir, c.Webhooks[i].CAFile)
	}
}

// Resolve returns p relative to dir unless it is empty or absolute.
func Resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// isNumber reports whether t is a number kind (a null for one decodes as 0).
func isNumber(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}
