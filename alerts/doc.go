// Package alerts groups fenceline's alerting: zones and their spatial
// index (alerts/zone), watchlists (alerts/watchlist), and the rule engine
// that compiles rules.yaml and evaluates it on readings (alerts/engine).
package alerts
