package deploy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/stretchr/testify/require"
)

// trafficSpan is how far back the published traffic reaches: several hours, so that the
// dashboards' GROUP BY time($__interval) and the hourly continuous queries see several buckets.
const trafficSpan = 3 * time.Hour

// trafficDevices are units of config/examples/rules.yaml on all three sites, with every kind.
var trafficDevices = []struct{ id, site, kind string }{
	{"F-AOL-01", "mdl", "fence"},
	{"F-EPH-01", "bjm", "fence"},
	{"F-MDL-01", "mdl", "fence"},
	{"CP-01", "btu", "checkpoint"},
	{"CP-04", "bjm", "checkpoint"},
	{"CP-07", "mdl", "checkpoint"},
	{"P-03", "bjm", "patrol"},
	{"P-07", "mdl", "patrol"},
}

// trafficAlertRules are the example rules that the traffic below makes fire for sure: one
// scripted incident each (a Mongolian SIM, the watch-listed plate, a fast outbound car, a
// tampered unit). Other rules may fire too, depending on the hour of the day.
var trafficAlertRules = []string{"foreign-sim-near-border", "plate-of-interest", "fast-outbound", "unit-tamper"}

// publishTraffic publishes contract messages of every stream for trafficDevices over the last
// trafficSpan, every 10 minutes, plus the incidents of trafficAlertRules and one message with a
// bad reading, and waits until the daemon has acked them all and the alerts of
// trafficAlertRules are in InfluxDB. It returns how many messages it published.
func (s *daemonStack) publishTraffic() int {
	s.t.Helper()
	rng := rand.New(rand.NewPCG(20261126, 7))
	now := time.Now().Truncate(time.Millisecond)
	start := now.Add(-trafficSpan)
	seq := map[string]int{}
	n := 0
	send := func(dev struct{ id, site, kind string }, stream string, at time.Time, body string) {
		seq[dev.id]++
		payload := fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,%s}`, seq[dev.id], at.UnixMilli(), body)
		s.publish(fmt.Sprintf("border/%s/%s/%s/%s", dev.site, dev.kind, dev.id, stream), payload)
		n++
	}
	for step := 0; ; step++ {
		at := start.Add(time.Duration(step) * 10 * time.Minute)
		if at.After(now.Add(-time.Minute)) {
			break
		}
		for _, dev := range trafficDevices {
			switch dev.kind {
			case "fence":
				send(dev, "detections", at, `"detections":[`+phones(rng, 3+rng.IntN(5), false)+`]`)
			case "checkpoint":
				send(dev, "passes", at, `"passes":[`+passes(rng, 1+rng.IntN(4))+`]`)
			case "patrol":
				send(dev, "position", at.Add(time.Second), fmt.Sprintf(`"lat":%.5f,"lon":%.5f,"speed_kmh":%d,"heading":%d,"accuracy_m":6`,
					42.30+rng.Float64()/10, 110.10+rng.Float64()/10, 20+rng.IntN(40), rng.IntN(360)))
			}
			send(dev, "status", at.Add(2*time.Second), fmt.Sprintf(
				`"battery_pct":%d,"temp_c":%.1f,"uptime_s":%d,"tamper":false,"power":"solar","signal_dbm":%d,"queue":%d,"fw":"2.3.1"`,
				60+rng.IntN(40), -25+rng.Float64()*10, 3600*(step+1), -70-rng.IntN(40), rng.IntN(3)))
		}
	}
	// The scripted incidents, a little before now.
	at := now.Add(-5 * time.Minute)
	byID := map[string]struct{ id, site, kind string }{}
	for _, d := range trafficDevices {
		byID[d.id] = d
	}
	send(byID["F-MDL-01"], "detections", at, `"detections":[`+phones(rng, 2, false)+`,`+phones(rng, 2, true)+`]`)
	send(byID["CP-07"], "passes", at, `"passes":[{"plate":"蒙B7K3Q2","plate_color":"blue","vehicle_type":"K33","vehicle_color":"black","speed_kmh":88,"lane":1,"direction":"outbound","heading":355,"confidence":0.96}]`)
	send(byID["CP-04"], "passes", at, `"passes":[{"plate":"蒙B5M2N8","plate_color":"blue","vehicle_type":"K33","vehicle_color":"white","speed_kmh":146.5,"lane":2,"direction":"outbound","heading":10,"confidence":0.93}]`)
	send(byID["F-EPH-01"], "status", at, `"battery_pct":11,"temp_c":-27.5,"tamper":true,"power":"battery","signal_dbm":-101,"queue":4,"fw":"2.3.1"`)
	// One reading the decoder rejects beside a good one: the good one is stored, the bad one
	// dead-lettered (bad_imsi), as in real traffic.
	send(byID["F-AOL-01"], "detections", now.Add(-4*time.Minute), `"detections":[`+phones(rng, 1, false)+`,{"imsi":"46000x","rssi":-80}]`)

	s.waitFor(fmt.Sprintf("%d messages acked", n), func() bool { return s.sum("fenceline_ingest_ack_latency_seconds") >= float64(n) })
	s.waitFor("alerts of "+strings.Join(trafficAlertRules, ", ")+" stored", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		series, err := s.influx.Query(ctx, `SELECT count("count") FROM "alert" GROUP BY "rule"`)
		require.NoError(s.t, err)
		have := map[string]bool{}
		for _, sr := range series {
			have[sr.Tags["rule"]] = true
		}
		for _, r := range trafficAlertRules {
			if !have[r] {
				return false
			}
		}
		return true
	})
	return n
}

// phones returns n detections as JSON objects: Chinese SIMs of the three operators, or
// Mongolian ones (MCC 428) when foreign.
func phones(rng *rand.Rand, n int, foreign bool) string {
	mccmnc := []string{"46000", "46001", "46011", "46007", "46003"}
	if foreign {
		mccmnc = []string{"42888", "42891", "42899"}
	}
	techs := []string{"lte", "lte", "nr", "gsm"}
	parts := make([]string, n)
	for i := range parts {
		// A small population of phones, so that the same subjects recur as they do at a site.
		imsi := fmt.Sprintf("%s%010d", mccmnc[rng.IntN(len(mccmnc))], rng.IntN(40))
		parts[i] = fmt.Sprintf(`{"imsi":%q,"imei":%q,"mac":"a4:5e:60:%02x:%02x:%02x","rssi":%d,"tech":%q}`,
			imsi, luhnIMEI(rng), rng.IntN(256), rng.IntN(256), rng.IntN(256), -60-rng.IntN(50), techs[rng.IntN(len(techs))])
	}
	return strings.Join(parts, ",")
}

// passes returns n ordinary vehicle passes (蒙B plates, legal speeds) as JSON objects.
func passes(rng *rand.Rand, n int) string {
	const plateChars = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
	colors := []string{"blue", "blue", "blue", "yellow", "green"}
	dirs := []string{"inbound", "outbound", "unknown"}
	parts := make([]string, n)
	for i := range parts {
		var plate strings.Builder
		plate.WriteString("蒙B")
		for range 5 {
			plate.WriteByte(plateChars[rng.IntN(len(plateChars))])
		}
		parts[i] = fmt.Sprintf(`{"plate":%q,"plate_color":%q,"vehicle_type":"K33","vehicle_color":"white","speed_kmh":%.1f,"lane":%d,"direction":%q,"heading":%d,"confidence":%.2f}`,
			plate.String(), colors[rng.IntN(len(colors))], 40+rng.Float64()*60, 1+rng.IntN(2), dirs[rng.IntN(len(dirs))], rng.IntN(360), 0.8+rng.Float64()/5)
	}
	return strings.Join(parts, ",")
}

// luhnIMEI returns a random 15-digit IMEI with a valid Luhn check digit (the decoder rejects
// 15-digit IMEIs whose check digit is wrong).
func luhnIMEI(rng *rand.Rand) string {
	d := make([]byte, 15)
	sum := 0
	for i := range 14 {
		d[i] = byte('0' + rng.IntN(10))
		v := int(d[i] - '0')
		if i%2 == 1 { // every second digit from the left, i.e. from the check digit's left neighbour
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	d[14] = byte('0' + (10-sum%10)%10)
	return string(d)
}
