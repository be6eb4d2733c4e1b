"""The demo chat page (GET /) in a real browser: headless Debian Chromium, driven over CDP with
`websockets` like test_chromium.py, two pages (alice and bob) against one corecast.

They log in through the form, exchange room messages in `general` and in a joined room (rendered
as text, never HTML), show typing, exchange private messages (and a copy from alice's second
device). Then alice's connection is broken twice while bob keeps sending: once by the server
(`POST /api/disconnect`, close 1008) with the page's network blocked for a while so that messages
are certainly missed, once by dropping the socket from the page while bob sends continuously.
Alice's page reconnects by itself and must end with every room message in seq order, no gap, no
duplicate, each with the content bob's ack gave that seq. Assertions read `window.corecastDemo`
(the page's test hook), not the DOM, except where rendering itself is the point.

A screenshot of alice's page goes to the test's tmp dir, and to docs/demo-chat.png when
CORECAST_SCREENSHOT=1.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from test_chromium import CHROMIUM, Browser, Cdp

API_KEY = "demo-test-key"
JWT_SECRET = "demo-test-secret"
TEST_TIMEOUT_S = 120
WAIT_S = 15
ROOT = Path(__file__).resolve().parents[2]
XSS = '<img src=x onerror="window.__xss=1"><b>not bold</b> & "quotes"'

# Replaces the page's WebSocket constructor so that, while window.__blockWs is true, every new
# connection goes to a closed port and fails: the network is "down" for the reconnecting client.
BLOCKER = r"""
(() => {
  const Real = window.WebSocket;
  window.__blockWs = true;
  window.WebSocket = class extends Real {
    constructor(url, protocols) { super(window.__blockWs ? "ws://127.0.0.1:9/blocked" : url, protocols); }
  };
  return true;
})()
"""


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (tools/setup.sh installs Debian's chromium)")
    b = Browser()
    try:
        yield b
    finally:
        b.kill()


class Page:
    """One CDP target (a tab) on the shared CDP connection."""

    def __init__(self, cdp, name, target, session):
        self.cdp, self.name, self.target, self.session = cdp, name, target, session

    async def js(self, expression):
        return await self.cdp.evaluate(self.session, expression)

    async def wait(self, expression, what, timeout=WAIT_S):
        """Polls `expression` until it is truthy; fails with the page's state otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                snap = await self.js("JSON.stringify(window.corecastDemo && corecastDemo.snapshot())")
                raise AssertionError(f"{self.name}: timeout waiting for {what}; state: {snap[-3000:]}")
            await asyncio.sleep(0.05)

    async def call(self, expression):
        """Awaits a promise in the page; returns {"ok": value} or {"err": rejection}."""
        return await self.js(
            f"Promise.resolve().then(() => {expression}).then((ok) => ({{ok}}), (err) => ({{err}}))"
        )

    async def messages(self, room):
        return await self.js(f"corecastDemo.messages({json.dumps(room)})")

    async def login(self, username):
        await self.js(f"""(() => {{
              document.getElementById("login-name").value = {json.dumps(username)};
              document.getElementById("login-submit").click();
              return true;
            }})()""")
        await self.wait(
            f"corecastDemo.isOpen() && corecastDemo.state.user === {json.dumps(username)}", "welcome"
        )


async def open_page(cdp, url, name):
    target = (await cdp.call("Target.createTarget", {"url": url}))["targetId"]
    session = (await cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
    page = Page(cdp, name, target, session)
    await cdp.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 760, "deviceScaleFactor": 1, "mobile": False},
        session,
    )
    await page.wait(
        "document.readyState === 'complete' && typeof window.corecastDemo === 'object'", "page load"
    )
    return page


