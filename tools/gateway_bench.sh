#!/usr/bin/env bash
# tools/gateway_bench.sh: the event gateway under load. A publisher (corecast-load's gateway
# mode, a lapin client) sends owner-addressed events to a RabbitMQ topic exchange at a fixed
# rate; corecast consumes them from its node queue and delivers each to its owner, one of
# GW_OWNERS connected devices (`/ws/riders?userID=owner-N`). Measured per run: events/s
# delivered, publish -> socket latency (p50/p99; the publish time is in the event, one host,
# one clock), lost and duplicated events (every confirmed event must arrive exactly once), and
# the CPU time of corecast and of the broker (beam.smp, /proc/PID/stat utime+stime) over the
# measured window, per delivered event, and their ratio.
#
# Every run gets a fresh broker (Debian's rabbitmq-server in the foreground with a private
# epmd, free ports and its files in a temporary directory, as tests/amqp_bridge.rs does) and a
# fresh corecast. Each rate is run GW_ROUNDS times, the rates interleaved within a round;
# the summary is the median [min-max] over the rounds. Everything runs at `nice -n GW_NICE`
# (broker, corecast and load alike) on the same machine, only on 127.0.0.1.
#
# Usage: tools/gateway_bench.sh [--no-write] [--from-results] [--serve]
#   --no-write      print the table, leave docs/benchmarks.md alone
#   --from-results  make the table again from the raw JSON in GW_OUT
#   --serve         start one broker and one corecast as a run would, print their pids and
#                   the corecast-load command for them, and wait (for profiling; ^C ends it)
# Environment: GW_ROUNDS (5), GW_RATES ("5000 10000 20000"), GW_DURATION (10 s measured),
#   GW_WARMUP (2 s), GW_OWNERS (10000), GW_SIZE (data bytes, 128), GW_WORKERS (corecast
#   workers, 1), GW_PREFETCH (1000), GW_CONFIRM (1: publisher confirms, 0: none),
#   GW_PERSISTENT (0), GW_ADDRESSING (random | round-robin), GW_RABBIT_SCHEDULERS (1),
#   GW_NICE (10), GW_PORT (first port tried, 62400), GW_OUT (target/gateway-bench),
#   GW_CORECAST (a corecast binary to run instead of building this checkout's, for A/B runs),
#   GW_CALIBRATE (1: after each run, tools/loopback_send.py at the same rate: what a bare
#   sender pays per small loopback send, the floor under corecast's worker; 0: skip).
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
# shellcheck source=tools/lib.sh
. "$root/tools/lib.sh"
rounds=${GW_ROUNDS:-5}
rates=${GW_RATES:-5000 10000 20000}
duration=${GW_DURATION:-10}
warmup=${GW_WARMUP:-2}
owners=${GW_OWNERS:-10000}
size=${GW_SIZE:-128}
workers=${GW_WORKERS:-1}
prefetch=${GW_PREFETCH:-1000}
confirm=${GW_CONFIRM:-1}
persistent=${GW_PERSISTENT:-0}
addressing=${GW_ADDRESSING:-random}
schedulers=${GW_RABBIT_SCHEDULERS:-1}
nice_n=${GW_NICE:-10}
port=${GW_PORT:-62400}
out=${GW_OUT:-$root/target/gateway-bench}
calibrate=${GW_CALIBRATE:-1}
server_script=/usr/lib/rabbitmq/bin/rabbitmq-server

write=1
from_results=0
serve=0
for arg in "$@"; do
    case "$arg" in
        --no-write) write=0 ;;
        --from-results) from_results=1 ;;
        --serve) serve=1 ;;
        *) echo "usage: $0 [--no-write] [--from-results] [--serve]" >&2; exit 2 ;;
    esac
done

