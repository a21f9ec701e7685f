package mqttsource

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/testenv"
)

// runSource starts a source on cfg until the test ends (or stop is
// called) and waits until it is subscribed.
func runSource(t *testing.T, cfg config.MQTT, opts Options, log *slog.Logger) (src *Source, stop func()) {
	t.Helper()
	if opts.MaxInflight == 0 {
		opts.MaxInflight = 100
	}
	src = New(cfg, opts, log, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = src.Run(ctx); close(done) }()
	var once bool
	stop = func() {
		if once {
			return
		}
		once = true
		src.Close(time.Second)
		cancel()
		<-done
	}
	t.Cleanup(stop)
	require.Eventually(t, src.Subscribed, 10*time.Second, 10*time.Millisecond)
	return src, stop
}

// rememberedFilters reads what SubscriptionsFile in dir holds for the
// session of clientID.
func rememberedFilters(t *testing.T, dir, clientID string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, SubscriptionsFile))
	if err != nil {
		return nil
	}
	var rec subsRecord
	require.NoError(t, json.Unmarshal(b, &rec))
	return rec.Sessions[clientID]
}

func publish(t *testing.T, broker string, topics ...string) {
	t.Helper()
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("subs-pub"))
	tok := pub.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer pub.Disconnect(100)
	for _, topic := range topics {
		tok := pub.Publish(topic, 1, false, []byte("x"))
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
}

