package watchlist

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
)

func build(t testing.TB, kind string, entries ...string) *List {
	t.Helper()
	l, probs := Build("test", config.WatchlistSpec{Kind: kind, Entries: entries}, "testdata", "rules.yaml")
	require.Empty(t, probs)
	return l
}

func TestMatch(t *testing.T) {
	plates := build(t, KindPlate, "蒙B7K3Q2", "蒙b7k3q3 ", "蒙Ｂ１２３４５", "1598 дга", "蒙A*", "  京 * ")
	foreign := build(t, KindIMSI, "428*", "46000123456789*", "460011234567890")
	imeis := build(t, KindIMEI, "49-015420-323751-8", "35209900*", "86723104512345", "3566550712345601")
	macs := build(t, KindMAC, "A4-5E-60-12-34-56", "001a.2b3c.4d5e", "ac:de:48*", "F0:9F:C2:1*")

	tests := []struct {
		name string
		l    *List
		v    string
		want bool
	}{
		{"plate: exact", plates, "蒙B7K3Q2", true},
		{"plate: a reading in lower case with a trailing space", plates, "蒙b7k3q2 ", true},
		{"plate: entry in lower case matches the normal reading", plates, "蒙B7K3Q3", true},
		{"plate: full-width entry", plates, "蒙B12345", true},
		{"plate: full-width reading", plates, "蒙Ｂ７Ｋ３Ｑ２", true},
		{"plate: ideographic space", plates, "\u3000蒙B7K3Q2\u3000", true},
		{"plate: Mongolian, Cyrillic upper-cased", plates, "1598 ДГА", true},
		{"plate: Mongolian, inner spaces collapsed", plates, "1598   ДГА", true},
		{"plate: Mongolian, read without its space", plates, "1598ДГА", true},
		{"plate: a space inside a Chinese plate", plates, "蒙B 7K3Q2", true},
		{"plate: prefix", plates, "蒙A12345", true},
		{"plate: prefix with a space before the *", plates, "京A00001", true},
		{"plate: prefix alone matches", plates, "蒙A", true},
		{"plate: other", plates, "蒙B7K3Q4", false},
		{"plate: shorter than an entry", plates, "蒙B7K3Q", false},
		{"plate: empty", plates, "", false},
		{"plate: no plate", plates, "无牌", false},
		{"imsi: Mongolian prefix", foreign, "428991234567890", true},
		{"imsi: Unitel", foreign, "428881234567890", true},
		{"imsi: China Mobile", foreign, "460071234567890", false},
		{"imsi: long prefix", foreign, "460001234567891", true},
		{"imsi: exact", foreign, "460011234567890", true},
		{"imsi: exact, one digit off", foreign, "460011234567891", false},
		{"imsi: not digits", foreign, "428abc", false},
		{"imsi: shorter than the prefix", foreign, "42", false},
		{"imei: dashes in the entry", imeis, "490154203237518", true},
		{"imei: prefix (TAC)", imeis, "352099001761481", true},
		{"imei: other", imeis, "490154203237609", false},
		{"imei: 14-digit reading of a 15-digit entry", imeis, "49015420323751", true},
		{"imei: IMEISV reading of a 15-digit entry", imeis, "4901542032375102", true},
		{"imei: 15-digit reading of a 14-digit entry", imeis, "867231045123450", true},
		{"imei: IMEISV reading of a 14-digit entry", imeis, "8672310451234599", true},
		{"imei: 15-digit reading of an IMEISV entry", imeis, "356655071234568", true},
		{"imei: another handset of the IMEISV's type", imeis, "356655071234576", false},
		{"plate: entry with a middle dot", build(t, KindPlate, "蒙B·12345"), "蒙B12345", true},
		{"plate: entry with a hyphen", build(t, KindPlate, "蒙B-22345"), "蒙B22345", true},
		{"plate: reading with a middle dot", plates, "蒙B·7K3Q2", true},
		{"plate: prefix with a dot", build(t, KindPlate, "蒙B·7*"), "蒙B7K3Q2", true},
		{"mac: dash form entry", macs, "a4:5e:60:12:34:56", true},
		{"mac: Cisco form entry", macs, "00:1a:2b:3c:4d:5e", true},
		{"mac: upper-case reading", macs, "A4:5E:60:12:34:56", true},
		{"mac: OUI prefix", macs, "ac:de:48:00:11:22", true},
		{"mac: odd-length prefix", macs, "f0:9f:c2:1a:bb:cc", true},
		{"mac: odd-length prefix, other digit", macs, "f0:9f:c2:2a:bb:cc", false},
		{"mac: other", macs, "a4:5e:60:12:34:57", false},
		{"mac: garbage", macs, "zz", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.l.Match(tt.v))
		})
	}
	t.Run("Len counts distinct entries", func(t *testing.T) {
		assert.Equal(t, 6, plates.Len())
		assert.Equal(t, 1, build(t, KindIMEI, "490154203237518", "49015420323751", "4901542032375102").Len(), "one handset")
		assert.Equal(t, 3, foreign.Len())
		assert.Equal(t, 2, build(t, KindPlate, "蒙B7K3Q2", "蒙b7k3q2", "蒙B*", "蒙b*").Len())
	})
	t.Run("nil list", func(t *testing.T) {
		var l *List
		assert.False(t, l.Match("蒙B7K3Q2"))
		assert.Equal(t, 0, l.Len())
	})
	t.Run("name and kind", func(t *testing.T) {
		assert.Equal(t, "test", foreign.Name)
		assert.Equal(t, KindIMSI, foreign.Kind)
	})
}

