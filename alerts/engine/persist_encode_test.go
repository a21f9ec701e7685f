package engine

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// oddStrings are strings encoding/json escapes or replaces: HTML
// characters, quotes and backslashes, control characters, the line and
// paragraph separators, invalid and truncated UTF-8; and plain ones.
var oddStrings = []string{
	"", "F-1", "mdl", "460000000000001", "蒙B7K3Q2", "<script>&amp;</script>", `a"b\c`, "\x00\x01\x1f\x7f",
	"\b\f\n\r\t", "\u2028\u2029", "line\u2028sep", "\xff", "a\xfe\xffb", "\xe2\x80", "\xe2\x80\xa8", "\xed\xa0\x80",
	"😀 emoji", "\ufffd", "Zone <A> & B", "\u00e9t\u00e9", strings.Repeat("x", 300),
}

// oddTimes are times MarshalJSON writes in every way: zero, UTC, in named
// and fixed zones (zero, whole and odd offsets), with and without
// fractions, at the edges of the four-digit years.
var oddTimes = func() []time.Time {
	base := time.Date(2026, 11, 26, 23, 10, 4, 120_000_000, time.UTC)
	locs := []*time.Location{time.UTC, shanghai, time.FixedZone("", 0), time.FixedZone("CST", 8*3600),
		time.FixedZone("", -3*3600-30*60), time.FixedZone("odd", 5*3600+45*60+30), time.FixedZone("", 23*3600+59*60)}
	ts := []time.Time{{}, time.Unix(0, 0), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Date(9999, 12, 31, 12, 0, 0, 0, shanghai)}
	for _, l := range locs {
		for _, ns := range []int{0, 1, 100, 120_000_000, 999_999_999} {
			ts = append(ts, base.Add(time.Duration(ns)).In(l))
		}
	}
	return ts
}()

// badTimes are times MarshalJSON refuses: years outside [0,9999], offsets
// of 24 hours or more.
var badTimes = []time.Time{
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC),
	time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC).In(time.FixedZone("", 2*3600)),
	time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)),
	time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -30*3600)),
	time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 100*3600)),
	time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -150*3600)),
}

var oddFloats = []float64{0, math.Copysign(0, -1), 41.9612, -110.4875, 1e-6, 1e-7, 9.99e-7, 1e20, 1e21, 1.5e300,
	-2.5e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, 123456789.123, 1.0 / 3, 5e-324}

// filler fills values of the saved state's types at random, every field
// (by reflection, so that a field added to a type is filled too), with
// values drawn from the odd ones above, and the fuzzer's.
type filler struct {
	rng     *rand.Rand
	strings []string
	times   []time.Time
	floats  []float64
}

func newFiller(seed uint64) *filler {
	return &filler{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		strings: oddStrings, times: oddTimes, floats: oddFloats}
}

var timeType = reflect.TypeFor[time.Time]()

func (f *filler) fill(v reflect.Value, depth int) {
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(f.times[f.rng.IntN(len(f.times))]))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if (sf.IsExported() || sf.Anonymous) && sf.Tag.Get("json") != "-" {
				f.fill(v.Field(i), depth)
			}
		}
	case reflect.String:
		v.SetString(f.strings[f.rng.IntN(len(f.strings))])
	case reflect.Bool:
		v.SetBool(f.rng.IntN(2) == 0)
	case reflect.Int, reflect.Int64:
		v.SetInt([]int64{0, 1, -1, 42, 1_000_000_000_001, math.MaxInt64, math.MinInt64}[f.rng.IntN(7)])
	case reflect.Uint64:
		v.SetUint([]uint64{0, 1, 7, math.MaxUint64}[f.rng.IntN(4)])
	case reflect.Uint8:
		v.SetUint([]uint64{0, 1, 9, math.MaxUint8}[f.rng.IntN(4)])
	case reflect.Float64:
		v.SetFloat(f.floats[f.rng.IntN(len(f.floats))])
	case reflect.Array:
		for i := range v.Len() {
			f.fill(v.Index(i), depth)
		}
	case reflect.Slice:
		n := f.rng.IntN(4) - 1 // -1: nil
		if depth > 3 && n > 1 {
			n = 1
		}
		if n >= 0 {
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := range n {
				f.fill(v.Index(i), depth+1)
			}
		}
	case reflect.Pointer:
		if f.rng.IntN(3) > 0 {
			p := reflect.New(v.Type().Elem())
			f.fill(p.Elem(), depth+1)
			v.Set(p)
		}
	default:
		panic("filler: no values for " + v.Type().String())
	}
}

