package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/deadletter"
)

func TestPrintDeadLetters(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	store, err := deadletter.Open(filepath.Join(cfg.Storage.Dir, "deadletter"), deadletter.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = store.Run(ctx) }()
	t0 := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	recs := []deadletter.Record{
		{Received: t0, Topic: "border/mdl/fence/F-1/detections", Reason: "bad_imsi", Detail: "detections[1].imsi: 2 digits", Index: 1, Payload: []byte(`{"v":1,"seq":3}`)},
		{Received: t0.Add(time.Hour), Topic: "border/mdl/fence/F-1/detections", Reason: "malformed_json", Detail: "not UTF-8", Index: -1, Payload: []byte{0xff, 0xfe}},
	}
	for _, r := range recs {
		done := make(chan error, 1)
		store.Append(r, func(err error) { done <- err })
		require.NoError(t, <-done)
	}
	require.NoError(t, store.Close())

	for _, tc := range []struct {
		name   string
		since  time.Time
		reason string
		want   []string // reasons, in order
	}{
		{"all", time.Time{}, "", []string{"bad_imsi", "malformed_json"}},
		{"by reason", time.Time{}, "malformed_json", []string{"malformed_json"}},
		{"since", t0.Add(time.Minute), "", []string{"malformed_json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, PrintDeadLetters(&cfg, tc.since, tc.reason, 0, &out))
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			require.Len(t, lines, len(tc.want))
			for i, l := range lines {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(l), &m))
				require.Equal(t, tc.want[i], m["reason"])
				if m["reason"] == "bad_imsi" {
					require.Equal(t, `{"v":1,"seq":3}`, m["payload"], "a UTF-8 payload is printed as it came")
					require.Equal(t, 1.0, m["index"])
				} else {
					require.Equal(t, "//4=", m["payload_b64"], "anything else as base64")
					require.Nil(t, m["payload"])
				}
			}
		})
	}

	// A misspelt reason is an error naming the reasons, not an empty list.
	var out bytes.Buffer
	err = PrintDeadLetters(&cfg, time.Time{}, "bad_imis", 0, &out)
	require.ErrorContains(t, err, `unknown --reason "bad_imis"`)
	require.ErrorContains(t, err, "bad_imsi, ")
	require.ErrorContains(t, err, "over_budget")
	require.Empty(t, out.String())
}
