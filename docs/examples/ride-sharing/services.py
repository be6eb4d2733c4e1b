#!/usr/bin/env python3
"""The Trip Service and the Driver Service of the ride-sharing example (docs/gateway.md), in one
process, talking to the gateway only through the RabbitMQ topic exchange, as the Go services of
such a system do.

- Driver Service: keeps the drivers online from the gateway's lifecycle events
  (`gateway.connected` / `gateway.disconnected` on /ws/drivers, with the driver's
  `?packageSlug=`), offers a trip to one free driver of the trip's package with
  `driver.cmd.trip_request` (owner: that driver), and offers it to the next one when a driver
  declines (`driver.cmd.trip_decline`); with nobody left, `trip.event.no_drivers_found` goes to
  the rider.
- Trip Service: takes trip requests over HTTP (`POST /trips {"riderId":"rider-1",
  "packageSlug":"sedan"}`, what the rider's app calls through the API gateway), publishes
  `trip.event.created` to the rider, and on a driver's `driver.cmd.trip_accept` publishes
  `trip.event.driver_assigned` to the rider.

Bodies are what Go's `json.Marshal` makes of `struct { OwnerID string `json:"ownerId"`; Data
[]byte `json:"data"` }`: `data` is base64 of the JSON payload (`--encoding base64`, the default,
as gateway.toml's `data_encoding`). Publishes are persistent, mandatory and confirmed.

    python3 services.py [--url amqp://guest:guest@127.0.0.1:5672/%2f] [--http 127.0.0.1:8090]

Needs `pika` (python3 -m pip install pika). Ctrl-C stops it. Its two queues (`trip-service`,
`driver-service`) are durable: what is published while it is stopped waits for it.
"""

import argparse
import base64
import http.server
import itertools
import json
import sys
import threading

import pika
import pika.exceptions

EXCHANGE = "trip"


def log(service, text):
    print(f"{service}: {text}", flush=True)


class Bus:
    """The exchange, in the Go services' body format."""

    def __init__(self, channel, exchange, encoding, owner_field):
        self.ch = channel
        self.exchange = exchange
        self.encoding = encoding
        self.owner_field = owner_field

    def encode(self, owner, data):
        payload = json.dumps(data, separators=(",", ":"))
        if self.encoding == "base64":
            # Go: json.Marshal of a []byte field.
            value = base64.b64encode(payload.encode()).decode()
        else:
            value = data
        return json.dumps({self.owner_field: owner, "data": value}, separators=(",", ":"))

    def decode(self, body):
        msg = json.loads(body)
        data = msg["data"]
        if self.encoding == "base64":
            data = json.loads(base64.b64decode(data, validate=True))
        return msg[self.owner_field], data

    def publish(self, service, key, owner, data):
        body = self.encode(owner, data)
        props = pika.BasicProperties(content_type="application/json", delivery_mode=2)
        try:
            # With confirm_delivery() this waits for the broker's confirm.
            self.ch.basic_publish(self.exchange, key, body, properties=props, mandatory=True)
        except pika.exceptions.UnroutableError:
            log(service, f"{key} to {owner}: no queue is bound for it (is corecast running?)")
            return
        except pika.exceptions.NackError:
            log(service, f"{key} to {owner}: the broker refused it")
            return
        log(service, f"published {key} to {owner}: {body}")


