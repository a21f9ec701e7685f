package engine

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// Evidence lists are copied as slices.Clone copies them: nil stays nil
// (saved as null), an empty list stays empty ([]), and no copy shares
// its elements with the list or with another copy.
func TestEvidenceSlab(t *testing.T) {
	for _, size := range []int{0, 3, 100} {
		slab := evidenceSlab(make([]model.Evidence, 0, size))
		list := []model.Evidence{{Device: "F-1", Seq: 1}, {Device: "F-2", Seq: 2}}
		require.Nil(t, slab.clone(nil))
		empty := slab.clone([]model.Evidence{})
		require.NotNil(t, empty)
		require.Empty(t, empty)
		a, b := slab.clone(list), slab.clone(list[:1])
		require.Equal(t, list, a)
		require.Equal(t, list[:1], b)
		list[0].Seq = 9
		a = append(a, model.Evidence{Seq: 3}) // must not overwrite b
		require.Equal(t, int64(1), a[0].Seq)
		require.Equal(t, []model.Evidence{{Device: "F-1", Seq: 1}}, b)
	}
}
