#!/usr/bin/env python3
"""What permessage-deflate costs the server: memory per idle connection and CPU per message.

Usage: tools/deflate_memory.py [--connections 10000] [--messages 30000] [--skip-memory]
                               [--skip-throughput] [--binary PATH] [--timeout 600]

Memory: for each scenario a fresh release `corecast --workers 2 --compression MODE` is started
(port 0, 127.0.0.1 only); its VmRSS (/proc/PID/status) is read before any connection, after
opening N connections with `websockets` (asyncio, in batches that fit the listen backlog) and
letting them sit (state "connected": negotiated, no message yet), and after each connection
echoed one 4 KiB compressible text message (state "after 1 msg": a mode that keeps per-connection
inflate/deflate state has created it by then). Bytes per connection = RSS growth / N.

    off           --compression off, the client's offer is declined
    shared        --compression shared, client offers context takeover (per-connection inflater)
    shared+cnct   --compression shared, client offers client_no_context_takeover (no per-conn state)
    dedicated     --compression dedicated (per-connection inflater and deflater)

Throughput: M 4 KiB text messages (distinct, JSON-like, ~3x compressible) echoed over 50
connections (each keeps 8 in flight), server --compression off / shared / dedicated. Reports
messages per second (bounded by this single Python client on a 2-core machine: read it as a
relative figure), server CPU seconds per message (utime+stime from /proc/PID/stat, the
server's own cost) and bytes on the wire from server to client per message (counted in the
client's data_received), hence the compression ratio.

Prints a table and, last, one JSON line with every figure. Every phase is bounded in time
(--timeout per scenario); servers are stopped with SIGTERM (SIGKILL after 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
BATCH = 500  # connections opened concurrently: below the per-worker backlog (1024)
MSG_SIZE = 4096

SCENARIOS = {
    # name: (server mode, client offers client_no_context_takeover)
    "off": ("off", False),
    "shared": ("shared", False),
    "shared+cnct": ("shared", True),
    "dedicated": ("dedicated", False),
}


T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"deflate_memory: [{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# --- the server ------------------------------------------------------------------------------------


def build() -> Path:
    subprocess.run(["cargo", "build", "--release", "--bin", "corecast"], cwd=ROOT, check=True)
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return Path(json.loads(meta)["target_directory"]) / "release" / "corecast"


class Server:
    def __init__(self, binary: Path, mode: str):
        self.proc = subprocess.Popen(
            [
                str(binary), "--listen", "127.0.0.1:0", "--workers", "2",
                "--compression", mode,
                # Idle connections must stay: no pings or idle closes during a measurement.
                "--ping-interval", "1h", "--idle-timeout", "2h",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(m.group(1))
        self.url = f"ws://127.0.0.1:{self.port}/echo"

    def rss(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# --- clients ---------------------------------------------------------------------------------------


class CountingConnection(ClientConnection):
    """Counts the bytes the server sent, as they came off the socket."""

    rx_bytes = 0

    def data_received(self, data: bytes) -> None:
        CountingConnection.rx_bytes += len(data)
        super().data_received(data)


def client_kwargs(no_context_takeover: bool) -> dict:
    kw = dict(proxy=None, ping_interval=None, max_size=None, open_timeout=30, close_timeout=2,
              create_connection=CountingConnection)
    if no_context_takeover:
        kw.update(compression=None,
                  extensions=[ClientPerMessageDeflateFactory(client_no_context_takeover=True)])
    return kw


WORDS = ("the quick brown fox jumps over lazy dog message room user corecast echo frame deflate "
         "window context takeover latency socket worker buffer").split()


def message(i: int) -> str:
    """A distinct 4 KiB JSON-like text (~3x compressible with a fresh context)."""
    rng = random.Random(i)
    parts = []
    n = 0
    while n < MSG_SIZE:
        p = json.dumps({"id": rng.randrange(10**6), "user": f"u{rng.randrange(1000):04d}",
                        "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))})
        parts.append(p)
        n += len(p) + 1
    return "\n".join(parts)[:MSG_SIZE]


async def open_many(url: str, n: int, kw: dict) -> list:
    conns: list = []
    for start in range(0, n, BATCH):
        conns += await asyncio.gather(*(connect(url, **kw) for _ in range(min(BATCH, n - start))))
    return conns


async def echo_once(conns: list) -> None:
    async def one(i, ws):
        m = message(i % 64)
        await ws.send(m)
        if await ws.recv() != m:
            raise AssertionError("echo mismatch")

    for start in range(0, len(conns), 1000):
        await asyncio.gather(*(one(start + i, ws) for i, ws in enumerate(conns[start:start + 1000])))


async def drop(conns: list) -> None:
    """Closes the sockets at once (no close handshakes: 10k of them are not what is measured).
    The loop must run for abort() to take effect, before the server is told to drain."""
    for ws in conns:
        ws.transport.abort()
    await asyncio.sleep(0.2)


async def settle_rss(server: Server) -> int:
    """RSS after the server has had a moment to finish what it was doing."""
    await asyncio.sleep(1.0)
    return server.rss()


# --- the two measurements ---------------------------------------------------------------------------


async def measure_memory(binary: Path, name: str, n: int) -> dict:
    mode, cnct = SCENARIOS[name]
    server = Server(binary, mode)
    conns: list = []
    try:
        kw = client_kwargs(cnct)
        # One connection first, closed again: the workers' shared state (compressors, buffers)
        # is then part of the baseline, not of the per-connection figure.
        warm = await connect(server.url, **kw)
        ext = warm.response.headers.get("Sec-WebSocket-Extensions")
        await warm.send(message(0))
        await warm.recv()
        await warm.close()
        base = await settle_rss(server)
        log(f"{name}: baseline {base} B")
        t0 = time.monotonic()
        conns = await open_many(server.url, n, kw)
        t_open = time.monotonic() - t0
        connected = await settle_rss(server)
        await echo_once(conns)
        after = await settle_rss(server)
        log(f"{name}: {n} connections in {t_open:.1f}s; extension: {ext}")
        return {
            "scenario": name, "mode": mode, "client_no_context_takeover": cnct,
            "extension": ext, "connections": n, "rss_base": base,
            "rss_connected": connected, "rss_after_msg": after,
            "per_conn_connected": (connected - base) / n,
            "per_conn_after_msg": (after - base) / n,
        }
    finally:
        await drop(conns)
        server.stop()
        log(f"{name}: server stopped")


async def measure_throughput(binary: Path, mode: str, total: int, nconns: int = 50,
                             in_flight: int = 8) -> dict:
    server = Server(binary, mode)
    conns: list = []
    try:
        conns = await open_many(server.url, nconns, client_kwargs(False))
        msgs = [message(i) for i in range(256)]
        per_conn = total // nconns

        async def run(ws, k):
            sem = asyncio.Semaphore(in_flight)

            async def reader():
                for j in range(per_conn):
                    got = await ws.recv()
                    if got != msgs[(k * 7 + j) % len(msgs)]:
                        raise AssertionError("echo mismatch")
                    sem.release()

            r = asyncio.ensure_future(reader())
            for j in range(per_conn):
                await sem.acquire()
                await ws.send(msgs[(k * 7 + j) % len(msgs)])
            await r

        CountingConnection.rx_bytes = 0
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        await asyncio.gather(*(run(ws, k) for k, ws in enumerate(conns)))
        elapsed, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
        n = per_conn * nconns
        wire = CountingConnection.rx_bytes / n
        return {
            "mode": mode, "messages": n, "connections": nconns, "seconds": elapsed,
            "msgs_per_s": n / elapsed, "server_cpu_s": cpu, "server_cpu_us_per_msg": cpu / n * 1e6,
            "wire_bytes_per_msg": wire, "ratio": MSG_SIZE / wire,
        }
    finally:
        await drop(conns)
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--messages", type=int, default=30_000)
    ap.add_argument("--binary", type=Path, help="a corecast binary (default: cargo build --release)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per scenario")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        if min(need, hard) < need:
            sys.exit(f"deflate_memory: open-file limit {hard} < {need}")
    binary = args.binary or build()

    def bounded(coro):
        return asyncio.run(asyncio.wait_for(coro, args.timeout))

    memory, throughput = [], []
    if not args.skip_memory:
        for name in SCENARIOS:
            memory.append(bounded(measure_memory(binary, name, args.connections)))
    if not args.skip_throughput:
        for mode in ("off", "shared", "dedicated"):
            throughput.append(bounded(measure_throughput(binary, mode, args.messages)))
            log(f"throughput {mode}: {throughput[-1]['msgs_per_s']:.0f} msg/s")

    if memory:
        print(f"server RSS per connection, {args.connections} idle connections, 2 workers "
              f"(bytes; baseline after one warm-up connection)")
        print(f"{'scenario':<13} {'negotiated (pmd = permessage-deflate)':<60} {'connected':>10} "
              f"{'after 1 msg':>12}")
        for m in memory:
            ext = (m["extension"] or "-").replace("permessage-deflate", "pmd")
            print(f"{m['scenario']:<13} {ext:<60} "
                  f"{m['per_conn_connected']:>10.0f} {m['per_conn_after_msg']:>12.0f}")
    if throughput:
        print(f"\necho of {MSG_SIZE}-byte text messages over 50 connections (8 in flight each)")
        print(f"{'mode':<10} {'messages':>8} {'msg/s':>8} {'server CPU us/msg':>18} "
              f"{'wire B/msg':>10} {'ratio':>6}")
        for t in throughput:
            print(f"{t['mode']:<10} {t['messages']:>8} {t['msgs_per_s']:>8.0f} "
                  f"{t['server_cpu_us_per_msg']:>18.1f} {t['wire_bytes_per_msg']:>10.0f} "
                  f"{t['ratio']:>6.2f}")
    print(json.dumps({"memory": memory, "throughput": throughput}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
