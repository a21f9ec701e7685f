package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/expr-lang/expr/vm"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// The closures of a simple `when` give the VM's answer on every reading;
// conditions they do not cover stay on the VM.
func TestWhenFastAgreesWithVM(t *testing.T) {
	for _, tc := range []struct {
		src  Source
		when string
		fast bool // compiled into closures
	}{
		{SourceStatus, "tamper || battery_pct < 15", true},
		{SourceStatus, "tamper || (battery_pct > 0 && battery_pct < 5)", true},
		{SourceStatus, "not tamper and has_battery_pct", true},
		{SourceStatus, "uptime_s >= 3600 && queue != 0", true},
		{SourceStatus, "uptime_s > 10.5 || temp_c <= -20", true},
		{SourceStatus, "power == 'battery' && fw < 'v2'", true},
		{SourceStatus, "tamper == true != false", true},
		{SourceStatus, "queue == uptime_s || signal_dbm >= battery_pct", true},
		// A literal on either side, each operator (the closures compare
		// a field with the literal's value, mirrored when it comes first).
		{SourceStatus, "15 > battery_pct || 3600 <= uptime_s && 0 != queue", true},
		{SourceStatus, "5 >= battery_pct or 'v2' < fw or 'battery' == power or -20 == temp_c", true},
		{SourceVehicle, `120 < speed_kmh and 2.5 > lane or "outbound" != direction && 0.5 <= confidence`, true},
		{SourceStatus, "uptime_s % 2 == 0", false},
		{SourceStatus, "power in ['battery', 'solar']", false},
		{SourceVehicle, `direction == "outbound" && speed_kmh > 250`, true},
		{SourceVehicle, "speed_kmh > 150", true},
		{SourceVehicle, "lane == 2 || lane > 3.5 || confidence < 0.5", true},
		{SourceVehicle, `!(plate_color == "blue") && vehicle_type != "TRUCK" && zone == "z1"`, true},
		{SourceVehicle, `heading >= 90 and heading < 180 or image != ""`, true},
		{SourceVehicle, `plate matches "^蒙B"`, false},
		{SourceVehicle, "len(plate) > 6", false},
		{SourceVehicle, "speed_kmh * 2 > 200", false},
		{SourcePhone, `mcc == "428" || operator == "46000" && rssi > -60`, true},
		{SourcePhone, `tech != "gsm" and has_rssi and site == "mdl" and device != "F-1" and kind == "fence"`, true},
		{SourcePhone, `lat > 41.5 && lon <= 110.5 || imsi >= "46001" && imei == ""`, true},
		{SourcePhone, `mac != "" && mnc == "00" || (tech == "lte") == has_rssi`, true},
		{SourcePatrol, "speed_kmh > 80 || accuracy_m > 50 || heading == 0", true},
		{SourcePatrol, "has_speed_kmh == has_heading", true},
	} {
		t.Run(tc.when, func(t *testing.T) {
			var ps config.Problems
			prog := compileWhen(tc.when, tc.src, "rules.yaml", "when", &ps)
			require.Empty(t, ps)
			fast := compileFast(prog.Node(), tc.src)
			require.Equal(t, tc.fast, fast != nil, "compiled into closures")
			if fast == nil {
				return
			}
			seen := checkAgreement(t, prog, fast, tc.src, rand.New(rand.NewPCG(1, uint64(len(tc.when)))), 5000)
			require.NotZero(t, seen[true], "the readings make it true sometimes")
			require.NotZero(t, seen[false], "and false sometimes")
		})
	}
}

// FuzzWhenFast: whatever condition compiles into closures, they answer as
// the VM does (a VM error counts as false, as Engine.when takes it).
func FuzzWhenFast(f *testing.F) {
	f.Add(uint8(SourceStatus), "tamper || battery_pct < 15", uint64(1))
	f.Add(uint8(SourceVehicle), `direction == "outbound" && speed_kmh > 250`, uint64(2))
	f.Add(uint8(SourceVehicle), "lane == 2 || lane > 3.5 || !(confidence >= 0.5)", uint64(3))
	f.Add(uint8(SourcePhone), `(tech == "lte") == has_rssi or mcc < "46"`, uint64(4))
	f.Add(uint8(SourcePatrol), "speed_kmh != heading and not (accuracy_m <= 50)", uint64(5))
	f.Add(uint8(SourceStatus), "15 > battery_pct || 3600 <= uptime_s && 'v2' != fw", uint64(6))
	f.Fuzz(func(t *testing.T, src uint8, when string, seed uint64) {
		s := Source(src%4) + SourcePhone
		var ps config.Problems
		prog := compileWhen(when, s, "rules.yaml", "when", &ps)
		if prog == nil {
			return
		}
		fast := compileFast(prog.Node(), s)
		if fast == nil {
			return
		}
		checkAgreement(t, prog, fast, s, rand.New(rand.NewPCG(seed, 7)), 200)
	})
}

