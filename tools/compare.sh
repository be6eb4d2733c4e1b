#!/usr/bin/env bash
# tools/compare.sh: runs one set of load tests against corecast and each reference server
# (shared/anchors) in the same run and writes the table into docs/benchmarks.md, between the
# `compare:begin` / `compare:end` markers. Server on CPU 0, load generator on CPU 1, one worker
# each; a fresh server process for every test. Takes about 5 minutes.
#
#   echo100    echo, 100 conns x 16 in flight x 32 B            msgs/s, RTT p99
#   echo1000   echo, 1000 conns x 1 in flight x 1 KiB           msgs/s, RTT p99
#   bcast1k    broadcast to 1,000 (4 senders x window 4, 64 B)  deliveries/s, fan-out p99
#              (a message stays in the window until every client got it)
#   bcast10k   broadcast to 10,000 (same senders)               deliveries/s, fan-out p99
#   idle15k    15,000 idle connections                          server RSS per connection
#   connect    upgrade + close handshakes, 64 in flight         handshakes/s
#
# Usage: tools/compare.sh [--no-write]
#   --no-write   print the table instead of updating docs/benchmarks.md
# Environment:
#   COMPARE_SERVERS    subset, in order (default: corecast tokio-tungstenite fastwebsockets gorilla-hub)
#   COMPARE_TESTS      subset of the tests above (default: all)
#   COMPARE_DURATION   seconds of each measured phase (default 5)
#   COMPARE_PORT       first port; every server start takes the next one (default 61400)
#   COMPARE_OUT        directory for the raw JSON lines (default: target/compare)
#   SHARED             the shared/ directory (default: <repo>/../shared)
#
# corecast is skipped with a message when it does not build or does not come up; the
# reference servers still run. Exit status 0 when at least one server was measured.
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
shared=${SHARED:-$root/../shared}
duration=${COMPARE_DURATION:-5}
port=${COMPARE_PORT:-61400}
out=${COMPARE_OUT:-$root/target/compare}
servers=${COMPARE_SERVERS:-corecast tokio-tungstenite fastwebsockets gorilla-hub}
tests=${COMPARE_TESTS:-echo100 echo1000 bcast1k bcast10k idle15k connect}
write=1
[ "${1:-}" = "--no-write" ] && write=0
anchors_bin=${ANCHORS_OUT:-/tmp/corecast-anchors}/bin

log() { printf 'compare: %s\n' "$*" >&2; }
# shellcheck source=tools/lib.sh
. "$root/tools/lib.sh"
mkdir -p "$out"

# CPU pinning: server on 0, load on 1 (when the machine has two CPUs).
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_server="taskset -c 0"
    pin_load="taskset -c 1"
else
    log "fewer than 2 CPUs or no taskset: not pinning (figures are not comparable to the table)"
    pin_server=""
    pin_load=""
fi

# --- build -----------------------------------------------------------------------------------
log "building corecast-load"
(cd "$root" && cargo build --release -q -p corecast-load)
load="$root/target/release/corecast-load"

if [ -f "$shared/anchors/build.sh" ]; then
    log "building the reference servers ($shared/anchors/build.sh)"
    if ! sh "$shared/anchors/build.sh" >"$out/anchors-build.log" 2>&1; then
        log "anchor build reported an error (see $out/anchors-build.log); using the binaries present"
    fi
else
    log "no $shared/anchors/build.sh: reference servers only if already built in $anchors_bin"
fi

corecast_ok=0
if [[ " $servers " == *" corecast "* ]]; then
    log "building corecast"
    if (cd "$root" && cargo build --release -q --bin corecast) >"$out/corecast-build.log" 2>&1; then
        corecast_ok=1
    else
        log "SKIP corecast: it does not build yet (see $out/corecast-build.log)"
    fi
fi

# server_cmd NAME PORT: the command line that serves /echo and /broadcast on PORT.
server_cmd() {
    case "$1" in
        corecast) echo "$root/target/release/corecast --listen 127.0.0.1:$2 --workers 1" ;;
        tokio-tungstenite) echo "$anchors_bin/anchor-tokio-tungstenite $2 1 4096" ;;
        fastwebsockets) echo "$anchors_bin/anchor-fastwebsockets $2 1" ;;
        gorilla-hub) echo "env GOMAXPROCS=1 $anchors_bin/gorilla-hub -port $2" ;;
        *) return 1 ;;
    esac
}

