#!/usr/bin/env bash
# tools/relay_bench.sh: what the Redis relay costs. Two measurements, each repeated
# RELAY_ROUNDS times with the configurations interleaved (a fresh redis-server and fresh nodes
# for every run), summarised as median [min-max] over the rounds:
#
#   latency     one room, RELAY_MEMBERS users (all of them senders) at RELAY_RATE msgs/s in
#               total, 64 B: one node (reference), then two nodes joined by Redis with the
#               members split over both. Publish -> delivery p50/p99 of each, and the p99 the
#               relay adds (two nodes minus one node, per round).
#   throughput  two nodes, RELAY_PAIRS rooms of two users (one on each node, both senders):
#               every message goes through Redis (one publish.lua call) and is delivered on
#               both nodes. Offered RELAY_TPUT_RATES msgs/s; relayed = messages acked per
#               second, with Redis' own CPU share.
#
# Every node runs one worker (--workers 1) plus its relay thread; the load generator runs on
# the same 2 cores, so the figures include the contention of 3-4 busy processes.
#
# Usage: tools/relay_bench.sh [--from-results]
# Environment: RELAY_ROUNDS (5), RELAY_DURATION (5 s), RELAY_RATE (10000), RELAY_MEMBERS (10),
#   RELAY_PAIRS (50), RELAY_TPUT_RATES ("50000 100000 150000"), RELAY_TESTS ("latency
#   throughput"), RELAY_PORT (first port, 62300), RELAY_OUT (raw JSON, target/relay-bench).
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
# shellcheck source=tools/lib.sh
. "$root/tools/lib.sh"
rounds=${RELAY_ROUNDS:-5}
duration=${RELAY_DURATION:-5}
rate=${RELAY_RATE:-10000}
members=${RELAY_MEMBERS:-10}
pairs=${RELAY_PAIRS:-50}
tput_rates=${RELAY_TPUT_RATES:-50000 100000 150000}
tests=${RELAY_TESTS:-latency throughput}
port=${RELAY_PORT:-62300}
out=${RELAY_OUT:-$root/target/relay-bench}

