package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// refAddEvidence is the plain form of addEvidence: keep the first half,
// shift the rest.
func refAddEvidence(list []model.Evidence, ev model.Evidence) []model.Evidence {
	if n := len(list); n > 0 && list[n-1].Device == ev.Device && list[n-1].Seq == ev.Seq {
		return list
	}
	if len(list) < MaxEvidence {
		return append(list, ev)
	}
	copy(list[evidenceKeep:], list[evidenceKeep+1:])
	list[len(list)-1] = ev
	return list
}

// The ring holds what shifting would, in the same order once straightened,
// whenever it is read (reading straightens it in place).
func TestEvidenceRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var got, want []model.Evidence
	var ring evidenceRing
	seq := int64(0)
	for i := range 5000 {
		if rng.IntN(3) > 0 {
			seq++ // else: another reading of the same message
		}
		dev := []string{"F-1", "F-2"}[rng.IntN(2)]
		ev := model.Evidence{Device: dev, Seq: seq}
		if rng.IntN(11) == 0 {
			ring.lastOK = false // as restored from a snapshot
		}
		got = addEvidence(got, &ring, ev)
		want = refAddEvidence(want, ev)
		if rng.IntN(7) == 0 || i == 4999 {
			require.Equal(t, want, inOrder(got, &ring), "after %d", i)
			require.Zero(t, ring.rot)
		}
	}
}

// A list grows twice: room for two, then for MaxEvidence.
func TestEvidenceGrowth(t *testing.T) {
	var list []model.Evidence
	var ring evidenceRing
	caps := map[int]bool{}
	for seq := range int64(3 * MaxEvidence) {
		list = addEvidence(list, &ring, model.Evidence{Device: "F-1", Seq: seq})
		caps[cap(list)] = true
	}
	require.Len(t, caps, 2, "capacities %v", caps)
	require.Equal(t, MaxEvidence, len(list))
	require.Less(t, cap(list), 2*MaxEvidence)
}
