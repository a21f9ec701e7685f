// Package load is the core of cmd/fenceline-load: it generates a deployment
// (devices, zones, rules), publishes contract-valid traffic for it to an MQTT
// broker at a fixed rate or as fast as the broker takes it, and accounts for
// every reading: stored in InfluxDB (once), dead-lettered, lost or
// duplicated, with latencies, throughput over time and the CPU and memory the
// processes on the machine spent on it.
//
// Every message carries a per-device seq, and every reading's InfluxDB point
// time encodes its message's seq and its index (model.PointTime), so a point
// found in InfluxDB names exactly the reading it came from: a reading that
// is missing is lost (by the broker or by fenceline), one that appears twice
// is duplicated. Nothing is inferred from totals alone.
package load
