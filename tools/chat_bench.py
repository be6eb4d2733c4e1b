#!/usr/bin/env python3
"""tools/chat_bench.py: the chat benchmark. One room of N members fed at a steady rate, through
the chat protocol (corecast `/ws`), against corecast's own `/broadcast` and the gorilla-style hub
(../shared/anchors) under the same load, in the same run.

For every room size and round, the three servers run one after the other (interleaved:
A B C A B C ...), each fresh, with one worker pinned to CPU 0 and the load generator on CPU 1.
The load is the same for all: N members (10 of them senders) and RATE messages per second in
total, RATE = --deliveries / N (a constant offered delivery rate). A headline is the median over
rounds of the per-round ratio, with its min-max.

Writes the table between `chat-bench:begin` / `chat-bench:end` in docs/benchmarks.md and the plot
docs/chat-bench.svg (deliveries per server CPU-second and p99 latency against room size), unless
--no-write. Raw JSON lines go to target/chat-bench/.

    tools/chat_bench.py [--sizes 100,1000,3000,10000] [--rounds 3] [--deliveries 200000]
                        [--duration 5] [--no-write]
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED", ROOT.parent / "shared"))
ANCHORS = Path(os.environ.get("ANCHORS_OUT", "/tmp/corecast-anchors")) / "bin"
OUT = ROOT / "target" / "chat-bench"
SENDERS = 10
COMMIT = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                        text=True).stdout.strip()


def log(*a):
    print("chat-bench:", *a, file=sys.stderr, flush=True)


def free_port(start):
    p = start
    while p < 65000:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                p += 1
    raise SystemExit("no free port")


def pin(cpu):
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() >= 2 else []


def wait_listening(proc, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


SERVERS = {
    # name: (server command, load mode)
    "corecast-chat": (
        lambda port: [str(ROOT / "target/release/corecast"), "--listen", f"127.0.0.1:{port}",
                      "--workers", "1", "--conn-rate", "65535", "--conn-burst", "65535",
                      "--msg-rate", "65535", "--msg-burst", "65535"],
        "chat"),
    "corecast-broadcast": (
        lambda port: [str(ROOT / "target/release/corecast"), "--listen", f"127.0.0.1:{port}",
                      "--workers", "1"],
        "broadcast"),
    "gorilla-hub": (
        lambda port: ["env", "GOMAXPROCS=1", str(ANCHORS / "gorilla-hub"), "-port", str(port)],
        "broadcast"),
}


def load_args(mode, n, rate, duration):
    if mode == "chat":
        return ["chat", "-c", str(n), "-R", "1", "-k", str(SENDERS), "--send-rate", str(rate),
                "-s", "64", "-d", str(duration), "--warmup", "2", "--drain", "3"]
    return ["broadcast", "-r", str(n - SENDERS), "-k", str(SENDERS), "--send-rate", str(rate),
            "-s", "64", "-d", str(duration), "--drain", "3"]


def run_one(name, n, rate, duration, port):
    cmd, mode = SERVERS[name]
    srv = subprocess.Popen(pin(0) + cmd(port), stdout=subprocess.DEVNULL,
                           stderr=open(OUT / f"{name}.server.log", "ab"))
    try:
        if not wait_listening(srv, port):
            log(f"{name} did not listen on {port}")
            return None
        time.sleep(0.3)
        load = [str(ROOT / "target/release/corecast-load")] + load_args(mode, n, rate, duration) + [
            "-t", f"127.0.0.1:{port}", "--server-pid", str(srv.pid), "-q"]
        out = subprocess.run(pin(1) + load, capture_output=True, text=True, timeout=600)
        lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
        if not lines:
            log(f"{name} n={n}: no result ({out.stderr.strip()[-300:]})")
            return None
        d = json.loads(lines[-1])
        with open(OUT / "results.jsonl", "a") as f:
            f.write(json.dumps({"server": name, "n": n, "rate": rate, "commit": COMMIT, "result": d}) + "\n")
        return summarize(d)
    finally:
        srv.terminate()
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def summarize(d):
    """The figures of one load-tool result line."""
    part = d.get("chat") or d.get("broadcast") or {}
    lat = d.get("delivery_latency_us") or d.get("fanout_latency_us") or {}
    return {
        "per_cpu_s": part.get("deliveries_per_server_cpu_s") or 0.0,
        "per_s": part.get("deliveries_per_s") or 0.0,
        "p99_ms": (lat.get("p99") or 0) / 1000.0,
        "lost": part.get("lost", 0),
        "ooo": part.get("out_of_order", 0) + part.get("seq_gaps", 0),
        "dup": part.get("duplicates", 0),
        "cpu": (d.get("server") or {}).get("cpu_util") or 0.0,
    }


def med_range(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return statistics.median(xs), min(xs), max(xs)


def fmt_ratio(r):
    return "—" if r is None else f"{r[0]:.2f}× ({r[1]:.2f}–{r[2]:.2f})"


def fmt_rate(r):
    return "—" if r is None else f"{r[0] / 1e6:.2f}M ({r[1] / 1e6:.2f}–{r[2] / 1e6:.2f})"


def svg(results, sizes, path):
    """Two panels: deliveries per server CPU-second (log y) and p99 (log y), against room size."""
    import math
    W, H, PAD = 760, 300, 60
    # Drawn in this order: /broadcast wide and light under chat (the two nearly coincide).
    colors = {"corecast-broadcast": "#98df8a", "gorilla-hub": "#d62728", "corecast-chat": "#1f77b4"}
    widths = {"corecast-broadcast": 6, "gorilla-hub": 2, "corecast-chat": 2}
    xs = {n: PAD + i * (W / 2 - 2 * PAD) / max(1, len(sizes) - 1) for i, n in enumerate(sizes)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
             '<rect width="100%" height="100%" fill="white"/>']
    for panel, (key, title, unit) in enumerate([("per_cpu_s", "deliveries per server CPU-second", ""),
                                                 ("p99_ms", "p99 publish→delivery latency", " ms")]):
        ox = panel * W / 2
        vals = [r[key] for name in results for n in sizes for r in results[name].get(n, []) if r and r[key] > 0]
        if not vals:
            continue
        lo, hi = math.log10(min(vals)) - 0.1, math.log10(max(vals)) + 0.1
        y = lambda v: H - PAD - (math.log10(max(v, 1e-9)) - lo) / (hi - lo) * (H - 2 * PAD)
        parts.append(f'<text x="{ox + W / 4}" y="20" text-anchor="middle" font-size="13">{title}</text>')
        parts.append(f'<line x1="{ox + PAD}" y1="{H - PAD}" x2="{ox + W / 2 - PAD}" y2="{H - PAD}" stroke="black"/>')
        parts.append(f'<line x1="{ox + PAD}" y1="{PAD}" x2="{ox + PAD}" y2="{H - PAD}" stroke="black"/>')
        for e in range(math.ceil(lo), math.floor(hi) + 1):
            v = 10 ** e
            if unit:
                label = f"{v:g}{unit}" if v < 1e3 else f"{v / 1e3:g} s"
            else:
                label = f"{v:g}" if v < 1e3 else (f"{v / 1e3:g}k" if v < 1e6 else f"{v / 1e6:g}M")
            parts.append(f'<line x1="{ox + PAD - 4}" y1="{y(v):.1f}" x2="{ox + W / 2 - PAD}" y2="{y(v):.1f}" stroke="#ddd"/>')
            parts.append(f'<text x="{ox + PAD - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{label}</text>')
        for n in sizes:
            parts.append(f'<text x="{ox + xs[n]:.1f}" y="{H - PAD + 15}" text-anchor="middle">{n:,}</text>')
        parts.append(f'<text x="{ox + W / 4}" y="{H - PAD + 32}" text-anchor="middle">room size (members)</text>')
        for name, color in colors.items():
            pts = []
            for n in sizes:
                m = med_range([r[key] for r in results.get(name, {}).get(n, []) if r])
                if m and m[0] > 0:
                    pts.append((ox + xs[n], y(m[0])))
            if pts:
                d = " ".join(f"{'M' if i == 0 else 'L'}{px:.1f},{py:.1f}" for i, (px, py) in enumerate(pts))
                parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{widths[name]}"/>')
                for px, py in pts:
                    parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>')
    for i, (name, color) in enumerate(colors.items()):
        parts.append(f'<rect x="{PAD + i * 190}" y="{H - 16}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{PAD + 14 + i * 190}" y="{H - 7}">{name}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,3000,10000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--deliveries", type=int, default=200_000, help="offered deliveries/s")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--from-results", action="store_true",
                    help="no runs: rebuild the table and plot from target/chat-bench/results.jsonl")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    servers = [s for s in a.servers.split(",") if s in SERVERS]
    if "gorilla-hub" in servers and not (ANCHORS / "gorilla-hub").exists():
        log(f"no {ANCHORS / 'gorilla-hub'} (build ../shared/anchors/build.sh): skipping it")
        servers.remove("gorilla-hub")
    OUT.mkdir(parents=True, exist_ok=True)
    if a.from_results:
        results = {s: {} for s in servers}
        for line in open(OUT / "results.jsonl"):
            rec = json.loads(line)
            if rec["server"] in results:
                results[rec["server"]].setdefault(rec["n"], []).append(summarize(rec["result"]))
        sizes = sorted({n for r in results.values() for n in r})
        recs = [json.loads(l) for l in open(OUT / "results.jsonl")]
        a.deliveries = max(r["rate"] * r["n"] for r in recs)
        a.commit = recs[0].get("commit")
        return report(a, sizes, results)
    (OUT / "results.jsonl").unlink(missing_ok=True)
    log("building corecast and corecast-load (release)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "corecast", "-p", "corecast-load"],
                   cwd=ROOT, check=True)
    results = {s: {} for s in servers}
    port = 61500
    for n in sizes:
        rate = max(1, a.deliveries // n)
        for rnd in range(a.rounds):
            for name in servers:
                port = free_port(port + 1)
                r = run_one(name, n, rate, a.duration, port)
                results[name].setdefault(n, []).append(r)
                if r:
                    log(f"n={n} round {rnd + 1} {name}: {r['per_cpu_s'] / 1e6:.2f}M/cpu-s "
                        f"{r['per_s'] / 1e3:.0f}k/s p99 {r['p99_ms']:.1f} ms lost {r['lost']} ooo {r['ooo']}")
    report(a, sizes, results)


def report(a, sizes, results):
    rows = ["| members | msgs/s | chat: deliveries/s | chat: per server CPU-s (server CPU) | vs /broadcast | vs gorilla hub | chat p99 | /broadcast p99 | gorilla p99 | gorilla: deliveries/s, lost | chat lost / out of order |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        chat = results.get("corecast-chat", {}).get(n, [])
        def ratios(other):
            o = results.get(other, {}).get(n, [])
            return med_range([c["per_cpu_s"] / b["per_cpu_s"] for c, b in zip(chat, o)
                              if c and b and b["per_cpu_s"]])
        p99 = lambda name: med_range([r["p99_ms"] for r in results.get(name, {}).get(n, []) if r])
        fp = lambda m: "—" if m is None else f"{m[0]:.1f} ms"
        lost = sum(r["lost"] for r in chat if r)
        ooo = sum(r["ooo"] + r["dup"] for r in chat if r)
        cpu = med_range([r["cpu"] for r in chat if r])
        gor = [r for r in results.get("gorilla-hub", {}).get(n, []) if r]
        gor_rate = med_range([r["per_s"] for r in gor])
        gor_txt = "—" if gor_rate is None else f"{gor_rate[0] / 1e3:.0f}k/s, {sum(r['lost'] for r in gor):,}"
        chat_rate = med_range([r["per_s"] for r in chat if r])
        rows.append(f"| {n:,} | {max(1, a.deliveries // n):,} | {fmt_rate(chat_rate)} | "
                    f"{fmt_rate(med_range([r['per_cpu_s'] for r in chat if r]))} ({(cpu or (0,))[0] * 100:.0f} %) | "
                    f"{fmt_ratio(ratios('corecast-broadcast'))} | {fmt_ratio(ratios('gorilla-hub'))} | "
                    f"{fp(p99('corecast-chat'))} | {fp(p99('corecast-broadcast'))} | {fp(p99('gorilla-hub'))} | "
                    f"{gor_txt} | {lost} / {ooo} |")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    commit = getattr(a, "commit", None) or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    table = (f"Run {stamp} at {commit}: {a.rounds} interleaved rounds, {a.duration} s measured each, "
             f"{a.deliveries:,} deliveries/s offered, 64-character messages, {SENDERS} senders; "
             f"one worker on CPU 0, load on CPU 1. Ratios are per server CPU-second, median (min–max) of the "
             f"per-round ratios.\n\n" + "\n".join(rows) + "\n")
    print(table)
    if not a.no_write:
        svg(results, sizes, ROOT / "docs" / "chat-bench.svg")
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text()
        begin, end = "<!-- chat-bench:begin -->", "<!-- chat-bench:end -->"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            text = head + begin + "\n" + table + end + tail
        else:
            text += f"\n## Chat: one room, steady rate (tools/chat_bench.py)\n\n![chat benchmark](chat-bench.svg)\n\n{begin}\n{table}{end}\n"
        doc.write_text(text)
        log("wrote docs/benchmarks.md and docs/chat-bench.svg")


if __name__ == "__main__":
    main()
