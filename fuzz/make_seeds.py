#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/seeds/<target>/ (run from fuzz/: `python3 make_seeds.py`).

Each file follows its target's input layout (see the //! comment of fuzz_targets/<target>.rs):
a few configuration and split bytes, then the bytes a peer sends.
"""
import os
import struct
import zlib

KEY = b"\x37\xfa\x21\x3d"


def frame(op, payload, fin=True, key=KEY, rsv=0, masked=True, lenfield=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload) if lenfield is None else lenfield
    mb = 0x80 if masked else 0
    if n < 126:
        h = bytes([b0, mb | n])
    elif n < 65536:
        h = bytes([b0, mb | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, mb | 127]) + struct.pack(">Q", n)
    if masked:
        h += key
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return h + payload


def write(target, name, data):
    os.makedirs(f"seeds/{target}", exist_ok=True)
    with open(f"seeds/{target}/{name}", "wb") as f:
        f.write(data)


def fr(name, cfg, sizes, stream):
    write("frames", name, bytes([cfg, len(sizes)] + sizes) + stream)


def hs(name, cfg, splits, req):
    write("handshake", name, bytes([cfg, len(splits)]) + b"".join(struct.pack("<H", s) for s in splits) + req)


def inf(name, cfg, limit, shape, sizes, plain, messages):
    """cfg: bits 0-1 limit shift, bit 2 inflate reset, bit 3 round-trip reset, bits 4-7 level;
    limit: u16 (max = 1 + (limit << shift)); shape: bits 0-2 window bits - 8, bits 3-5 number
    of sizes (taken from `sizes`), bits 6-7 plaintext repeat."""
    shape |= len(sizes) << 3
    head = bytes([cfg]) + struct.pack("<H", limit) + bytes([shape])
    head += b"".join(struct.pack("<H", s) for s in sizes) + struct.pack("<H", len(plain)) + plain
    write("inflate", name, head + b"".join(struct.pack("<H", len(m)) + m for m in messages))


def deflate_messages(msgs, level=6, takeover=True):
    """Raw deflate, one sync flush per message, trailing 00 00 ff ff removed (RFC 7692)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = []
    for m in msgs:
        if not takeover:
            c = zlib.compressobj(level, zlib.DEFLATED, -15)
        d = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        assert d.endswith(b"\x00\x00\xff\xff")
        out.append(d[:-4])
    return out


def u8(name, sizes, text):
    write("utf8", name, bytes([len(sizes)] + sizes) + text)


HE = "hé".encode()
fr("rfc-masked-hello", 0, [], frame(1, b"Hello"))
fr("fragmented-text-with-ping", 0, [2, 5],
   frame(1, HE[:2], fin=False) + frame(9, b"p") + frame(0, HE[2:], fin=False) + frame(10, b"") + frame(0, b"llo"))
fr("close-1000-bye", 0, [3], frame(8, struct.pack(">H", 1000) + b"bye"))
fr("binary-200-16bit-len", 0, [7, 64, 1], frame(2, bytes(range(200))))
fr("text-then-binary-then-close", 0x08, [1, 13], frame(1, "κόσμε".encode()) + frame(2, b"\x00\xff") + frame(8, b""))
fr("invalid-unmasked", 0, [], frame(1, b"Hello", masked=False))
fr("invalid-utf8-mid-frame", 0, [4], frame(1, b"abc\xffdef"))
fr("invalid-close-code-1005", 0, [], frame(8, struct.pack(">H", 1005)))
fr("invalid-continuation-first", 0, [], frame(0, b"x"))
fr("rsv1-compressed-fragments", 0, [5], frame(1, b"\xff\x00", fin=False, rsv=4) + frame(0, b"\x01", fin=True))
fr("client-side-unmasked", 0x20, [2], frame(1, b"Hello", masked=False) + frame(9, b"", masked=False))
fr("too-big-64bit-len", 0, [], frame(2, b"", lenfield=1 << 40)[:14])
fr("message-too-big-fragments", 0x05, [],
   frame(2, bytes(40), fin=False) + frame(0, bytes(40), fin=False) + frame(0, bytes(40)))
fr("partial-frame-at-end", 0, [1], frame(1, b"Hello") + frame(1, b"wor")[:-1])

RFC = (b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
       b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n"
       b"Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n")
