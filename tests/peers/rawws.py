"""A minimal blocking WebSocket client over a raw socket, for what `websockets` won't send.

It writes the upgrade request itself (any `Sec-WebSocket-Extensions` offer), sends frames with
any RSV bits and payload, and reads the server's frames as they are on the wire, so a test can
see whether a frame was really compressed (RSV1) and inflate it itself with `zlib`.
"""

import base64
import os
import socket
import struct
import zlib
from dataclasses import dataclass

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
RSV1 = 0x40
SYNC_TAIL = b"\x00\x00\xff\xff"


def deflate_message(payload: bytes, level: int = 6, wbits: int = 15) -> bytes:
    """RFC 7692 §7.2.1: raw deflate, sync flush, trailing 00 00 ff ff removed."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(SYNC_TAIL)
    return data[:-4]


def inflate_message(data: bytes, wbits: int = 15, d=None) -> bytes:
    """RFC 7692 §7.2.2: append 00 00 ff ff and inflate (with `d` to keep a context)."""
    d = d or zlib.decompressobj(-wbits)
    return d.decompress(data + SYNC_TAIL)


def inflate_strict(data: bytes, wbits: int, d=None, step: int = 16) -> bytes:
    """Like `inflate_message`, but zlib sees at most `step` output bytes per call, so a
    back-reference further than 2^wbits (+ step) fails with "invalid distance too far back".
    (zlib checks a distance against its window *plus the current output buffer*: inflating a
    whole message in one call would accept any distance within the message.)"""
    d = d or zlib.decompressobj(-wbits)
    out = bytearray()
    buf = data + SYNC_TAIL
    while buf:
        out += d.decompress(buf, step)
        buf = d.unconsumed_tail
    while True:  # output still buffered inside zlib
        more = d.decompress(b"", step)
        if not more:
            break
        out += more
    return bytes(out)


@dataclass
class Frame:
    fin: bool
    rsv: int  # the three RSV bits, in place (RSV1 = 0x40)
    opcode: int
    payload: bytes

    @property
    def rsv1(self) -> bool:
        return bool(self.rsv & RSV1)

    def close_code(self):
        assert self.opcode == CLOSE, f"not a close frame: {self}"
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


class RawClient:
    def __init__(self, port: int, path: str = "/echo", extensions: str = None, timeout: float = 10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        head = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        if extensions is not None:
            head += f"Sec-WebSocket-Extensions: {extensions}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        assert self.status_line.startswith("HTTP/1.1 101"), self.status_line

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode: int, payload: bytes, rsv: int = 0, fin: bool = True):
        mask = os.urandom(4)
        head = bytes([(0x80 if fin else 0) | rsv | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        m = int.from_bytes(mask * (n // 4 + 1), "little")
        masked = (int.from_bytes(payload, "little") ^ m).to_bytes(n + 4, "little")[:n] if n else b""
        self.sock.sendall(head + mask + masked)

    def send_compressed(self, opcode: int, payload: bytes, **kw):
        self.send_frame(opcode, deflate_message(payload, **kw), rsv=RSV1)

    def read_frame(self) -> Frame:
        b0, b1 = self._take(2)
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return Frame(bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, self._take(n))

    def read_close(self) -> Frame:
        """Skips data frames until the server's close frame."""
        while True:
            f = self.read_frame()
            if f.opcode == CLOSE:
                return f

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
