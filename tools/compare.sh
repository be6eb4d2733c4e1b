#!/usr/bin/env bash
# tools/compare.sh: runs one set of load tests against corecast and each reference server
# (uWebSockets when UWS_BIN is set, and shared/anchors) in the same run, COMPARE_ROUNDS times
# with the servers interleaved, and writes the table into docs/benchmarks.md, between the
# `compare:begin` / `compare:end` markers. Server on CPU 0, load generator on CPU 1, one worker
# each; a fresh server process for every run. With 5 servers and 3 rounds: about 25 minutes.
#
#   echo100    echo, 100 conns x 16 in flight x 32 B            msgs/s, RTT p99
#   echo1000   echo, 1000 conns x 1 in flight x 1 KiB           msgs/s, RTT p99
#   bcast1k    broadcast to 1,000 (4 senders x window 4, 64 B)  deliveries/s, fan-out p99
#              (a message stays in the window until every client got it)
#   bcast10k   broadcast to 10,000 (same senders)               deliveries/s, fan-out p99
#   idle15k    15,000 idle connections                          server RSS per connection
#   connect    upgrade + close handshakes, 64 in flight         handshakes/s
#
# Order of the runs: round 1 (every test, each test on every server in turn: A B C A B C ...),
# then round 2, ... So the servers compared in one round ran back to back, and the rounds are
# spread over the whole run. Each figure in the table is the median over rounds with its
# min-max; a ratio is the median of the per-round ratios (server / reference in the same round).
#
# Usage: tools/compare.sh [--no-write] [--from-results]
#   --no-write       print the table instead of updating docs/benchmarks.md
#   --from-results   build nothing and run nothing: make the table from COMPARE_OUT again
# Environment:
#   COMPARE_SERVERS    subset, in order (default: corecast uwebsockets tokio-tungstenite
#                      fastwebsockets gorilla-hub)
#   COMPARE_TESTS      subset of the tests above (default: all)
#   COMPARE_ROUNDS     runs of each test on each server, interleaved (default 3)
#   COMPARE_DURATION   seconds of each measured phase (default 5)
#   COMPARE_PORT       first port; every server start takes the next free one (default 61400)
#   COMPARE_OUT        directory for the raw JSON lines (default: target/compare)
#   UWS_BIN            the uWebSockets reference binary (tools/build_uws.sh builds it); when
#                      unset, uwebsockets is skipped with a message
#   SHARED             the shared/ directory (default: <repo>/../shared)
#
# corecast is skipped with a message when it does not build or does not come up; the
# reference servers still run. Exit status 0 when at least one server was measured.
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
shared=${SHARED:-$root/../shared}
duration=${COMPARE_DURATION:-5}
rounds=${COMPARE_ROUNDS:-3}
port=${COMPARE_PORT:-61400}
out=${COMPARE_OUT:-$root/target/compare}
servers=${COMPARE_SERVERS:-corecast uwebsockets tokio-tungstenite fastwebsockets gorilla-hub}
tests=${COMPARE_TESTS:-echo100 echo1000 bcast1k bcast10k idle15k connect}
uws_bin=${UWS_BIN:-}
write=1
from_results=0
for arg in "$@"; do
    case "$arg" in
        --no-write) write=0 ;;
        --from-results) from_results=1 ;;
        *)
            echo "usage: tools/compare.sh [--no-write] [--from-results]" >&2
            exit 2
            ;;
    esac
done
anchors_bin=${ANCHORS_OUT:-/tmp/corecast-anchors}/bin

log() { printf 'compare: %s\n' "$*" >&2; }
# shellcheck source=tools/lib.sh
. "$root/tools/lib.sh"
mkdir -p "$out"

case "$rounds" in
    '' | *[!0-9]* | 0)
        log "COMPARE_ROUNDS must be a positive integer (got '$rounds')"
        exit 2
        ;;
esac

if [ "$from_results" = 0 ]; then
    # CPU pinning: server on 0, load on 1 (when the machine has two CPUs).
    if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
        pin_server="taskset -c 0"
        pin_load="taskset -c 1"
        pinned=1
    else
        log "fewer than 2 CPUs or no taskset: not pinning (figures are not comparable to the table)"
        pin_server=""
        pin_load=""
        pinned=0
    fi

    # --- build -------------------------------------------------------------------------------
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
fi

# server_cmd NAME PORT: the command line that serves /echo and /broadcast on PORT.
server_cmd() {
    case "$1" in
        corecast) echo "$root/target/release/corecast --listen 127.0.0.1:$2 --workers 1" ;;
        uwebsockets) echo "$uws_bin $2" ;;
        tokio-tungstenite) echo "$anchors_bin/anchor-tokio-tungstenite $2 1 4096" ;;
        fastwebsockets) echo "$anchors_bin/anchor-fastwebsockets $2 1" ;;
        gorilla-hub) echo "env GOMAXPROCS=1 $anchors_bin/gorilla-hub -port $2" ;;
        *) return 1 ;;
    esac
}

