package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/watchlist"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// Every subject's id gives the subject back (in its canonical form);
// distinct subjects have distinct ids, packed or interned.
func TestSubjectIDs(t *testing.T) {
	tab := newSubjectTable()
	subjects := []model.Subject{
		{Kind: "imsi", Value: "460001234567890"},
		{Kind: "imsi", Value: "0460001234567890"}, // a leading zero is another subject
		{Kind: "imsi", Value: "000000"},
		{Kind: "imsi", Value: "00000"},
		{Kind: "imei", Value: "460001234567890"}, // same digits, another kind
		{Kind: "imei", Value: "9999999999999999"},
		{Kind: "imsi", Value: "12345678901234567"}, // 17 digits: interned
		{Kind: "imsi", Value: "46000 123"},         // not canonical: interned
		{Kind: "mac", Value: "a4:5e:60:12:34:56"},
		{Kind: "mac", Value: "ff:ff:ff:ff:ff:ff"},
		{Kind: "mac", Value: "00:00:00:00:00:00"},
		{Kind: "mac", Value: "A4:5E:60:12:34:56"}, // upper case: interned
		{Kind: "mac", Value: "a4-5e-60-12-34-56"},
		{Kind: "plate", Value: "蒙B12345"},
		{Kind: "plate", Value: model.NoPlate},
		{Kind: "patrol", Value: "P-07"},
		{Kind: "device", Value: "P-07"},
		{Kind: "zone", Value: "ruins"}, // not a kind rules key state by
	}
	seen := map[subjectID]model.Subject{}
	for _, s := range subjects {
		id := tab.id(s)
		assert.Equal(t, canonical(s), tab.get(id), "%+v", s)
		assert.Equal(t, id, tab.id(s), "stable")
		if prev, dup := seen[id]; dup {
			t.Fatalf("%+v and %+v share id %x", prev, s, id)
		}
		seen[id] = s
	}
	assert.Equal(t, sidIMSI, tab.id(subjects[0]).tag())
	assert.Equal(t, sidIMEI, tab.id(subjects[5]).tag())
	assert.Equal(t, sidMAC, tab.id(subjects[8]).tag())
	assert.Equal(t, sidInterned, tab.id(subjects[13]).tag())
}

// Interned subjects own their strings: state kept for hours must not pin
// the message a subject came from.
func TestSubjectInternCopies(t *testing.T) {
	tab := newSubjectTable()
	msg := string([]byte("xx蒙B12345xx"))
	s := model.Subject{Kind: "plate", Value: msg[2 : len(msg)-2]}
	got := tab.get(tab.id(s))
	require.Equal(t, s, got)
	assert.NotEqual(t, uintptr(unsafe.Pointer(unsafe.StringData(s.Value))), uintptr(unsafe.Pointer(unsafe.StringData(got.Value))))
}

