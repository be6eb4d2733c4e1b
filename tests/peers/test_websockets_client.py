"""permessage-deflate (RFC 7692) against real peers: the `websockets` library, and a raw-socket
client (rawws.py) for frames `websockets` won't send (bombs, bad RSV1, chosen window sizes).

Each test starts its own server (conftest.py). Every check names what is negotiated and what is
on the wire, not only that a message came back.
"""

import asyncio
import random
import zlib

import pytest
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate

import rawws
from rawws import BINARY, RSV1, TEXT, RawClient

MODES = ["shared", "dedicated"]
SIZES = [0, 10, 1000, 100 << 10, 1 << 20]
TEST_TIMEOUT_S = 30


def run(coro, timeout=TEST_TIMEOUT_S):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def ws_connect(url, **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 5)
    return connect(url, proxy=None, ping_interval=None, **kw)


WORDS = ["echo", "frame", "deflate", "żółw", "Grüße", "日本語", "🙂", "naïve", "Ω", "window", "42"]


def text_of(n: int, seed: int = 0) -> str:
    """Compressible text with multi-byte characters, at most `n` bytes of UTF-8 (close to it)."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < n + 8:
        w = rng.choice(WORDS) + rng.choice(" \n,.")
        parts.append(w)
        size += len(w.encode())
    return "".join(parts).encode()[:n].decode("utf-8", "ignore")


def binary_of(n: int, seed: int = 0) -> bytes:
    """Half random bytes, half repeats: partly compressible, every byte value present."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < n:
        chunk = rng.randbytes(rng.randint(1, 300))
        out += chunk if rng.random() < 0.5 else chunk[:16] * rng.randint(1, 20)
    return bytes(out[:n])


def compressible(n: int, seed: int = 0) -> bytes:
    """Text whose repeats lie up to ~8 KiB apart: a back-reference past a small window is
    tempting for the compressor."""
    rng = random.Random(seed)
    block = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(8192))
    return (block * (n // len(block) + 1))[:n]


def ext_header(ws) -> str:
    return ws.response.headers.get("Sec-WebSocket-Extensions")


# --- negotiation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_negotiated_extension(corecast, mode):
    srv = corecast("--compression", mode)

    async def go():
        async with ws_connect(srv.url()) as ws:
            header = ext_header(ws)
            assert header is not None, "no Sec-WebSocket-Extensions in the 101 response"
            params = [p.strip() for p in header.split(";")]
            assert params[0] == "permessage-deflate"
            if mode == "shared":
                assert "server_no_context_takeover" in params, header
            else:
                assert "server_no_context_takeover" not in params, header
            assert "client_no_context_takeover" not in params, header
            assert any(isinstance(e, PerMessageDeflate) for e in ws.protocol.extensions)

    run(go())


def test_compression_off_declines(corecast):
    srv = corecast("--compression", "off")

    async def go():
        async with ws_connect(srv.url()) as ws:
            assert ext_header(ws) is None
            assert ws.protocol.extensions == []
            await ws.send("x" * 1000)
            assert await ws.recv() == "x" * 1000

    run(go())
    with RawClient(srv.port, extensions="permessage-deflate") as c:
        assert "sec-websocket-extensions" not in c.headers
        c.send_frame(TEXT, b"y" * 1000)
        f = c.read_frame()
        assert (f.opcode, f.rsv, f.payload) == (TEXT, 0, b"y" * 1000)


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; no_such_param",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ],
)
def test_bad_offer_declined_handshake_succeeds(corecast, offer):
    srv = corecast()
    with RawClient(srv.port, extensions=offer) as c:
        assert "sec-websocket-extensions" not in c.headers, c.headers
        c.send_frame(TEXT, b"z" * 1000)
        f = c.read_frame()
        assert (f.opcode, f.rsv, f.payload) == (TEXT, 0, b"z" * 1000)


def test_bad_offer_then_good_offer(corecast):
    """RFC 7692 §5.1: a declined offer does not stop the server from accepting the next one."""
    srv = corecast()
    offer = "permessage-deflate; server_max_window_bits=7, permessage-deflate"
    with RawClient(srv.port, extensions=offer) as c:
        assert c.headers.get("sec-websocket-extensions") == (
            "permessage-deflate; server_no_context_takeover"
        )


# --- round trips with websockets -----------------------------------------------------------------


@pytest.mark.parametrize("min_size", ["0", "default"])
@pytest.mark.parametrize("mode", MODES)
def test_echo_sizes(corecast, mode, min_size):
    flags = ["--compression", mode]
    if min_size != "default":
        flags += ["--compression-min-size", min_size]
    srv = corecast(*flags)

    async def go():
        async with ws_connect(srv.url()) as ws:
            assert ext_header(ws) is not None
            for i, n in enumerate(SIZES):
                text, data = text_of(n, seed=i), binary_of(n, seed=i)
                await ws.send(text)
                got = await ws.recv()
                assert isinstance(got, str) and got == text, f"text of {n} bytes"
                await ws.send(data)
                got = await ws.recv()
                assert isinstance(got, bytes) and got == data, f"binary of {n} bytes"

    run(go())


@pytest.mark.parametrize("mode", MODES)
def test_many_messages_in_a_row(corecast, mode):
    """Context takeover on both sides (dedicated): each message may refer back to earlier ones.
    Sent in a burst, then read, so several are in flight in each direction."""
    srv = corecast("--compression", mode, "--compression-min-size", "0")
    msgs = [
        (f"message {i}: " + text_of(200 + (i * 37) % 3000, seed=i % 7)) if i % 3 else binary_of(i * 13, seed=i % 5)
        for i in range(600)
    ]

    async def go():
        async with ws_connect(srv.url()) as ws:
            for burst in range(0, len(msgs), 100):
                for m in msgs[burst : burst + 100]:
                    await ws.send(m)
                for m in msgs[burst : burst + 100]:
                    assert await ws.recv() == m

    run(go())


# --- the wire, seen by a raw client --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_server_frames_really_compressed(corecast, mode):
    srv = corecast("--compression", mode)
    with RawClient(srv.port, extensions="permessage-deflate") as c:
        header = c.headers.get("sec-websocket-extensions", "")
        assert header.startswith("permessage-deflate"), header
        inflater = zlib.decompressobj(-15)  # one window for the whole connection
        for i in range(5):
            payload = (f"{i}: " + "hello, compressed world " * 60).encode()
            c.send_compressed(TEXT, payload)
            f = c.read_frame()
            assert f.fin and f.opcode == TEXT and f.rsv == RSV1, f"message {i}: RSV1 not set"
            assert len(f.payload) < len(payload) // 4
            if mode == "shared":
                # server_no_context_takeover: every message inflates on its own.
                assert rawws.inflate_message(f.payload) == payload
            assert rawws.inflate_message(f.payload, d=inflater) == payload
        # A client message sent uncompressed (RSV1 clear) is fine too and is echoed compressed.
        payload = b"plain " * 100
        c.send_frame(TEXT, payload)
        f = c.read_frame()
        assert f.rsv == RSV1 and rawws.inflate_message(f.payload, d=inflater) == payload
        # Below --compression-min-size (default 128) the server sends plain frames.
        c.send_compressed(BINARY, b"tiny")
        f = c.read_frame()
        assert (f.opcode, f.rsv, f.payload) == (BINARY, 0, b"tiny")


@pytest.mark.parametrize("mode", MODES)
def test_client_context_takeover_is_inflated(corecast, mode):
    """The client keeps its compression context across messages (no client_no_context_takeover
    offered): later frames refer back into earlier ones and the server must keep the window."""
    srv = corecast("--compression", mode, "--compression-min-size", "0")
    with RawClient(srv.port, extensions="permessage-deflate") as c:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        inflater = zlib.decompressobj(-15)
        base = compressible(6000, seed=3)
        for i in range(4):
            payload = base + str(i).encode()
            data = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)
            assert data.endswith(rawws.SYNC_TAIL)
            if i:
                assert len(data) < 100, "the client's frame should refer back to the last one"
            c.send_frame(TEXT, data[:-4], rsv=RSV1)
            f = c.read_frame()
            assert f.rsv == RSV1
            if mode == "shared":
                assert rawws.inflate_message(f.payload) == payload
            assert rawws.inflate_message(f.payload, d=inflater) == payload


