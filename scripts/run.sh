#!/usr/bin/env bash
# `make run`: start the local services (if needed), an adapter (`querybus serve`)
# in the background, prove it works with `querybus check`, then keep the adapter
# in the foreground. Ctrl-C / SIGTERM are forwarded to the adapter, which stops
# gracefully. Services this script started are stopped again on exit; services
# that were already running are left alone.
# shellcheck disable=SC2317  # functions below run from traps
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
QB="${QUERYBUS_BIN:-$REPO/.venv/bin/querybus}"  # override: tests of this script
[ -x "$QB" ] || { echo "run.sh: $QB missing (make venv)" >&2; exit 1; }

# Only a stack that was completely down is ours to stop at the end.
# (Captured first: `status | grep -q` could fail on SIGPIPE under pipefail.)
started_services=0
status_out=$(scripts/services.sh status 2>/dev/null || true)
if [[ "$status_out" != *" running "* ]]; then
    started_services=1
fi
scripts/services.sh up
# shellcheck disable=SC1091
. .stack/env

adapter_pid=""
stopping=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$adapter_pid" ] && kill -0 "$adapter_pid" 2>/dev/null; then
        kill -TERM "$adapter_pid" 2>/dev/null || true
        wait "$adapter_pid" 2>/dev/null || true
    fi
    if [ "$started_services" = 1 ]; then
        scripts/services.sh down || true
    fi
    exit "$rc"
}
forward() {  # forward SIGNAL: ask the adapter to stop gracefully, then wait for it
    stopping=1
    if [ -n "$adapter_pid" ]; then kill "-$1" "$adapter_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'forward INT' INT
trap 'forward TERM' TERM

# The adapter runs in its own process group so a terminal Ctrl-C reaches it only
# through us (once), not twice.
setsid "$QB" serve &
adapter_pid=$!

if ! "$QB" check --timeout 60; then
    echo "run.sh: querybus check failed; stopping the adapter" >&2
    exit 1
fi
[ "$stopping" = 1 ] && exit 0
echo "run.sh: adapter serving (pid $adapter_pid); Ctrl-C to stop" >&2

# `wait` returns early when a trapped signal arrives: keep waiting until the adapter exits.
rc=0
while kill -0 "$adapter_pid" 2>/dev/null; do
    wait "$adapter_pid" && rc=0 || rc=$?
done
adapter_pid=""
[ "$stopping" = 1 ] && [ "$rc" -ge 128 ] && rc=0
exit "$rc"
