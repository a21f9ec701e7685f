package decode_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/decode"
	"github.com/fenceline/fenceline/internal/model"
)

// TestPlatesNormalisedLikeWatchlists checks that a plate read by the decoder
// (through its text checks and the none rule) comes out as the same plate
// typed into a watchlist: model.NormalisePlate, which watchlists use.
func TestPlatesNormalisedLikeWatchlists(t *testing.T) {
	now := time.Date(2026, 11, 27, 1, 12, 0, 0, time.UTC)
	reg := model.NewRegistry([]model.Device{{ID: "CP-07", Kind: model.KindCheckpoint, Site: "mdl", HasPos: true}})
	d := decode.New(decode.Options{Now: func() time.Time { return now }})
	var out model.Batch
	for _, plate := range []string{
		"蒙B12345", "蒙Ｂ１２３４５", " 蒙b 7k3q2 ", "1598 уба", "1598\u3000\u3000УБА", "ｄｇ　１２", "\u00a0ab\u2003cd\u00a0",
		"ǆ", "ß", "ﬁ", "Σσς", "İi", "京A·12345", "ＡＢ－１",
	} {
		pl, err := json.Marshal(plate)
		require.NoError(t, err)
		payload := `{"v":1,"seq":1,"ts":"2026-11-27T01:00:00Z","passes":[{"plate":` + string(pl) + `}]}`
		rej := d.Decode("border/mdl/checkpoint/CP-07/passes", []byte(payload), now, reg, &out)
		require.Empty(t, rej, plate)
		require.Len(t, out.Passes, 1)
		want := model.NormalisePlate(plate)
		if model.IsNoPlate(want) { // one character ("ß"): no plate read
			want = model.NoPlate
		}
		assert.Equal(t, want, out.Passes[0].Plate, "%q", plate)
	}
}
