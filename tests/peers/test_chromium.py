"""A real browser as the peer: headless Debian Chromium, driven over the Chrome DevTools
Protocol (CDP) with `websockets`, runs `new WebSocket(...)` in a page against corecast.

Chromium always offers `permessage-deflate; client_max_window_bits`, so this checks what a
browser negotiates and inflates, with each compression mode. One browser serves the module;
every test opens its own page (CDP target) and its own server. The browser is started in its own
process group and that group is killed at teardown, whatever happened.
"""

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
START_TIMEOUT_S = 30
EVAL_TIMEOUT_S = 30


class Browser:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="corecast-chromium-"))
        self.log = open(self.dir / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={self.dir / 'profile'}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,  # its own process group: renderers and zygotes die with it
        )
        self.ws_url = self._wait_devtools()

    def _wait_devtools(self) -> str:
        """The browser endpoint from <user-data-dir>/DevToolsActivePort ("PORT\\n/devtools/...")."""
        port_file = self.dir / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited ({self.proc.returncode}):\n{self.output()}")
            try:
                port, path = port_file.read_text().split("\n")[:2]
                if port and path:
                    return f"ws://127.0.0.1:{int(port)}{path}"
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"no DevToolsActivePort within {START_TIMEOUT_S}s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.dir / "chromium.log").read_text(errors="replace")[-4000:]

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (tools/setup.sh installs Debian's chromium)")
    b = Browser()
    try:
        yield b
    finally:
        b.kill()


class Cdp:
    """One CDP connection to the browser endpoint, flat sessions, one command at a time."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method, params=None, session=None):
        msg = {"id": next(self.ids), "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == msg["id"]:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def evaluate(self, session, expression):
        r = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session,
        )
        if "exceptionDetails" in r:
            raise AssertionError(f"page script failed: {r['exceptionDetails']}")
        return r["result"]["value"]


async def run_in_page(browser, script):
    async with connect(browser.ws_url, proxy=None, max_size=None, ping_interval=None) as ws:
        cdp = Cdp(ws)
        target = (await cdp.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        try:
            session = (await cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True}))[
                "sessionId"
            ]
            return await cdp.evaluate(session, script)
        finally:
            await cdp.call("Target.closeTarget", {"targetId": target})


# The page script: echo text (ASCII, non-ASCII, 100 KB) and binary, then a clean close. Every
# wait is bounded in the page too, so a silent server fails with a message instead of a hang.
PAGE_SCRIPT = r"""
(async (url) => {
  const withTimeout = (p, what) => Promise.race([p, new Promise((_, rej) =>
      setTimeout(() => rej(new Error("timeout: " + what)), 10000))]);
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const inbox = [], waiting = [];
  ws.onmessage = (e) => waiting.length ? waiting.shift()(e.data) : inbox.push(e.data);
  const next = (what) => withTimeout(new Promise((res) =>
      inbox.length ? res(inbox.shift()) : waiting.push(res)), what);
  const closed = new Promise((res) => { ws.onclose = (e) => res(e); });
  await withTimeout(new Promise((res, rej) => {
    ws.onopen = res;
    ws.onerror = () => rej(new Error("websocket error before open"));
  }), "open");

  const out = { extensions: ws.extensions, texts: [], binary: null };
  let big = "";
  for (let i = 0; big.length < 100000; i++) big += "line " + i + ": żółw 日本語 🙂 corecast\n";
  for (const t of ["hello", "héllo wörld ✓ 日本語 🙂 \u0000 end", big]) {
    ws.send(t);
    const got = await next("text echo");
    out.texts.push({ sent: t.length, got: typeof got === "string" ? got.length : -1,
                     equal: got === t, sample: t.length < 200 ? got : null });
  }
  const bytes = new Uint8Array(70000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i % 7 === 0 ? (i * 31) & 255 : i & 15;
  ws.send(bytes.buffer);
  const got = await next("binary echo");
  const back = got instanceof ArrayBuffer ? new Uint8Array(got) : null;
  out.binary = { type: Object.prototype.toString.call(got), length: back ? back.length : -1,
                 equal: !!back && back.length === bytes.length && back.every((b, i) => b === bytes[i]) };

  ws.close(1000, "done");
  const e = await withTimeout(closed, "close");
  out.close = { code: e.code, reason: e.reason, wasClean: e.wasClean };
  return out;
})
"""


@pytest.mark.parametrize("mode", ["shared", "dedicated", "off"])
def test_browser_echo(browser, corecast, mode):
    srv = corecast("--compression", mode)
    script = f"{PAGE_SCRIPT}({json.dumps(srv.url('/echo'))})"

    async def go():
        return await asyncio.wait_for(run_in_page(browser, script), EVAL_TIMEOUT_S)

    out = asyncio.run(go())
    exts = [p.strip() for p in out["extensions"].split(";")] if out["extensions"] else []
    if mode == "off":
        assert exts == [], out["extensions"]
    else:
        assert exts[:1] == ["permessage-deflate"], out["extensions"]
        assert ("server_no_context_takeover" in exts) == (mode == "shared"), out["extensions"]
    for t in out["texts"]:
        assert t["equal"], t
    assert out["texts"][1]["sample"] == "héllo wörld ✓ 日本語 🙂 \u0000 end"
    assert out["texts"][2]["sent"] >= 100000
    assert out["binary"] == {"type": "[object ArrayBuffer]", "length": 70000, "equal": True}
    # The reason is the server's own (RFC 6455 §5.5.1 does not ask it to echo ours).
    assert (out["close"]["code"], out["close"]["wasClean"]) == (1000, True), out["close"]