@pytest.mark.parametrize("bits", [9, 10, 12, 13])
@pytest.mark.parametrize("mode", MODES)
def test_server_max_window_bits_accepted(corecast, mode, bits):
    """The parameter is echoed and a message inflates with `zlib.decompressobj(wbits=-N)` (which
    checks distances only against what it inflated in earlier calls: see the strict test below)."""
    srv = corecast("--compression", mode)
    with RawClient(srv.port, extensions=f"permessage-deflate; server_max_window_bits={bits}") as c:
        header = c.headers.get("sec-websocket-extensions", "")
        assert f"server_max_window_bits={bits}" in [p.strip() for p in header.split(";")], header
        payload = text_of(5000).encode()
        c.send_compressed(TEXT, payload)
        f = c.read_frame()
        assert f.rsv == RSV1
        assert zlib.decompressobj(wbits=-bits).decompress(f.payload + rawws.SYNC_TAIL) == payload


@pytest.mark.parametrize("bits", [9, 10, 12, 13])
@pytest.mark.parametrize("mode", MODES)
def test_server_max_window_bits_honoured(corecast, mode, bits):
    """RFC 7692 §7.1.2.1: with server_max_window_bits=N accepted, the server "MUST NOT" use an
    LZ77 sliding window longer than 2^N bytes. The payload repeats an 8 KiB block, so the
    compressor is tempted to refer back 8 KiB; `inflate_strict` fails on any back-reference
    further than 2^N (+16) bytes, within a message or into an earlier one."""
    srv = corecast("--compression", mode)
    with RawClient(srv.port, extensions=f"permessage-deflate; server_max_window_bits={bits}") as c:
        header = c.headers.get("sec-websocket-extensions", "")
        assert f"server_max_window_bits={bits}" in [p.strip() for p in header.split(";")], header
        inflater = zlib.decompressobj(-bits)
        full_window = zlib.decompressobj(-15)
        for i in range(3):
            payload = compressible(20000 + i, seed=i % 2)
            c.send_compressed(TEXT, payload)
            f = c.read_frame()
            assert f.rsv == RSV1
            # The message itself is fine with a 32 KiB window: only the distance is wrong.
            assert rawws.inflate_message(f.payload, d=full_window) == payload
            try:
                got = rawws.inflate_strict(f.payload, bits, d=inflater)
            except zlib.error as e:
                pytest.fail(
                    f"message {i} ({len(payload)} bytes, {mode} mode) refers back further than "
                    f"the negotiated 2^{bits} bytes: zlib with wbits=-{bits} says {e!r}"
                )
            assert got == payload