summarise() {
    python3 - "$out" "$root/docs/benchmarks.md" "$write" <<'PY'
import glob, json, os, statistics, sys
out, doc, write = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
meta = json.load(open(os.path.join(out, "meta.json")))
runs = {}
for f in sorted(glob.glob(os.path.join(out, "rate-*-r*.json"))):
    line = open(f).read().strip()
    if not line:
        continue
    d = json.loads(line)
    runs.setdefault(int(os.path.basename(f).split("-")[1]), []).append(d)
if not runs:
    sys.exit("gateway_bench: no results in " + out)

def spread(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"

k = lambda v: f"{v / 1e3:.2f}k"
ms = lambda v: f"{v / 1e3:.1f}" if v >= 1e4 else f"{v / 1e3:.2f}"
us = lambda v: f"{v:.1f}"
r3 = lambda v: f"{v:.2f}"
pct = lambda v: f"{100 * v:.0f}%"
rows = []
for rate in sorted(runs):
    rs = runs[rate]
    g = [r["gateway"] for r in rs]
    lat = [r["delivery_latency_us"] for r in rs]
    conf = [r.get("confirm_latency_us", {}) for r in rs]
    lost = sum(x["lost"] for x in g)
    dup = sum(x["duplicates"] + x["misrouted"] + x["out_of_order"] for x in g)
    expected = sum(x["expected"] for x in g)
    ok = sum(1 for r in rs if r.get("ok"))
    rows.append(
        f"| {rate:,} | {spread([x['published_per_s'] for x in g], k)} | "
        f"{spread([x['events_per_s'] for x in g], k)} | "
        f"{spread([l.get('p50') for l in lat], ms)} | {spread([l.get('p99') for l in lat], ms)} | "
        f"{spread([c.get('p50') for c in conf], ms)} / {spread([c.get('p99') for c in conf], ms)} | "
        f"{lost:,} of {expected:,} / {dup:,} | "
        f"{spread([x['server_cpu_us_per_event'] for x in g], us)} ({spread([x['server_cpu_util'] for x in g], pct)}) | "
        f"{spread([x['broker_cpu_us_per_event'] for x in g], us)} ({spread([x['broker_cpu_util'] for x in g], pct)}) | "
        f"**{spread([x['server_to_broker_cpu_ratio'] for x in g], r3)}** | {ok}/{len(rs)} |")
n = max(len(v) for v in runs.values())
loads = [x for rs in runs.values() for r in rs for x in r.get("loadavg", [])]
head = (
    f"Run {meta['date']} at `{meta['commit']}` by `tools/gateway_bench.sh` on {meta['cpus']} CPUs: "
    f"{n} rounds (rates interleaved, a fresh broker and corecast for every run), {meta['duration']} s "
    f"measured after {meta['warmup']} s of warm-up; {meta['owners']:,} owners (one device each, "
    f"`/ws/riders?userID=owner-N`), events of {meta['size']} B `data` to {meta['addressing']} owners, "
    f"publisher confirms {'on' if meta['confirm'] == '1' else 'off'}, "
    f"{'persistent' if meta['persistent'] == '1' else 'transient'} messages; corecast "
    f"{meta['workers']} worker{'s' if meta['workers'] != '1' else ''}, prefetch {meta['prefetch']}; "
    f"RabbitMQ {meta['rabbitmq']} (Erlang {meta['erlang']}, +S {meta['schedulers']}, no busy-wait), "
    f"everything at nice {meta['nice']}; the machine's load average (other users' work included) "
    f"was {min(loads, default=0):.1f}–{max(loads, default=0):.1f} during the runs. "
    "Figures: median (min–max) over the rounds.\n\n"
    "| offered events/s | published/s | delivered events/s | publish → socket p50 ms | p99 ms | publish → confirm p50 / p99 ms | lost of expected / dup+misrouted+reordered | corecast CPU µs per event (CPU use) | RabbitMQ CPU µs per event (CPU use) | corecast / RabbitMQ | clean runs |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|\n")
# Where the CPU goes: per thread, user + system, over the whole run (ramp and drain
# included) per event delivered in it.
def per_thread(r, key, names):
    t, n = r.get(key, {}), r["gateway"]["deliveries_total"]
    out = []
    for name in names:
        u, s = t.get(name, [0, 0])
        out.append((1e6 * u / n, 1e6 * s / n) if n else (None, None))
    return out
cc_names = ["corecast-w0", "corecast-amqp", "lapin-io-loop"]
mq_names = ["1_scheduler", "0_poller"]
def loop(rate):
    xs = []
    for f in sorted(glob.glob(os.path.join(out, f"loop-{rate}-r*.json"))):
        line = open(f).read().strip()
        if line:
            xs.append(json.loads(line))
    return xs
trows = []
for rate in sorted(runs):
    rs = runs[rate]
    cells = []
    for key, names in (("corecast_threads_cpu_s", cc_names), ("broker_threads_cpu_s", mq_names)):
        per = [per_thread(r, key, names) for r in rs]
        for i in range(len(names)):
            u = statistics.median([p[i][0] for p in per if p[i][0] is not None] or [0])
            s_ = statistics.median([p[i][1] for p in per if p[i][1] is not None] or [0])
            cells.append(f"{u:.1f} + {s_:.1f}")
    ls = loop(rate)
    if ls:
        cells.append(f"{statistics.median([x['user_us_per_send'] for x in ls]):.1f} + "
                     f"{statistics.median([x['system_us_per_send'] for x in ls]):.1f}")
    else:
        cells.append("–")
    trows.append(f"| {rate:,} | " + " | ".join(cells) + " |")
threads_table = (
    "\nWhere the CPU goes: µs of user + system time per delivered event, per thread (median over "
    "the rounds; the whole run, ramp of the connections and drain included, over every event "
    "delivered in it):\n\n"
    "| offered events/s | corecast worker | corecast bridge (`corecast-amqp`) | lapin I/O thread | "
    "RabbitMQ scheduler | RabbitMQ poller | bare loopback sender, per send (`tools/loopback_send.py`) |\n"
    "|---|---|---|---|---|---|---|\n"
    + "\n".join(trows) + "\n")
table = head + "\n".join(rows) + "\n" + threads_table
print(table)
if write:
    text = open(doc).read()
    begin, end = "<!-- gateway-bench:begin -->", "<!-- gateway-bench:end -->"
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        _, post = rest.split(end, 1)
        text = pre + begin + "\n" + table + end + post
    else:
        text += ("\n## Event gateway: RabbitMQ to 10,000 owners (tools/gateway_bench.sh)\n\n"
                 + begin + "\n" + table + end + "\n")
    open(doc, "w").write(text)
    print("wrote docs/benchmarks.md", file=sys.stderr)
PY
}

if [ "$from_results" = 1 ]; then
    summarise
    exit 0
fi
for tool in "$server_script" epmd python3; do
    command -v "$tool" >/dev/null || [ -x "$tool" ] ||
        { echo "gateway_bench: $tool is not installed (tools/setup.sh installs rabbitmq-server)" >&2; exit 2; }
done
if [ -z "${GW_CORECAST:-}" ]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin corecast
fi
cargo build --release --quiet --manifest-path "$root/tools/Cargo.toml"
bin=${GW_CORECAST:-$root/target/release/corecast}
load=$root/target/release/corecast-load
mkdir -p "$out"
rm -f "$out"/*.json

pids=""
dirs=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for d in $dirs; do rm -rf "$d"; done
}
trap cleanup EXIT

# take_port VAR: the next free port into VAR (and past it for the next call).
take_port() {
    local p
    p=$(next_free_port "$port")
    port=$((p + 1))
    printf -v "$1" '%s' "$p"
}

# speaks_amqp PORT: the listener answers the AMQP 0-9-1 header with a method frame.
speaks_amqp() {
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"AMQP\x00\x00\x09\x01")
sys.exit(0 if s.recv(1) == b"\x01" else 1)
PY
}

# start_rabbit: a fresh broker; sets rabbit_pid (beam.smp itself), amqp_port, rabbit_dir.
start_rabbit() {
    rabbit_dir=$(mktemp -d /tmp/corecast-gwbench-rabbit.XXXXXX)
    dirs="$dirs $rabbit_dir"
    echo '[].' >"$rabbit_dir/enabled_plugins"
    local dist_port epmd_port
    take_port amqp_port
    take_port dist_port
    take_port epmd_port
    nice -n "$nice_n" epmd -port "$epmd_port" >/dev/null 2>&1 &
    pids="$pids $!"
    # RABBITMQ_ALLOW_INPUT: the script execs the VM in its place (our child is beam.smp).
    env HOME="$rabbit_dir" \
        RABBITMQ_MNESIA_BASE="$rabbit_dir/mnesia" RABBITMQ_LOG_BASE="$rabbit_dir/log" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$rabbit_dir/enabled_plugins" \
        RABBITMQ_PLUGINS_EXPAND_DIR="$rabbit_dir/plugins" \
        RABBITMQ_CONF_ENV_FILE="$rabbit_dir/rabbitmq-env.conf" \
        RABBITMQ_CONFIG_FILE="$rabbit_dir/rabbitmq" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$rabbit_dir/advanced.config" \
        RABBITMQ_NODENAME="corecast-gwbench-$$-$port@localhost" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$amqp_port" \
        RABBITMQ_DIST_PORT="$dist_port" ERL_EPMD_PORT="$epmd_port" \
        RABBITMQ_ALLOW_INPUT=1 ERL_CRASH_DUMP="$rabbit_dir/erl_crash.dump" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S $schedulers:$schedulers +sbwt none +sbwtdcpu none +sbwtdio none" \
        nice -n "$nice_n" "$server_script" -noinput </dev/null >"$rabbit_dir/server.out" 2>&1 &
    rabbit_pid=$!
    pids="$pids $rabbit_pid"
    local tries=0
    until speaks_amqp "$amqp_port"; do
        kill -0 "$rabbit_pid" 2>/dev/null ||
            { echo "rabbitmq-server exited:" >&2; cat "$rabbit_dir/server.out" >&2; exit 1; }
        tries=$((tries + 1))
        [ "$tries" -gt 1200 ] && { echo "rabbitmq-server did not start" >&2; exit 1; }
        sleep 0.1
    done
    local comm
    comm=$(cat "/proc/$rabbit_pid/comm")
    [ "$comm" = beam.smp ] ||
        { echo "gateway_bench: broker pid $rabbit_pid is $comm, not beam.smp" >&2; exit 1; }
}

# start_corecast: a fresh corecast with the gateway endpoint; sets cc_pid, cc_port.
start_corecast() {
    take_port cc_port
    local conf=$rabbit_dir/corecast.toml
    cat >"$conf" <<EOF
listen = "127.0.0.1:$cc_port"
workers = $workers
conn-rate = 65535
conn-burst = 65535
node-id = "gwbench"

[amqp]
url = "amqp://guest:guest@127.0.0.1:$amqp_port/%2f"
exchange = "bench"
bind = ["bench.event.*"]
prefetch = $prefetch

[[endpoint]]
path = "/ws/riders"
identity = "query:userID"
EOF
    nice -n "$nice_n" "$bin" --config "$conf" >"$rabbit_dir/corecast.out" 2>&1 &
    cc_pid=$!
    pids="$pids $cc_pid"
    wait_listening "$cc_pid" "$cc_port" ||
        { echo "corecast did not listen on $cc_port:" >&2; cat "$rabbit_dir/corecast.out" >&2; exit 1; }
    local tries=0
    until python3 -c "import json,sys,urllib.request; sys.exit(json.load(urllib.request.urlopen('http://127.0.0.1:$cc_port/health'))['amqp'] != 'up')" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -gt 300 ] && { echo "corecast's bridge is not up:" >&2; cat "$rabbit_dir/corecast.out" >&2; exit 1; }
        sleep 0.1
    done
}

# threads PID: "NAME UTIME STIME" (clock ticks) per thread name of PID, summed over the
# threads of the same name.
threads() {
    local t
    for t in /proc/"$1"/task/*; do
        [ -r "$t/stat" ] || continue
        # The name is in parentheses and may contain spaces; the fields after it are fixed
        # (utime and stime are fields 14 and 15).
        sed -E 's/^[0-9]+ \((.*)\) [A-Za-z] (.*)$/\1|\2/' "$t/stat" |
            awk -F'|' '{ split($2, f, " "); n = $1; gsub(/ /, "_", n); print n, f[11], f[12] }'
    done | awk '{ u[$1] += $2; s[$1] += $3 } END { for (n in u) print n, u[n], s[n] }'
}

stop_all() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=""
    for d in $dirs; do rm -rf "$d"; done
    dirs=""
}

# run_one RATE FILE: one run on a fresh broker and corecast; the JSON line (with corecast's
# amqp counters from /metrics added) into FILE.
run_one() {
    local rate=$1 file=$2 flags=()
    [ "$confirm" = 1 ] || flags+=(--no-confirm)
    [ "$persistent" = 1 ] && flags+=(--persistent)
    local load0
    load0=$(cut -d' ' -f1 /proc/loadavg)
    start_rabbit
    start_corecast
    threads "$cc_pid" >"$file.cc0"
    threads "$rabbit_pid" >"$file.mq0"
    nice -n "$nice_n" "$load" gateway -t "127.0.0.1:$cc_port" --path /ws/riders -c "$owners" \
        --amqp-url "amqp://guest:guest@127.0.0.1:$amqp_port/%2f" --exchange bench \
        --routing-key bench.event.created --publish-rate "$rate" -s "$size" \
        --addressing "$addressing" -d "$duration" --warmup "$warmup" --drain 5 \
        --server-pid "$cc_pid" --broker-pid "$rabbit_pid" -q "${flags[@]}" \
        >"$file.tmp" 2>"$file.log" || true
    threads "$cc_pid" >"$file.cc1"
    threads "$rabbit_pid" >"$file.mq1"
    python3 - "$file" "$cc_port" "$(getconf CLK_TCK)" "$load0" <<'PY' >"$file.json" || true
import json, sys, urllib.request
f = sys.argv[1]
lines = open(f + ".tmp").read().strip().splitlines()
d = json.loads(lines[-1]) if lines else {}
# The machine's 1-minute load average before and after the run (other users' work included).
d["loadavg"] = [float(sys.argv[4]), float(open("/proc/loadavg").read().split()[0])]
# [user, system] CPU seconds per thread name over the whole load run (ramp, warm-up, window,
# drain), busiest first.
def threads(a, b):
    hz = int(sys.argv[3])
    before = {l.split()[0]: l.split()[1:] for l in open(a).read().splitlines()}
    out = {}
    for l in open(b).read().splitlines():
        name, u, s = l.split()
        u0, s0 = before.get(name, ["0", "0"])
        out[name] = [round((int(u) - int(u0)) / hz, 2), round((int(s) - int(s0)) / hz, 2)]
    return dict(sorted(((k, v) for k, v in out.items() if sum(v) > 0), key=lambda kv: -sum(kv[1])))
try:
    d["corecast_threads_cpu_s"] = threads(f + ".cc0", f + ".cc1")
    d["broker_threads_cpu_s"] = threads(f + ".mq0", f + ".mq1")
except Exception as e:
    d["threads_error"] = str(e)
try:
    text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/metrics").read().decode()
    d["corecast_metrics"] = {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
                             if l.startswith("corecast_amqp_") or l.startswith("corecast_gateway_")}
except Exception as e:
    d["corecast_metrics"] = {"error": str(e)}
print(json.dumps(d))
PY
    mv "$file.json" "$file"
    rm -f "$file.tmp" "$file".cc[01] "$file".mq[01]
    stop_all
}

if [ "$serve" = 1 ]; then
    start_rabbit
    start_corecast
    echo "broker (beam.smp) pid $rabbit_pid on 127.0.0.1:$amqp_port, corecast pid $cc_pid on 127.0.0.1:$cc_port" >&2
    echo "$load gateway -t 127.0.0.1:$cc_port -c $owners --amqp-url amqp://guest:guest@127.0.0.1:$amqp_port/%2f --publish-rate 10000 --server-pid $cc_pid --broker-pid $rabbit_pid" >&2
    wait "$cc_pid" || true
    exit 0
fi
rabbit_version=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo unknown)
erlang_version=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().' 2>/dev/null || echo unknown)
python3 - "$out/meta.json" <<PY
import json, sys, datetime, os
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "commit": "$(git -C "$root" rev-parse --short HEAD)",
    "cpus": os.cpu_count(), "duration": "$duration", "warmup": "$warmup", "owners": $owners,
    "size": $size, "workers": "$workers", "prefetch": "$prefetch", "confirm": "$confirm",
    "persistent": "$persistent", "addressing": "$addressing", "schedulers": "$schedulers",
    "nice": "$nice_n", "rabbitmq": "$rabbit_version", "erlang": "$erlang_version",
    "rates": "$rates", "rounds": $rounds,
}, open(sys.argv[1], "w"))
PY
for round in $(seq 1 "$rounds"); do
    for rate in $rates; do
        f="$out/rate-$rate-r$round.json"
        run_one "$rate" "$f"
        if [ "$calibrate" = 1 ]; then
            # The frame corecast writes: 4 header bytes + {"type":"bench.event.created","data":
            # + data + }.
            nice -n "$nice_n" python3 "$root/tools/loopback_send.py" -n "$owners" --rate "$rate" \
                --size $((size + 42)) --secs "$duration" >"$out/loop-$rate-r$round.json" ||
                echo "gateway_bench: loopback_send failed" >&2
        fi
        python3 - "$f" "$rate" "$round" <<'PY' >&2 || true
import json, sys
d = json.loads(open(sys.argv[1]).read())
g = d.get("gateway", {})
l = d.get("delivery_latency_us", {})
print(f"round {sys.argv[3]} rate {sys.argv[2]}: {g.get('events_per_s')} events/s, "
      f"p50 {l.get('p50')} us, p99 {l.get('p99')} us, lost {g.get('lost')}, "
      f"corecast {g.get('server_cpu_us_per_event')} us/event, broker {g.get('broker_cpu_us_per_event')} "
      f"us/event, ratio {g.get('server_to_broker_cpu_ratio')}, ok {d.get('ok')}")
PY
    done
done
summarise
