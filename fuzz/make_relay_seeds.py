#!/usr/bin/env python3
"""Writes the seed corpora of the Redis relay's targets, fuzz/seeds/resp/ and
fuzz/seeds/relay_envelope/ (run from fuzz/: `python3 make_relay_seeds.py`).

Each file follows its target's input layout (see the //! comment of fuzz_targets/<target>.rs).
Files named crash-* are fuzzer finds, kept by hand; this script does not touch them.
"""
import os
import struct


def write(target, name, data):
    os.makedirs(f"seeds/{target}", exist_ok=True)
    with open(f"seeds/{target}/{name}", "wb") as f:
        f.write(data)


# ---- resp -------------------------------------------------------------------------------------
# Layout: [cfg] ([cfg2] if cfg & 0x80) [n] [n x u16 cut] stream

BULKS = [0, 1, 2, 5, 16, 64, 300, 4096]
LINES = [0, 1, 2, 3, 8, 20, 64, 1000]
ARRAYS = [0, 1, 2, 3, 7, 16, 100, 1 << 20]


def resp(name, stream, cuts=(), small=None):
    """small: (bulk index, line index, depth, array index) for small limits."""
    if small is None:
        head = b"\x00"
    else:
        b, l, d, a = small
        head = bytes([0x80 | b | (l << 3), d | (a << 4)])
    head += bytes([len(cuts)]) + b"".join(struct.pack("<H", c) for c in cuts)
    write("resp", name, head + stream)


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def arr(*items):
    return b"*%d\r\n" % len(items) + b"".join(items)


def command(*args):
    return arr(*(bulk(a) for a in args))