class Rides:
    """Both services' state; touched only on the AMQP connection's thread."""

    def __init__(self, bus):
        self.bus = bus
        self.drivers = {}  # driver id -> {"package": ..., "trip": trip id or None}
        self.trips = {}  # trip id -> {"rider", "package", "offered", "tried", "driver"}

    # ---- Trip Service ----------------------------------------------------------------------

    def request_trip(self, trip_id, rider, package, extra):
        self.trips[trip_id] = {
            "rider": rider,
            "package": package,
            "offered": None,
            "tried": set(),
            "driver": None,
            "extra": extra,
        }
        log("trip-service", f"{trip_id}: {rider} asks for a {package}")
        data = {"tripId": trip_id, "packageSlug": package, "status": "searching"}
        self.bus.publish("trip-service", "trip.event.created", rider, data)
        self.dispatch(trip_id)

    def on_accept(self, driver, data):
        trip_id = data.get("tripId")
        trip = self.trips.get(trip_id)
        if trip is None or trip["offered"] != driver:
            log("trip-service", f"{driver} accepted {trip_id}, which is not offered to them: ignored")
            return
        trip["driver"] = driver
        trip["offered"] = None
        log("trip-service", f"{trip_id}: {driver} accepted")
        assigned = {"tripId": trip_id, "driverId": driver, "packageSlug": trip["package"]}
        self.bus.publish("trip-service", "trip.event.driver_assigned", trip["rider"], assigned)

    # ---- Driver Service --------------------------------------------------------------------

    def dispatch(self, trip_id):
        trip = self.trips[trip_id]
        for driver, d in sorted(self.drivers.items()):
            if d["package"] == trip["package"] and d["trip"] is None and driver not in trip["tried"]:
                trip["offered"] = driver
                trip["tried"].add(driver)
                d["trip"] = trip_id
                log("driver-service", f"{trip_id}: offered to {driver}")
                offer = {"tripId": trip_id, "riderId": trip["rider"], "packageSlug": trip["package"]}
                offer.update(trip["extra"])
                self.bus.publish("driver-service", "driver.cmd.trip_request", driver, offer)
                return
        trip["offered"] = None
        log("driver-service", f"{trip_id}: no {trip['package']} driver left")
        self.bus.publish(
            "driver-service", "trip.event.no_drivers_found", trip["rider"], {"tripId": trip_id}
        )

    def on_decline(self, driver, data):
        trip_id = data.get("tripId")
        trip = self.trips.get(trip_id)
        if driver in self.drivers and self.drivers[driver]["trip"] == trip_id:
            self.drivers[driver]["trip"] = None
        if trip is None or trip["offered"] != driver:
            log("driver-service", f"{driver} declined {trip_id}, which is not offered to them: ignored")
            return
        log("driver-service", f"{trip_id}: {driver} declined")
        self.dispatch(trip_id)

    def on_connected(self, driver, data):
        package = data.get("query", {}).get("packageSlug", "sedan")
        self.drivers[driver] = {"package": package, "trip": None}
        log(
            "driver-service",
            f"{driver} is online ({package}, node {data.get('node')}, devices {data.get('devices')})",
        )

    def on_disconnected(self, driver, data):
        d = self.drivers.pop(driver, None)
        log("driver-service", f"{driver} is offline (node {data.get('node')})")
        if d and d["trip"] and self.trips.get(d["trip"], {}).get("offered") == driver:
            self.dispatch(d["trip"])

    # ---- deliveries ------------------------------------------------------------------------

    def on_message(self, ch, method, _props, body):
        key = method.routing_key
        try:
            owner, data = self.bus.decode(body)
        except (ValueError, KeyError, TypeError) as e:
            log("services", f"{key}: malformed body ({e}): dropped")
            ch.basic_nack(method.delivery_tag, requeue=False)
            return
        handler = {
            "driver.cmd.trip_accept": self.on_accept,
            "driver.cmd.trip_decline": self.on_decline,
            "gateway.connected": self.on_connected,
            "gateway.disconnected": self.on_disconnected,
        }.get(key)
        if handler is not None:
            handler(owner, data)
        ch.basic_ack(method.delivery_tag)


def serve_http(addr, connection, rides):
    """The Trip Service's HTTP API, on its own thread; the work is handed to the AMQP thread."""
    ids = itertools.count(1)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path != "/trips":
                return self.answer(404, {"error": "not found"})
            try:
                n = int(self.headers.get("Content-Length", "0"))
                req = json.loads(self.rfile.read(n) or b"{}")
                rider = req["riderId"]
                package = req.get("packageSlug", "sedan")
                if not isinstance(rider, str) or not isinstance(package, str):
                    raise ValueError("riderId and packageSlug are strings")
            except (ValueError, KeyError, TypeError) as e:
                return self.answer(400, {"error": f"bad request: {e}"})
            extra = {k: req[k] for k in ("pickup", "destination") if k in req}
            with lock:
                trip_id = f"t{next(ids)}"
            connection.add_callback_threadsafe(
                lambda: rides.request_trip(trip_id, rider, package, extra)
            )
            self.answer(202, {"tripId": trip_id, "status": "searching"})

        def answer(self, status, obj):
            body = json.dumps(obj).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    host, port = addr.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    ap.add_argument("--exchange", default=EXCHANGE)
    ap.add_argument("--encoding", choices=["base64", "json"], default="base64",
                    help="how bodies carry data (gateway.toml's data_encoding)")
    ap.add_argument("--owner-field", default="ownerId")
    ap.add_argument("--http", default="127.0.0.1:8090", help="the Trip Service's HTTP API")
    args = ap.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    consume = connection.channel()
    publish = connection.channel()
    publish.confirm_delivery()
    consume.exchange_declare(args.exchange, exchange_type="topic", durable=True)
    queues = {
        "trip-service": ["driver.cmd.trip_accept"],
        "driver-service": ["driver.cmd.trip_decline", "gateway.connected", "gateway.disconnected"],
    }
    rides = Rides(Bus(publish, args.exchange, args.encoding, args.owner_field))
    consume.basic_qos(prefetch_count=100)
    for queue, keys in queues.items():
        consume.queue_declare(queue, durable=True)
        for key in keys:
            consume.queue_bind(queue, args.exchange, routing_key=key)
        consume.basic_consume(queue, rides.on_message)
    server = serve_http(args.http, connection, rides)
    log("services", f"consuming {', '.join(queues)} on exchange {args.exchange!r}; "
                    f"trip requests: POST http://{args.http}/trips")
    try:
        consume.start_consuming()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        if connection.is_open:
            connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
