package outbox

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// siteAlerts returns n firing alerts of site, with ids site-000, site-001…
func siteAlerts(site string, n int) []model.Alert {
	as := alerts(site, n)
	for i := range as {
		as[i].Site = site
	}
	return as
}

// interleave takes the alerts of the lists in turn: a-000, b-000, a-001…
func interleave(lists ...[]model.Alert) []model.Alert {
	var out []model.Alert
	for i := 0; ; i++ {
		took := false
		for _, l := range lists {
			if i < len(l) {
				out = append(out, l[i])
				took = true
			}
		}
		if !took {
			return out
		}
	}
}

// bySite is the ids of as by site, each site's in the order given.
func bySite(as []model.Alert) map[string][]string {
	out := map[string][]string{}
	for _, a := range as {
		out[a.Site] = append(out[a.Site], a.ID)
	}
	return out
}

// sinkKinds are the two ways the outbox hands alerts to a sink. Each
// returns the sink and the fakeSink that records its deliveries.
var sinkKinds = []struct {
	name string
	new  func(name string) (Sink, *fakeSink)
}{
	{"Deliver", func(name string) (Sink, *fakeSink) { s := newFakeSink(name); return s, s }},
	{"DeliverBatch", func(name string) (Sink, *fakeSink) { s := newBatchSink(name); return s, s.fakeSink }},
}

// holding is a sink's fail: the alerts of stuck fail (transiently) until
// release is closed, those of refused are refused for good.
func holding(release <-chan struct{}, stuck, refused []string) func(*model.Alert, int) error {
	return func(a *model.Alert, _ int) error {
		if slices.Contains(refused, a.ID) {
			return fmt.Errorf("%s: HTTP 400: %w", a.ID, ErrPermanent)
		}
		if slices.Contains(stuck, a.ID) {
			select {
			case <-release:
			default:
				return fmt.Errorf("%s: HTTP 503: %w", a.ID, errTransient)
			}
		}
		return nil
	}
}

// waitFailure waits for a failed attempt to deliver the alert id.
func (s *fakeSink) waitFailure(t *testing.T, id string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case err := <-s.failed:
			if strings.HasPrefix(err.Error(), id+":") {
				return
			}
		case <-deadline:
			t.Fatalf("sink %s: no failed attempt to deliver %s", s.name, id)
		}
	}
}

// waitPending waits for sink to have n alerts pending, and checks that its
// gauge says so too.
func waitPending(t *testing.T, o *Outbox, sink string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return o.Pending(sink) == n }, waitFor, time.Millisecond,
		"%s: %d pending, want %d", sink, o.Pending(sink), n)
	assert.Equal(t, float64(n), testutil.ToFloat64(o.m.pending.WithLabelValues(sink)), "the gauge is the sum over the lanes")
}

// requireOneSitePerBatch checks that each batch s was handed (if it is a
// batchSink) held alerts of one site.
func requireOneSitePerBatch(t *testing.T, s Sink) {
	t.Helper()
	bs, ok := s.(*batchSink)
	if !ok {
		return
	}
	for len(bs.sites) > 0 {
		sites := <-bs.sites
		require.NotEmpty(t, sites)
		for _, site := range sites {
			require.Equal(t, sites[0], site, "a batch of several sites: %v", sites)
		}
	}
}

func count(m map[string][]string) int {
	n := 0
	for _, ids := range m {
		n += len(ids)
	}
	return n
}

