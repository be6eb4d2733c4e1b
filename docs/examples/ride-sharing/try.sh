#!/bin/sh
# The ride-sharing example of docs/gateway.md, end to end on this machine: RabbitMQ
# (run-rabbitmq.sh), the Trip and Driver services (services.py), corecast with gateway.toml,
# two drivers and two devices of one rider (client.py); then three scripted rides:
#
#   1. rider-1 asks for a sedan: driver-1 declines, driver-2 accepts, both of rider-1's
#      devices get trip.event.driver_assigned;
#   2. rider-2 asks for an SUV: nobody drives one, rider-2 gets trip.event.no_drivers_found;
#   3. a rider sends a driver's command: the gateway answers error "forbidden".
#
#   cargo build --release
#   docs/examples/ride-sharing/try.sh
#   RABBIT_PORT=61672 PORT=61080 HTTP_PORT=61090 docs/examples/ride-sharing/try.sh   # other ports
#   KEEP=1 docs/examples/ride-sharing/try.sh     # then leave broker, services, corecast running
#
# Needs rabbitmq-server (the package; its service need not run), curl, and python3 with
# `pika` and `websockets`. Runs everything as the current user on 127.0.0.1, files in a
# temporary directory, and stops what it started on exit.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
BIN=${BIN:-$root/target/release/corecast}
RABBIT_PORT=${RABBIT_PORT:-5672}
PORT=${PORT:-8080}
HTTP_PORT=${HTTP_PORT:-8090}
WS=ws://127.0.0.1:$PORT
AMQP=amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f

[ -x "$BIN" ] || { echo "no $BIN: run cargo build --release (or set BIN)" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 2; }
python3 -c 'import pika, websockets' 2>/dev/null ||
    { echo "python3 needs pika and websockets: python3 -m pip install pika websockets" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corecast-rides.XXXXXX")
pids=""
cleanup() {
    status=$?
    # corecast first (its last lifecycle events go to a live broker), the broker last.
    for p in $pids; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ "$status" -ne 0 ]; then
        echo "--- logs (kept in $tmp)"
        tail -n 20 "$tmp"/*.log 2>/dev/null || true
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bg() { # log-name command...: runs it in the background, newest first in $pids
    name=$1
    shift
    "$@" >"$tmp/$name.log" 2>&1 &
    pids="$! $pids"
    last_pid=$!
}

wait_for() { # file pattern [seconds]
    i=0
    until grep -q -- "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -lt $((${3:-20} * 10)) ] || { echo "no '$2' in $1" >&2; exit 1; }
        sleep 0.1
    done
}

show() { # title log
    echo "## $1"
    sed 's/^/    /' "$2"
}

echo "# RabbitMQ on 127.0.0.1:$RABBIT_PORT (run-rabbitmq.sh)"
RABBIT_PORT=$RABBIT_PORT RABBIT_DIR=$tmp/rabbit bg rabbitmq "$here/run-rabbitmq.sh"
rabbit_pid=$last_pid
wait_for "$tmp/rabbitmq.log" "rabbitmq is up" 120

echo "# the Trip and Driver services (services.py), HTTP on 127.0.0.1:$HTTP_PORT"
bg services python3 -u "$here/services.py" --url "$AMQP" --http "127.0.0.1:$HTTP_PORT"
wait_for "$tmp/services.log" "consuming"

echo "# corecast --config gateway.toml on 127.0.0.1:$PORT"
sed "s#@127\.0\.0\.1:5672/#@127.0.0.1:$RABBIT_PORT/#" "$here/gateway.toml" >"$tmp/gateway.toml"
bg corecast "$BIN" --config "$tmp/gateway.toml" --listen "127.0.0.1:$PORT" --node-id example
i=0
until curl -fsS "http://127.0.0.1:$PORT/health" 2>/dev/null | grep -q '"amqp":"up"'; do
    i=$((i + 1)); [ "$i" -lt 200 ] || { echo "corecast did not connect to RabbitMQ" >&2; exit 1; }
    sleep 0.1
done
curl -sS "http://127.0.0.1:$PORT/health"
echo

if [ "${KEEP:-0}" = 1 ]; then
    echo "# running; in other shells:"
    echo "#   python3 $here/client.py driver driver-1 --package sedan --url $WS"
    echo "#   python3 $here/client.py rider rider-1 --url $WS"
    echo "#   curl -d '{\"riderId\":\"rider-1\",\"packageSlug\":\"sedan\"}' http://127.0.0.1:$HTTP_PORT/trips"
    echo "# services log: $tmp/services.log; Ctrl-C stops everything"
    wait "$rabbit_pid"
    exit 0
fi

client() { # log-name args...
    name=$1
    shift
    bg "$name" python3 -u "$here/client.py" --url "$WS" --timeout 30 "$@"
}

echo "# ride 1: rider-1 (phone and tablet) asks for a sedan; driver-1 declines, driver-2 accepts"
client driver-1 driver driver-1 --package sedan --decline --until ack
client driver-2 driver driver-2 --package sedan --until ack
wait_for "$tmp/services.log" "driver-1 is online"
wait_for "$tmp/services.log" "driver-2 is online"
client rider-1-phone rider rider-1 --until trip.event.driver_assigned
phone=$last_pid
client rider-1-tablet rider rider-1 --until trip.event.driver_assigned
tablet=$last_pid
wait_for "$tmp/rider-1-phone.log" "connected"
wait_for "$tmp/rider-1-tablet.log" "connected"
curl -sS -d '{"riderId":"rider-1","packageSlug":"sedan"}' "http://127.0.0.1:$HTTP_PORT/trips"
wait "$phone"
wait "$tablet"
wait_for "$tmp/driver-2.log" '"type":"ack"'
show "driver-1" "$tmp/driver-1.log"
show "driver-2" "$tmp/driver-2.log"
show "rider-1, phone" "$tmp/rider-1-phone.log"
show "rider-1, tablet" "$tmp/rider-1-tablet.log"

echo "# ride 2: rider-2 asks for an SUV; no SUV driver is online"
client rider-2 rider rider-2 --until trip.event.no_drivers_found
rider2=$last_pid
wait_for "$tmp/rider-2.log" "connected"
curl -sS -d '{"riderId":"rider-2","packageSlug":"suv"}' "http://127.0.0.1:$HTTP_PORT/trips"
wait "$rider2"
show "rider-2" "$tmp/rider-2.log"

echo "# 3: a rider tries a driver's command"
client rider-3 rider rider-3 --until error \
    --send '{"type":"driver.cmd.trip_accept","data":{"tripId":"t1"},"id":"x1"}'
wait "$last_pid"
show "rider-3" "$tmp/rider-3.log"

# The drivers left after their ack: the Driver Service saw gateway.disconnected.
wait_for "$tmp/services.log" "driver-2 is offline"
wait_for "$tmp/services.log" "driver-1 is offline"
show "services" "$tmp/services.log"

echo "# corecast's metrics"
curl -sS "http://127.0.0.1:$PORT/metrics" | grep -E '^corecast_(amqp|gateway)_' | grep -v '^corecast_amqp_up'
echo "# done"
