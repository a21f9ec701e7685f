#!/usr/bin/env bash
# make bench: the Go benchmarks of every package (short), the whole per-message pipeline on one
# core, and the standard load profiles end to end against a real mosquitto + InfluxDB 1.8 and
# bin/fenceline, all on this machine. Prints the tables; keeps the raw output and the JSON
# reports in $BENCH_OUT (default bin/bench/<time>). About 5 minutes on 2 cores.
#
#   BENCHTIME   -benchtime of the per-package benchmarks (default 200ms)
#   PROFILES    load profiles to run (default "e2e e2e-reading-ts alerts"; also "overload", about
#               5 minutes more)
#   OVERLOAD_RATE  messages/s of the overload profile (default 10000: 200,000 readings/s, about
#               3× what this 2-core machine sustains end to end, 65–75k readings/s)
set -uo pipefail

cd "$(dirname "$0")/.."

GO=${GO:-go}
BENCHTIME=${BENCHTIME:-200ms}
PROFILES=${PROFILES:-e2e e2e-reading-ts alerts}
out=${BENCH_OUT:-bin/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
failed=()

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "   (other processes busy on the machine make every figure below worse; the load tables' CPU row says how busy it was)"

$GO build -o bin/fenceline ./cmd/fenceline || exit 1
$GO build -o bin/fenceline-load ./cmd/fenceline-load || exit 1

echo
echo "== go benchmarks, every package (-benchtime $BENCHTIME)"
if ! $GO test -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" -timeout 15m ./... 2>&1 |
	tee "$out/go-bench.txt" | grep -E '^(Benchmark|ok|FAIL|---|panic)'; then
	failed+=("go benchmarks")
fi

echo
echo "== whole pipeline without I/O on one core (targets: ≤ 1000 ns/reading, ≤ 1 allocs/reading)"
if ! $GO test -run '^$' -bench Pipeline -benchmem -benchtime 2s -cpu 1 ./internal/pipelinebench 2>&1 |
	tee "$out/pipeline-bench.txt" | grep -E '^(Benchmark|FAIL|panic)'; then
	failed+=("pipeline benchmark")
fi
# Each traffic shape against the targets (cpu-ns: the process's CPU, the garbage collector's
# included).
awk '/^BenchmarkPipeline/ {
	name = $1; cpu = ""; allocs = ""
	for (i = 2; i < NF; i++) {
		if ($(i + 1) == "cpu-ns/reading") cpu = $i
		if ($(i + 1) == "allocs/reading") allocs = $i
	}
	if (cpu == "") next
	printf "   %-45s %s cpu-ns/reading (%s), %s allocs/reading (%s)\n", name, cpu, (cpu <= 1000 ? "met" : "NOT met"), allocs, (allocs <= 1 ? "met" : "NOT met")
}' "$out/pipeline-bench.txt"

# The load profiles. Each starts its own stack (mosquitto, influxd, bin/fenceline) in a temp folder.
load() {
	local name=$1
	shift
	echo
	bin/fenceline-load --stack --log-level warn --name "$name" --json "$out/load-$name.json" "$@"
	local rc=$?
	if [[ $rc -ne 0 ]]; then
		failed+=("load $name (exit $rc)")
	fi
}
for p in $PROFILES; do
	case $p in
	e2e) # The issue's end-to-end target: 20,000 messages × 20 detections, as fast as the broker takes them.
		load e2e --messages 20000 --batch 20 --mix detections=1 ;;
	e2e-reading-ts) # The same with a ts in every detection (Telegraf fell to ~48k readings/s on it).
		load e2e-reading-ts --messages 20000 --batch 20 --mix detections=1 --reading-ts 1 ;;
	alerts) # publish→alert latency at 2,000 messages/s of mixed traffic (target: p99 ≤ 50 ms).
		load alerts --messages 0 --duration 10s --rate 2000 --mix detections=6,passes=2,positions=1,statuses=1 \
			--batch 20 --pass-batch 5 --reading-ts 0.2 --invalid 0.01 --alerts 0.002 ;;
	overload) # 60 s at about 3× the sustainable rate: memory must stay bounded (peak RSS ≤ 150 MB), nothing lost.
		load overload --messages 0 --duration 60s --rate "${OVERLOAD_RATE:-10000}" --mix detections=1 --batch 20 \
			--verify counts --settle 120s ;;
	*)
		echo "unknown profile $p" >&2
		failed+=("profile $p") ;;
	esac
done

echo
echo "raw output and JSON reports: $out"
if [[ ${#failed[@]} -gt 0 ]]; then
	printf 'FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