func TestFile(t *testing.T) {
	l, probs := Build("plates-of-interest", config.WatchlistSpec{
		Kind: KindPlate, Entries: []string{"蒙B7K3Q2"}, File: "plates.txt",
	}, "testdata", "rules.yaml")
	require.Empty(t, probs)
	tests := []struct {
		v    string
		want bool
	}{
		{"蒙B7K3Q2", true},
		{"蒙B12345", true}, // full-width in the file, with a comment after it
		{"1598 ДГА", true},
		{"1234 УБА", true},
		{"蒙A00001", true},
		{"# Mongolian plates seen at Manduhla", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			assert.Equal(t, tt.want, l.Match(tt.v))
		})
	}
	assert.Equal(t, 5, l.Len(), "the entry in rules.yaml and the file's line 3 are one")

	t.Run("absolute path", func(t *testing.T) {
		abs, err := filepath.Abs("testdata/plates.txt")
		require.NoError(t, err)
		l, probs := Build("p", config.WatchlistSpec{Kind: KindPlate, File: abs}, "/nonexistent", "rules.yaml")
		require.Empty(t, probs)
		assert.Equal(t, 5, l.Len())
	})
}

// A list file's lines may end in \n, \r\n or a lone \r (a list exported
// as "CSV (Macintosh)"), in any mix: each is an entry, and a problem names
// its line.
func TestFileLineEndings(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"\\n", "蒙B11111\n蒙B22222\n蒙B33333\n"},
		{"\\r\\n", "蒙B11111\r\n蒙B22222\r\n蒙B33333\r\n"},
		{"\\r alone", "蒙B11111\r蒙B22222\r蒙B33333\r"},
		{"mixed, no end at the end", "蒙B11111\r\n蒙B22222\r蒙B33333"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "plates.txt")
			require.NoError(t, os.WriteFile(p, []byte(tc.text), 0o600))
			l, probs := Build("w", config.WatchlistSpec{Kind: KindPlate, File: p}, "testdata", "rules.yaml")
			require.Empty(t, probs)
			assert.Equal(t, 3, l.Len())
			assert.True(t, l.Match("蒙B22222"))
			require.NoError(t, os.WriteFile(p, []byte(strings.Replace(tc.text, "蒙B22222", "蒙B2222!", 1)), 0o600))
			_, probs = Build("w", config.WatchlistSpec{Kind: KindPlate, File: p}, "testdata", "rules.yaml")
			require.Len(t, probs, 1)
			assert.Equal(t, 2, probs[0].Line)
		})
	}
	// A \r at the end of one read and its \n at the start of the next are
	// one line end.
	long := strings.Repeat("蒙B11111\r\n", 2000)
	p := filepath.Join(t.TempDir(), "plates.txt")
	require.NoError(t, os.WriteFile(p, []byte(long), 0o600))
	l, probs := Build("w", config.WatchlistSpec{Kind: KindPlate, File: p}, "testdata", "rules.yaml")
	require.Empty(t, probs)
	assert.Equal(t, 1, l.Len())
}