// ruleSnapshot is a rule's state with entries of every kind.
func (f *filler) ruleSnapshot() *ruleSnapshot {
	var rs ruleSnapshot
	f.fill(reflect.ValueOf(&rs).Elem(), 0)
	return &rs
}

// requireSameJSON checks the encoder against json.Marshal: the same
// bytes, whether written at the end of each entry or at once; or a value
// refused, with encoding/json's error.
func requireSameJSON(t *testing.T, rs *ruleSnapshot) {
	t.Helper()
	want, wantErr := json.Marshal(rs)
	for _, chunk := range []int{1, saveChunk} {
		var out bytes.Buffer
		e := stateEncoder{w: &out, chunk: chunk}
		require.NoError(t, e.writeRule('[', rs))
		if wantErr != nil {
			require.True(t, e.bad, "refused")
			require.EqualError(t, refused(rs), wantErr.Error())
			continue
		}
		require.False(t, e.bad)
		require.Equal(t, "["+string(want), out.String(), "chunk %d", chunk)
	}
}

// The encoder writes what encoding/json writes, for rules' states with
// entries of every kind and every field set or not: nil and empty lists,
// open incidents or none, odd strings, times and numbers.
func TestStateEncoder(t *testing.T) {
	f := newFiller(1)
	kinds := map[string]bool{}
	for i := range 3000 {
		rs := f.ruleSnapshot()
		requireSameJSON(t, rs)
		if i < 20 {
			b, _ := json.Marshal(rs)
			for _, k := range []string{"cooldowns", "counts", "dwell", "velocity", "fence", "status", "silence", "open", "backlog", "repeat", "device"} {
				kinds[k] = kinds[k] || strings.Contains(string(b), `"`+k+`":`)
			}
		}
	}
	for k, seen := range kinds {
		assert.True(t, seen, "no %s in the first states", k)
	}
	requireSameJSON(t, &ruleSnapshot{})
	requireSameJSON(t, &ruleSnapshot{Cooldowns: []cooldownSnap{}, Counts: []countSnap{{}}, Silence: []silenceSnap{{}}})
}

// A value encoding/json refuses fails the rule with its error, wherever
// it is.
func TestStateEncoderRefuses(t *testing.T) {
	f := newFiller(2)
	for _, bad := range badTimes {
		f.times = []time.Time{bad}
		_, err := json.Marshal(bad)
		require.Error(t, err, "%v", bad)
		for range 20 {
			requireSameJSON(t, f.ruleSnapshot())
		}
	}
	f = newFiller(3)
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		f.floats = []float64{bad, 1}
		for range 20 {
			requireSameJSON(t, f.ruleSnapshot())
		}
	}
	// Save fails with encoding/json's error, as it did with encoding/json.
	rs := ruleSnapshot{ID: "r1", Velocity: []velSnap{{sighting: sighting{T: badTimes[0]}}}}
	_, want := json.Marshal(&rs)
	s := &StateSnapshot{rules: []ruleSnapshot{{ID: "r0"}, rs}}
	require.EqualError(t, s.Save(io.Discard), "marshal alert engine state of rule r1: "+want.Error())
}