BROWSER = (b"GET /ws?room=lobby HTTP/1.1\r\nHost: localhost:8080\r\nConnection: Upgrade\r\nPragma: no-cache\r\n"
           b"Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
           b"(KHTML, like Gecko) Chrome/124.0 Safari/537.36\r\n"
           b"Upgrade: websocket\r\nOrigin: http://localhost:8080\r\nSec-WebSocket-Version: 13\r\n"
           b"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
           b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
           b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
hs("rfc-request", 0, [], RFC)
hs("rfc-request-split", 0, [1, 20, 150], RFC)
hs("browser-request", 0, [100], BROWSER)
hs("request-with-frame-after", 0, [], RFC + bytes([0x81, 0x80, 1, 2, 3, 4]))
hs("post", 0, [], RFC.replace(b"GET", b"POST"))
hs("http10", 0, [], RFC.replace(b"HTTP/1.1", b"HTTP/1.0"))
hs("version-8", 0, [], RFC.replace(b"Version: 13", b"Version: 8"))
hs("bad-key", 0, [], RFC.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"dGhlIHNhbXBsZQ=="))
hs("no-upgrade", 0, [], b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
hs("garbage", 0, [], b"GARBAGE\r\n\r\n")
hs("small-limit-too-large", 1, [], RFC)
hs("lf-only", 0, [], RFC.replace(b"\r\n", b"\n"))

u8("greek", [], "κόσμε".encode())
u8("mixed-split", [1, 2, 3], "Hello-µ@ßöäüàá-UTF-8!! 𝄞 \U0010ffff end".encode())
u8("surrogate", [1], b"ab\xed\xa0\x80")
u8("above-max", [2], b"\xf4\x90\x80\x80")
u8("truncated", [], b"abc\xe2\x82")
u8("overlong", [0, 1], b"\xc0\xaf")
u8("lone-continuation", [], b"\x80")
u8("empty", [], b"")

CHAT = b'{"type":"message","room":"lobby","user":"alice","text":"hello, hello, is anyone here?"}'
inf("rfc-hello", 0x00, 200, 0, [], b"Hello", [bytes([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])])
inf("rfc-hello-takeover", 0x00, 200, 0, [], b"",
    [bytes([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), bytes([0xf2, 0x00, 0x11, 0x00, 0x00])])
# RFC 7692 §7.2.3.3: a stored block, and one with BFINAL (trailing bytes after it).
inf("rfc-stored-bfinal", 0x04, 200, 0, [], b"Hello",
    [bytes([0x00, 0x05, 0x00, 0xfa, 0xff]) + b"Hello",
     bytes([0x01, 0x05, 0x00, 0xfa, 0xff]) + b"Hello",
     bytes([0x01, 0x05, 0x00, 0xfa, 0xff]) + b"Hello" + b"\x00"])
inf("chat-takeover", 0x60, 4096, 0x07, [len(CHAT), len(CHAT)], CHAT * 3, deflate_messages([CHAT] * 3))
inf("chat-no-takeover", 0x1c, 4096, 0x02, [40], CHAT, deflate_messages([CHAT, CHAT[::-1]], 1, False))
inf("levels-9-window-8", 0x98, 60, 0x40, [100, 0, 300], bytes(range(256)) * 2,
    deflate_messages([bytes(range(256)) * 4, b"", b"x" * 300], 9))
inf("empty-messages", 0x00, 0, 0, [0, 0], b"", [b"\x00", b"\x00", b""])
# 1 MiB of zeros: a zip bomb for any limit; also just under and over a small limit.
inf("zip-bomb-1mib", 0x07, 0xffff, 0, [], b"", deflate_messages([bytes(1 << 20)], 9))
inf("zip-bomb-at-limit", 0x06, 2047, 0, [], b"", deflate_messages([bytes(8189), bytes(8190)], 9, False))
inf("garbage", 0x04, 100, 0, [], b"\xde\xad\xbe\xef", [b"\xff\xff\xff", b"\x02\x00", bytes(range(200, 256))])
inf("truncated", 0x00, 1000, 0, [], b"", [deflate_messages([CHAT * 4])[0][:-5], deflate_messages([CHAT])[0]])
# A distance beyond the message start (refers to nothing without context takeover).
far = deflate_messages([CHAT, CHAT], 6, True)
inf("far-distance-no-takeover", 0x04, 1000, 0, [], b"", far)
inf("fixed-huffman-bfinal", 0x00, 1000, 0, [], b"", [zlib.compress(CHAT, 9)[2:-4]])
# Fixed Huffman, BFINAL: literal 'a', then a match of 3 at distance 5 with 1 byte of history.
# Invalid ("distance too far back" in zlib); see TOLERATE_DISTANCE_TOO_FAR_BACK.
inf("distance-before-start", 0x04, 100, 0, [], b"a", [bytes([0x4b, 0x04, 0x12, 0x00])])
# Dynamic blocks whose distance code is a single code of 1 bit (valid) and of 2 bits (zlib:
# "invalid distances set"; puff.c accepts it). Under a 1-byte limit the inflater fails with
# Corrupt, a puff-like reference with TooBig: the CI crash of 2026-12-01.
inf("single-distance-code", 0x04, 0, 0, [], b"",
    [bytes.fromhex("05c0010900000080a0adf67f446a"), bytes.fromhex("05c0010900000080a0adf67f4469")])


# chat_command: byte 0 picks the limits (bits 0-1: max content 2000/0/3/64 characters; bits
# 2-3: history size 100/0/1/1000), then one client message.
def cc(name, msg, cfg=0):
    write("chat_command", name, bytes([cfg]) + (msg.encode() if isinstance(msg, str) else msg))


cc("chat", '{"type":"chat","room":"backend","content":"hi","id":"c1"}')
cc("chat-default-room", '{"type":"chat","content":"hi"}')
cc("join-since", '{"type":"room.join","room":"backend","since":41,"id":7}')
cc("join", '{"type":"room.join","room":"backend","since":null}')
cc("leave", '{"type":"room.leave","room":"backend","id":"l"}')
cc("private", '{"type":"private","to":"auth0|123","content":"hi","id":"p1"}')
cc("typing", '{"type":"typing","room":"backend"}')
cc("room-list", '{"type":"room.list","id":-3}')
cc("user-list", '{"type":"user.list","room":"backend","id":1.5}')
cc("history", '{"type":"history","room":"backend","limit":50}')
cc("history-default-small", '{"type":"history","room":"backend"}', 0x04)
cc("history-limit-1000", '{"type":"history","room":"backend","limit":1000}', 0x0c)
cc("ping", '{"type":"ping"}')
cc("escapes", r'{"ty\u0070e":"chat","content":"q\"b\\s\/n\nr\rt\tb\bf\fu\u0001\u001f\u2028\u2029\ud83d\ude00\u00e9 raw é😀𝄞","id":"i\"\u2028\ud834\udd1e"}')
cc("unknown-fields-nested", '{"x":{"type":"chat","y":[1,{"z":[[[]]]}]},"type":"ping","n":-1.5e-3,"t":true,"f":false,"u":null}')
cc("ids-float-exp", '{"type":"ping","id":1e300}')
cc("ids-neg-zero", '{"type":"ping","id":-0}')
cc("ids-u64-max", '{"type":"ping","id":18446744073709551615}')
cc("ids-i64-min", '{"type":"ping","id":-9223372036854775808}')
cc("whitespace", ' \t\r\n{ "type" : "ping" , "id" : "w" } \n')
# bad_json
cc("bad-json-empty", "")
cc("bad-json-text", "hello")
cc("bad-json-truncated", '{"type":"chat","content":"hi"')
cc("bad-json-trailing", '{"type":"ping"}{}')
cc("bad-json-array", '[{"type":"ping","id":1}]')
cc("bad-json-string", '"ping"')
cc("bad-json-lone-surrogate", r'{"type":"chat","content":"\ud800x","id":"s"}')
cc("bad-json-lone-low-surrogate", r'{"type":"chat","content":"\udc00"}')
cc("bad-json-invalid-utf8", b'{"type":"chat","content":"\xff\xfe","id":"u"}')
cc("bad-json-raw-control", b'{"type":"chat","content":"a\tb"}')
cc("bad-json-huge-int", '{"type":"ping","id":18446744073709551616}')
cc("bad-json-huge-float", '{"type":"ping","id":1e400}')
cc("bad-json-deep", "[" * 200 + "]" * 200)
cc("bad-json-bom", b'\xef\xbb\xbf{"type":"ping"}')
# bad_request
cc("bad-request-no-type", '{"id":"x"}')
cc("bad-request-type-number", '{"type":5,"id":"x"}')
cc("bad-request-unknown-type", '{"type":"Chat","id":"x"}')
cc("bad-request-id-bool", '{"type":"ping","id":true}')
cc("bad-request-duplicate-id", '{"type":"ping","id":"a","id":"b"}')
cc("bad-request-duplicate-type", '{"type":"ping","type":"ping","id":1}')
cc("bad-request-room-missing", '{"type":"room.join","id":"j"}')
cc("bad-request-room-invalid", '{"type":"chat","room":"a b","content":"hi"}')
cc("bad-request-room-65", '{"type":"typing","room":"%s"}' % ("r" * 65))
cc("bad-request-room-ill-typed", '{"type":"user.list","room":["general"]}')
cc("bad-request-content-missing", '{"type":"chat","id":"c"}')
cc("bad-request-content-empty", '{"type":"chat","content":""}')
cc("bad-request-content-number", '{"type":"private","to":"v","content":1}')
cc("bad-request-to-missing", '{"type":"private","content":"hi"}')
cc("bad-request-to-control", r'{"type":"private","to":"a\nb","content":"hi"}')
cc("bad-request-since-negative", '{"type":"room.join","room":"r","since":-1}')
cc("bad-request-since-float", '{"type":"room.join","room":"r","since":1.0}')
cc("bad-request-limit-zero", '{"type":"history","room":"r","limit":0,"id":2}')
cc("bad-request-limit-over", '{"type":"history","room":"r","limit":101}')
cc("bad-request-limit-string", '{"type":"history","room":"r","limit":"5"}')
cc("bad-request-no-history", '{"type":"history","room":"r","limit":1}', 0x04)
# too_long
cc("too-long-2001", '{"type":"chat","content":"%s","id":"t"}' % ("a" * 2001))
cc("too-long-emoji-2000-ok", '{"type":"chat","content":"%s"}' % ("😀" * 2000))
cc("too-long-limit-3", '{"type":"private","to":"v","content":"\\u00e9\\u00e9\\u00e9\\u00e9","id":4}', 0x02)
cc("too-long-limit-0", '{"type":"chat","content":"x"}', 0x01)


# json_writer: byte 0 is the mode (0: text, 1: characters as 3-byte values, 2: a JSON document
# for write_value).
def jw(name, mode, data):
    write("json_writer", name, bytes([mode]) + (data.encode() if isinstance(data, str) else data))


def chars(*cps):
    return b"".join(cp.to_bytes(3, "big") for cp in cps)


jw("text-plain", 0, "hello world")
jw("text-escapes", 0, 'q"b\\s/n\nr\rt\tb\bf\fnul\x00us\x1fdel\x7f\u2028\u2029\u2027\u202a é😀𝄞')
jw("text-all-controls", 0, bytes(range(0x20)))
jw("text-invalid-utf8", 0, b"a\xff\xfeb\xc3(\xe2\x80")
jw("text-e2-prefixes", 0, "\u2020\u2028\u2190\u20ac\u2029".encode() + b"\xe2\x80")
jw("text-empty", 0, b"")
jw("chars-separators", 1, chars(0x2028, 0x2029, 0x22, 0x5C, 0x0, 0x1F, 0x7F, 0x10FFFF, 0x1F600, 0xFFFD))
jw("chars-surrogates-skipped", 1, chars(0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0x41))
jw("doc-nested", 2, '{"a":[1,-2,2.5,true,false,null,"x\\u2028\\n"],"b":{},"c":[],"d":{"e":{"f":[[],{}]}}}')
jw("doc-numbers", 2, '[0,-0,1e2,1E-2,-1.5e300,5e-324,18446744073709551615,-9223372036854775808,0.1,1.0]')
jw("doc-escapes", 2, r'{"k\"\\\/":"\u0000\u001f\ud83d\ude00\u00e9","\u2028":1}')
jw("doc-duplicate-keys", 2, '{"a":1,"a":2}')
jw("doc-lone-surrogate", 2, r'["\ud800"]')
jw("doc-huge-int", 2, "[18446744073709551616]")
jw("doc-deep", 2, "[" * 300 + "]" * 300)
jw("doc-scalar", 2, '"just a string"')
jw("doc-invalid", 2, "{oops")