summarise() {
    python3 - "$out" <<'PY'
import json, statistics, sys, glob, os
out = sys.argv[1]
def load(name):
    rows = []
    for f in sorted(glob.glob(os.path.join(out, name + "-r*.json"))):
        with open(f) as fh:
            line = fh.read().strip()
        if line:
            rows.append(json.loads(line))
    return rows
def med(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    m = statistics.median(xs)
    return f"{m:.2f} [{min(xs):.2f}-{max(xs):.2f}]"
def medk(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    return f"{statistics.median(xs)/1e3:.1f}k [{min(xs)/1e3:.1f}-{max(xs)/1e3:.1f}k]"
one, two = load("latency-one"), load("latency-two")
if one or two:
    print(f"latency: 1 room, members split over the nodes, {len(one)}/{len(two)} rounds")
    print("| | deliveries/s | p50 ms | p99 ms | lost | out of order |")
    print("|---|---|---|---|---|---|")
    for label, rows in (("one node", one), ("two nodes + Redis", two)):
        d = [r["chat"]["deliveries_per_s"] for r in rows]
        p50 = [r["delivery_latency_us"]["p50"] / 1e3 for r in rows]
        p99 = [r["delivery_latency_us"]["p99"] / 1e3 for r in rows]
        lost = sum(r["chat"]["lost"] for r in rows)
        ooo = sum(r["chat"]["out_of_order"] + r["chat"]["seq_gaps"] + r["chat"]["duplicates"] for r in rows)
        print(f"| {label} | {medk(d)} | {med(p50)} | {med(p99)} | {lost} | {ooo} |")
    added = [b["delivery_latency_us"]["p99"] / 1e3 - a["delivery_latency_us"]["p99"] / 1e3
             for a, b in zip(one, two)]
    added50 = [b["delivery_latency_us"]["p50"] / 1e3 - a["delivery_latency_us"]["p50"] / 1e3
               for a, b in zip(one, two)]
    print(f"added by the relay, per round: p50 {med(added50)} ms, p99 {med(added)} ms")
    print()
rates = sorted({int(os.path.basename(f).split("-")[1])
                for f in glob.glob(os.path.join(out, "tput-*-r*.json"))})
if rates:
    print("throughput: two nodes, rooms of 2 (one member on each node)")
    print("| offered msgs/s | relayed msgs/s | deliveries/s | p99 ms | lost | Redis CPU | nodes CPU |")
    print("|---|---|---|---|---|---|---|")
    for rate in rates:
        rows = load(f"tput-{rate}")
        relayed = [r["chat"]["sent_measured"] / r["measured_s"] for r in rows
                   if r["chat"]["unanswered"] == 0 and r["chat"]["lost"] == 0]
        acked = [r["chat"]["acks_measured"] / r["measured_s"] for r in rows]
        d = [r["chat"]["deliveries_per_s"] for r in rows]
        p99 = [r["delivery_latency_us"]["p99"] / 1e3 for r in rows]
        lost = sum(r["chat"]["lost"] for r in rows)
        redis = [r.get("redis_cpu_util") for r in rows]
        nodes = [r["server"]["cpu_util"] for r in rows]
        print(f"| {rate/1e3:.0f}k | {medk(acked)} | {medk(d)} | {med(p99)} | {lost} | {med(redis)} | {med(nodes)} |")
PY
}

if [ "${1:-}" = "--from-results" ]; then
    summarise
    exit 0
fi
for tool in redis-server redis-cli python3; do
    command -v "$tool" >/dev/null || { echo "relay_bench: $tool is not installed" >&2; exit 2; }
done
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin corecast
cargo build --release --quiet --manifest-path "$root/tools/Cargo.toml"
bin=$root/target/release/corecast
load=$root/target/release/corecast-load
mkdir -p "$out"
rm -f "$out"/*.json

pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# start_redis: a fresh redis-server on the next free port; sets redis_pid, redis_port.
start_redis() {
    redis_port=$(next_free_port "$port")
    port=$((redis_port + 1))
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --loglevel warning >/dev/null 2>&1 &
    redis_pid=$!
    pids="$pids $redis_pid"
    local tries=0
    until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -gt 100 ] && { echo "redis-server did not start" >&2; exit 1; }
        sleep 0.05
    done
}

# start_node [FLAGS...]: one corecast node (1 worker, no per-connection limits) on the next
# free port; appends its pid to node_pids and its address to node_addrs.
start_node() {
    local p
    p=$(next_free_port "$port")
    port=$((p + 1))
    "$bin" --listen "127.0.0.1:$p" --workers 1 --conn-rate 65535 --conn-burst 65535 \
        --msg-rate 65535 --msg-burst 65535 "$@" >/dev/null 2>&1 &
    local pid=$!
    pids="$pids $pid"
    wait_listening "$pid" "$p" || { echo "corecast did not listen on $p" >&2; exit 1; }
    node_pids="${node_pids:+$node_pids,}$pid"
    node_addrs="${node_addrs:+$node_addrs,}127.0.0.1:$p"
}

# wait_relay_up ADDR: until /health says the relay is up.
wait_relay_up() {
    local tries=0
    until python3 -c "import json,sys,urllib.request; sys.exit(json.load(urllib.request.urlopen('http://$1/health'))['relay'] != 'up')" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -gt 200 ] && { echo "relay of $1 not up" >&2; exit 1; }
        sleep 0.05
    done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

stop_all() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=""
}

# cluster: redis + two nodes joined by it.
cluster() {
    node_pids=""
    node_addrs=""
    start_redis
    local url="redis://127.0.0.1:$redis_port"
    start_node --redis-url "$url" --node-id a
    start_node --redis-url "$url" --node-id b
    for a in ${node_addrs//,/ }; do wait_relay_up "$a"; done
}

# run_chat FILE ARGS...: corecast-load chat against node_addrs, one JSON line into FILE (with
# Redis' CPU share added when a Redis runs).
run_chat() {
    local file=$1
    shift
    local r0=0 t0
    [ -n "${redis_pid:-}" ] && r0=$(cpu_ticks "$redis_pid")
    t0=$(date +%s.%N)
    "$load" chat -t "$node_addrs" --server-pid "$node_pids" -d "$duration" --warmup 1 \
        --drain 2 -q -s 64 "$@" >"$file.tmp" 2>/dev/null || true
    if [ -n "${redis_pid:-}" ]; then
        local r1 t1
        r1=$(cpu_ticks "$redis_pid")
        t1=$(date +%s.%N)
        python3 - "$file.tmp" "$r0" "$r1" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
f, r0, r1, t0, t1, hz = sys.argv[1:]
d = json.loads(open(f).read().strip().splitlines()[-1])
d["redis_cpu_util"] = (int(r1) - int(r0)) / int(hz) / (float(t1) - float(t0))
open(f, "w").write(json.dumps(d) + "\n")
PY
    fi
    tail -n 1 "$file.tmp" >"$file"
    rm -f "$file.tmp"
}

for round in $(seq 1 "$rounds"); do
    for t in $tests; do
        case "$t" in
            latency)
                node_pids=""
                node_addrs=""
                redis_pid=""
                start_node
                run_chat "$out/latency-one-r$round.json" -c "$members" -R 1 -k "$members" \
                    --send-rate "$rate"
                stop_all
                cluster
                run_chat "$out/latency-two-r$round.json" -c "$members" -R 1 -k "$members" \
                    --send-rate "$rate"
                stop_all
                redis_pid=""
                echo "round $round latency done" >&2
                ;;
            throughput)
                for r in $tput_rates; do
                    cluster
                    run_chat "$out/tput-$r-r$round.json" -c $((pairs * 2)) -R "$pairs" \
                        -k $((pairs * 2)) --send-rate "$r"
                    stop_all
                    redis_pid=""
                done
                echo "round $round throughput done" >&2
                ;;
            *)
                echo "relay_bench: unknown test $t" >&2
                exit 2
                ;;
        esac
    done
done
summarise
