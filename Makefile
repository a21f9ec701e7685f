# fenceline — build, test and local development stack.
# `make test` is what CI runs (.ci/run): it installs the real services first, because the
# integration tests run against a real mosquitto and InfluxDB 1.8 and fail (never skip) without.

GO                  ?= go
STATICCHECK_VERSION ?= v0.7.0
FUZZTIME            ?= 20s
CONFIG              ?= config/examples/fenceline.yaml
SPEED               ?= 1

.PHONY: all deps build test lint bench run fuzz chaos clean

all: build

# mosquitto (apt) and tools/bin/influxd (built once, cached in ~/.cache/fenceline).
deps:
	scripts/deps.sh

# The revision the daemon reports (fenceline version, the start log): taken from git here, since
# a GOFLAGS with -buildvcs=false leaves it out of Go's own build stamp (build with make build).
REVISION := $(shell git describe --always --dirty 2>/dev/null)

build:
	$(GO) build -ldflags "-X github.com/fenceline/fenceline/internal/daemon.revision=$(REVISION)" -o bin/fenceline ./cmd/fenceline
	$(GO) build -o bin/fenceline-sim ./cmd/fenceline-sim
	$(GO) build -o bin/fenceline-load ./cmd/fenceline-load

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -w needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# The Go benchmarks of every package (short), the whole pipeline on one core, and the standard
# load profiles against a real mosquitto + InfluxDB and bin/fenceline (scripts/bench.sh: BENCHTIME,
# PROFILES, BENCH_OUT). Prints the tables; a few minutes on 2 cores.
bench: deps build
	scripts/bench.sh

# The whole story on one machine: a local mosquitto (:1883) and InfluxDB (:8086) with their data
# in .state/, the daemon on $(CONFIG) (metrics on :9464) and the scenario simulator playing the
# example deployment against it, alerts printed as they arrive. SPEED=1 is real time (the scripted
# incidents start within ten minutes), SPEED=60 a simulated minute per second over the past
# 12 hours. Ctrl-C stops the simulator, then the daemon (it drains), then the services.
run: deps build
	$(GO) build -o bin/devstack ./cmd/devstack
	CONFIG=$(CONFIG) SPEED=$(SPEED) bin/devstack -- scripts/run-local.sh

# The fault-injection suite's long profile (internal/chaos; make test runs the short one): fenceline
# as a process against a real mosquitto and InfluxDB, publishing valid and invalid readings while
# InfluxDB restarts, mosquitto restarts (with and without persistence) and fenceline is killed -9
# again and again, then a flood from one device. Proves every reading stored once, every rejection
# dead-lettered, every alert once; prints a table per fault and appends them to $(CHAOS_REPORT).
CHAOS_REPORT ?= bin/chaos-report.txt
chaos: deps
	@mkdir -p $(dir $(CHAOS_REPORT)) && rm -f $(CHAOS_REPORT)
	FENCELINE_CHAOS=long FENCELINE_CHAOS_REPORT=$(abspath $(CHAOS_REPORT)) \
		$(GO) test -count=1 -timeout 60m -v -run '^TestIntegration(ChaosLong|Flood)$$' ./internal/chaos
	@echo "== fault tables: $(CHAOS_REPORT)"; cat $(CHAOS_REPORT)

# A short run of every fuzz target in every package (FUZZTIME each). A package whose tests do
# not build fails the run rather than being skipped.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		list="$$($(GO) test -list '^Fuzz' "$$pkg")" || exit 1; \
		for target in $$(echo "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) "$$pkg"; \
		done; \
	done

# Build outputs only: tools/ (make deps) and .state/ (the dev stack's data) are kept.
clean:
	rm -rf bin/ coverage.out coverage.html
