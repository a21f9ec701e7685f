# fenceline — build, test and local development stack.
# `make test` is what CI runs (.ci/run): it installs the real services first, because the
# integration tests run against a real mosquitto and InfluxDB 1.8 and fail (never skip) without.

GO                  ?= go
STATICCHECK_VERSION ?= v0.7.0
FUZZTIME            ?= 20s
CONFIG              ?= config/examples/fenceline.yaml

.PHONY: all deps build test lint bench run fuzz clean

all: build

# mosquitto (apt) and tools/bin/influxd (built once, cached in ~/.cache/fenceline).
deps:
	scripts/deps.sh

build:
	$(GO) build -o bin/fenceline ./cmd/fenceline

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -w needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Runs the daemon against a local mosquitto (:1883) and InfluxDB (:8086) whose data lives in
# .state/. Ctrl-C stops the daemon first, then the services.
run: deps build
	$(GO) build -o bin/devstack ./cmd/devstack
	bin/devstack -- bin/fenceline run --config $(CONFIG)

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
