package influxwriter

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// A line says where it came from: the topic of its message and the
// reading's index, for the dead letter of a line refused on replay.
func TestOriginOf(t *testing.T) {
	det := detectionBatch(18231, 3)
	pass := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindCheckpoint, Device: "CP-07", Stream: model.StreamPasses, Seq: 551, Time: t0},
		Passes: []model.Pass{{Stamp: stamp(t0, 551, 0), Plate: "蒙B12345"}, {Stamp: stamp(t0, 551, 1), Plate: "蒙B12346"}}}
	status := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindPatrol, Device: "P-07", Stream: model.StreamStatus, Seq: 9, Time: t0},
		Statuses: []model.Status{{Stamp: stamp(t0, 9, 0), Tamper: model.SomeBool(true)}}}
	for _, tc := range []struct {
		name  string
		b     *model.Batch
		topic string
	}{
		{"detections", det, "border/mdl/fence/F-AOL-01/detections"},
		{"passes", pass, "border/mdl/checkpoint/CP-07/passes"},
		{"status", status, "border/mdl/patrol/P-07/status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := bytes.SplitAfter(AppendBatch(nil, tc.b), []byte("\n"))
			for i, l := range lines[:tc.b.Len()] {
				assert.Equal(t, LineOrigin{Topic: tc.topic, Index: i}, OriginOf(l), "line %d", i)
			}
		})
	}
	alert, err := AppendAlert(nil, &model.Alert{ID: "a1", Rule: "r", Severity: "high", State: model.StateFiring, Site: "mdl", At: t0})
	require.NoError(t, err)
	assert.Equal(t, LineOrigin{Index: -1, Alert: true, AlertID: "a1", Rule: "r"}, OriginOf(alert), "an alert's line is no reading's, and names its alert")
	assert.Equal(t, LineOrigin{Index: -1}, OriginOf([]byte("not line protocol")))
}