def test_websockets_small_server_window_dedicated(corecast):
    """A `websockets` client limiting the server to a 1 KiB window keeps working across messages
    with context takeover (no back-reference may reach further than 1 KiB)."""
    srv = corecast("--compression", "dedicated")
    offer = [ClientPerMessageDeflateFactory(server_max_window_bits=10)]

    async def go():
        async with ws_connect(srv.url(), compression=None, extensions=offer) as ws:
            assert "server_max_window_bits=10" in ext_header(ws)
            for i in range(3):
                m = compressible(20000, seed=i % 2).decode()
                await ws.send(m)
                assert await ws.recv() == m

    run(go())


# --- protocol errors ------------------------------------------------------------------------------


def test_zip_bomb_closes_1009(corecast):
    srv = corecast("--max-message", "1MiB", "--max-frame", "1MiB")
    bomb = rawws.deflate_message(b"\0" * (10 << 20), level=9)
    assert len(bomb) < 12000, len(bomb)
    with RawClient(srv.port, extensions="permessage-deflate") as c:
        c.send_frame(BINARY, bomb, rsv=RSV1)
        assert c.read_close().close_code() == 1009
    # The server is unharmed.
    with RawClient(srv.port, extensions="permessage-deflate") as c:
        c.send_compressed(TEXT, b"ok" * 100)
        assert rawws.inflate_message(c.read_frame().payload) == b"ok" * 100


def test_inflated_invalid_utf8_closes_1007(corecast):
    srv = corecast()
    with RawClient(srv.port, extensions="permessage-deflate") as c:
        c.send_compressed(TEXT, b"valid start " * 20 + b"\xc3\x28 then invalid")
        assert c.read_close().close_code() == 1007


def test_corrupt_deflate_stream_closes_1007(corecast):
    srv = corecast()
    with RawClient(srv.port, extensions="permessage-deflate") as c:
        c.send_frame(BINARY, b"\xff\xff\xff\xff garbage", rsv=RSV1)
        assert c.read_close().close_code() == 1007


@pytest.mark.parametrize(
    "flags,offer",
    [((), None), (("--compression", "off"), "permessage-deflate")],
    ids=["not-offered", "compression-off"],
)
def test_rsv1_without_deflate_closes_1002(corecast, flags, offer):
    srv = corecast(*flags)
    with RawClient(srv.port, extensions=offer) as c:
        assert "sec-websocket-extensions" not in c.headers
        c.send_frame(TEXT, rawws.deflate_message(b"hello " * 50), rsv=RSV1)
        assert c.read_close().close_code() == 1002


def test_rsv1_on_control_frame_closes_1002(corecast):
    srv = corecast()
    with RawClient(srv.port, extensions="permessage-deflate") as c:
        c.send_frame(rawws.PING, b"", rsv=RSV1)
        assert c.read_close().close_code() == 1002


# --- broadcast -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_broadcast_mixed_clients(corecast, mode):
    """5 clients with permessage-deflate (two of them with server_max_window_bits=10, so the
    shared fan-out needs two encodings) and 2 without: every message reaches all 7 intact."""
    srv = corecast("--compression", mode)
    small_window = [ClientPerMessageDeflateFactory(server_max_window_bits=10)]
    kinds = ["deflate"] * 3 + ["deflate-10"] * 2 + ["plain"] * 2
    messages = ["hi", text_of(5000, seed=1), binary_of(3000, seed=2), compressible(30000).decode()]

    async def go():
        clients = []
        try:
            for k in kinds:
                if k == "plain":
                    ws = await ws_connect(srv.url("/broadcast"), compression=None)
                    assert ext_header(ws) is None
                elif k == "deflate-10":
                    ws = await ws_connect(srv.url("/broadcast"), extensions=small_window, compression=None)
                    assert "server_max_window_bits=10" in ext_header(ws)
                else:
                    ws = await ws_connect(srv.url("/broadcast"))
                    assert ext_header(ws).startswith("permessage-deflate")
                clients.append(ws)
            # Joining is done by the handshake; a round trip makes sure every client is in.
            await clients[0].send("sync")
            for ws in clients:
                assert await ws.recv() == "sync"
            for m in messages:
                await clients[5].send(m)  # from a client without compression
            for i, ws in enumerate(clients):
                for m in messages:
                    assert await ws.recv() == m, f"client {i} ({kinds[i]})"
        finally:
            await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    run(go())
