package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fenceline/fenceline/internal/model"
)

// AlertTopics is the subscription that sees every alert of the default
// topic prefix: border/{site}/alerts/{rule}.
const AlertTopics = "border/+/alerts/+"

// AlertWatch is the subscription to filter that calls fn with every alert,
// for Connect (which keeps it across reconnections); a payload that is not
// an alert is passed to bad.
func AlertWatch(filter string, fn func(model.Alert), bad func(topic string, err error)) Subscription {
	return Subscription{Filter: filter, Handler: func(_ mqtt.Client, m mqtt.Message) {
		var a model.Alert
		if err := json.Unmarshal(m.Payload(), &a); err != nil {
			if bad != nil {
				bad(m.Topic(), err)
			}
			return
		}
		fn(a)
	}}
}

// FormatAlert renders an alert as one line for a duty officer's terminal:
//
//	21:10 CRITICAL foreign-sim-near-border  mdl -               — IMSI 42899… at …
//
// The time is the alert's event time on the local clock; a resolved alert
// shows "resolved" where a firing one shows its severity.
func FormatAlert(a model.Alert, loc *time.Location) string {
	sev := strings.ToUpper(a.Severity)
	if a.State == model.StateResolved {
		sev = "resolved"
	}
	zone := a.Zone
	if zone == "" {
		zone = "-"
	}
	return fmt.Sprintf("%s %-8s %-23s %-3s %-15s — %s", a.At.In(loc).Format("15:04"), sev, a.Rule, a.Site, zone, a.Summary)
}

// WaitReady polls url until it answers 200 or ctx is done: the daemon's
// /readyz says it is subscribed and can store, so nothing published after
// it is lost to a subscription not yet made.
func WaitReady(ctx context.Context, url string) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("readiness %s: %w", url, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("readiness %s: %w (last: %v)", url, ctx.Err(), last)
		case <-t.C: // the poll interval, not a synchronisation
		}
	}
}
