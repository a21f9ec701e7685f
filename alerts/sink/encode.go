// Package sink holds the alert destinations the outbox delivers to: MQTT
// (`{prefix}/{site}/alerts/{rule}` at QoS 1), InfluxDB (the `alert`
// measurement, through the storage writer) and webhooks (signed POSTs).
//
// Each sink tells the outbox what is worth retrying: an error wrapping
// outbox.ErrPermanent makes it give up on that alert for that sink, any
// other error is retried. Delivery is at least once; receivers deduplicate by
// the alert's id and state.
//
// The outbox delivers in order per site, each site's alerts from a goroutine
// of their own, so a sink is called concurrently (one call per site at a
// time): every sink here is safe for concurrent use. MQTT serialises its
// publishes, whose delivery check needs the connection to itself.
package sink

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/internal/model"
)

// Encode returns an alert's payload as every sink sends it: encoding/json of
// model.Alert, whose tags are the contract's field names. HTML escaping is
// off — a summary like "speed > 120" stays readable for the duty officer and
// for a receiver that logs it; it is JSON either way.
//
// Absent lists are sent as [] rather than null, as in the contract's
// example: a receiver that loops over nearest_patrols must not trip on null.
func Encode(a *model.Alert) ([]byte, error) {
	if a.Evidence == nil || a.Notify == nil || a.NearestPatrols == nil {
		c := *a
		if c.Evidence == nil {
			c.Evidence = []model.Evidence{}
		}
		if c.Notify == nil {
			c.Notify = []string{}
		}
		if c.NearestPatrols == nil {
			c.NearestPatrols = []model.PatrolRef{}
		}
		a = &c
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(a); err != nil {
		// An alert that cannot be encoded never will be.
		return nil, fmt.Errorf("encode alert %s: %w: %w", a.ID, outbox.ErrPermanent, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}