// Times, numbers and strings, one by one, as encoding/json writes them.
func TestStateEncoderValues(t *testing.T) {
	var e stateEncoder
	checkTime := func(tm time.Time) {
		want, err := tm.MarshalJSON()
		e.bad = false
		got := e.time(nil, tm)
		require.Equal(t, err != nil, e.bad, "%v", tm)
		if err == nil {
			require.Equal(t, string(want), string(got))
		}
	}
	for _, tm := range slices.Concat(oddTimes, badTimes) {
		checkTime(tm)
	}
	r := rand.New(rand.NewPCG(4, 5))
	for i := range 200_000 {
		// Any second from before year 0 to after 9999, in any zone; and
		// every day's first and last second around the epoch.
		sec := r.Int64N(320_000_000_000) - 63_000_000_000
		if i%4 == 0 {
			sec = int64(i/4-25_000)*86400 - int64(i%8/4)
		}
		offset := r.IntN(2*25*3600) - 25*3600
		if i%3 == 0 {
			offset = 0
		}
		tm := time.Unix(sec, r.Int64N(1e9)).In(time.FixedZone("", offset))
		if i%5 == 0 {
			tm = tm.Truncate(time.Millisecond)
		}
		checkTime(tm)
	}
	for _, s := range oddStrings {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendJSONString(nil, s)))
	}
	for c := range 256 {
		s := string([]byte{'a', byte(c), 'b'})
		want, _ := json.Marshal(s)
		require.Equal(t, string(want), string(appendJSONString(nil, s)), "byte %#x", c)
	}
	floats := slices.Clone(oddFloats)
	for p := -30; p <= 30; p++ {
		x := math.Pow(10, float64(p))
		floats = append(floats, x, math.Nextafter(x, 0), math.Nextafter(x, 2*x))
	}
	for range 10000 {
		floats = append(floats, math.Float64frombits(r.Uint64()))
	}
	for _, x := range floats {
		for _, v := range []float64{x, -x} {
			want, err := json.Marshal(v)
			e.bad = false
			got := e.float(nil, v)
			require.Equal(t, err != nil, e.bad, "%v", v)
			if err == nil {
				require.Equal(t, string(want), string(got))
			}
		}
	}
}

func FuzzStateEncoder(f *testing.F) {
	f.Add(uint64(1), "蒙B7K3Q2", int64(1795741804), int64(120_000_000), 8*3600, 41.9612)
	f.Add(uint64(2), "<\u2028\xff>", int64(-62135596800), int64(0), 0, 1e21)
	f.Add(uint64(3), "", int64(253402300800), int64(1), -24*3600, math.NaN())
	f.Fuzz(func(t *testing.T, seed uint64, s string, sec, nsec int64, offset int, x float64) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("", offset))
		fl := newFiller(seed)
		fl.strings = append(slices.Clone(oddStrings), s)
		fl.times = append(slices.Clone(oddTimes), tm)
		fl.floats = append(slices.Clone(oddFloats), x)
		requireSameJSON(t, fl.ruleSnapshot())
		// The fuzzer's values alone, wherever they go.
		fl.strings, fl.times, fl.floats = []string{s}, []time.Time{tm}, []float64{x}
		requireSameJSON(t, fl.ruleSnapshot())
	})
}

// sortRunsStable orders as slices.SortStableFunc does, a key's elements in
// one run or several.
func TestSortRunsStable(t *testing.T) {
	type kv struct{ k, v int }
	r := rand.New(rand.NewPCG(6, 7))
	for n := range 200 {
		s := make([]kv, n)
		for i := range s {
			if i > 0 && r.IntN(2) == 0 {
				s[i].k = s[i-1].k // a run
			} else {
				s[i].k = r.IntN(n/3 + 1)
			}
			s[i].v = i
		}
		if n%5 == 0 {
			slices.SortFunc(s, func(a, b kv) int { return a.k - b.k }) // in order already
		}
		want := slices.Clone(s)
		slices.SortStableFunc(want, func(a, b kv) int { return a.k - b.k })
		got := sortRunsStable(slices.Clone(s), func(a, b *kv) int { return a.k - b.k })
		require.Equal(t, want, got, "n=%d", n)
	}
}