func TestBuildProblems(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, "long.txt")
	require.NoError(t, os.WriteFile(long, []byte("428*\n"+strings.Repeat("1", maxLineBytes+1)+"\n"), 0o644))
	empty := filepath.Join(dir, "empty.txt")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	comments := filepath.Join(dir, "comments.txt")
	require.NoError(t, os.WriteFile(comments, []byte("# plates of interest\n\n   # none yet\n"), 0o644))
	gbk := filepath.Join(dir, "gbk.txt")
	require.NoError(t, os.WriteFile(gbk, []byte("\xc3\xc9B12345\n"), 0o644)) // 蒙B12345 in GBK
	fifo := filepath.Join(dir, "fifo.txt")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))

	type want struct {
		file string
		line int
		key  string
		msg  string
	}
	tests := []struct {
		name string
		spec config.WatchlistSpec
		want []want
	}{
		{"unknown kind", config.WatchlistSpec{Kind: "vin", Entries: []string{"x"}},
			[]want{{"rules.yaml", 0, "watchlists.w.kind", `unknown watchlist kind "vin" (plate, imsi, imei or mac)`}}},
		{"no kind", config.WatchlistSpec{Entries: []string{"x"}},
			[]want{{"rules.yaml", 0, "watchlists.w.kind", `unknown watchlist kind ""`}}},
		{"empty entry", config.WatchlistSpec{Kind: KindPlate, Entries: []string{"蒙B12345", "  "}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[1]", "empty entry"}}},
		{"star alone", config.WatchlistSpec{Kind: KindIMSI, Entries: []string{"*"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "a * alone would match everything"}}},
		{"a plate prefix of separators only", config.WatchlistSpec{Kind: KindPlate, Entries: []string{"- *"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "a * after only spaces, hyphens or dots would match everything"}}},
		{"an IMSI prefix of separators only", config.WatchlistSpec{Kind: KindIMSI, Entries: []string{"-*"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "a * after only spaces, hyphens or dots would match everything"}}},
		{"a prefix of 无牌 (no plate read)", config.WatchlistSpec{Kind: KindPlate, Entries: []string{"无牌*", "無-牌 *"}},
			[]want{
				{"rules.yaml", 0, "watchlists.w.entries[0]", `"无牌*": begins with 无牌 (no plate read), which no list matches`},
				{"rules.yaml", 0, "watchlists.w.entries[1]", `"無牌*": begins with 无牌`},
			}},
		{"a plate of separators only", config.WatchlistSpec{Kind: KindPlate, Entries: []string{"蒙B12345", "·", "..."}},
			[]want{
				{"rules.yaml", 0, "watchlists.w.entries[1]", "an entry of only spaces, hyphens or dots, which would never match"},
				{"rules.yaml", 0, "watchlists.w.entries[2]", "an entry of only spaces, hyphens or dots, which would never match"},
			}},
		{"two stars", config.WatchlistSpec{Kind: KindIMSI, Entries: []string{"428**"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", `"428**": one * at the end makes a prefix`}}},
		{"imsi with letters", config.WatchlistSpec{Kind: KindIMSI, Entries: []string{"428*", "4600O1234567890"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[1]", `"4600O1234567890": not a number (digits only)`}}},
		{"imsi too short", config.WatchlistSpec{Kind: KindIMSI, Entries: []string{"42899"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", `"42899": an IMSI has 6 to 15 digits (end it with * for a prefix)`}}},
		{"imsi too long", config.WatchlistSpec{Kind: KindIMSI, Entries: []string{"4289912345678901"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "an IMSI has 6 to 15 digits"}}},
		{"imsi prefix too long", config.WatchlistSpec{Kind: KindIMSI, Entries: []string{"4289912345678901*"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "an IMSI prefix has at most 15 digits"}}},
		{"imei too short", config.WatchlistSpec{Kind: KindIMEI, Entries: []string{"4901542032375"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "an IMEI has 14 to 16 digits"}}},
		{"imei with a wrong check digit", config.WatchlistSpec{Kind: KindIMEI, Entries: []string{"490154203237518", "490154203237519"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[1]", `"490154203237519": 15-digit IMEI with a wrong Luhn check digit`}}},
		{"imei prefix too long", config.WatchlistSpec{Kind: KindIMEI, Entries: []string{"49015420323751811*"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "an IMEI prefix has at most 16 digits"}}},
		{"mac not hex", config.WatchlistSpec{Kind: KindMAC, Entries: []string{"a4:5e:60:12:34:5g"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", `"a4:5e:60:12:34:5g": not a MAC address`}}},
		{"mac too short", config.WatchlistSpec{Kind: KindMAC, Entries: []string{"a4:5e:60:12:34"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "a MAC address has 12 hex digits (end it with * for a prefix)"}}},
		{"mac too long", config.WatchlistSpec{Kind: KindMAC, Entries: []string{"a4:5e:60:12:34:56:78"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "a MAC address has 12 hex digits"}}},
		{"plate with a bad character", config.WatchlistSpec{Kind: KindPlate, Entries: []string{"蒙B12345!"}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", `"蒙B12345!": character 8 is not a plate character`}}},
		{"no plate read (无牌), which no list matches", config.WatchlistSpec{Kind: KindPlate, Entries: []string{"蒙Z*", " 无牌 ", "無牌"}},
			[]want{
				{"rules.yaml", 0, "watchlists.w.entries[1]", `"无牌": means no plate was read, which no list matches`},
				{"rules.yaml", 0, "watchlists.w.entries[2]", `"無牌": means no plate was read, which no list matches`},
			}},
		{"plate too long", config.WatchlistSpec{Kind: KindPlate, Entries: []string{strings.Repeat("A", 17)}},
			[]want{{"rules.yaml", 0, "watchlists.w.entries[0]", "longer than 16 characters"}}},
		{"missing file", config.WatchlistSpec{Kind: KindPlate, File: "nope.txt"},
			[]want{{"rules.yaml", 0, "watchlists.w.file", "cannot read watchlist file: stat testdata/nope.txt: no such file"}}},
		{"a FIFO for a file (opening it would wait for a writer)", config.WatchlistSpec{Kind: KindPlate, File: fifo},
			[]want{{"rules.yaml", 0, "watchlists.w.file", "is not a regular file"}}},
		{"a device for a file", config.WatchlistSpec{Kind: KindPlate, File: "/dev/zero"},
			[]want{{"rules.yaml", 0, "watchlists.w.file", "/dev/zero is not a regular file"}}},
		{"a folder for a file", config.WatchlistSpec{Kind: KindPlate, File: dir},
			[]want{{"rules.yaml", 0, "watchlists.w.file", "cannot read watchlist file"}}},
		{"bad lines in a file", config.WatchlistSpec{Kind: KindPlate, File: "bad-plates.txt"},
			[]want{
				{"testdata/bad-plates.txt", 4, "watchlists.w.file", `entry character 8 is not a plate character`},
				{"testdata/bad-plates.txt", 6, "watchlists.w.file", "a * alone would match everything"},
			}},
		{"an empty file", config.WatchlistSpec{Kind: KindPlate, File: empty},
			[]want{{empty, 0, "watchlists.w.file", "the file holds no entry (emptied or cut short while it was written?)"}}},
		{"a file of comments only", config.WatchlistSpec{Kind: KindPlate, File: comments},
			[]want{{comments, 0, "watchlists.w.file", "the file holds no entry"}}},
		{"an empty file beside inline entries", config.WatchlistSpec{Kind: KindPlate, Entries: []string{"蒙B12345"}, File: empty},
			[]want{{empty, 0, "watchlists.w.file", "the file holds no entry"}}},
		{"a file in GBK", config.WatchlistSpec{Kind: KindPlate, File: gbk},
			[]want{{gbk, 1, "watchlists.w.file", "not UTF-8 text: save the file as UTF-8"}}},
		{"line too long", config.WatchlistSpec{Kind: KindIMSI, File: long},
			[]want{{long, 2, "watchlists.w.file", "a line longer than 4096 bytes: is it a list, one entry a line?"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, probs := Build("w", tt.spec, "testdata", "rules.yaml")
			for _, p := range probs {
				if p.File != "rules.yaml" {
					assert.NotContains(t, p.Msg, "蒙B12345", "a file's lines are not printed")
				}
			}
			require.Len(t, probs, len(tt.want), "%v", probs)
			for i, w := range tt.want {
				assert.Equal(t, w.file, probs[i].File)
				assert.Equal(t, w.line, probs[i].Line)
				assert.Equal(t, w.key, probs[i].Key)
				assert.Contains(t, probs[i].Msg, w.msg)
			}
		})
	}
	// A file that is not a list (a secret's, named by mistake) is neither
	// printed nor reported line by line.
	t.Run("the wrong file", func(t *testing.T) {
		p := filepath.Join(dir, "influx.token")
		var b strings.Builder
		for i := range 100 {
			fmt.Fprintf(&b, "admin:HunterPass%d\n", i)
		}
		require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o600))
		_, probs := Build("w", config.WatchlistSpec{Kind: KindIMSI, File: p}, "testdata", "rules.yaml")
		require.Len(t, probs, maxFileProblems+1)
		for _, pr := range probs {
			assert.NotContains(t, pr.Msg, "Hunter")
		}
		assert.Contains(t, probs[maxFileProblems].Msg, "and 80 more lines refused (100 in all")
		// Read as plates, not even the character refused is printed.
		short := filepath.Join(dir, "pw")
		require.NoError(t, os.WriteFile(short, []byte("admin:S3cret\n"), 0o600))
		_, probs = Build("w", config.WatchlistSpec{Kind: KindPlate, File: short}, "testdata", "rules.yaml")
		require.Len(t, probs, 1)
		assert.Equal(t, "entry character 6 is not a plate character (letters, digits, spaces, - · .)", probs[0].Msg)
	})
	t.Run("too large a file", func(t *testing.T) {
		p := filepath.Join(dir, "huge.txt")
		f, err := os.Create(p)
		require.NoError(t, err)
		line := []byte(strings.Repeat("4", 15) + "\n")
		w := bufio.NewWriterSize(f, 1<<20)
		for n := 0; n <= maxFileBytes; n += len(line) {
			_, _ = w.Write(line)
		}
		require.NoError(t, w.Flush())
		require.NoError(t, f.Close())
		_, probs := Build("w", config.WatchlistSpec{Kind: KindIMSI, File: p}, "testdata", "rules.yaml")
		require.Len(t, probs, 1)
		assert.Contains(t, probs[0].Msg, "larger than 64 MiB")
	})
	t.Run("good entries survive bad ones", func(t *testing.T) {
		l, probs := Build("w", config.WatchlistSpec{Kind: KindIMSI, Entries: []string{"x", "428*", ""}}, "", "rules.yaml")
		require.Len(t, probs, 2)
		assert.True(t, l.Match("428991234567890"))
	})
}

// Matching a plate costs no allocation, unless it has a space to drop (a
// Mongolian plate as printed, "1598 ДГА": one).
func TestMatchAllocs(t *testing.T) {
	l := build(t, KindPlate, "蒙B7K3Q2", "蒙A*", "1598 ДГА", "京*")
	imsi := build(t, KindIMSI, "428*", "46000*", "460011234567890")
	mac := build(t, KindMAC, "ac:de:48*", "a4:5e:60:12:34:56")
	for _, c := range []struct {
		l *List
		v string
	}{{l, "蒙B7K3Q2"}, {l, "蒙A12345"}, {l, "1598ДГА"}, {l, "蒙C00000"}, {imsi, "428991234567890"}, {imsi, "460021234567890"}, {mac, "ac:de:48:00:11:22"}, {mac, "a4:5e:60:12:34:57"}} {
		assert.Zero(t, testing.AllocsPerRun(100, func() { c.l.Match(c.v) }), "%s %q", c.l.Kind, c.v)
	}
}

func FuzzBuild(f *testing.F) {
	for _, s := range []struct{ kind, entry, v string }{
		{KindPlate, "蒙B7K3Q2", "蒙b7k3q2 "},
		{KindPlate, "蒙A*", "蒙A12345"},
		{KindPlate, "1598 дга", "1598  ДГА"},
		{KindIMSI, "428*", "428991234567890"},
		{KindIMEI, "49-015420-323751-8", "490154203237518"},
		{KindMAC, "A4-5E-60-12-34-56", "a4:5e:60:12:34:56"},
		{KindMAC, "ac:de:4*", "ac:de:48:00:11:22"},
		{KindPlate, "- *", "蒙B7K3Q2"}, // a prefix of separators only (once matched with an index out of range)
		{KindIMSI, " - *", "428991234567890"},
	} {
		f.Add(s.kind, s.entry, s.v)
	}
	f.Fuzz(func(t *testing.T, kind, entry, v string) {
		l, probs := Build("f", config.WatchlistSpec{Kind: kind, Entries: []string{entry}}, "", "rules.yaml")
		l.Match(v)
		l.Match(entry)
		if len(probs) == 0 {
			// What an entry is normalised to must match it.
			e := strings.TrimSpace(entry)
			if !strings.HasSuffix(e, "*") && !l.Match(e) {
				t.Fatalf("%s list of %q does not match the entry itself", kind, entry)
			}
		}
		if m, err := normaliseMAC(v); err == nil {
			if m2, err := normaliseMAC(m); err != nil || m2 != m {
				t.Fatalf("mac not idempotent: %q -> %q -> %q (%v)", v, m, m2, err)
			}
		}
	})
}

// BenchmarkMatch: 100,000 IMSIs and 100 prefixes of 3 to 8 digits.
func BenchmarkMatch(b *testing.B) {
	entries := make([]string, 0, 100_100)
	for i := range 100_000 {
		entries = append(entries, fmt.Sprintf("4600%011d", i*7919))
	}
	for i := range 100 {
		n := 3 + i%6
		entries = append(entries, fmt.Sprintf("%0*d*", n, 428+i*37)[:n]+"*")
	}
	l, probs := Build("b", config.WatchlistSpec{Kind: KindIMSI, Entries: entries}, "", "rules.yaml")
	require.Empty(b, probs)
	vs := []string{
		fmt.Sprintf("4600%011d", 500*7919), // exact hit
		"428991234567890",                  // prefix hit
		"460021234567890",                  // miss
		"310150123456789",                  // miss
	}
	for _, v := range vs {
		b.Run(v, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l.Match(v)
			}
		})
	}
}

// Prefix matching agrees with a plain scan of every prefix, for short lists
// (scanned) and long ones (binary search), with prefixes that cover others.
func TestMatchPrefixesLikeScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(3)) // few digits: many shared prefixes
		}
		return string(b)
	}
	for _, size := range []int{1, 3, linearPrefixes, linearPrefixes + 1, 40, 300} {
		var entries, prefixes []string
		for range size {
			p := digits(1 + rng.IntN(7))
			prefixes = append(prefixes, p)
			entries = append(entries, p+"*")
		}
		l, probs := Build("p", config.WatchlistSpec{Kind: KindIMSI, Entries: entries}, "", "rules.yaml")
		require.Empty(t, probs)
		for range 2000 {
			v := digits(6 + rng.IntN(10))
			want := false
			for _, p := range prefixes {
				want = want || strings.HasPrefix(v, p)
			}
			require.Equal(t, want, l.Match(v), "%d prefixes, %s", size, v)
		}
	}
}

// A watchlist's name goes into summaries ("on watchlist …"): it is one line
// of plain text, as other names are.
func TestBuildRefusesAnInvisibleName(t *testing.T) {
	_, probs := Build("plates\u202e-of-interest", config.WatchlistSpec{Kind: KindPlate, Entries: []string{"蒙B12345"}}, "", "rules.yaml")
	require.Len(t, probs, 1)
	assert.Contains(t, probs[0].Msg, "the watchlist's name must be plain text (it goes into alerts): it holds the invisible formatting character U+202E")
}
