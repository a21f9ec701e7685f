package decode

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fenceline/fenceline/internal/model"
)

func TestParseTopic(t *testing.T) {
	for _, tc := range []struct {
		name, topic  string
		ok           bool
		site, device string
		kind         model.Kind
		stream       model.Stream
	}{
		{"fence detections", "border/mdl/fence/F-AOL-01/detections", true, "mdl", "F-AOL-01", model.KindFence, model.StreamDetections},
		{"checkpoint passes", "border/mdl/checkpoint/CP-07/passes", true, "mdl", "CP-07", model.KindCheckpoint, model.StreamPasses},
		{"patrol position", "border/mdl/patrol/P_07/position", true, "mdl", "P_07", model.KindPatrol, model.StreamPosition},
		{"status", "border/a-1/fence/x/status", true, "a-1", "x", model.KindFence, model.StreamStatus},
		{"longest", "border/" + strings.Repeat("s", 32) + "/fence/" + strings.Repeat("D", 64) + "/status", true,
			strings.Repeat("s", 32), strings.Repeat("D", 64), model.KindFence, model.StreamStatus},
		// Not ok.
		{"site too long", "border/" + strings.Repeat("s", 33) + "/fence/x/status", false, "", "", "", 0},
		{"device too long", "border/mdl/fence/" + strings.Repeat("D", 65) + "/status", false, "", "", "", 0},
		{"upper-case site", "border/MDL/fence/F-1/status", false, "", "", "", 0},
		{"site underscore", "border/m_l/fence/F-1/status", false, "", "", "", 0},
		{"device dot", "border/mdl/fence/F.1/status", false, "", "", "", 0},
		{"device non-ASCII", "border/mdl/fence/F-Ö/status", false, "", "", "", 0},
		{"empty site", "border//fence/F-1/status", false, "", "", "", 0},
		{"empty device", "border/mdl/fence//status", false, "", "", "", 0},
		{"bad kind", "border/mdl/camera/F-1/status", false, "", "", "", 0},
		{"kind case", "border/mdl/Fence/F-1/status", false, "", "", "", 0},
		{"bad stream", "border/mdl/fence/F-1/heartbeat", false, "", "", "", 0},
		{"alerts topic", "border/mdl/alerts/night-phone", false, "", "", "", 0},
		{"extra level", "border/mdl/fence/F-1/status/x", false, "", "", "", 0},
		{"trailing slash", "border/mdl/fence/F-1/status/", false, "", "", "", 0},
		{"three levels", "border/mdl/fence", false, "", "", "", 0},
		{"prefix", "borders/mdl/fence/F-1/status", false, "", "", "", 0},
		{"leading slash", "/border/mdl/fence/F-1/status", false, "", "", "", 0},
		{"empty", "", false, "", "", "", 0},
		{"wildcard", "border/+/+/+/+", false, "", "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site, kind, device, stream, ok := ParseTopic(tc.topic)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.site, site)
			assert.Equal(t, tc.kind, kind)
			assert.Equal(t, tc.device, device)
			assert.Equal(t, tc.stream, stream)
		})
	}
}