def hs256(claims, secret=JWT_SECRET):
    """A compact JWS (RFC 7515) signed with HMAC-SHA256, as `corecast token` makes them."""
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def api(srv, path, body):
    req = urllib.request.Request(
        f"http://{srv.host}:{srv.port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        assert resp.status == 200, resp.status
        return json.loads(resp.read())


async def api_async(srv, path, body):
    return await asyncio.to_thread(api, srv, path, body)


def assert_complete(room, got, sent):
    """`got`: alice's messages of `room`; `sent`: seq -> (type, content) from acks / the API."""
    seqs = [m["seq"] for m in got]
    assert len(seqs) == len(set(seqs)), f"{room}: duplicates in {seqs}"
    assert seqs == list(range(1, len(seqs) + 1)), f"{room}: not 1..N in order: {seqs}"
    assert {m["epoch"] for m in got} == {0}, f"{room}: unexpected epoch change"
    by_seq = {m["seq"]: m for m in got}
    for seq, (kind, content) in sent.items():
        assert seq in by_seq, f"{room}: seq {seq} ({content!r}) missing; have {seqs}"
        m = by_seq[seq]
        assert m["type"] == kind, (room, m)
        assert (m["content"] if kind == "chat" else m["data"]) == content, (room, seq, m)


async def demo_session(browser, srv, tmp_path):
    base = f"http://{srv.host}:{srv.port}/"
    sent = {"general": {}, "backend": {}}  # room -> seq -> (type, content), as acked to bob

    async def bob_chat(room, text):
        r = await bob.call(f"corecastDemo.sendChat({json.dumps(room)}, {json.dumps(text)})")
        assert "ok" in r and isinstance(r["ok"].get("seq"), int), r
        sent[room][r["ok"]["seq"]] = ("chat", text)

    async with connect(browser.ws_url, proxy=None, max_size=None, ping_interval=None) as ws:
        cdp = Cdp(ws)
        alice = await open_page(cdp, base, "alice")
        bob = await open_page(cdp, base, "bob")

        # The page itself: a name that does not match [A-Za-z0-9._-]{1,64} is refused locally.
        await alice.js(
            'document.getElementById("login-name").value = "no spaces!"; '
            'document.getElementById("login-submit").click(); true'
        )
        assert await alice.js('document.getElementById("login-error").textContent') != ""
        assert await alice.js("corecastDemo.state.connections") == 0
        delays = await alice.js("[0, 1, 4, 5, 30, 500].map((a) => corecastDemo.backoffDelay(a, 0.999999))")
        assert delays[:3] == [999, 1999, 15999] and delays[3:] == [29999, 29999, 29999], delays
        assert await alice.js("corecastDemo.backoffDelay(3, 0)") == 0

        await alice.login("alice")
        await bob.login("bob")
        for p in (alice, bob):
            await p.wait(
                "(corecastDemo.state.rooms.general || {members: []}).members.join() === 'alice,bob'",
                "both in general's member list",
            )

        # general, through the UI: typing first, then the message (with HTML in it).
        await alice.js("""(() => {
              const i = document.getElementById("composer-input");
              i.value = "hel"; i.dispatchEvent(new Event("input", {bubbles: true})); return true;
            })()""")
        await bob.wait("document.getElementById('typing').textContent.includes('alice is typing')", "typing")
        await alice.js(f"""(() => {{
              document.getElementById("composer-input").value = {json.dumps(XSS)};
              document.getElementById("composer-send").click(); return true;
            }})()""")
        await bob.wait(
            f"corecastDemo.messages('general').some((m) => m.content === {json.dumps(XSS)})", "alice's chat"
        )
        seq = await alice.wait(
            f"(corecastDemo.messages('general').find((m) => m.content === {json.dumps(XSS)}) || {{}}).seq",
            "own chat back with its seq",
        )
        sent["general"][seq] = ("chat", XSS)
        rendered = await bob.js(
            "[...document.querySelectorAll('#messages [data-testid=message]')].map((li) => li.textContent).join('\\n')"
        )
        assert XSS in rendered, rendered
        assert await bob.js(
            "window.__xss === undefined && !document.querySelector('#messages img, #messages b')"
        )
        await bob_chat("general", "hi alice")

        # A joined room: alice through the join form, bob through the hook.
        await alice.js("""(() => {
              document.getElementById("join-name").value = "backend";
              document.getElementById("join-submit").click(); return true;
            })()""")
        await alice.wait(
            "corecastDemo.state.active.name === 'backend' && corecastDemo.state.rooms.backend.joined", "join"
        )
        r = await bob.call("corecastDemo.joinRoom('backend')")
        assert r["ok"]["type"] == "ack", r
        await alice.wait("corecastDemo.state.rooms.backend.members.join() === 'alice,bob'", "bob in backend")
        await bob_chat("backend", "backend from bob")
        r = await alice.call("corecastDemo.sendChat('backend', 'backend from alice')")
        sent["backend"][r["ok"]["seq"]] = ("chat", "backend from alice")
        await bob.wait(
            "corecastDemo.messages('backend').some((m) => m.content === 'backend from alice')", "room chat"
        )

        # Private: alice clicks bob in the member list and sends from the composer.
        await alice.js("corecastDemo.activate('room', 'general'); true")
        await alice.js("document.querySelector('#members [data-user=bob]').click(); true")
        assert (
            await alice.js("corecastDemo.state.active.kind + ':' + corecastDemo.state.active.name")
            == "private:bob"
        )
        await alice.js("""(() => {
              document.getElementById("composer-input").value = "psst bob";
              document.getElementById("composer-send").click(); return true;
            })()""")
        await bob.wait(
            "corecastDemo.state.privates.some((p) => p.from === 'alice' && p.to === 'bob' && p.content === 'psst bob')",
            "private from alice",
        )
        await alice.wait(
            "corecastDemo.state.privates.some((p) => p.content === 'psst bob' && p.status === 'delivered' && p.devices === 1)",
            "private ack",
        )
        r = await bob.call("corecastDemo.sendPrivate('alice', 'psst alice')")
        assert r["ok"]["status"] == "delivered" and r["ok"]["devices"] == 1, r
        await alice.wait(
            "corecastDemo.state.privates.some((p) => p.from === 'bob' && p.content === 'psst alice')", "reply"
        )
        # alice's second device sends to bob: alice's page shows the copy.
        url = f"ws://{srv.host}:{srv.port}/ws?username=alice"
        async with connect(url, proxy=None, ping_interval=None, open_timeout=10) as dev:
            assert json.loads(await dev.recv())["type"] == "welcome"
            await dev.send(json.dumps({"type": "private", "to": "bob", "content": "from my phone", "id": 1}))
            await alice.wait(
                "corecastDemo.state.privates.some((p) => p.content === 'from my phone' && p.otherDevice && p.to === 'bob')",
                "copy from the other device",
            )

        # Break 1: the server closes alice (1008) while her network is down; bob sends meanwhile.
        await alice.js(BLOCKER)
        assert await api_async(srv, "/api/disconnect", {"user": "alice"}) == {"disconnected": 1}
        await alice.wait(
            "!corecastDemo.isOpen() && corecastDemo.state.attempt >= 2", "a failed reconnect attempt"
        )
        assert (await alice.js("corecastDemo.state.closes[0].code")) == 1008
        await bob.wait("!corecastDemo.state.rooms.general.members.includes('alice')", "alice gone for bob")
        for i in range(5):
            await bob_chat("general", f"missed general {i}")
            await bob_chat("backend", f"missed backend {i}")
        published = await api_async(
            srv, "/api/publish", {"room": "backend", "type": "deploy", "data": {"v": 7}}
        )
        assert published["delivered"] == 1, published
        sent["backend"][published["seq"]] = ("deploy", {"v": 7})
        r = await bob.call("corecastDemo.sendPrivate('alice', 'nobody home')")
        assert r.get("err", {}).get("code") == "user_not_found", r
        await alice.js("window.__blockWs = false; true")
        await alice.wait(
            "corecastDemo.isOpen() && corecastDemo.state.connections === 2", "reconnect 1", timeout=40
        )

        # Break 2: bob sends continuously (10/s, under the 20/s limit) while alice's page drops
        # its socket; live and history overlap around the rejoin.
        await bob.js("""window.__bobAcks = []; window.__bobDone = (async () => {
              for (let i = 0; i < 30; i++) {
                const room = i % 2 ? "backend" : "general", text = "stream " + i;
                const ack = await corecastDemo.sendChat(room, text);
                window.__bobAcks.push([room, ack.seq, text]);
                await new Promise((r) => setTimeout(r, 100));
              }
              return true;
            })(); true""")
        await bob.wait("window.__bobAcks.length >= 6", "bob streaming")
        assert await alice.js("corecastDemo.dropConnection('test')")
        await alice.wait(
            "corecastDemo.isOpen() && corecastDemo.state.connections === 3", "reconnect 2", timeout=40
        )
        assert await bob.js("window.__bobDone.then(() => true)")
        for room, seq, text in await bob.js("window.__bobAcks"):
            sent[room][seq] = ("chat", text)

        # Alice must converge to every message, in order, once.
        for room in ("general", "backend"):
            last = max(sent[room])
            await alice.wait(
                f"corecastDemo.messages({json.dumps(room)}).some((m) => m.seq === {last})", f"{room} #{last}"
            )
            got = await alice.messages(room)
            assert_complete(room, got, sent[room])
            missed = [m for m in got if str(m["content"]).startswith("missed ")]
            assert len(missed) == 5 and all(m["via"] == "history" for m in missed), missed
        notes = await alice.js("corecastDemo.state.notifications.map((n) => [n.type, n.room, n.seq])")
        assert ["deploy", "backend", published["seq"]] in notes, notes
        assert await alice.js("corecastDemo.pending()") == 0
        assert await alice.js("document.getElementById('status').textContent") == "connected"

        # What the user sees: general, with the DOM holding exactly the messages of the hook.
        await alice.js("corecastDemo.activate('room', 'general'); true")
        await asyncio.sleep(0.2)
        dom = await alice.js(
            "[...document.querySelectorAll('#messages [data-testid=message]')].map((li) => +li.dataset.seq)"
        )
        assert dom == [m["seq"] for m in await alice.messages("general")], dom
        await cdp.call("Page.bringToFront", {}, alice.session)  # a background tab is not painted
        shot = await cdp.call("Page.captureScreenshot", {"format": "png"}, alice.session)
        for p in (bob, alice):
            await cdp.call("Target.closeTarget", {"targetId": p.target})
        return shot["data"]


def test_demo_chat_two_pages_reconnect(browser, corecast, tmp_path):
    srv = corecast("--api-key", API_KEY)

    async def go():
        return await asyncio.wait_for(demo_session(browser, srv, tmp_path), TEST_TIMEOUT_S)

    png = base64.b64decode(asyncio.run(go()))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "demo-chat.png").write_bytes(png)
    if os.environ.get("CORECAST_SCREENSHOT") == "1":
        (ROOT / "docs" / "demo-chat.png").write_bytes(png)


