#!/usr/bin/env bash
# tools/smoke.sh HOST:PORT: runs every corecast-load mode for about 2 s with small counts
# against a running server (CI runs it against corecast). Fails (exit 1) as soon as a mode
# reports an error or measures nothing; the JSON lines land in $SMOKE_OUT (default: a
# temporary directory, printed at the end).
#
#   echo       10 conns x 4 in flight x 64 B (binary), then 4 x 2 x 2 KiB (text)
#   broadcast  20 receivers + 2 senders
#   idle       50 connections held 1 s
#   connect    8 handshakes in flight
#   chat       20 users in 2 rooms, 2 senders at 20 msgs/s on /ws (the server in development
#              mode, with its default rate limits); SMOKE_CHAT=0 skips it
#
# Environment: CORECAST_LOAD (default: target/release/corecast-load, built if missing),
# SMOKE_CHAT=0 for servers without the chat protocol.
set -euo pipefail

if [ $# -ne 1 ]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
addr=$1
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
load=${CORECAST_LOAD:-$root/target/release/corecast-load}
if [ ! -x "$load" ]; then
    (cd "$root" && cargo build --release -q -p corecast-load)
fi
out=${SMOKE_OUT:-$(mktemp -d)}
mkdir -p "$out"

run() {
    local name=$1
    shift
    printf 'smoke: %-10s ' "$name" >&2
    if timeout 60 "$load" "$@" --target "$addr" -q --fail-on-errors >"$out/$name.json" 2>"$out/$name.log"; then
        # The summary's first figure line, e.g. "echo: 123.4k msgs/s ...".
        sed -n '3p' "$out/$name.log" >&2
    else
        echo "FAILED" >&2
        cat "$out/$name.log" >&2
        exit 1
    fi
}

run echo echo -c 10 -D 4 -s 64 -d 2
run echo-text echo -c 4 -D 2 -s 2048 --text -d 2
run broadcast broadcast -r 20 -k 2 -w 4 -d 2 --drain 1
run idle idle -c 50 -d 1
run connect connect -n 8 -d 2
if [ "${SMOKE_CHAT:-1}" != 0 ]; then
    run chat chat -c 20 -R 2 -k 2 --send-rate 20 -d 2 --warmup 0.5 --drain 1
fi
echo "smoke: all modes passed against $addr (JSON in $out)" >&2