// A sweep frees the subjects no state refers to and keeps the others; freed
// ids are reused.
func TestSubjectSweep(t *testing.T) {
	rs, ps := compileYAML(t, `
devices:
  - {id: CP-1, kind: checkpoint, site: s, lat: 41.0, lon: 110.0}
  - {id: CP-2, kind: checkpoint, site: s, lat: 42.0, lon: 110.0}
rules:
  - {id: clone, kind: velocity, source: vehicle, max_kmh: 180}
`)
	require.Empty(t, ps)
	e := newEngine(t, rs)
	st := e.rules["clone"]
	tt := at(12, 0)
	for i := range minSubjectSweep + 10 {
		e.Evaluate(e.pass("CP-1", tt, model.Point{Lat: 41, Lon: 110}, model.Pass{Plate: fmt.Sprintf("蒙B%05d", i)}), tt)
	}
	require.Len(t, st.vel, minSubjectSweep+10)
	// The table reached minSubjectSweep once: a sweep found every subject
	// in use and set the next one at twice as many.
	assert.Equal(t, 2*minSubjectSweep, e.subjects.sweepAt)
	assert.Empty(t, e.subjects.free)
	// Drop half the sightings, then sweep (due on the next message).
	for k, s := range st.vel {
		if s[len(s)-1].Processed.After(tt) || k%2 == 0 {
			delete(st.vel, k)
		}
	}
	kept := map[subjectID]model.Subject{}
	for k := range st.vel {
		kept[k] = e.subjects.get(k)
	}
	e.subjects.sweepAt = 0
	tt = tt.Add(time.Second)
	e.Evaluate(e.pass("CP-2", tt, model.Point{Lat: 42, Lon: 110}, model.Pass{Plate: "蒙B00001"}), tt)
	assert.Less(t, e.subjects.len(), len(kept)+2, "unreferenced subjects freed")
	assert.NotEmpty(t, e.subjects.free)
	for k, s := range kept {
		assert.Equal(t, s, e.subjects.get(k), "kept subjects keep their ids")
	}
	// 蒙B00001 was seen at CP-1 (if kept) or is new: either way the rule
	// knows it now, under an id that gives it back.
	id, ok := e.subjects.lookup(model.Subject{Kind: "plate", Value: "蒙B00001"})
	require.True(t, ok)
	assert.Contains(t, st.vel, id)
	assert.Equal(t, max(2*len(kept), minSubjectSweep), e.subjects.sweepAt, "twice the subjects kept, at least the minimum")
}

// The rules' state keys a subject as watchlists compare it: one vehicle
// whatever separators its plate was read with, one handset whatever form
// of its IMEI was reported.
func TestSubjectsCanonical(t *testing.T) {
	tab := newSubjectTable()
	for _, tc := range []struct {
		name string
		a, b model.Subject
	}{
		{"plate with a middle dot", model.Subject{Kind: "plate", Value: "蒙B·12345"}, model.Subject{Kind: "plate", Value: "蒙B12345"}},
		{"plate with a space", model.Subject{Kind: "plate", Value: "1598 УБА"}, model.Subject{Kind: "plate", Value: "1598УБА"}},
		{"imei with its check digit", model.Subject{Kind: "imei", Value: "490154203237518"}, model.Subject{Kind: "imei", Value: "49015420323751"}},
		{"imeisv", model.Subject{Kind: "imei", Value: "4901542032375102"}, model.Subject{Kind: "imei", Value: "490154203237518"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tab.id(tc.a), tab.id(tc.b))
		})
	}
	assert.NotEqual(t, tab.id(model.Subject{Kind: "imei", Value: "490154203237518"}), tab.id(model.Subject{Kind: "imei", Value: "490154203237609"}))
}

// An IMSI that packs is its own normal form, as the list would have it,
// and the id match remembers for it is the subject's: normalise's shortcut
// changes neither what a list matches nor what state a subject keys.
func TestNormaliseShortcut(t *testing.T) {
	l, probs := watchlist.Build("imsi", config.WatchlistSpec{Kind: watchlist.KindIMSI, Entries: []string{"428*", "460001234567890"}}, "", "rules.yaml")
	require.Empty(t, probs)
	rng := rand.New(rand.NewPCG(7, 8))
	values := []string{"", "0", "0000000000000000", "9999999999999999", "12345678901234567", "46000 1234", "4600-01234",
		"４６０００１", "46000123456789x", "x", " 460001234567890", "460001234567890"}
	for range 2000 {
		b := make([]byte, rng.IntN(19))
		for i := range b {
			b[i] = "0123456789 -x"[min(rng.IntN(16), 12)]
		}
		values = append(values, string(b))
	}
	for _, v := range values {
		e := New(nil, Options{}, nil, nil)
		want, _ := l.Normalise(v)
		require.Equal(t, want, e.normalise(l, watchIMSI, v), "%q", v)
		subj := model.Subject{Kind: "imsi", Value: v}
		require.Equal(t, e.subjects.id(subj), e.sid(subj), "%q", v)
	}
}
