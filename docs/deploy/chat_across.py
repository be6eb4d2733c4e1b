#!/usr/bin/env python3
"""Chat across two corecast nodes through nginx, then drain one node and recover.

    python3 docs/deploy/chat_across.py --proxy http://127.0.0.1:8080 \
        --node http://127.0.0.1:8081 --node http://127.0.0.1:8082 \
        --api-key demo [--pids PID_A,PID_B]

Needs Python `websockets` (>= 13). Every step asserts what a user would check by eye and
prints the JSON exchanged (`>` sent, `<` received). With --pids (the nodes' process ids, in
the order of --node) it also sends SIGTERM to the node holding the second client and checks
that the client gets close 1001, reconnects through nginx to the other node and recovers
every message sent meanwhile with `since` (complete: true). Exit status 0: everything held.
Used by docs/deploy/try-cluster.sh.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 5.0


def http(method, url, body=None, key=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        return r.status, r.read().decode()


def connections(node):
    return json.loads(http("GET", node + "/health")[1])["connections"]


class Client:
    """One /ws connection through the proxy, with a reader that queues every message."""

    def __init__(self, name):
        self.name = name
        self.ws = None
        self.queue = asyncio.Queue()
        self.seen = []  # everything received, in order
        self.closed = None  # (code, reason) once closed
        self.reader = None

    async def open(self, proxy):
        url = proxy.replace("http", "ws", 1) + f"/ws?username={self.name}"
        # The Origin a browser on the proxied page would send: checked by the node against
        # the Host header nginx passes on ($http_host).
        self.ws = await connect(url, origin=proxy, open_timeout=TIMEOUT)
        self.closed = None
        self.reader = asyncio.create_task(self._read())
        return await self.expect(lambda m: m["type"] == "welcome")

    async def _read(self):
        try:
            async for raw in self.ws:
                m = json.loads(raw)
                print(f"  {self.name} < {raw}")
                self.seen.append(m)
                await self.queue.put(m)
        except ConnectionClosed:
            pass
        self.closed = (self.ws.close_code, self.ws.close_reason)
        print(f"  {self.name}   closed {self.closed}")
        await self.queue.put({"type": "__closed__"})

    async def send(self, msg):
        raw = json.dumps(msg, separators=(",", ":"))
        print(f"  {self.name} > {raw}")
        await self.ws.send(raw)

    async def expect(self, pred, what="a message"):
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: timed out waiting for {what}")
            try:
                m = await asyncio.wait_for(self.queue.get(), left)
            except asyncio.TimeoutError:
                raise AssertionError(f"{self.name}: timed out waiting for {what}") from None
            if m["type"] == "__closed__" and not pred(m):
                raise AssertionError(f"{self.name}: closed while waiting for {what}")
            if pred(m):
                return m


def check(cond, text):
    if not cond:
        raise AssertionError(text)
    print(f"ok: {text}")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--node", action="append", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--pids", default="")
    a = ap.parse_args()
    proxy, nodes, key = a.proxy, a.node, a.api_key
    pids = [int(p) for p in a.pids.split(",") if p]
    failures = []

    print("# two clients through nginx land on two nodes")
    ali, veli = Client("ali"), Client("veli")
    await ali.open(proxy)
    ali_node = next(i for i, n in enumerate(nodes) if connections(n) == 1)
    await veli.open(proxy)
    counts = [connections(n) for n in nodes]
    check(counts == [1, 1], f"one connection on each node: {counts}")
    veli_node = 1 - ali_node
    await ali.expect(
        lambda m: m["type"] == "room.join" and m.get("user") == "veli", "veli's join notice"
    )

    print("# chat in general across the nodes: same seq everywhere, own copy before the ack")
    await ali.send({"type": "chat", "content": "hello from node a", "id": "c1"})
    m_ali = await ali.expect(lambda m: m["type"] == "chat", "ali's own copy")
    ack = await ali.expect(lambda m: m["type"] == "ack", "ali's ack")
    m_veli = await veli.expect(lambda m: m["type"] == "chat", "the chat at veli")
    check(m_ali["seq"] == m_veli["seq"] == ack["seq"], f"seq {ack['seq']} on both nodes")
    await veli.send({"type": "chat", "content": "and hello back", "id": "c2"})
    back = await ali.expect(lambda m: m["type"] == "chat", "veli's chat at ali")
    check(back["seq"] == m_ali["seq"] + 1, f"next seq {back['seq']}")
    await veli.expect(lambda m: m["type"] == "ack", "veli's ack")

    print("# a room of its own, lists across the nodes")
    await ali.send({"type": "room.join", "room": "ops", "id": "j1"})
    await ali.expect(lambda m: m["type"] == "ack" and m["id"] == "j1")
    await veli.send({"type": "room.join", "room": "ops", "id": "j2"})
    ul = await veli.expect(lambda m: m["type"] == "user.list", "user.list of ops")
    check(ul["users"] == ["ali", "veli"], f"user.list of ops spans both nodes: {ul['users']}")
    await veli.expect(lambda m: m["type"] == "ack" and m["id"] == "j2")
    await veli.send({"type": "typing", "room": "ops", "id": "t1"})
    try:
        t = await ali.expect(lambda m: m["type"] == "typing", "typing from veli")
        check(t["room"] == "ops", "typing crosses nodes")
    except AssertionError as e:
        # Noted, and the rest goes on: ali connects again (least_conn sends it back to its
        # node, which now has no connection) and rejoins ops.
        print(f"FAILED: {e} {ali.closed or ''}")
        failures.append(f"typing across nodes: {ali.closed or e}")
        ali.queue = asyncio.Queue()
        await ali.open(proxy)
        check(connections(nodes[ali_node]) == 1, "ali is back on its node")
        await ali.send({"type": "room.join", "room": "ops", "id": "j3"})
        await ali.expect(lambda m: m["type"] == "ack" and m["id"] == "j3")

    print("# a private message to a user on the other node")
    await ali.send({"type": "private", "to": "veli", "content": "psst", "id": "p1"})
    p = await veli.expect(lambda m: m["type"] == "private", "the private message")
    pack = await ali.expect(lambda m: m["type"] == "ack" and m["id"] == "p1")
    check(p["content"] == "psst" and pack["devices"] == 1, f"private delivered: {pack}")

    print("# the HTTP API through nginx")
    st, body = http("POST", proxy + "/api/notify", {"user": "veli", "type": "order.created",
                                                    "data": {"order": 17}}, key)
    print(f"  POST /api/notify -> {st} {body}")
    await veli.expect(lambda m: m["type"] == "order.created", "the notification")
    check(json.loads(body)["delivered"] == 1, "notify counts the user's connection on the other node")
    # general always exists; "delivered" counts the answering node's connections only.
    st, body = http("POST", proxy + "/api/publish", {"room": "general", "type": "deploy",
                                                     "data": {"v": 2}}, key)
    print(f"  POST /api/publish -> {st} {body}")
    n1 = await ali.expect(lambda m: m["type"] == "deploy", "the room event at ali")
    n2 = await veli.expect(lambda m: m["type"] == "deploy", "the room event at veli")
    check(n1["seq"] == n2["seq"] == json.loads(body)["seq"], f"publish sequenced by Redis: {body}")
    # ops has members on both nodes but no message yet.
    st, body = http("POST", proxy + "/api/publish", {"room": "ops", "type": "deploy",
                                                     "data": {"v": 3}}, key)
    print(f"  POST /api/publish -> {st} {body}")
    try:
        n1 = await ali.expect(lambda m: m["type"] == "deploy", "the ops event at ali")
        check(n1["room"] == "ops", "publish to a room with members and no message yet")
    except AssertionError as e:
        print(f"FAILED: {e}")
        failures.append(f"publish to a room with no message yet: {body}")
    st, body = http("GET", proxy + "/api/rooms", None, key)
    print(f"  GET /api/rooms -> {st} {body}")
    rooms = {r["room"]: r["members"] for r in json.loads(body)["rooms"]}
    check(rooms.get("general") == 2 and rooms.get("ops") == 2, "rooms counted cluster-wide")

    print("# a stored notification for a user connected nowhere, taken on connect")
    st, body = http("POST", proxy + "/api/notify", {"user": "zeynep", "type": "gift",
                                                    "data": {"n": 1}, "store": True}, key)
    print(f"  POST /api/notify -> {st} {body}")
    check(json.loads(body) == {"delivered": 0, "stored": True}, "stored")
    zeynep = Client("zeynep")
    await zeynep.open(proxy)
    g = await zeynep.expect(lambda m: m["type"] == "gift", "the stored notification")
    check(zeynep.seen[1]["type"] == "gift", "delivered right after the welcome")
    await zeynep.ws.close()

    print("# /health and /metrics through nginx")
    st, body = http("GET", proxy + "/health")
    print(f"  GET /health -> {st} {body}")
    check(json.loads(body)["relay"] == "up", "relay up")
    st, body = http("GET", proxy + "/metrics")
    relay_lines = [l for l in body.splitlines() if l.startswith("corecast_relay_")]
    print("  " + "\n  ".join(relay_lines))
    check(st == 200 and relay_lines, "relay metrics")

    if pids:
        await drain(proxy, nodes, pids, ali, veli, ali_node, veli_node)
    return failures


async def drain(proxy, nodes, pids, ali, veli, ali_node, veli_node):
    print(f"# SIGTERM to veli's node ({nodes[veli_node]}): 1001, reconnect, recover with since")
    last = max(m["seq"] for m in veli.seen if m.get("room") == "general" and "seq" in m)
    os.kill(pids[veli_node], signal.SIGTERM)
    await veli.expect(lambda m: m["type"] == "__closed__", "the close")
    check(veli.closed[0] == 1001, f"close {veli.closed}")
    sent = []
    for i in range(3):
        await ali.send({"type": "chat", "content": f"while you were away {i}", "id": f"w{i}"})
        sent.append((await ali.expect(lambda m: m["type"] == "ack" and m["id"] == f"w{i}"))["seq"])
    veli.queue = asyncio.Queue()
    veli.seen = []
    for attempt in range(20):
        try:
            await veli.open(proxy)
            break
        except Exception as e:  # the draining node refuses; nginx moves on
            print(f"  veli reconnect attempt {attempt}: {e!r}")
            await asyncio.sleep(0.2)
    check(connections(nodes[ali_node]) == 2, "veli is now on ali's node")
    await veli.send({"type": "room.join", "room": "general", "since": last, "id": "r1"})
    h = await veli.expect(lambda m: m["type"] == "history", "the history")
    got = [m["seq"] for m in h["messages"]]
    check(h["complete"] and got == sent, f"recovered seqs {got} after since={last}, complete")


if __name__ == "__main__":
    try:
        failed = asyncio.run(main())
    except AssertionError as e:
        print(f"FAILED: {e}")
        sys.exit(1)
    if failed:
        print("FAILED: " + "; ".join(failed))
        sys.exit(1)
    print("all checks passed")
