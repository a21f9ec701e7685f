package influxwriter

import (
	"strconv"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/fenceline/fenceline/internal/model"
)

// LineOrigin is where a line of a reading came from, read back from the line
// itself: the topic its message came on and the reading's index in it. A
// line refused when the spool is replayed has no message any more (it was
// acked when spooled), so its dead letter names the message this way.
type LineOrigin struct {
	Topic string // "" when the line is not a reading's (an alert's)
	Index int    // -1 when unknown
	Alert bool   // an alert's line (the alert measurement)
	// AlertID and Rule name an alert's line, for the log.
	AlertID, Rule string
}

// OriginOf reads the origin of one line of the schema. The topic is rebuilt
// from the measurement and the site, device (and kind) tags; the index from
// the point time and the seq field (model.ReadingIndex).
func OriginOf(line []byte) LineOrigin {
	o := LineOrigin{Index: -1}
	d := lineprotocol.NewDecoderWithBytes(line)
	if !d.Next() {
		return o
	}
	m, err := d.Measurement()
	if err != nil {
		return o
	}
	o.Alert = string(m) == MeasurementAlert
	var site, device, kind string
	for {
		k, v, err := d.NextTag()
		if err != nil || k == nil {
			break
		}
		switch string(k) {
		case "site":
			site = string(v)
		case "device":
			device = string(v)
		case "kind":
			kind = string(v)
		case "rule":
			o.Rule = string(v)
		}
	}
	stream := ""
	switch string(m) {
	case MeasurementDetection:
		kind, stream = string(model.KindFence), model.StreamDetections.String()
	case MeasurementPass:
		kind, stream = string(model.KindCheckpoint), model.StreamPasses.String()
	case MeasurementPosition:
		kind, stream = string(model.KindPatrol), model.StreamPosition.String()
	case MeasurementStatus:
		stream = model.StreamStatus.String()
	}
	if stream != "" && site != "" && device != "" && kind != "" {
		o.Topic = "border/" + site + "/" + kind + "/" + device + "/" + stream
	}
	seq, ok := int64(0), false
	for {
		k, v, err := d.NextField()
		if err != nil || k == nil {
			break
		}
		switch {
		case string(k) == "seq" && v.Kind() == lineprotocol.Int:
			seq, ok = v.IntV(), true
		case string(k) == "id" && v.Kind() == lineprotocol.String:
			o.AlertID = v.StringV()
		}
	}
	if !ok {
		return o
	}
	t, err := d.TimeBytes()
	if err != nil {
		return o
	}
	if ns, err := strconv.ParseInt(string(t), 10, 64); err == nil {
		o.Index = model.ReadingIndex(ns, seq)
	}
	return o
}