available() {
    case "$1" in
        corecast) [ "$corecast_ok" = 1 ] ;;
        tokio-tungstenite) [ -x "$anchors_bin/anchor-tokio-tungstenite" ] ;;
        fastwebsockets) [ -x "$anchors_bin/anchor-fastwebsockets" ] ;;
        gorilla-hub) [ -x "$anchors_bin/gorilla-hub" ] ;;
        *) return 1 ;;
    esac
}

# test_args TEST: the corecast-load arguments of one test.
test_args() {
    case "$1" in
        echo100) echo "echo -c 100 -D 16 -s 32 -d $duration" ;;
        echo1000) echo "echo -c 1000 -D 1 -s 1024 -d $duration" ;;
        bcast1k) echo "broadcast -r 1000 -k 4 -w 4 -s 64 -d $duration --drain 5" ;;
        bcast10k) echo "broadcast -r 10000 -k 4 -w 4 -s 64 -d $duration --drain 5" ;;
        idle15k) echo "idle -c 15000 -d 3" ;;
        connect) echo "connect -n 64 -d $duration" ;;
        *) return 1 ;;
    esac
}

server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap stop_server EXIT INT TERM

# start_server NAME: starts NAME on the next port; sets server_pid and server_port.
start_server() {
    local cmd
    port=$(next_free_port $((port + 1)))
    server_port=$port
    cmd=$(server_cmd "$1" "$server_port")
    # shellcheck disable=SC2086 # the command is a word list on purpose
    $pin_server $cmd >>"$out/$1.server.log" 2>&1 &
    server_pid=$!
    if ! wait_listening "$server_pid" "$server_port"; then
        log "$1 did not start listening on $server_port (see $out/$1.server.log)"
        stop_server
        return 1
    fi
}

