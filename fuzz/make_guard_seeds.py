#!/usr/bin/env python3
"""Writes the seed corpora of the admission-check targets, fuzz/seeds/jwt/ and
fuzz/seeds/forwarded/ (run from fuzz/: `python3 make_guard_seeds.py`).

Each file follows its target's input layout (see the //! comment of fuzz_targets/<target>.rs).
"""
import base64
import hashlib
import hmac
import os
import struct

SECRET = b"corecast-fuzz-secret-0123456789a"
NOW = 1_700_000_000


def write(target, name, data):
    os.makedirs(f"seeds/{target}", exist_ok=True)
    with open(f"seeds/{target}/{name}", "wb") as f:
        f.write(data)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def forge(header, claims, secret=SECRET):
    signing_input = b64(header) + "." + b64(claims)
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(sig)


# ---- jwt: mode 0 = raw token, 1 = structured (signed), 2 = structured + bit flip, 3 = other secret
def raw(name, token):
    write("jwt", name, b"\x00" + (token.encode() if isinstance(token, str) else token))


def structured(name, header, claims, mode=1):
    write("jwt", name, bytes([mode]) + struct.pack("<H", len(header)) + header + claims)


H = b'{"alg":"HS256","typ":"JWT"}'
GOOD = b'{"sub":"alice","name":"Alice","exp":%d,"nbf":%d,"roles":["a","b"],"role":"r"}' % (NOW + 3600, NOW - 10)