// TestIntegrationDroppedFiltersUnsubscribed: with a fixed client id and a
// persistent session, filters dropped from mqtt.topics, or subscribed under
// another mqtt.share_group, are unsubscribed on the next start: the broker
// would otherwise go on sending their traffic. The messages are published
// in order and a broker keeps one subscriber's messages in order, so the
// first ones taken are those the new filters match, each once, or the old
// filters still bring theirs.
func TestIntegrationDroppedFiltersUnsubscribed(t *testing.T) {
	for _, tc := range []struct {
		name               string
		oldTopics          []string
		oldGroup           string
		newTopics          []string
		newGroup           string
		publish, want      []string // want: the first messages fenceline takes
		other              string   // a filter another client subscribes before the publishing
		otherWant          []string // and what it takes
		remembered         []string // after the second start
		droppedLogFragment string
	}{
		{
			name:      "narrowed to a site",
			oldTopics: []string{"border/+/+/+/+"}, newTopics: []string{"border/mdl/+/+/+"},
			publish:            []string{"border/bjm/fence/F-BJM-01/status", "border/mdl/fence/F-AOL-01/status"},
			want:               []string{"border/mdl/fence/F-AOL-01/status"},
			remembered:         []string{"border/mdl/+/+/+"},
			droppedLogFragment: `filters=[border/+/+/+/+]`,
		},
		{
			// The broker sends a client one copy of a message whatever
			// the number of its filters matching it, so the harm of the
			// old plain filter is only that the new group's split does
			// not apply to fenceline: the log and the file tell.
			name:      "share group set",
			oldTopics: []string{"border/+/+/+/+"}, newTopics: []string{"border/+/+/+/+"}, newGroup: "g2",
			remembered:         []string{"$share/g2/border/+/+/+/+"},
			droppedLogFragment: `filters=[border/+/+/+/+]`,
		},
		{
			// Kept, the old group's filter would take a share of the
			// traffic of the replica left in that group.
			name:      "share group changed",
			oldTopics: []string{"border/+/+/+/+"}, oldGroup: "g1", newTopics: []string{"border/+/+/+/+"}, newGroup: "g2",
			other:              "$share/g1/border/+/+/+/+",
			publish:            []string{"border/mdl/fence/F-AOL-01/status", "border/mdl/fence/F-AOL-01/detections", "border/mdl/fence/F-AOL-02/status", "border/mdl/fence/F-AOL-02/detections"},
			otherWant:          []string{"border/mdl/fence/F-AOL-01/status", "border/mdl/fence/F-AOL-01/detections", "border/mdl/fence/F-AOL-02/status", "border/mdl/fence/F-AOL-02/detections"},
			remembered:         []string{"$share/g2/border/+/+/+/+"},
			droppedLogFragment: `filters=[$share/g1/border/+/+/+/+]`,
		},
		{
			name:      "one of two dropped",
			oldTopics: []string{"border/mdl/+/+/+", "border/bjm/+/+/+"}, newTopics: []string{"border/mdl/+/+/+"},
			publish:            []string{"border/bjm/fence/F-BJM-01/status", "border/mdl/fence/F-AOL-01/status"},
			want:               []string{"border/mdl/fence/F-AOL-01/status"},
			remembered:         []string{"border/mdl/+/+/+"},
			droppedLogFragment: `filters=[border/bjm/+/+/+]`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broker := testenv.Mosquitto(t)
			dir := t.TempDir()
			cfg := config.Default().MQTT
			cfg.Broker = broker.URL()
			cfg.ClientID = "subs-" + strings.ReplaceAll(tc.name, " ", "-")
			cfg.Topics, cfg.ShareGroup = tc.oldTopics, tc.oldGroup

			_, stopOld := runSource(t, cfg, Options{StateDir: dir}, slog.New(slog.DiscardHandler))
			stopOld()

			cfg.Topics, cfg.ShareGroup = tc.newTopics, tc.newGroup
			var logged testenv.LogBuffer
			src, _ := runSource(t, cfg, Options{StateDir: dir}, slog.New(slog.NewTextHandler(&logged, nil)))
			require.Eventually(t, func() bool { return slices.Equal(rememberedFilters(t, dir, cfg.ClientID), tc.remembered) },
				10*time.Second, 10*time.Millisecond, "the stale filters unsubscribed and forgotten:\n%s", logged.String())
			require.Contains(t, logged.String(), "unsubscribed the topic filters no longer configured")
			require.Contains(t, logged.String(), tc.droppedLogFragment)

			otherGot := make(chan string, len(tc.publish))
			if tc.other != "" {
				other := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("subs-other"))
				tok := other.Connect()
				require.True(t, tok.WaitTimeout(10*time.Second))
				require.NoError(t, tok.Error())
				defer other.Disconnect(100)
				tok = other.Subscribe(tc.other, 1, func(_ mqtt.Client, m mqtt.Message) { otherGot <- m.Topic() })
				require.True(t, tok.WaitTimeout(10*time.Second))
				require.NoError(t, tok.Error())
			}
			publish(t, broker.URL(), tc.publish...)
			var fromOther []string
			for len(fromOther) < len(tc.otherWant) {
				select {
				case topic := <-otherGot:
					fromOther = append(fromOther, topic)
				case <-time.After(10 * time.Second):
					t.Fatalf("the other client got %v, want %v", fromOther, tc.otherWant)
				}
			}
			require.Equal(t, tc.otherWant, fromOther)
			var got []string
			for len(got) < len(tc.want) {
				select {
				case m := <-src.Messages():
					m.Ack()
					got = append(got, m.Topic)
				case <-time.After(10 * time.Second):
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// TestIntegrationSubscriptionsFileUnknown: a missing file means nothing to
// drop; an unreadable one too, with a warning; one of another client id is
// another session's. The source subscribes in every case, and remembers
// its filters afterwards.
func TestIntegrationSubscriptionsFileUnknown(t *testing.T) {
	broker := testenv.Mosquitto(t)
	for _, tc := range []struct {
		name    string
		content string // "" : no file
		logged  string
	}{
		{name: "missing"},
		{name: "damaged", content: "{not json", logged: "the topic filters subscribed before are not known"},
		{name: "another client id", content: `{"client_id":"someone-else","filters":["border/+/+/+/+"]}`,
			logged: "no topic filters remembered for this client id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.content != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, SubscriptionsFile), []byte(tc.content), 0o600))
			}
			cfg := config.Default().MQTT
			cfg.Broker = broker.URL()
			cfg.ClientID = "subs-unknown-" + strings.ReplaceAll(tc.name, " ", "-")
			cfg.Topics = []string{"border/mdl/+/+/+"}
			var logged testenv.LogBuffer
			runSource(t, cfg, Options{StateDir: dir}, slog.New(slog.NewTextHandler(&logged, nil)))
			require.Eventually(t, func() bool { return slices.Equal(rememberedFilters(t, dir, cfg.ClientID), cfg.Topics) },
				10*time.Second, 10*time.Millisecond)
			if tc.logged != "" {
				require.Contains(t, logged.String(), tc.logged)
			}
			require.NotContains(t, logged.String(), "unsubscribed")
		})
	}
}

// A daemon that ran under another client id for a while and comes back to
// its first drops what its first session still holds: each session's
// filters are remembered.
func TestIntegrationSubscriptionsRememberedPerSession(t *testing.T) {
	broker := testenv.Mosquitto(t)
	dir := t.TempDir()
	cfg := config.Default().MQTT
	cfg.Broker = broker.URL()
	run := func(clientID string, topics ...string) string {
		cfg.ClientID, cfg.Topics = clientID, topics
		var logged testenv.LogBuffer
		_, stop := runSource(t, cfg, Options{StateDir: dir}, slog.New(slog.NewTextHandler(&logged, nil)))
		require.Eventually(t, func() bool { return slices.Equal(rememberedFilters(t, dir, clientID), topics) },
			10*time.Second, 10*time.Millisecond, "%s", logged.String())
		stop()
		return logged.String()
	}
	run("subs-a", "border/+/+/+/+")
	run("subs-b", "border/mdl/+/+/+")
	logged := run("subs-a", "border/mdl/+/+/+")
	require.Contains(t, logged, "unsubscribed the topic filters no longer configured")
	require.Contains(t, logged, "filters=[border/+/+/+/+]")
	require.Equal(t, []string{"border/mdl/+/+/+"}, rememberedFilters(t, dir, "subs-b"), "the other session's kept")
}
