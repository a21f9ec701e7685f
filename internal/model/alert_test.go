package model

import (
	"encoding/json"
	"strings"
	"testing"
)

// Every key of the contract's alert payload is there, location included
// when the alert has no place (null); repeat only on a re-send.
func TestAlertJSONKeys(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a      Alert
		has    []string
		hasNot []string
	}{
		{"no place, first send", Alert{ID: "x"}, []string{`"location":null`, `"late":false`, `"count":0`}, []string{`"repeat"`}},
		{"a place, a re-send", Alert{ID: "x", Location: &Point{Lat: 41.96, Lon: 110.486}, Repeat: 2}, []string{`"location":{"lat":41.96,"lon":110.486}`, `"repeat":2`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.a)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"id", "rule", "severity", "state", "site", "zone", "subject", "summary", "at", "raised_at", "location", "count", "evidence", "notify", "nearest_patrols", "late"} {
				if !strings.Contains(string(b), `"`+k+`":`) {
					t.Errorf("no %q in %s", k, b)
				}
			}
			for _, s := range tc.has {
				if !strings.Contains(string(b), s) {
					t.Errorf("no %s in %s", s, b)
				}
			}
			for _, s := range tc.hasNot {
				if strings.Contains(string(b), s) {
					t.Errorf("%s in %s", s, b)
				}
			}
		})
	}
}