raw("valid", forge(H, GOOD))
raw("valid-minimal", forge(b'{"alg":"HS256"}', b'{"sub":"a","exp":%d}' % (NOW + 1)))
raw("expired-at-now", forge(H, b'{"sub":"a","exp":%d}' % NOW))
raw("not-yet-valid", forge(H, b'{"sub":"a","exp":%d,"nbf":%d}' % (NOW + 100, NOW + 1)))
raw("missing-sub", forge(H, b'{"exp":%d}' % (NOW + 100)))
raw("missing-exp", forge(H, b'{"sub":"a"}'))
raw("alg-none-empty-sig", b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(GOOD) + ".")
raw("alg-hs384", forge(b'{"alg":"HS384"}', GOOD))
raw("alg-lowercase", forge(b'{"alg":"hs256"}', GOOD))
raw("bad-signature", forge(H, GOOD, b"wrong secret"))
raw("padded-signature", forge(H, GOOD) + "=")
raw("whitespace", " " + forge(H, GOOD) + "\n")
raw("two-parts", b64(H) + "." + b64(GOOD))
raw("four-parts", forge(H, GOOD) + ".x")
raw("bad-base64", "e!J.e!J.e!J")
raw("too-long", forge(H, b'{"sub":"a","exp":%d,"pad":"%s"}' % (NOW + 100, b"x" * 8200)))
raw("jwt-io-example", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
raw("not-utf8", b"\xff\xfe." + forge(H, GOOD).encode())

structured("s-valid", H, GOOD)
structured("s-typ-case", b'{"typ":"jwt","alg":"HS256","kid":"k"}', GOOD)
structured("s-typ-bad", b'{"alg":"HS256","typ":"JWS"}', GOOD)
structured("s-crit", b'{"alg":"HS256","crit":["exp"]}', GOOD)
structured("s-jwk", b'{"alg":"HS256","jwk":{"kty":"oct"}}', GOOD)
structured("s-header-int", b'{"alg":"HS256","x":1}', GOOD)
structured("s-header-null-kid", b'{"alg":"HS256","kid":null}', GOOD)
structured("s-dup-alg", b'{"alg":"HS256","alg":"none"}', GOOD)
structured("s-alg-escaped", b'{"alg":"HS\\u0032\\u00356"}', GOOD)
structured("s-header-array", b'["HS256"]', GOOD)
structured("s-dup-sub", H, b'{"sub":"a","sub":"b","exp":%d}' % (NOW + 100))
structured("s-lone-surrogate-name", H, b'{"sub":"a","exp":%d,"name":"\\ud800x"}' % (NOW + 100))
structured("s-lone-surrogate-ignored", H, b'{"sub":"a","exp":%d,"x":"\\udc00"}' % (NOW + 100))
structured("s-surrogate-pair", H, b'{"sub":"\\ud83d\\ude00","exp":%d}' % (NOW + 100))
structured("s-control-in-sub", H, b'{"sub":"a\\u0000","exp":%d}' % (NOW + 100))
structured("s-raw-control", H, b'{"sub":"a\x01","exp":%d}' % (NOW + 100))
structured("s-sub-129", H, b'{"sub":"%s","exp":%d}' % (b"x" * 129, NOW + 100))
structured("s-sub-empty", H, b'{"sub":"","exp":%d}' % (NOW + 100))
structured("s-sub-int", H, b'{"sub":1,"exp":%d}' % (NOW + 100))
structured("s-exp-string", H, b'{"sub":"a","exp":"%d"}' % (NOW + 100))
structured("s-exp-float", H, b'{"sub":"a","exp":%d.5,"nbf":%d.5}' % (NOW, NOW - 1))
structured("s-exp-negative", H, b'{"sub":"a","exp":-1}')
structured("s-exp-huge-int", H, b'{"sub":"a","exp":100000000000000000000000}')
structured("s-exp-huge-float", H, b'{"sub":"a","exp":1e300}')
structured("s-exp-u64-max", H, b'{"sub":"a","exp":18446744073709551615}')
structured("s-nbf-null", H, b'{"sub":"a","exp":%d,"nbf":null,"name":null}' % (NOW + 100))
structured("s-roles-bad", H, b'{"sub":"a","exp":%d,"roles":["a",1]}' % (NOW + 100))
structured("s-role-bad", H, b'{"sub":"a","exp":%d,"role":[]}' % (NOW + 100))
structured("s-name-bad", H, b'{"sub":"a","exp":%d,"name":{}}' % (NOW + 100))
structured("s-deep-nesting", H, b'{"sub":"a","exp":%d,"x":%s%s}' % (NOW + 100, b"[" * 200, b"]" * 200))
structured("s-trailing-garbage", H, b'{"sub":"a","exp":%d} x' % (NOW + 100))
structured("s-claims-array", H, b'[1]')
structured("s-aud-iss", H, b'{"sub":"a","exp":%d,"aud":"x","iss":["y"],"iat":"z"}' % (NOW + 100))
structured("s-tamper", H, GOOD, mode=2)
structured("s-other-secret", H, GOOD, mode=3)


# ---- forwarded: lines = trusted, peer, X-Real-IP, Origin, Host, allowed origins, XFF...
def fwd(name, trusted, peer, real, origin, host, allowed, *xff):
    lines = [trusted, peer, real, origin, host, allowed, *xff]
    write("forwarded", name, "\n".join(lines).encode())


T = "10.0.0.0/8, fd00::/8, 127.0.0.1"
fwd("untrusted-peer", T, "203.0.113.7", "5.6.7.8", "https://a.com", "a.com", "", "1.2.3.4")
fwd("rightmost-untrusted", T, "10.0.0.1", "", "http://a.com", "a.com:80", "*", "6.6.6.6, 1.2.3.4, 10.0.0.2")
fwd("several-headers", T, "10.0.0.1", "", "", "", "", "6.6.6.6", "1.2.3.4, 10.0.0.2", "10.0.0.3")
fwd("all-trusted-real-ip", T, "10.0.0.1", " 5.6.7.8 ", "https://a.com:443", "A.COM", "https://a.com", "10.0.0.2, 10.0.0.3")
fwd("garbage-stops", T, "10.0.0.1", "5.6.7.8", "null", "a.com", "https://a.com", "1.2.3.4, unknown, 10.0.0.2")
fwd("garbage-rightmost", T, "10.0.0.1", "", "https://a.com/", "a.com", "", "1.2.3.4, _obf")
fwd("ports-brackets", T, "fd00::1", "[2001:db8::2]:9", "http://[::1]:3000", "[::1]:3000", "http://[::1]:3000",
    "[2001:db8::1]:443, 1.2.3.4:80, [fd00::5]")
fwd("mapped-peer", T, "::ffff:10.0.0.1", "", "wss://b.com", "b.com:443", "", "::ffff:192.0.2.1")
fwd("empty-elements", T, "127.0.0.1", "", "", "", "", ",, ,\t,", "")
fwd("bad-trusted-list", "10.0.0.1/8,,", "10.0.0.1", "", "http://x", "y", "*,https://a.com", "1.1.1.1")
fwd("cidr-v6-mapped", "::ffff:10.0.0.0/104, ::/0", "::ffff:10.1.1.1", "9.9.9.9", "capacitor://localhost", "localhost",
    "capacitor://localhost, http://localhost:8080", "2001:db8::7")
fwd("cross-origin", T, "10.0.0.1", "", "http://evil.com", "a.com", "", "")
fwd("bad-host", T, "10.0.0.1", "", "http://a.com", "a.com:", "https://A.com:443", "")
fwd("zone-id", T, "10.0.0.1", "fe80::1%eth0", "https://u@a.com", "a.com", "null", "fe80::1%eth0, 10.0.0.9")
fwd("long-chain", T, "10.0.0.1", "", "", "", "", "1.2.3.4, " + ", ".join(f"10.0.{i}.1" for i in range(200)))
