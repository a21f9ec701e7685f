package sim

import (
	"strconv"
	"time"
)

// The JSON the simulated devices publish (the contract's "Payloads").
// Struct field order is the key order of the output, so payloads are
// byte-for-byte reproducible.

// rfcTime is written as RFC 3339 with milliseconds and the local offset, as
// the fence units do; the other devices send Unix milliseconds.
type rfcTime time.Time

func (t rfcTime) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, time.Time(t).Format("2006-01-02T15:04:05.000Z07:00")), nil
}

type locJSON struct {
	Lat   float64 `json:"lat"`
	Lon   float64 `json:"lon"`
	Datum string  `json:"datum"`
}

type detectionJSON struct {
	IMSI string  `json:"imsi,omitempty"`
	IMEI string  `json:"imei,omitempty"`
	MAC  string  `json:"mac,omitempty"`
	RSSI float64 `json:"rssi"`
	Tech string  `json:"tech,omitempty"`
	TS   rfcTime `json:"ts"`
}

type detectionsJSON struct {
	V          int             `json:"v"`
	Seq        int64           `json:"seq"`
	TS         rfcTime         `json:"ts"`
	Loc        locJSON         `json:"loc"`
	Detections []detectionJSON `json:"detections"`
}

type passJSON struct {
	Plate        string  `json:"plate"`
	PlateColor   string  `json:"plate_color,omitempty"`
	VehicleType  string  `json:"vehicle_type,omitempty"`
	VehicleColor string  `json:"vehicle_color,omitempty"`
	SpeedKmh     float64 `json:"speed_kmh"`
	Lane         int     `json:"lane"`
	Direction    string  `json:"direction"`
	Heading      float64 `json:"heading"`
	Confidence   float64 `json:"confidence"`
	Image        string  `json:"image"`
}

type passesJSON struct {
	V      int        `json:"v"`
	Seq    int64      `json:"seq"`
	TS     int64      `json:"ts"`
	Passes []passJSON `json:"passes"`
}

type positionJSON struct {
	V         int     `json:"v"`
	Seq       int64   `json:"seq"`
	TS        int64   `json:"ts"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	SpeedKmh  float64 `json:"speed_kmh"`
	Heading   float64 `json:"heading"`
	AccuracyM float64 `json:"accuracy_m"`
	Datum     string  `json:"datum"`
}

type statusJSON struct {
	V          int      `json:"v"`
	Seq        int64    `json:"seq"`
	TS         any      `json:"ts"` // rfcTime (fences) or Unix ms
	BatteryPct *float64 `json:"battery_pct,omitempty"`
	TempC      float64  `json:"temp_c"`
	UptimeS    int64    `json:"uptime_s"`
	Tamper     bool     `json:"tamper"`
	Power      string   `json:"power"`
	SignalDbm  float64  `json:"signal_dbm"`
	Queue      int      `json:"queue"`
	FW         string   `json:"fw"`
}
