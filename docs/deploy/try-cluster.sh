#!/bin/sh
# Two corecast nodes joined by Redis behind nginx, on this machine, then a chat across them
# through nginx (docs/deploy/chat_across.py) ending with a drain of one node.
#
#   cargo build --release
#   docs/deploy/try-cluster.sh            # nginx :8080, nodes :8081 :8082, Redis :6379
#   PROXY_PORT=61080 NODE_A_PORT=61081 NODE_B_PORT=61082 REDIS_PORT=61380 docs/deploy/try-cluster.sh
#   KEEP=1 docs/deploy/try-cluster.sh     # leave everything running until Ctrl-C
#
# Needs redis-server, nginx and python3 with `websockets` on the PATH; runs everything as
# the current user in a temporary directory and stops what it started on exit.
#
# What it uses as is: docs/deploy/nginx.conf (only its ports replaced) and the command line of
# docs/deploy/corecast.service's ExecStart= (only the binary path and port replaced), with the
# settings an EnvironmentFile would give (CORECAST_REDIS_URL, CORECAST_API_KEY, ...).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=${BIN:-$root/target/release/corecast}
PROXY_PORT=${PROXY_PORT:-8080}
NODE_A_PORT=${NODE_A_PORT:-8081}
NODE_B_PORT=${NODE_B_PORT:-8082}
REDIS_PORT=${REDIS_PORT:-6379}
API_KEY=${API_KEY:-demo}

[ -x "$BIN" ] || { echo "no $BIN: run cargo build --release (or set BIN)" >&2; exit 2; }
for tool in redis-server redis-cli nginx python3 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corecast-cluster.XXXXXX")
pids=""
cleanup() {
    status=$?
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        echo "--- logs (kept in $tmp)"
        tail -n 20 "$tmp"/*.log "$tmp"/nginx/logs/error.log 2>/dev/null || true
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # url
    i=0
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || { echo "nothing answers at $1" >&2; exit 1; }
        sleep 0.1
    done
}

echo "# redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids="$pids $!"
i=0
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "redis did not start" >&2; exit 1; }; sleep 0.1
done

# The unit's command line, with this run's binary and port.
exec_start=$(sed -n 's/^ExecStart=//p' "$here/corecast.service")
node() { # id port
    cat >"$tmp/$1.env" <<EOF
CORECAST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
CORECAST_API_KEY=$API_KEY
CORECAST_NODE_ID=$1
CORECAST_WORKERS=2
EOF
    cmd=$(echo "$exec_start" | sed "s#^/usr/local/bin/corecast#$BIN#; s#127\.0\.0\.1:8081#127.0.0.1:$2#")
    echo "# node $1: $cmd  (+ $tmp/$1.env)"
    # shellcheck disable=SC2086 # the command line is split into words, as systemd does
    (set -a; . "$tmp/$1.env"; set +a; exec $cmd) >"$tmp/$1.log" 2>&1 &
    pids="$pids $!"
    last_pid=$!
}
node a "$NODE_A_PORT"; pid_a=$last_pid
node b "$NODE_B_PORT"; pid_b=$last_pid
wait_http "http://127.0.0.1:$NODE_A_PORT/health"
wait_http "http://127.0.0.1:$NODE_B_PORT/health"

echo "# nginx on 127.0.0.1:$PROXY_PORT with docs/deploy/nginx.conf"
mkdir -p "$tmp/nginx/logs" "$tmp/nginx/temp"
sed -e "s/listen 8080;/listen $PROXY_PORT;/" \
    -e "s/127\.0\.0\.1:8081/127.0.0.1:$NODE_A_PORT/" \
    -e "s/127\.0\.0\.1:8082/127.0.0.1:$NODE_B_PORT/" \
    "$here/nginx.conf" >"$tmp/nginx/nginx.conf"
nginx -t -q -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx/" -g 'daemon off;'
nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx/" -g 'daemon off;' >"$tmp/nginx.log" 2>&1 &
pids="$pids $!"
wait_http "http://127.0.0.1:$PROXY_PORT/health"

if [ "${KEEP:-0}" = 1 ]; then
    echo "# running: http://127.0.0.1:$PROXY_PORT/ (demo page), Ctrl-C stops everything"
    wait
    exit 0
fi

python3 "$here/chat_across.py" --proxy "http://127.0.0.1:$PROXY_PORT" \
    --node "http://127.0.0.1:$NODE_A_PORT" --node "http://127.0.0.1:$NODE_B_PORT" \
    --api-key "$API_KEY" --pids "$pid_a,$pid_b"

echo "# nginx access log (client address, request, status)"
cut -d' ' -f1,6-9 "$tmp/nginx/logs/access.log"