rm -f "$out"/*.json "$out"/*.server.log
measured=0
for s in $servers; do
    if ! available "$s"; then
        [ "$s" = corecast ] || log "SKIP $s: binary not built"
        continue
    fi
    for t in $tests; do
        if ! start_server "$s"; then
            [ "$s" = corecast ] && log "SKIP corecast: it does not serve yet"
            break
        fi
        log "$s $t (port $server_port)"
        # shellcheck disable=SC2046
        if $pin_load timeout 300 "$load" $(test_args "$t") -q --target "127.0.0.1:$server_port" \
            --server-pid "$server_pid" >"$out/$s.$t.json" 2>"$out/$s.$t.log"; then
            measured=1
        else
            log "$s $t: the run reported a problem (see $out/$s.$t.log)"
            [ -s "$out/$s.$t.json" ] && measured=1
        fi
        stop_server
        sleep 0.5
    done
done

if [ "$measured" = 0 ]; then
    log "nothing was measured"
    exit 1
fi

# --- table -----------------------------------------------------------------------------------
table=$(python3 - "$out" "$duration" "$servers" "$tests" <<'PY'
import json, os, sys, platform, subprocess, datetime

out, duration, servers, tests = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()

def load(s, t):
    try:
        with open(os.path.join(out, f"{s}.{t}.json")) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None

def si(v):
    if v is None:
        return None
    if v >= 1e6: return f"{v/1e6:.2f}M"
    if v >= 1e3: return f"{v/1e3:.1f}k"
    return f"{v:.0f}"

def ms(us):
    if us is None: return "?"
    return f"{us/1000:.1f} ms" if us < 1e6 else f"{us/1e6:.2f} s"

# test -> (label, absolute value, per-CPU value, detail, higher_is_better)
def figures(t, r):
    srv = (r.get("server") or {})
    cpu = f"srv {100*srv.get('cpu_util', 0):.0f}%" if srv else ""
    errs = r.get("errors", {}).get("total", 0)
    e = f", {errs} errors" if errs else ""
    if t.startswith("echo"):
        x = r.get("echo", {})
        return x.get("msgs_per_s"), x.get("msgs_per_server_cpu_s"), f"p99 {ms(r.get('rtt_us', {}).get('p99'))}, {cpu}{e}", True
    if t.startswith("bcast"):
        x = r.get("broadcast", {})
        lost = x.get("lost", 0)
        l = f", {lost} lost" if lost else ""
        return x.get("deliveries_per_s"), x.get("deliveries_per_server_cpu_s"), f"p99 {ms(r.get('fanout_latency_us', {}).get('p99'))}, {cpu}{l}{e}", True
    if t.startswith("idle"):
        x = r.get("idle", {})
        return x.get("server_rss_per_conn_bytes"), None, f"{x.get('held_to_end', 0)} held{e}", False
    if t == "connect":
        x = r.get("connect", {})
        return x.get("handshakes_per_s"), x.get("handshakes_per_server_cpu_s"), f"{cpu}{e}", True
    return None, None, "", True

labels = {
    "echo100": "echo, 100 conns x 16 in flight, 32 B: msgs/s",
    "echo1000": "echo, 1000 conns x 1, 1 KiB: msgs/s",
    "bcast1k": "broadcast to 1,000: deliveries/s",
    "bcast10k": "broadcast to 10,000: deliveries/s",
    "idle15k": "15,000 idle connections: server RSS per connection",
    "connect": "handshakes/s (64 in flight)",
}
present = [s for s in servers if any(load(s, t) for t in tests)]
base = "tokio-tungstenite"

def fmt_abs(t, v):
    if v is None: return "-"
    return f"{v/1000:.1f} KB" if t.startswith("idle") and v >= 1000 else (f"{v:.0f} B" if t.startswith("idle") else si(v))

rows_abs, rows_cpu, rows_ratio = [], [], []
for t in tests:
    a, c, q = [labels.get(t, t)], [labels.get(t, t).replace("server RSS per connection", "n/a")], [labels.get(t, t)]
    base_r = load(base, t)
    base_abs, base_cpu = (figures(t, base_r)[:2] if base_r else (None, None))
    for s in present:
        r = load(s, t)
        if not r:
            a.append("-"); c.append("-"); q.append("-"); continue
        v, pc, detail, higher = figures(t, r)
        a.append(f"{fmt_abs(t, v)} ({detail})" if detail else fmt_abs(t, v))
        c.append(si(pc) or "-")
        if v and base_abs:
            ratio = v / base_abs
            qs = f"{ratio:.2f}x"
            if pc and base_cpu:
                qs += f" ({pc/base_cpu:.2f}x per CPU-s)"
            if not higher:
                qs += " (lower is better)"
            q.append(qs)
        else:
            q.append("-")
    rows_abs.append(a); rows_cpu.append(c); rows_ratio.append(q)

def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)

try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = "?"
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
hdr = ["test"] + present
print(f"Measured {now} at commit `{commit}` by `tools/compare.sh` on {os.cpu_count()} CPUs "
      f"(Linux {platform.release()}); server pinned to CPU 0, corecast-load to CPU 1, one worker each, "
      f"{duration} s per test, a fresh server per test. Absolute figures swing by up to ~35% between runs "
      f"on a shared machine: compare within this table, and per server CPU-second.")
missing = [s for s in servers if s not in present]
if missing:
    print(f"\nNot measured in this run: {', '.join(missing)} (not built or not serving).")
print("\n**Absolute** (p99 latency and server CPU use in parentheses)\n")
print(table(hdr, rows_abs))
print("\n**Per server CPU-second** (throughput divided by the CPU time the server process used)\n")
print(table(hdr, rows_cpu))
if base in present:
    print(f"\n**Ratio to {base}** (same run)\n")
    print(table(hdr, rows_ratio))
PY
)

if [ "$write" = 0 ]; then
    printf '%s\n' "$table"
    exit 0
fi
doc="$root/docs/benchmarks.md"
python3 - "$doc" "$table" <<'PY'
import sys
doc, table = sys.argv[1], sys.argv[2]
begin, end = "<!-- compare:begin -->", "<!-- compare:end -->"
try:
    text = open(doc).read()
except OSError:
    text = "# Benchmarks\n"
block = f"{begin}\n{table}\n{end}"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + block + tail
else:
    text = text.rstrip("\n") + "\n\n## Results\n\n" + block + "\n"
open(doc, "w").write(text)
PY
log "wrote the results into $doc"
printf '%s\n' "$table"