// checkAgreement evaluates n random readings of source s both ways and
// fails on the first difference; it returns how often each answer came.
func checkAgreement(t *testing.T, prog *vm.Program, fast whenFunc, s Source, rng *rand.Rand, n int) map[bool]int {
	t.Helper()
	var machine vm.VM
	seen := map[bool]int{}
	for range n {
		r, zone := randomReading(rng, s)
		v, err := machine.Run(prog, boxEnv(r, zone))
		want := false
		if err == nil {
			want, _ = v.(bool)
		}
		seen[want]++
		require.Equal(t, want, fast(r, zone), "reading %+v in zone %q (VM error: %v)", r, zone, err)
	}
	return seen
}

// randomReading draws a reading of source s whose fields take a few values
// each (so that equalities hold now and then), optional numbers present or
// not.
func randomReading(rng *rand.Rand, s Source) (*reading, string) {
	pick := func(vs ...string) string { return vs[rng.IntN(len(vs))] }
	num := func(vs ...float64) float64 { return vs[rng.IntN(len(vs))] }
	optF := func(vs ...float64) model.OptFloat {
		if rng.IntN(4) == 0 {
			return model.OptFloat{}
		}
		return model.Some(num(vs...))
	}
	optI := func(vs ...int64) model.OptInt {
		if rng.IntN(4) == 0 {
			return model.OptInt{}
		}
		return model.SomeInt(vs[rng.IntN(len(vs))])
	}
	kind := model.Kind(pick("fence", "checkpoint", "patrol"))
	b := &model.Batch{Meta: model.Meta{Site: pick("mdl", "btu"), Kind: kind, Device: pick("F-1", "CP-07", "P-07")}}
	r := &reading{src: s, b: b, p: model.Point{Lat: num(41, 41.5, 42), Lon: num(110, 110.5, 111)}, hasPos: true}
	switch s {
	case SourcePhone:
		r.det = &model.Detection{IMSI: pick("", "460001234567890", "428991234567890"), IMEI: pick("", "490154203237518"),
			MAC: pick("", "aa:bb:cc:dd:ee:ff"), MCC: pick("", "460", "428"), MNC: pick("", "00", "99"),
			Operator: pick("", "46000", "42899"), RSSI: optF(-90, -60, -59.5, -40), Tech: pick("", "gsm", "lte")}
	case SourceVehicle:
		r.pass = &model.Pass{Plate: pick("蒙B7K3Q2", "无牌"), PlateColor: pick("", "blue", "yellow"), VehicleType: pick("", "CAR", "TRUCK"),
			VehicleColor: pick("", "white"), Direction: pick("", "inbound", "outbound"), Image: pick("", "http://x/1.jpg"),
			SpeedKmh: optF(0, 120, 150, 150.5, 251), Lane: optI(1, 2, 3, 4), Heading: optF(0, 90, 179.9, 180, 270),
			Confidence: optF(0.2, 0.5, 0.9)}
	case SourcePatrol:
		r.pos = &model.Position{SpeedKmh: optF(0, 80, 81), Heading: optF(0, 90), AccuracyM: optF(5, 50, 51)}
	case SourceStatus:
		tamper := model.OptBool{}
		if rng.IntN(3) > 0 {
			tamper = model.SomeBool(rng.IntN(2) == 0)
		}
		r.st = &model.Status{BatteryPct: optF(0, 3, 4.9, 5, 14, 15, 80), TempC: optF(-30, -20, 25), UptimeS: optI(0, 10, 11, 3600, 7200),
			Tamper: tamper, Power: pick("", "battery", "mains"), SignalDbm: optF(-90, 15, 80), Queue: optI(0, 10, 3600), FW: pick("", "v1.2", "v2.0")}
	}
	return r, pick("", "z1", "z2")
}