# Every type, as Redis sends them.
resp("simple", b"+OK\r\n")
resp("simple-empty", b"+\r\n")
resp("error", b"-ERR unknown command 'FOO', with args beginning with: \r\n")
resp("error-wrongtype", b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
resp("error-noscript", b"-NOSCRIPT No matching script. Please use EVAL.\r\n")
resp("integers", b":0\r\n:1\r\n:-1\r\n:+7\r\n:0042\r\n:-0\r\n")
resp("integer-max", b":9223372036854775807\r\n")
resp("integer-min", b":-9223372036854775808\r\n")
resp("bulk", bulk(b"hello"))
resp("bulk-empty", b"$0\r\n\r\n")
resp("bulk-binary-crlf", bulk(bytes(range(256)) + b"\r\n$-1\r\n*1\r\n"))
resp("bulk-nil", b"$-1\r\n")
resp("array-nil", b"*-1\r\n")
resp("array-empty", b"*0\r\n")
resp("array-nested", arr(b":1\r\n", b"$-1\r\n", arr(b"+a\r\n", arr(bulk(b"z"), b"*-1\r\n")), b"*0\r\n"))
resp("array-error-inside", arr(b":1\r\n", b"-WRONGTYPE x\r\n", b"+QUEUED\r\n"))
resp("depth-8", b"*1\r\n" * 8 + b":1\r\n")
resp("eval-reply", arr(b":1\r\n", bulk(b"two"), arr(b":3\r\n", arr(bulk(b"four"), b"$-1\r\n")),
                       b"$-1\r\n", b"+fine\r\n", b"-ERR boom\r\n", b"*0\r\n"))
resp("pipeline", b"".join(b":%d\r\n" % i for i in range(1, 60)) + b"+OK\r\n" + bulk(b"59"))
resp("lrange", arr(*(bulk(b"cc1 room node-1 general %d\n{\"seq\":%d}" % (i, i)) for i in range(1, 6))))
resp("transaction", b"+OK\r\n+QUEUED\r\n+QUEUED\r\n" + arr(b":1\r\n", b"-WRONGTYPE Operation\r\n"))
# Pub/sub events.
resp("pubsub-subscribe", arr(bulk(b"subscribe"), bulk(b"corecast:room:general"), b":1\r\n")
     + arr(bulk(b"subscribe"), bulk(b"corecast:user:Ali Veli"), b":2\r\n"))
resp("pubsub-message", arr(bulk(b"message"), bulk(b"corecast:room:general"),
                           bulk(b"cc1 room node-1 general 7\n{\"type\":\"message\",\"text\":\"a\\nb\"}")))
resp("pubsub-pmessage", arr(bulk(b"pmessage"), bulk(b"corecast:*"), bulk(b"corecast:x"), bulk(b"p")))
resp("pubsub-unsubscribe", arr(bulk(b"unsubscribe"), bulk(b"ch"), b":1\r\n")
     + arr(bulk(b"unsubscribe"), b"$-1\r\n", b":0\r\n"))
resp("pubsub-psubscribe", arr(bulk(b"psubscribe"), bulk(b"c*"), b":1\r\n")
     + arr(bulk(b"punsubscribe"), b"$-1\r\n", b":0\r\n"))
resp("pubsub-pong", arr(bulk(b"pong"), b"$0\r\n\r\n"))
resp("command-as-reply", command(b"EVALSHA", b"a" * 40, b"1", b"k", b"-5"))

# Cut into pieces.
s = arr(bulk(b"message"), bulk(b"ch"), bulk(b"payload\r\n")) + b"+OK\r\n:12345\r\n$-1\r\n"
resp("cut-everywhere", s, cuts=(1, 3, 4, 5, 17, 30, 31, 45))
resp("cut-inside-crlf", b"+OK\r\n$5\r\nhello\r\n", cuts=(4, 14, 15))
resp("cut-bulk", bulk(b"x" * 200), cuts=(2, 5, 6, 100, 205, 206))

# Malformed.
resp("bad-type-byte", b"!oops\r\n")
resp("bad-type-after-replies", b"+OK\r\n:1\r\n#t\r\n")
resp("bad-type-resp3-map", b"%1\r\n+a\r\n+b\r\n")
resp("bad-type-in-array", arr(b":1\r\n", b"_\r\n"))
resp("bad-type-crlf", b"\r\n")
resp("lf-only", b"+OK\n")
resp("cr-not-lf", b"+OK\rX")
resp("cr-inside", b"+O\rK\r\n")
resp("lf-inside", b"-E\nRR\r\n")
resp("length-lf-only", b"$3\nabc\r\n")
resp("cr-at-end", b"+OK\r")
resp("int-empty", b":\r\n")
resp("int-sign-only", b":-\r\n")
resp("int-space", b": 1\r\n")
resp("int-trailing", b":1a\r\n")
resp("int-double-sign", b":--1\r\n")
resp("int-hex", b":0x10\r\n")
resp("int-overflow", b":9223372036854775808\r\n")
resp("int-underflow", b":-9223372036854775809\r\n")
resp("int-long", b":" + b"9" * 40 + b"\r\n")
resp("int-leading-zeros", b":" + b"0" * 100 + b"1\r\n")
resp("len-bad", b"$abc\r\n")
resp("len-empty", b"*\r\n")
resp("len-overflow", b"$99999999999999999999\r\n")
resp("len-minus-2", b"$-2\r\n")
resp("array-len-minus-2", b"*-2\r\n")
resp("len-i64-min", b"$-9223372036854775808\r\n")
resp("bulk-too-long-data", b"$3\r\nabcd\r\n")
resp("bulk-too-short-data", b"$3\r\nab\r\n\r\n")
resp("bulk-no-crlf", b"$0\r\nXX")
resp("bulk-truncated", b"$10\r\nabc")
resp("array-truncated", b"*3\r\n:1\r\n:2\r\n")

# Over the default limits.
resp("bulk-over-64mib", b"$67108865\r\n")
resp("bulk-at-64mib-header", b"$67108864\r\nabc")
resp("array-over-1mi", b"*1048577\r\n")
resp("array-declared-huge", b"*1048576\r\n" * 8 + b":1\r\n")
resp("too-deep", b"*1\r\n" * 9 + b":1\r\n")
resp("too-deep-nil", b"*1\r\n" * 8 + b"*-1\r\n")
resp("line-long", b"+" + b"x" * 3000 + b"\r\n")

# Small limits: (bulk index, line index, depth, array index).
resp("small-bulk-at-limit", bulk(b"12345"), small=(3, 7, 8, 7))
resp("small-bulk-over", bulk(b"123456"), small=(3, 7, 8, 7))
resp("small-bulk-zero", b"$0\r\n\r\n$1\r\nx\r\n", small=(0, 7, 8, 7))
resp("small-line-at-limit", b"+12345678\r\n", small=(7, 4, 8, 7))
resp("small-line-over", b"+123456789", small=(7, 4, 8, 7))
resp("small-line-zero", b"+\r\n:1\r\n", small=(7, 0, 8, 7))
resp("small-line-cr-at-limit", b"+12345678\r", small=(7, 4, 8, 7))
resp("small-int-over-line", b":000000001\r\n", small=(7, 4, 8, 7))
resp("small-array-at-limit", arr(b":1\r\n", b":2\r\n", b":3\r\n"), small=(7, 7, 8, 3))
resp("small-array-over", arr(b":1\r\n", b":2\r\n", b":3\r\n", b":4\r\n"), small=(7, 7, 8, 3))
resp("small-depth-0", b"*0\r\n", small=(7, 7, 0, 7))
resp("small-depth-2", arr(arr(b":1\r\n")) + arr(arr(arr())), small=(7, 7, 2, 7))
resp("small-depth-bad-len", b"*1\r\n*1\r\n*x\r\n", small=(7, 7, 2, 7))

# ---- relay_envelope ---------------------------------------------------------------------------
# Mode 0: an envelope as received. Mode 1: parts to write, split at 0xff.


def env(name, data):
    write("relay_envelope", name, b"\x00" + data)


def parts(name, kind, origin, room=b"", seq=0, user=b"", payload=b""):
    seq_bytes = struct.pack("<Q", seq).rstrip(b"\x00")
    assert b"\xff" not in seq_bytes and all(b"\xff" not in p for p in (origin, room, user))
    data = b"\xff".join([bytes([kind]), origin, room, seq_bytes, user, payload])
    write("relay_envelope", name, b"\x01" + data)


env("room", b'cc1 room node-1 general 42\n{"type":"message","room":"general","seq":42}')
env("room-seq-0", b"cc1 room n r 0\n")
env("room-seq-max", b"cc1 room n r 18446744073709551615\n{}")
env("presence", b'cc1 presence host:7000 a.b_c-D Ali%20Veli\n{"type":"presence"}')
env("user", b'cc1 user web-1.eu:8080 auth0|123\n{"type":"private"}\n\n')
env("user-escaped-utf8", "cc1 user n %C5%9F%C3%BCkr%C3%BC\n{}".encode())
env("user-percent", b"cc1 user n 100%25%20ok\n")
env("notify", b'cc1 notify n.1 alice\n{"type":"order.created","data":{"order":7}}')
env("disconnect", b"cc1 disconnect N_1 alice\n")
env("payload-binary", b"cc1 user n bob\n" + bytes(range(256)) + b"\ncc1 room x y 1\n")
env("longest-header", b"cc1 presence " + b"o" * 64 + b" " + b"r" * 64 + b" " + b"%20" * 128 + b"\np")
env("empty", b"")
env("no-newline", b"cc1 room n r 1")
env("header-too-long", b"cc1 user n " + b"u" * 1100 + b"\n")
env("version-cc2", b"cc2 room n r 1\n")
env("version-upper", b"CC1 room n r 1\n")
env("version-only", b"cc1\n")
env("kind-empty", b"cc1 \n")
env("kind-unknown", b"cc1 rooms n r 1\n")
env("kind-case", b"cc1 Room n r 1\n")
env("origin-empty", b"cc1 room  r 1\n")
env("origin-slash", b"cc1 room n/1 r 1\n")
env("origin-utf8", "cc1 room né r 1\n".encode())
env("origin-65", b"cc1 user " + b"n" * 65 + b" u\n")
env("room-missing", b"cc1 room n\n")
env("room-colon", b"cc1 room n r:x 1\n")
env("room-65", b"cc1 room n " + b"r" * 65 + b" 1\n")
env("seq-missing", b"cc1 room n r\n")
env("seq-leading-zero", b"cc1 room n r 01\n")
env("seq-plus", b"cc1 room n r +1\n")
env("seq-cr", b"cc1 room n r 1\r\n")
env("seq-overflow", b"cc1 room n r 18446744073709551616\n")
env("extra-field", b"cc1 room n r 1 x\n")
env("trailing-space", b"cc1 room n r 1 \n")
env("double-space", b"cc1 room n r  1\n")
env("user-empty", b"cc1 user n \n")
env("user-escape-plain", b"cc1 user n %41\n")
env("user-escape-lower", b"cc1 user n %c3%a9\n")
env("user-escape-bad-utf8", b"cc1 user n %C3\n")
env("user-escape-short", b"cc1 user n %2\n")
env("user-escape-nonhex", b"cc1 user n %ZZ\n")
env("user-raw-utf8", "cc1 user n é\n".encode())
env("user-control", b"cc1 user n a%09b\n")
env("user-129", b"cc1 user n " + b"u" * 129 + b"\n")
env("presence-missing-user", b"cc1 presence n r\n")
env("disconnect-missing-user", b"cc1 disconnect n\n")

parts("w-room", 0, b"node-1", room=b"general", seq=42, payload=b'{"seq":42}')
parts("w-room-seq-big", 0, b"n", room=b"r", seq=0xfefefefefefefe, payload=b"")
parts("w-presence-space", 1, b"n:1", room=b"lobby", user=b"Ali Veli", payload=b"{}")
parts("w-user-percent-utf8", 2, b"n", user="100% şükrü €".encode(), payload=b"x\ny")
parts("w-notify", 3, b"n", user=b"auth0|123", payload=b'{"type":"t"}')
parts("w-disconnect", 4, b"n", user=b"alice")
parts("w-bad-origin", 2, b"bad origin", user=b"u")
parts("w-bad-room", 0, b"n", room=b"a room", seq=1)
parts("w-bad-user-control", 3, b"n", user=b"a\nb")
parts("w-bad-user-empty", 4, b"n", user=b"")
parts("w-bad-user-long", 2, b"n", user=b"u" * 129)
parts("w-user-non-bmp", 2, b"n", user="\U0001F600 \u2028".encode())
