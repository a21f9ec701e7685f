package engine

import (
	"strconv"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// The `when` expression of a rule is compiled against the environment of
// its source, so that a misspelt field (`batery_pct`) or a type error
// (`plate > 3`) is a problem when the rules file is loaded, not a silent
// false at 3 a.m. The field names are the payload names of the contract.
//
// Optional payload fields that a reading lacks evaluate as their zero
// value ("" or false) — except in comparisons: a comparison (<, <=, >, >=,
// ==, !=) with an optional number the reading lacks is false, as with SQL's
// NULL, because 0 is a real battery level or speed. `battery_pct < 15` is
// therefore false for a status without battery_pct, and `tamper ||
// battery_pct < 15` fires only on what the unit really reported. Each
// optional number x also has `has_x` (e.g. `has_battery_pct`) to test
// presence explicitly.

// EnvCommon holds the fields every source has.
type EnvCommon struct {
	Site   string `expr:"site"`
	Device string `expr:"device"`
	// Kind is the device kind: fence, checkpoint or patrol.
	Kind string `expr:"kind"`
	// Zone is the zone being evaluated: for a rule with zones, the listed
	// zone that contains the reading; for a rule without, the first zone
	// (by id) containing the reading, or "".
	Zone string  `expr:"zone"`
	Lat  float64 `expr:"lat"`
	Lon  float64 `expr:"lon"`
	// Seq is the message's seq; TS the reading's time (its own ts, else
	// the message's), in the offset it was written with.
	Seq int64     `expr:"seq"`
	TS  time.Time `expr:"ts"`
}

// PhoneEnv is the environment of source phone (a detection).
type PhoneEnv struct {
	EnvCommon
	IMSI     string  `expr:"imsi"`
	IMEI     string  `expr:"imei"`
	MAC      string  `expr:"mac"`
	MCC      string  `expr:"mcc"`
	MNC      string  `expr:"mnc"`
	Operator string  `expr:"operator"`
	RSSI     float64 `expr:"rssi"`
	Tech     string  `expr:"tech"`

	HasRSSI bool `expr:"has_rssi"`
}

// VehicleEnv is the environment of source vehicle (a pass).
type VehicleEnv struct {
	EnvCommon
	Plate        string  `expr:"plate"`
	PlateColor   string  `expr:"plate_color"`
	VehicleType  string  `expr:"vehicle_type"`
	VehicleColor string  `expr:"vehicle_color"`
	SpeedKmh     float64 `expr:"speed_kmh"`
	Lane         int64   `expr:"lane"`
	Direction    string  `expr:"direction"`
	Heading      float64 `expr:"heading"`
	Confidence   float64 `expr:"confidence"`
	Image        string  `expr:"image"`

	HasSpeedKmh   bool `expr:"has_speed_kmh"`
	HasLane       bool `expr:"has_lane"`
	HasHeading    bool `expr:"has_heading"`
	HasConfidence bool `expr:"has_confidence"`
}

// PatrolEnv is the environment of source patrol (a position).
type PatrolEnv struct {
	EnvCommon
	SpeedKmh  float64 `expr:"speed_kmh"`
	Heading   float64 `expr:"heading"`
	AccuracyM float64 `expr:"accuracy_m"`

	HasSpeedKmh  bool `expr:"has_speed_kmh"`
	HasHeading   bool `expr:"has_heading"`
	HasAccuracyM bool `expr:"has_accuracy_m"`
}

// StatusEnv is the environment of status rules.
type StatusEnv struct {
	EnvCommon
	BatteryPct float64 `expr:"battery_pct"`
	TempC      float64 `expr:"temp_c"`
	UptimeS    int64   `expr:"uptime_s"`
	Tamper     bool    `expr:"tamper"`
	Power      string  `expr:"power"`
	SignalDbm  float64 `expr:"signal_dbm"`
	Queue      int64   `expr:"queue"`
	FW         string  `expr:"fw"`

	HasBatteryPct bool `expr:"has_battery_pct"`
	HasTempC      bool `expr:"has_temp_c"`
	HasUptimeS    bool `expr:"has_uptime_s"`
	HasSignalDbm  bool `expr:"has_signal_dbm"`
	HasQueue      bool `expr:"has_queue"`
}

// optionalNumbers lists, per source, the payload numbers a reading may
// lack; comparisons with them are guarded by their has_ field.
var optionalNumbers = map[Source]map[string]bool{
	SourcePhone:   {"rssi": true},
	SourceVehicle: {"speed_kmh": true, "lane": true, "heading": true, "confidence": true},
	SourcePatrol:  {"speed_kmh": true, "heading": true, "accuracy_m": true},
	SourceStatus:  {"battery_pct": true, "temp_c": true, "uptime_s": true, "signal_dbm": true, "queue": true},
}

// envPrototype is the typed environment `when` is compiled against.
func envPrototype(s Source) any {
	switch s {
	case SourcePhone:
		return PhoneEnv{}
	case SourceVehicle:
		return VehicleEnv{}
	case SourcePatrol:
		return PatrolEnv{}
	case SourceStatus:
		return StatusEnv{}
	}
	return nil
}

// boxEnv builds the environment of reading r in zone zoneID. It returns the
// struct by value inside an interface: that costs one allocation, but the
// expression VM then reads the fields of the boxed copy without allocating,
// whereas through a pointer every field read would allocate.
func boxEnv(r *reading, zoneID string) any {
	c := EnvCommon{
		Site:   r.b.Site,
		Device: r.b.Meta.Device,
		Kind:   string(r.b.Kind),
		Zone:   zoneID,
		Lat:    r.p.Lat,
		Lon:    r.p.Lon,
		Seq:    r.b.Seq,
		TS:     r.t,
	}
	switch r.src {
	case SourcePhone:
		d := r.det
		return PhoneEnv{EnvCommon: c, IMSI: d.IMSI, IMEI: d.IMEI, MAC: d.MAC, MCC: d.MCC, MNC: d.MNC,
			Operator: d.Operator, RSSI: float64(d.RSSI.V), Tech: d.Tech, HasRSSI: d.RSSI.OK}
	case SourceVehicle:
		p := r.pass
		return VehicleEnv{EnvCommon: c, Plate: p.Plate, PlateColor: p.PlateColor, VehicleType: p.VehicleType,
			VehicleColor: p.VehicleColor, SpeedKmh: p.SpeedKmh.V, Lane: p.Lane.V, Direction: p.Direction,
			Heading: p.Heading.V, Confidence: p.Confidence.V, Image: p.Image,
			HasSpeedKmh: p.SpeedKmh.OK, HasLane: p.Lane.OK, HasHeading: p.Heading.OK, HasConfidence: p.Confidence.OK}
	case SourcePatrol:
		p := r.pos
		return PatrolEnv{EnvCommon: c, SpeedKmh: p.SpeedKmh.V, Heading: p.Heading.V, AccuracyM: p.AccuracyM.V,
			HasSpeedKmh: p.SpeedKmh.OK, HasHeading: p.Heading.OK, HasAccuracyM: p.AccuracyM.OK}
	case SourceStatus:
		s := r.st
		return StatusEnv{EnvCommon: c, BatteryPct: s.BatteryPct.V, TempC: s.TempC.V, UptimeS: s.UptimeS.V,
			Tamper: s.Tamper.V, Power: s.Power, SignalDbm: s.SignalDbm.V, Queue: s.Queue.V, FW: s.FW,
			HasBatteryPct: s.BatteryPct.OK, HasTempC: s.TempC.OK, HasUptimeS: s.UptimeS.OK,
			HasSignalDbm: s.SignalDbm.OK, HasQueue: s.Queue.OK}
	}
	return nil
}

// reading is one accepted reading of a batch, as the rules see it.
type reading struct {
	src  Source
	b    *model.Batch
	det  *model.Detection
	pass *model.Pass
	pos  *model.Position
	st   *model.Status // the unit's latest status (see Engine.unitStatus)
	rep  *model.Status // the status report itself

	t      time.Time // event time: the reading's ts, else the message's
	p      model.Point
	hasPos bool
	view   *zoneView // the view at p, if looked up (see viewAt)
}

// origin names r for the id of an alert r raises — an event, or the
// incident whose condition r completed (a status, a crowd, a stay): the
// same incident is the same reading, evaluated again after a redelivery,
// while two readings of one instant are two incidents. Without it, two
// checkpoints' unread plates in the same second, or a unit whose clock
// repeats a ts opening a new incident, raise alerts with the id of an
// earlier one, which the outbox drops as its duplicate.
func (r *reading) origin() string {
	return sightingOrigin(r.b.Meta.Device, r.b.Seq) + "/" + strconv.Itoa(r.index())
}

// sightingOrigin is origin without the reading's index: velocity keeps a
// sighting's device and seq.
func sightingOrigin(device string, seq int64) string {
	return device + "/" + strconv.FormatInt(seq, 10)
}

// index is r's position in its message.
func (r *reading) index() int {
	switch {
	case r.det != nil:
		return r.det.Index
	case r.pass != nil:
		return r.pass.Index
	case r.pos != nil:
		return r.pos.Index
	case r.st != nil:
		return r.st.Index
	}
	return 0
}