// An alert a sink keeps failing holds back only the later alerts of its own
// site for that sink: the other sites' go out meanwhile, each site's in
// order, and the held site's go out in order once it goes through. A
// refusal for good drops one alert of its lane, and the lane goes on.
func TestStuckAlertHoldsBackOnlyItsSite(t *testing.T) {
	all := interleave(siteAlerts("bjm", 3), siteAlerts("mdl", 3), siteAlerts("btu", 3))
	tests := []struct {
		name    string
		stuck   []string            // fail until released
		refused []string            // refused for good
		before  map[string][]string // delivered while the stuck ones fail, by site
		pending int                 // meanwhile
		after   map[string][]string // delivered once they go through
	}{
		{
			name:    "the first alert of all, at the head of its site's lane",
			stuck:   []string{"bjm-000"},
			before:  map[string][]string{"mdl": {"mdl-000", "mdl-001", "mdl-002"}, "btu": {"btu-000", "btu-001", "btu-002"}},
			pending: 3,
			after:   map[string][]string{"bjm": {"bjm-000", "bjm-001", "bjm-002"}},
		},
		{
			name:    "in the middle of its site's lane",
			stuck:   []string{"bjm-001"},
			before:  map[string][]string{"bjm": {"bjm-000"}, "mdl": {"mdl-000", "mdl-001", "mdl-002"}, "btu": {"btu-000", "btu-001", "btu-002"}},
			pending: 2,
			after:   map[string][]string{"bjm": {"bjm-001", "bjm-002"}},
		},
		{
			name:    "two sites stuck",
			stuck:   []string{"bjm-000", "btu-001"},
			before:  map[string][]string{"mdl": {"mdl-000", "mdl-001", "mdl-002"}, "btu": {"btu-000"}},
			pending: 5,
			after:   map[string][]string{"bjm": {"bjm-000", "bjm-001", "bjm-002"}, "btu": {"btu-001", "btu-002"}},
		},
		{
			name:    "a refusal for good in another site's lane",
			stuck:   []string{"bjm-000"},
			refused: []string{"mdl-001"},
			before:  map[string][]string{"mdl": {"mdl-000", "mdl-002"}, "btu": {"btu-000", "btu-001", "btu-002"}},
			pending: 3,
			after:   map[string][]string{"bjm": {"bjm-000", "bjm-001", "bjm-002"}},
		},
		{
			name:    "a refusal for good in the stuck site's lane",
			stuck:   []string{"bjm-000"},
			refused: []string{"bjm-001"},
			before:  map[string][]string{"mdl": {"mdl-000", "mdl-001", "mdl-002"}, "btu": {"btu-000", "btu-001", "btu-002"}},
			pending: 3,
			after:   map[string][]string{"bjm": {"bjm-000", "bjm-002"}},
		},
	}
	for _, kind := range sinkKinds {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				release := make(chan struct{})
				sink, fake := kind.new("webhook-0")
				fake.fail = holding(release, tt.stuck, tt.refused)
				o := openT(t, t.TempDir(), []Sink{sink}, fastOpts())
				defer o.Close()
				stop := run(t, o)
				require.NoError(t, appendWait(t, o, all...))

				assert.Equal(t, tt.before, bySite(fake.next(t, count(tt.before))), "the other sites' alerts, each site's in order")
				for _, id := range tt.stuck {
					fake.waitFailure(t, id)
				}
				waitPending(t, o, "webhook-0", tt.pending)
				fake.none(t)

				close(release)
				assert.Equal(t, tt.after, bySite(fake.next(t, count(tt.after))), "the held alerts, in order, once they go through")
				stop()
				fake.none(t)
				assert.Equal(t, 0, o.Pending("webhook-0"))
				assert.Equal(t, 0.0, testutil.ToFloat64(o.m.pending.WithLabelValues("webhook-0")))
				assert.Equal(t, float64(len(tt.refused)), testutil.ToFloat64(o.m.dropped.WithLabelValues("webhook-0")))
				assert.Equal(t, float64(len(all)-len(tt.refused)), testutil.ToFloat64(o.m.delivered.WithLabelValues("webhook-0")))
				requireOneSitePerBatch(t, sink)
			})
		}
	}
}

