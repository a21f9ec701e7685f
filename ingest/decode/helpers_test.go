package decode

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

const (
	topicFence      = "border/mdl/fence/F-AOL-01/detections"
	topicCheckpoint = "border/mdl/checkpoint/CP-07/passes"
	topicPosition   = "border/mdl/patrol/P-07/position"
	topicStatus     = "border/mdl/fence/F-AOL-01/status"
	topicNoPos      = "border/mdl/fence/F-NOPOS/detections"
)

// now of the tests: a few minutes after the contract's sample messages.
var testNow = time.Date(2026, 11, 27, 1, 12, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func testRegistry() *model.Registry {
	return model.NewRegistry([]model.Device{
		{ID: "F-AOL-01", Kind: model.KindFence, Site: "mdl", Pos: model.Point{Lat: 41.9600, Lon: 110.4861}, HasPos: true},
		{ID: "F-NOPOS", Kind: model.KindFence, Site: "mdl"},
		{ID: "CP-07", Kind: model.KindCheckpoint, Site: "mdl", Pos: model.Point{Lat: 42.30, Lon: 110.15}, HasPos: true},
		{ID: "P-07", Kind: model.KindPatrol, Site: "mdl"},
		{ID: "P-BT", Kind: model.KindPatrol, Site: "bt", Pos: model.Point{Lat: 40.656, Lon: 109.835}, HasPos: true},
	})
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