def test_demo_token_from_fragment(browser, corecast):
    """With --jwt-secret the page connects with the token of its URL fragment (?token= on /ws),
    takes its id and name from the welcome and removes the token from the address bar; a token
    the server refuses (401 before the upgrade) leaves the page retrying with backoff."""
    srv = corecast("--jwt-secret", JWT_SECRET)
    sub = "carol@example.com"
    good = hs256({"sub": sub, "name": "Carol", "exp": int(time.time()) + 3600})
    expired = hs256({"sub": sub, "exp": int(time.time()) - 60})

    async def go():
        async with connect(browser.ws_url, proxy=None, max_size=None, ping_interval=None) as ws:
            cdp = Cdp(ws)
            page = await open_page(cdp, f"http://{srv.host}:{srv.port}/#token={good}", "carol")
            await page.wait(
                f"corecastDemo.isOpen() && corecastDemo.state.user === {json.dumps(sub)}", "welcome"
            )
            assert await page.js("corecastDemo.state.name") == "Carol"
            assert await page.js("location.hash") == ""
            assert await page.js("document.getElementById('me').textContent") == f"Carol ({sub})"
            await page.wait(
                "(corecastDemo.state.rooms.general || {members: []}).members.includes('carol@example.com')",
                "member of general",
            )

            bad = await open_page(cdp, f"http://{srv.host}:{srv.port}/#token={expired}", "expired")
            await bad.wait("corecastDemo.state.closes.length >= 2", "two refused attempts")
            assert await bad.js("corecastDemo.state.connections") == 0
            assert await bad.js("corecastDemo.state.status") == "reconnecting"
            assert await bad.js("corecastDemo.state.attempt") >= 2
            for p in (page, bad):
                await cdp.call("Target.closeTarget", {"targetId": p.target})

    asyncio.run(asyncio.wait_for(go(), TEST_TIMEOUT_S))
