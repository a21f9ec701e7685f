#!/usr/bin/env bash
# set-aside-state.sh STATE_FILE: moves the daemon's alert state (STATE_FILE and its previous
# save, STATE_FILE.prev, which the daemon would restore from) aside under the time of the call,
# so that the daemon starts with a fresh one; prints the name they were moved to, nothing when
# there was no state. Each call keeps its own copy: a second replay does not overwrite the
# state a live run left.
set -euo pipefail
state=$1
[[ -f $state || -f $state.prev ]] || exit 0
aside="$state.before-replay-$(date +%Y%m%dT%H%M%S.%N)"
for f in "$state" "$state.prev"; do
	if [[ -f $f ]]; then
		mv -f "$f" "$aside${f#"$state"}"
	fi
done
echo "$aside"
