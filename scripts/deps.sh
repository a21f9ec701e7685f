#!/usr/bin/env bash
# Installs what the integration tests and `make run` need: mosquitto (Debian package) and
# influxd 1.8.10 (built from source; Debian only packages 1.6, which lacks /api/v2/write).
# Idempotent and quick once done. The influxd build is cached outside the clone, under
# $HOME/.cache/fenceline, because CI starts from a fresh clone on the same machine.
set -euo pipefail

cd "$(dirname "$0")/.."

INFLUXDB_VERSION=1.8.10
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/fenceline"
cached_influxd="$cache_dir/influxd-$INFLUXDB_VERSION"
tools_influxd="tools/bin/influxd"

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
	sudo_cmd=(sudo)
fi

# mosquitto lives in /usr/sbin, which a non-root PATH may lack.
have_mosquitto() {
	command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]]
}

if have_mosquitto && command -v mosquitto_pub >/dev/null 2>&1; then
	echo "mosquitto: present"
else
	"${sudo_cmd[@]}" apt-get update -qq
	"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
	# On a machine with an init system the package starts a system broker on
	# 1883, where `make run` wants its own: stop the one we just installed.
	if command -v service >/dev/null 2>&1; then
		"${sudo_cmd[@]}" service mosquitto stop >/dev/null 2>&1 || true
	fi
	echo "mosquitto: installed"
fi

mkdir -p "$cache_dir" tools/bin
# Two `make test` runs at once must not build or copy over each other.
exec 9>"$cache_dir/.deps.lock"
flock 9

if [[ -x "$tools_influxd" ]]; then
	echo "influxd $INFLUXDB_VERSION: present"
elif [[ -x "$cached_influxd" ]]; then
	cp "$cached_influxd" "$tools_influxd.tmp" && mv "$tools_influxd.tmp" "$tools_influxd"
	echo "influxd $INFLUXDB_VERSION: installed (from $cached_influxd)"
else
	build_dir="$(mktemp -d)"
	trap 'rm -rf "$build_dir"' EXIT
	echo "influxd $INFLUXDB_VERSION: building (about 2 minutes on a cold module cache)..." >&2
	# Built from outside the repo so that our go.mod plays no part in it.
	(cd "$build_dir" && GOBIN="$build_dir/bin" GOFLAGS=-buildvcs=false \
		go install -ldflags "-X main.version=$INFLUXDB_VERSION" \
		"github.com/influxdata/influxdb/cmd/influxd@v$INFLUXDB_VERSION")
	cp "$build_dir/bin/influxd" "$cached_influxd.tmp" && mv "$cached_influxd.tmp" "$cached_influxd"
	cp "$cached_influxd" "$tools_influxd.tmp" && mv "$tools_influxd.tmp" "$tools_influxd"
	echo "influxd $INFLUXDB_VERSION: installed (built)"
fi
