#!/usr/bin/env bash
# The command devstack runs for `make run`, once mosquitto (:1883) and InfluxDB (:8086) are up:
# the daemon on the example config, then the simulator playing the example scenario against it,
# with the alerts printed as they arrive. Ctrl-C (devstack passes it on as SIGINT) stops the
# simulator, then lets the daemon drain and exit; devstack then stops the services.
#
# Environment: CONFIG (daemon config, default config/examples/fenceline.yaml), SPEED (1 = real
# time, 60 = a simulated minute per second, max), SCENARIO, DURATION (simulated, e.g. 12h; 0 runs
# until stopped), ALERT_STATE (see below). The daemon's log goes to .state/fenceline.log, so the
# terminal tells the story.
set -euo pipefail

cd "$(dirname "$0")/.."

config=${CONFIG:-config/examples/fenceline.yaml}
scenario=${SCENARIO:-config/examples/scenario.yaml}
speed=${SPEED:-1}
http=127.0.0.1:9464 # http.listen of the example config
mkdir -p .state
log=.state/fenceline.log

sim_args=(--scenario "$scenario" --speed "$speed" --watch-alerts --wait-ready "http://$http/readyz")
if [[ $speed != 1 ]]; then
	# After the replay the units go on reporting in real time: else the daemon would find them all
	# silent ten minutes later, 46 false unit-offline alerts.
	sim_args+=(--then-live)
fi
if [[ -n ${DURATION:-} ]]; then
	sim_args+=(--duration "$DURATION")
fi

daemon=
sim=
stopping=

# stop ends the simulator first (nothing more is published), then the daemon, which drains what
# it holds into the still running broker and database.
stop() {
	stopping=1
	trap '' INT TERM
	if [[ -n $sim ]] && kill -0 "$sim" 2>/dev/null; then
		kill -INT "$sim" 2>/dev/null || true
		wait "$sim" 2>/dev/null || true
	fi
	if [[ -n $daemon ]] && kill -0 "$daemon" 2>/dev/null; then
		echo "stopping the daemon (it drains first)..."
		kill -TERM "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
		echo "daemon stopped; its log is in $log"
	fi
}
trap 'stop; exit 0' INT TERM

# A faster run replays the past (it must: the daemon rejects readings from the future). The
# daemon keeps its alert state (cooldowns, count windows, last sightings and positions) across
# restarts, in event time, and rightly ignores readings older than what it already saw: after a
# live run, a replay of the hours before it would raise next to nothing. So a replay starts the
# daemon with a fresh alert state; the old one is kept aside. ALERT_STATE is the file in the
# config's storage.dir (the example's: .state/fenceline).
# Its previous save (.prev) goes aside too: the daemon would restore from it.
alert_state=${ALERT_STATE:-.state/fenceline/alert-state.json}
if [[ $speed != 1 ]]; then
	aside=$(scripts/set-aside-state.sh "$alert_state")
	if [[ -n $aside ]]; then
		echo "replaying the past at speed $speed: the daemon starts with a fresh alert state ($aside keeps the old one)"
	fi
fi

echo "== $(date '+%F %T') starting fenceline on $config (log: $log)" >>"$log"
bin/fenceline run --config "$config" >>"$log" 2>&1 &
daemon=$!

cat <<EOF

fenceline is running the example Baotou deployment ($config)
  metrics     http://$http/metrics
  readiness   http://$http/readyz
  InfluxDB    http://127.0.0.1:8086, database "border", e.g.
              curl -sG http://127.0.0.1:8086/query --data-urlencode db=border \\
                --data-urlencode "q=SELECT count(*) FROM phone_detection"
  alerts      MQTT tcp://127.0.0.1:1883, topic border/+/alerts/+ (mosquitto_sub -t 'border/+/alerts/+' -v)
  daemon log  $log
  scenario    $scenario at speed $speed: bin/fenceline-sim --print-incidents lists what happens
Ctrl-C stops everything. Alerts arriving:

EOF

bin/fenceline-sim "${sim_args[@]}" &
sim=$!

# Whichever ends first: the simulator keeps watching alerts after its scenario, so it ends on its
# own only on an error, as does the daemon.
set +e
wait -n "$daemon" "$sim"
code=$?
set -e
if [[ -z $stopping ]]; then
	if ! kill -0 "$daemon" 2>/dev/null; then
		echo "the daemon exited ($code); the end of $log:" >&2
		tail -n 20 "$log" >&2
	else
		echo "the simulator exited ($code)" >&2
	fi
	stop
	exit 1
fi