# available NAME: true when NAME can run; otherwise sets why_not, says it, and is false.
why_not=""
available() {
    why_not=""
    case "$1" in
        corecast) [ "$corecast_ok" = 1 ] || why_not="does not build" ;;
        uwebsockets)
            if [ -z "$uws_bin" ]; then
                why_not="UWS_BIN is not set"
            elif [ ! -x "$uws_bin" ]; then
                why_not="UWS_BIN=$uws_bin is not an executable file"
            fi
            ;;
        tokio-tungstenite | fastwebsockets)
            [ -x "$anchors_bin/anchor-$1" ] || why_not="$anchors_bin/anchor-$1 not built"
            ;;
        gorilla-hub) [ -x "$anchors_bin/gorilla-hub" ] || why_not="$anchors_bin/gorilla-hub not built" ;;
        *) why_not="unknown server" ;;
    esac
    [ -z "$why_not" ] && return 0
    case "$1" in
        corecast) ;; # the build step said why
        uwebsockets) log "SKIP uwebsockets: $why_not (build it with tools/build_uws.sh, then UWS_BIN=.../uws-anchor)" ;;
        *) log "SKIP $1: $why_not" ;;
    esac
    return 1
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

if [ "$from_results" = 0 ]; then
    active=""
    skipped="" # NAME: why; ...
    for s in $servers; do
        if available "$s"; then
            active="$active $s"
        else
            skipped="$skipped$s: $why_not; "
        fi
    done
    active=${active# }
    [ -n "$active" ] || { log "no server to measure"; exit 1; }
    for t in $tests; do
        test_args "$t" >/dev/null || { log "unknown test '$t'"; exit 2; }
    done

    rm -f "$out"/*.json "$out"/*.r[0-9]*.log "$out"/*.server.log
    uws_desc=""
    if [[ " $active " == *" uwebsockets "* ]]; then
        uws_desc=$(cat "$uws_bin.version" 2>/dev/null || echo "$uws_bin")
    fi
    # What the table needs to say about this run, besides the results.
    M_COMMIT=$(git -C "$root" describe --always --dirty --abbrev=7 --exclude '*' 2>/dev/null || echo '?') \
        M_ROUNDS=$rounds M_DURATION=$duration M_SERVERS=$active M_SKIPPED=$skipped M_TESTS=$tests \
        M_PINNED=$pinned M_UWS=$uws_desc python3 - "$out/meta.json" <<'PY'
import datetime, json, os, platform, sys
e = os.environ
active = e["M_SERVERS"].split()
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "commit": e["M_COMMIT"],
    "rounds": int(e["M_ROUNDS"]),
    "duration": e["M_DURATION"],
    "servers": active,
    "skipped": [x.strip() for x in e["M_SKIPPED"].split(";") if x.strip()],
    "tests": e["M_TESTS"].split(),
    "pinned": e["M_PINNED"] == "1",
    "cpus": os.cpu_count(),
    "kernel": platform.release(),
    "uws": e["M_UWS"].strip(),
}, open(sys.argv[1], "w"))
PY

    measured=0
    n_runs=$((rounds * $(wc -w <<<"$tests") * $(wc -w <<<"$active")))
    i=0
    for r in $(seq 1 "$rounds"); do
        for t in $tests; do
            for s in $active; do
                i=$((i + 1))
                if ! start_server "$s"; then
                    log "[$i/$n_runs] round $r $s $t: server did not come up, run skipped"
                    continue
                fi
                log "[$i/$n_runs] round $r $s $t (port $server_port)"
                f="$out/$s.$t.r$r"
                # shellcheck disable=SC2046
                if $pin_load timeout 300 "$load" $(test_args "$t") -q --target "127.0.0.1:$server_port" \
                    --server-pid "$server_pid" >"$f.json" 2>"$f.log"; then
                    measured=1
                else
                    log "round $r $s $t: the run reported a problem (see $f.log)"
                    [ -s "$f.json" ] && measured=1
                fi
                if ! kill -0 "$server_pid" 2>/dev/null; then
                    log "round $r $s $t: the server exited during the run (see $out/$s.server.log)"
                fi
                stop_server
                sleep 0.5
            done
        done
    done

    if [ "$measured" = 0 ]; then
        log "nothing was measured"
        exit 1
    fi
fi

# --- table -----------------------------------------------------------------------------------
table=$(python3 - "$out" <<'PY'
import json, os, sys, statistics

out = sys.argv[1]
try:
    meta = json.load(open(os.path.join(out, "meta.json")))
except (OSError, ValueError):
    sys.exit(f"compare: no usable {out}/meta.json: run tools/compare.sh first")
servers, tests, rounds = meta["servers"], meta["tests"], meta["rounds"]
BASE = "tokio-tungstenite"  # the reference of the ratio table
US = "corecast"

def load(s, t, r):
    try:
        with open(os.path.join(out, f"{s}.{t}.r{r}.json")) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None

# One run -> dict(abs, cpu, p99_us, util, errors, lost, held); abs/cpu None when not measured.
def figures(t, r):
    srv = r.get("server") or {}
    d = {"abs": None, "cpu": None, "p99_us": None, "util": srv.get("cpu_util"),
         "errors": (r.get("errors") or {}).get("total", 0), "lost": 0, "held": None}
    if t.startswith("echo"):
        x = r.get("echo") or {}
        d.update(abs=x.get("msgs_per_s"), cpu=x.get("msgs_per_server_cpu_s"),
                 p99_us=(r.get("rtt_us") or {}).get("p99"))
    elif t.startswith("bcast"):
        x = r.get("broadcast") or {}
        d.update(abs=x.get("deliveries_per_s"), cpu=x.get("deliveries_per_server_cpu_s"),
                 p99_us=(r.get("fanout_latency_us") or {}).get("p99"), lost=x.get("lost", 0))
    elif t.startswith("idle"):
        x = r.get("idle") or {}
        d.update(abs=x.get("server_rss_per_conn_bytes"), held=x.get("held_to_end"))
    elif t == "connect":
        x = r.get("connect") or {}
        d.update(abs=x.get("handshakes_per_s"), cpu=x.get("handshakes_per_server_cpu_s"))
    # Server CPU per operation, split into user space (the server's own code) and kernel.
    ops = (d["cpu"] or 0) * (srv.get("cpu_s") or 0)
    if ops > 0 and srv.get("user_s") is not None:
        d["user_ns"] = srv["user_s"] / ops * 1e9
        d["kernel_ns"] = (srv["cpu_s"] - srv["user_s"]) / ops * 1e9
    return d

# runs[s][t] = {round: figures}
runs = {s: {t: {} for t in tests} for s in servers}
for s in servers:
    for t in tests:
        for r in range(1, rounds + 1):
            x = load(s, t, r)
            if x:
                runs[s][t][r] = figures(t, x)
present = [s for s in servers if any(runs[s][t] for t in tests)]

def mmm(xs):
    xs = [x for x in xs if x is not None]
    return (statistics.median(xs), min(xs), max(xs), len(xs)) if xs else None

def si(v):
    if v >= 1e6: return f"{v/1e6:.2f}M"
    if v >= 1e3: return f"{v/1e3:.1f}k"
    return f"{v:.0f}"

def size(v):
    return f"{v/1000:.1f} KB" if v >= 1000 else f"{v:.0f} B"

def ms(us):
    return f"{us/1000:.1f} ms" if us < 1e6 else f"{us/1e6:.2f} s"

def spread(m, f, unit=""):
    """median (min–max), with the count when some rounds are missing."""
    if m is None: return "-"
    med, lo, hi, n = m
    if n == 1:
        return f"{f(med)}{unit}" + (f" (1/{rounds} rounds)" if rounds > 1 else "")
    miss = f", {n}/{rounds} rounds" if n < rounds else ""
    return f"{f(med)}{unit} ({f(lo)}–{f(hi)}{miss})"

def x2(v): return f"{v:.2f}"

def ratios(s, base, t, key):
    """Per-round s / base of `key`, for the rounds where both were measured."""
    out = []
    for r, a in runs[s][t].items():
        b = runs.get(base, {}).get(t, {}).get(r)
        if b and a.get(key) and b.get(key):
            out.append(a[key] / b[key])
    return mmm(out)

labels = {
    "echo100": "echo, 100 conns x 16 in flight, 32 B: msgs/s",
    "echo1000": "echo, 1000 conns x 1, 1 KiB: msgs/s",
    "bcast1k": "broadcast to 1,000: deliveries/s",
    "bcast10k": "broadcast to 10,000: deliveries/s",
    "idle15k": "15,000 idle connections: server RSS per connection",
    "connect": "handshakes/s (64 in flight)",
}
names = {"uwebsockets": "uWebSockets"}
hdr = ["test"] + [names.get(s, s) for s in present]

def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)

rows_abs, rows_cpu, rows_ratio = [], [], []
for t in tests:
    idle = t.startswith("idle")
    a, c, q = [labels.get(t, t)], [labels.get(t, t).replace("/s", " per server CPU-second")], [labels.get(t, t)]
    for s in present:
        rs = list(runs[s][t].values())
        if not rs:
            a.append("-"); c.append("-"); q.append("-"); continue
        cell = spread(mmm([x["abs"] for x in rs]), size if idle else si)
        notes = []
        if idle:
            held = min(x["held"] or 0 for x in rs)
            notes.append(f"{held} held" if held else "none held")
        else:
            p99 = mmm([x["p99_us"] for x in rs])
            if p99: notes.append(f"p99 {ms(p99[0])}")
            util = mmm([x["util"] for x in rs])
            if util: notes.append(f"srv {100*util[0]:.0f}%")
        lost = sum(x["lost"] or 0 for x in rs)
        errs = sum(x["errors"] or 0 for x in rs)
        if lost: notes.append(f"{lost} lost")
        if errs: notes.append(f"{errs} errors")
        a.append(f"{cell}; {', '.join(notes)}" if notes else cell)
        c.append(spread(mmm([x["cpu"] for x in rs]), si))
        if BASE in present:
            ra = ratios(s, BASE, t, "abs")
            if idle:
                q.append(spread(ra, x2, "×") + (" (lower is better)" if ra else ""))
            else:
                rc = ratios(s, BASE, t, "cpu")
                q.append(f"{spread(rc, x2, '×')} per CPU-s; {spread(ra, x2, '×')} abs")
    rows_abs.append(a)
    if not idle:
        rows_cpu.append(c)
    rows_ratio.append(q)

# Where each server's CPU per operation goes: user space + kernel (ns).
rows_split = []
for t in tests:
    if t.startswith("idle"):
        continue
    row = [labels.get(t, t).replace("/s", ": ns per operation")]
    for s in present:
        rs = list(runs[s][t].values())
        u = mmm([x.get("user_ns") for x in rs])
        k = mmm([x.get("kernel_ns") for x in rs])
        row.append(f"{u[0]:.0f} + {k[0]:.0f}" if u and k else "-")
    rows_split.append(row)
if all(all(c == "-" for c in r[1:]) for r in rows_split):
    rows_split = []

others = [s for s in present if s != US]
rows_us = []
if US in present and others:
    for t in tests:
        idle = t.startswith("idle")
        row = [labels.get(t, t).replace("/s", " per server CPU-second") if not idle else labels[t] + " (lower is better)"]
        for s in others:
            row.append(spread(ratios(US, s, t, "abs" if idle else "cpu"), x2, "×"))
        rows_us.append(row)
    for t in tests:
        if t.startswith("idle") or not rows_split:
            continue
        row = [labels.get(t, t).replace("/s", ": user-space CPU per operation (lower is better)")]
        for s in others:
            row.append(spread(ratios(US, s, t, "user_ns"), x2, "×"))
        rows_us.append(row)

print(f"Measured {meta['date']} at commit `{meta['commit']}` by `tools/compare.sh` on {meta['cpus']} CPUs "
      f"(Linux {meta['kernel']}); "
      + ("server pinned to CPU 0, corecast-load to CPU 1, " if meta.get("pinned") else "not pinned, ")
      + f"one worker each, {meta['duration']} s per test; **{rounds} round{'s' if rounds != 1 else ''}**, the servers interleaved "
      f"in each (A B C A B C ...), a fresh server process for every run. Each figure is the **median "
      f"over the rounds (min–max)**; a ratio is the median of the per-round ratios. Absolute figures "
      f"swing by up to ~35% between runs on a shared machine, and a server well below 100% CPU was "
      f"limited by the load generator's core: compare per server CPU-second.")
if meta.get("uws") and "uwebsockets" in present:
    print(f"\nuWebSockets: {meta['uws']}, built by `tools/build_uws.sh` "
          f"(`-O3 -flto -DLIBUS_NO_SSL -DUWS_NO_ZLIB`, epoll, one thread).")
missing = meta.get("skipped", []) + [f"{s}: did not serve" for s in servers if s not in present]
if missing:
    print(f"\nNot measured in this run: {'; '.join(missing)}.")
print("\n**Absolute** (median p99 latency and server CPU use after the semicolon)\n")
print(table(hdr, rows_abs))
print("\n**Per server CPU-second** (throughput divided by the CPU time the server process used)\n")
print(table(hdr, rows_cpu))
if rows_split:
    print("\n**Server CPU per operation: user space + kernel** (ns, median over rounds; user space is "
          "the server's own code, kernel time its syscalls and, on loopback, much of the load "
          "generator's receive path, which runs inside the server's sends)\n")
    print(table(hdr, rows_split))
if BASE in present:
    print(f"\n**Ratio to {BASE}** (server / {BASE} in the same round; median (min–max) over rounds)\n")
    print(table(hdr, rows_ratio))
if rows_us:
    print(f"\n**corecast against each server, per server CPU-second** (corecast / server in the same "
          f"round; idle: RSS per connection, lower is better; user space: corecast's user-space CPU "
          f"per operation over the server's)\n")
    print(table(["test"] + [names.get(s, s) for s in others], rows_us))
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
