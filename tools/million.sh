#!/usr/bin/env bash
# tools/million.sh: the many-sockets run. Starts S corecast processes (ports 61101.., one per
# process, one worker each) and has corecast-load hold ~19,000 connections on each, spread over
# as many client processes as the open-file limit needs and over 127.0.0.1..16 as source
# addresses. Phase 1 holds them idle (server RSS per connection); phase 2 adds broadcast
# traffic on every server (fan-out latency with ~19,000 receivers per server). Reports total
# connections, RSS per connection and broadcast latency; JSON lines in $MILLION_OUT.
#
# A million sockets is MILLION_SERVERS=53 (see docs/benchmarks.md for the memory and the kernel
# settings that needs); the default of 4 servers (76,000 connections) fits a shared 2-core box.
#
# Environment:
#   MILLION_SERVERS      server processes (default 4)
#   MILLION_PER_SERVER   connections per server (default 19000; each server must be allowed
#                        that many open files)
#   MILLION_HOLD         seconds of each phase (default 10)
#   MILLION_RATE         new connections per second over all clients (default 10000)
#   MILLION_SEND_RATE    broadcast messages per second per server (default 5)
#   MILLION_PORT         first port (default 61101)
#   MILLION_SERVER_CMD   server command instead of corecast; {port} is replaced, e.g.
#                        '/tmp/corecast-anchors/bin/anchor-tokio-tungstenite {port} 1 4096'
#   MILLION_OUT          directory for the JSON lines (default: target/million)
# corecast is built in release mode; when it does not build (and no MILLION_SERVER_CMD is
# given) the script says so and exits 0.
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
servers=${MILLION_SERVERS:-4}
per=${MILLION_PER_SERVER:-19000}
hold=${MILLION_HOLD:-10}
rate=${MILLION_RATE:-10000}
send_rate=${MILLION_SEND_RATE:-5}
port0=${MILLION_PORT:-61101}
out=${MILLION_OUT:-$root/target/million}
total=$((servers * per))
mkdir -p "$out"

log() { printf 'million: %s\n' "$*" >&2; }
# shellcheck source=tools/lib.sh
. "$root/tools/lib.sh"

(cd "$root" && cargo build --release -q -p corecast-load)
load="$root/target/release/corecast-load"

server_cmd=${MILLION_SERVER_CMD:-}
if [ -z "$server_cmd" ]; then
    if ! (cd "$root" && cargo build --release -q --bin corecast) >"$out/corecast-build.log" 2>&1; then
        log "SKIP: corecast does not build yet (see $out/corecast-build.log);"
        log "      set MILLION_SERVER_CMD to run against another server"
        exit 0
    fi
    server_cmd="$root/target/release/corecast --listen 127.0.0.1:{port} --workers 1"
fi

# Limits this run needs; warn rather than fail, the run itself reports what it reached.
nofile=$(ulimit -Hn)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((per + 100)) ]; then
    log "warning: hard open-file limit $nofile < $per + 100: servers cannot hold $per each"
fi
file_max=$(cat /proc/sys/fs/file-max 2>/dev/null || echo 0)
if [ "$file_max" -lt $((2 * total + 10000)) ]; then
    log "warning: fs.file-max $file_max < 2 x $total sockets (client and server ends)"
fi
mem_kib=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
log "$servers servers x $per connections = $total; MemAvailable $((mem_kib / 1024)) MiB"

pids=()
stop_servers() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    pids=()
}
trap stop_servers EXIT INT TERM

targets=""
port=$((port0 - 1))
for _ in $(seq 1 "$servers"); do
    # Ports others listen on are skipped: load goes only to servers started here.
    port=$(next_free_port $((port + 1)))
    cmd=${server_cmd//\{port\}/$port}
    # shellcheck disable=SC2086 # the command is a word list on purpose
    $cmd >"$out/server-$port.log" 2>&1 &
    pids+=("$!")
    if ! wait_listening "$!" "$port"; then
        log "server on port $port did not come up (see $out/server-$port.log)"
        exit 1
    fi
    targets="$targets${targets:+,}127.0.0.1:$port"
done
pid_list=$(IFS=,; echo "${pids[*]}")
log "servers up on $targets (pids $pid_list)"

log "phase 1: hold $total idle connections for $hold s (ramp at $rate/s)"
"$load" idle --target "$targets" --server-pid "$pid_list" -c "$total" --rate "$rate" \
    -d "$hold" --connect-timeout 60 >"$out/idle.json" 2> >(tee "$out/idle.log" >&2) || true

senders=$((2 * servers))
receivers=$((total - senders))
log "phase 2: broadcast, $senders senders (2 per server), $send_rate msgs/s per server, $receivers receivers"
"$load" broadcast --target "$targets" --server-pid "$pid_list" -r "$receivers" -k "$senders" \
    --send-rate $((send_rate * servers)) -w 64 -d "$hold" --rate "$rate" --connect-timeout 60 \
    --drain 5 >"$out/broadcast.json" 2> >(tee "$out/broadcast.log" >&2) || true
stop_servers

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.loads(open(os.path.join(out, name)).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return {}
i, b = load("idle.json"), load("broadcast.json")
idle = i.get("idle", {})
srv = i.get("server") or {}
print("== million.sh summary ==")
print(f"servers: {len(srv.get('pids', []))}, client processes: {i.get('processes')}")
print(f"connections held: {idle.get('held_to_end')} of {idle.get('requested')} "
      f"(ramp {idle.get('ramp_s')} s, {idle.get('connects_per_s')} connects/s), errors {i.get('errors', {}).get('total')}")
if srv:
    print(f"server RSS: {srv.get('rss_before_kib')} KiB before -> {srv.get('rss_end_kib')} KiB holding: "
          f"{idle.get('server_rss_per_conn_bytes')} B per connection")
bc, lat = b.get("broadcast", {}), b.get("fanout_latency_us", {})
if bc:
    print(f"broadcast: {bc.get('deliveries_per_s')} deliveries/s to {bc.get('clients_at_start')} clients, "
          f"lost {bc.get('lost')}, fan-out latency p50 {lat.get('p50')} us, p99 {lat.get('p99')} us, max {lat.get('max')} us")
PY
