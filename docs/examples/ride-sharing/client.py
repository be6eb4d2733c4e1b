#!/usr/bin/env python3
"""A rider's or a driver's app on the command line, for the ride-sharing example
(docs/gateway.md): connects to corecast's /ws/riders or /ws/drivers and prints every frame
as it arrives (`<`) and every frame it sends (`>`).

    python3 client.py rider rider-1
    python3 client.py driver driver-1 --package sedan            # accepts every trip request
    python3 client.py driver driver-2 --package sedan --decline  # declines them

A driver answers each `driver.cmd.trip_request` with `driver.cmd.trip_accept` (or
`driver.cmd.trip_decline`), `{"tripId":...}` and an `id`, which the gateway's `ack` echoes.

    --until TYPE     exit 0 after the first frame of that type (repeatable)
    --timeout S      with --until: exit 1 if none came within S seconds
    --send JSON      send this message right after connecting (e.g. to see an error)
    --jwt-secret S   production mode: connect with an HS256 token signed with S (as
                     `corecast --jwt-secret S` expects) instead of ?userID=: `sub` = the
                     user, `role` = --claim-role (default: rider or driver, as the app)

Needs `websockets` (python3 -m pip install websockets).
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.parse

try:
    from websockets.asyncio.client import connect
except ImportError:  # websockets < 13
    from websockets import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(secret, sub, role, ttl_s=3600):
    """An HS256 JWT with `sub`, `exp` and `role`, as the server verifies it."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": sub, "exp": int(time.time()) + ttl_s}
    if role:
        claims["role"] = role
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def show(direction, text):
    print(f"{direction} {text}", flush=True)


async def run(args):
    endpoint = "/ws/drivers" if args.role == "driver" else "/ws/riders"
    params = {}
    if args.jwt_secret:
        role = args.claim_role if args.claim_role is not None else args.role
        params["token"] = token(args.jwt_secret, args.user, role)
    else:
        params["userID"] = args.user
    if args.role == "driver":
        params["packageSlug"] = args.package
    url = f"{args.url.rstrip('/')}{endpoint}?{urllib.parse.urlencode(params)}"
    try:
        async with connect(url, open_timeout=10) as ws:
            print(f"connected to {endpoint} as {args.user}", flush=True)
            if args.send:
                show(">", args.send)
                await ws.send(args.send)
            async for raw in ws:
                show("<", raw)
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                kind = msg.get("type")
                if args.role == "driver" and kind == "driver.cmd.trip_request":
                    trip = msg.get("data", {}).get("tripId")
                    verb = "decline" if args.decline else "accept"
                    answer = {"type": f"driver.cmd.trip_{verb}", "data": {"tripId": trip},
                              "id": f"{verb}-{trip}"}
                    text = json.dumps(answer, separators=(",", ":"))
                    show(">", text)
                    await ws.send(text)
                if kind in args.until:
                    return 0
    except InvalidStatus as e:
        r = e.response
        body = r.body.decode(errors="replace").strip() if r.body else ""
        print(f"refused: HTTP {r.status_code} {body}", flush=True)
        return 1
    except ConnectionClosed as e:
        print(f"closed: {e}", flush=True)
        return 1
    except OSError as e:
        print(f"cannot connect to {url}: {e}", flush=True)
        return 1
    print("closed by the server", flush=True)
    return 1


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("role", choices=["rider", "driver"])
    ap.add_argument("user", help="the user id (rider-1, driver-1, ...)")
    ap.add_argument("--url", default="ws://127.0.0.1:8080")
    ap.add_argument("--package", default="sedan", help="driver: the car's packageSlug")
    ap.add_argument("--decline", action="store_true", help="driver: decline trip requests")
    ap.add_argument("--until", action="append", default=[], metavar="TYPE")
    ap.add_argument("--timeout", type=float, default=None, metavar="S")
    ap.add_argument("--send", metavar="JSON")
    ap.add_argument("--jwt-secret", metavar="S")
    ap.add_argument("--claim-role", metavar="ROLE", help="with --jwt-secret: the token's role")
    args = ap.parse_args()
    try:
        return asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except asyncio.TimeoutError:
        print(f"timed out waiting for {' or '.join(args.until) or 'the end'}", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