// Alerts of several sites pending at a restart are loaded into a lane per
// site, each in the order they were accepted, and delivered per site: the
// first alert of the log, stuck, holds back only its own site's.
func TestPendingAlertsOfSeveralSitesAfterRestart(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind.name, func(t *testing.T) {
			dir := t.TempDir()
			all := interleave(siteAlerts("bjm", 3), siteAlerts("mdl", 3), siteAlerts("btu", 2))
			o := openT(t, dir, []Sink{newFakeSink("mqtt")}, fastOpts())
			require.NoError(t, appendWait(t, o, all[:4]...))
			require.NoError(t, appendWait(t, o, all[4:]...))
			require.NoError(t, o.Close()) // stopped before delivering anything

			release := make(chan struct{})
			sink, fake := kind.new("mqtt")
			fake.fail = holding(release, []string{"bjm-000"}, nil)
			o = openT(t, dir, []Sink{sink}, fastOpts())
			defer o.Close()
			assert.Equal(t, len(all), o.Pending("mqtt"))
			assert.Equal(t, float64(len(all)), testutil.ToFloat64(o.m.pending.WithLabelValues("mqtt")))
			stop := run(t, o)

			assert.Equal(t, map[string][]string{"mdl": {"mdl-000", "mdl-001", "mdl-002"}, "btu": {"btu-000", "btu-001"}},
				bySite(fake.next(t, 5)), "the sites not held back, each in order")
			fake.waitFailure(t, "bjm-000")
			waitPending(t, o, "mqtt", 3)
			close(release)
			assert.Equal(t, []string{"bjm-000", "bjm-001", "bjm-002"}, bySite(fake.next(t, 3))["bjm"])
			stop()
			fake.none(t)
			requireOneSitePerBatch(t, sink)
			require.NoError(t, o.Close())

			// All delivered, and recorded so.
			o = openT(t, dir, []Sink{newFakeSink("mqtt")}, fastOpts())
			defer o.Close()
			assert.Equal(t, 0, o.Pending("mqtt"))
		})
	}
}

// A site's first alert after Run started gets a lane that is delivered at
// once, without waiting for another site's held alert; so does a site whose
// lane ran empty (and went) and that gets an alert again.
func TestLaneOfANewSiteWhileRunning(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind.name, func(t *testing.T) {
			release := make(chan struct{})
			sink, fake := kind.new("mqtt")
			fake.fail = holding(release, []string{"bjm-000"}, nil)
			o := openT(t, t.TempDir(), []Sink{sink}, fastOpts())
			defer o.Close()
			stop := run(t, o)

			require.NoError(t, appendWait(t, o, siteAlerts("bjm", 2)...))
			fake.waitFailure(t, "bjm-000")

			// One alert an append: mdl's lane is created, runs empty and
			// goes, again and again, while alerts keep coming.
			mdl := siteAlerts("mdl", 50)
			for _, a := range mdl {
				require.NoError(t, appendWait(t, o, a))
			}
			assert.Equal(t, ids(mdl), ids(fake.next(t, len(mdl))), "a new site's alerts, in order, while bjm's are held")
			for _, a := range siteAlerts("btu", 2) {
				require.NoError(t, appendWait(t, o, a))
				assert.Equal(t, []string{a.ID + "/firing"}, ids(fake.next(t, 1)), "delivered before the next is appended")
			}
			waitPending(t, o, "mqtt", 2)

			close(release)
			assert.Equal(t, []string{"bjm-000/firing", "bjm-001/firing"}, ids(fake.next(t, 2)))
			stop()
			fake.none(t)
			assert.Equal(t, 0, o.Pending("mqtt"))
			requireOneSitePerBatch(t, sink)
		})
	}
}

// A BatchSink's batch is taken from one site's lane: up to maxBatch alerts
// of that site, in order.
func TestBatchIsTakenFromOneLane(t *testing.T) {
	sink := newBatchSink("mqtt")
	o := openT(t, t.TempDir(), []Sink{sink}, fastOpts())
	defer o.Close()
	bjm, mdl := siteAlerts("bjm", 100), siteAlerts("mdl", 100)
	require.NoError(t, appendWait(t, o, interleave(bjm, mdl)...)) // queued before Run: whole batches
	stop := run(t, o)
	got := bySite(sink.next(t, 200))
	stop()
	sink.none(t)
	assert.Equal(t, bySite(bjm)["bjm"], got["bjm"])
	assert.Equal(t, bySite(mdl)["mdl"], got["mdl"])
	var sizes []int
	for len(sink.sizes) > 0 {
		sizes = append(sizes, <-sink.sizes)
	}
	assert.Equal(t, maxBatch, slices.Max(sizes), "batches of up to %d: %v", maxBatch, sizes)
	requireOneSitePerBatch(t, sink)
}
