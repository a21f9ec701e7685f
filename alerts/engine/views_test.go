package engine

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/zone"
	"github.com/fenceline/fenceline/internal/model"
)

// naiveView is the view at p for src computed from scratch: every rule of
// the source, in order, kept if it has no zones (or is an enter/exit rule)
// or if a zone of its contains p.
func naiveView(e *Engine, p model.Point, src Source) ([]*zone.Zone, []candidate) {
	var zs []*zone.Zone
	e.rs.Zones.Containing(p, func(z *zone.Zone) bool { zs = append(zs, z); return true })
	slices.SortFunc(zs, func(a, b *zone.Zone) int { return strings.Compare(a.ID, b.ID) })
	var cs []candidate
	for _, st := range e.bySource[src] {
		if !zonedRule(st.rule) {
			cs = append(cs, candidate{st: st})
			continue
		}
		var mine []*zone.Zone
		for _, z := range zs {
			if st.rule.hasZone(z) {
				mine = append(mine, z)
			}
		}
		if len(mine) > 0 {
			cs = append(cs, candidate{st: st, zones: mine})
		}
	}
	return zs, cs
}

func requireView(t *testing.T, e *Engine, p model.Point, src Source) {
	t.Helper()
	r := &reading{src: src, p: p, hasPos: true}
	v := e.viewAt(r)
	zs, cs := naiveView(e, p, src)
	require.Equal(t, len(zs), len(v.zones), "zones at %v", p)
	for i := range zs {
		require.Same(t, zs[i], v.zones[i])
	}
	require.Equal(t, len(cs), len(v.rules), "rules at %v for %v", p, src)
	for i := range cs {
		require.Same(t, cs[i].st, v.rules[i].st)
		require.Equal(t, len(cs[i].zones), len(v.rules[i].zones))
		for j := range cs[i].zones {
			require.Same(t, cs[i].zones[j], v.rules[i].zones[j])
		}
	}
}

// The cached views of positions are those computed from scratch: for more
// positions than the cache holds, revisited, for every source, and after a
// reload that changes the rules.
func TestViewCache(t *testing.T) {
	rs, batches := benchWorld(t)
	e := New(rs, Options{}, nil, nil)
	var pts []model.Point
	for _, b := range batches {
		if b.Device.HasPos {
			pts = append(pts, b.Device.Pos)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		pts = append(pts, model.Point{Lat: 40 + 3*rng.Float64(), Lon: 109 + 3*rng.Float64()})
	}
	for round := range 2 {
		for _, p := range pts {
			for _, src := range []Source{SourcePhone, SourceVehicle, SourcePatrol, SourceStatus} {
				requireView(t, e, p, src)
			}
		}
		if round == 0 {
			// Fewer rules: the cached views of the old ruleset must go.
			rs2, _ := benchWorld(t)
			rs2.Rules = slices.DeleteFunc(rs2.Rules, func(r *Rule) bool { return r.Kind == KindCount })
			e.Swap(rs2)
		}
	}
}

// A reading without a position sees the rules without zones only.
func TestViewWithoutPosition(t *testing.T) {
	rs, _ := benchWorld(t)
	e := New(rs, Options{}, nil, nil)
	v := e.viewAt(&reading{src: SourcePhone})
	for _, c := range v.rules {
		require.False(t, zonedRule(c.st.rule), c.st.rule.ID)
	}
	require.NotEmpty(t, v.rules)
}
