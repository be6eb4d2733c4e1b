#!/usr/bin/env python3
"""Writes the seed corpus of the RabbitMQ bridge's body target, fuzz/seeds/amqp_body/ (run from
fuzz/: `python3 make_amqp_seeds.py`).

Layout (see fuzz_targets/amqp_body.rs): byte 0 = encoding (bit 0: json / base64) | owner field
(bits 1-2: ownerId, owner, o"k, data) << 1; then the body. Files named crash-* are fuzzer
finds, kept by hand; this script does not touch them.
"""
import base64
import json
import os

JSON, B64 = 0, 1
OWNER, OWNER2, OWNER_QUOTE, OWNER_DATA = 0, 1, 2, 3


def write(name, body, enc=JSON, field=OWNER):
    os.makedirs("seeds/amqp_body", exist_ok=True)
    if isinstance(body, str):
        body = body.encode()
    with open(f"seeds/amqp_body/{name}", "wb") as f:
        f.write(bytes([enc | (field << 1)]) + body)


def go(owner, data):
    """What Go's json.Marshal writes for struct{OwnerID string `json:"ownerId"`; Data []byte}."""
    return json.dumps({"ownerId": owner, "data": base64.b64encode(data).decode()},
                      separators=(",", ":"))


# Valid, json.
write("ride-assigned", '{"ownerId":"rider-1","data":{"tripId":"t1","driver":{"id":"d9"}}}')
write("data-first", '{"data":[1,2,3],"ownerId":"rider-2"}')
write("big-ints", '{"ownerId":"r","data":[9223372036854775808,18446744073709551616,-1e400,1.5E+3]}')
write("unicode-escapes", '{"ownerId":"s\\u00fcr\\u00fcc\\u00fc","data":"\\ud83d\\ude95 \\" \\\\ \\/ \\b\\f\\n\\r\\t"}')
write("raw-unicode", '{"ownerId":"sürücü 🚕","data":{"çay":"\u2028"}}')
write("whitespace", ' \t\r\n{ "ownerId" : "a" ,\n "data" :\n [ { } , [ ] , "" , 0 , -0.0e-0 , true , false , null ] } \n')
write("escaped-key", '{"owner\\u0049d":"x","data":null}')
write("extra-members", '{"x":{"ownerId":"nested","data":0},"ownerId":"top","y":[],"data":"d"}')
write("other-field", '{"owner":"u","data":{}}', field=OWNER2)
write("quote-field", '{"o\\"k":"u","data":1}', field=OWNER_QUOTE)
write("owner-is-data", '{"data":"eyJhIjoxfQ=="}', field=OWNER_DATA)
write("owner-is-data-b64", '{"data":"eyJhIjoxfQ=="}', enc=B64, field=OWNER_DATA)
# The body object is one level: 126 arrays inside make 127 levels (the limit).
write("depth-127", '{"ownerId":"a","data":' + "[" * 126 + "]" * 126 + "}")
write("owner-128-bytes", '{"ownerId":"' + "x" * 128 + '","data":1}')
# Valid, base64 (Go's []byte).
write("go-assigned", go("rider-1", b'{"tripId":"t1"}'), enc=B64)
write("go-big-int", go("rider-1", b'{"fare":9223372036854775808}'), enc=B64)
write("go-trailing-newline", go("r", b'{"a":1}\n'), enc=B64)
write("go-scalar", go("r", b'"text"'), enc=B64)
write("b64-escaped-slash", '{"ownerId":"r","data":"ImI\\/PyI="}', enc=B64)
# Refused.
write("empty", "")
write("not-json", "not json")
write("array", "[1,2]")
write("string", '"ownerId"')
write("no-owner", '{"data":1}')
write("no-data", '{"ownerId":"a"}')
write("owner-number", '{"ownerId":5,"data":1}')
write("owner-null", '{"ownerId":null,"data":1}')
write("owner-empty", '{"ownerId":"","data":1}')
write("owner-control", '{"ownerId":"a\\u0000","data":1}')
write("owner-129-bytes", '{"ownerId":"' + "x" * 129 + '","data":1}')
write("two-owners", '{"ownerId":"a","ownerId":"b","data":1}')
write("two-owners-escaped", '{"ownerId":"a","owner\\u0049d":"a","data":1}')
write("two-data", '{"ownerId":"a","data":1,"data":1}')
write("trailing-comma", '{"ownerId":"a","data":[1,],}')
write("leading-zero", '{"ownerId":"a","data":01}')
write("bad-number", '{"ownerId":"a","data":1.e5}')
write("lone-high-surrogate", '{"ownerId":"a","data":"\\ud800"}')
write("lone-low-surrogate", '{"ownerId":"a","data":"\\udc00"}')
write("high-then-bmp", '{"ownerId":"a","data":"\\ud800\\u0041"}')
write("raw-control", '{"ownerId":"a","data":"a\tb"}')
write("bad-escape", '{"ownerId":"a","data":"\\x41"}')
write("invalid-utf8", b'{"ownerId":"\xc3","data":1}')
write("bom", b'\xef\xbb\xbf{"ownerId":"a","data":1}')
write("trailing-garbage", '{"ownerId":"a","data":1}x')
write("two-documents", '{"ownerId":"a","data":1}{}')
write("nul-after-number", b'{"ownerId":"a","data":1\x00}')
write("comment", '{"ownerId":"a",/*x*/"data":1}')
write("truncated", '{"ownerId":"a","data":{"k":[1,2')
write("depth-128", '{"ownerId":"a","data":' + "[" * 127 + "1" + "]" * 127 + "}")
write("depth-10001", '{"ownerId":"a","data":' + "[" * 10000 + "]" * 10000 + "}")
write("b64-not-string", '{"ownerId":"r","data":{"a":1}}', enc=B64)
write("b64-null", '{"ownerId":"r","data":null}', enc=B64)
write("b64-unpadded", '{"ownerId":"r","data":"e30"}', enc=B64)
write("b64-urlsafe", '{"ownerId":"r","data":"e30-"}', enc=B64)
write("b64-not-json", go("r", b"hello"), enc=B64)
write("b64-empty", go("r", b""), enc=B64)
write("b64-invalid-utf8", go("r", b'"\xff"'), enc=B64)
write("b64-too-deep", go("r", b"[" * 128 + b"]" * 128), enc=B64)
