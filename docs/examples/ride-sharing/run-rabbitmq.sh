#!/bin/sh
# A throwaway RabbitMQ for the ride-sharing example: Debian's rabbitmq-server in the foreground,
# as the current user, listening on 127.0.0.1 only, with its files in its own directory and a
# private epmd, so that nothing of the system's (a rabbitmq service, /var/lib/rabbitmq, the
# epmd on 4369) is used or touched. Ctrl-C (or SIGTERM) stops both processes.
#
#   docs/examples/ride-sharing/run-rabbitmq.sh                     # AMQP on 127.0.0.1:5672
#   RABBIT_PORT=61672 docs/examples/ride-sharing/run-rabbitmq.sh   # another port
#
#   RABBIT_PORT   AMQP port (default 5672, the port gateway.toml names)
#   RABBIT_DIR    its data and logs (default: a new temporary directory, removed on exit;
#                 a directory you name is kept, and a restart on it keeps the durable
#                 queues and persistent messages)
#   EPMD_PORT     the private epmd (default RABBIT_PORT + 1)
#   DIST_PORT     Erlang distribution (default RABBIT_PORT + 2)
#
# Needs the rabbitmq-server package (apt-get install rabbitmq-server; its own service need not
# run). Prints "rabbitmq is up on ..." once it speaks AMQP, and a rabbitmqctl command line
# that reaches this broker.
set -eu

SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
RABBIT_PORT=${RABBIT_PORT:-5672}
EPMD_PORT=${EPMD_PORT:-$((RABBIT_PORT + 1))}
DIST_PORT=${DIST_PORT:-$((RABBIT_PORT + 2))}
NAME=${RABBIT_NAME:-corecast-example-$RABBIT_PORT@localhost}

[ -x "$SERVER" ] || { echo "no $SERVER: apt-get install rabbitmq-server" >&2; exit 2; }
command -v epmd >/dev/null || { echo "no epmd on the PATH (it comes with erlang-base)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed to wait for the broker" >&2; exit 2; }

if [ -n "${RABBIT_DIR:-}" ]; then
    dir=$RABBIT_DIR
    keep=1
    mkdir -p "$dir"
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/corecast-rabbit.XXXXXX")
    keep=0
fi
[ -e "$dir/enabled_plugins" ] || echo '[].' >"$dir/enabled_plugins"

epmd_pid=""
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null || true
    [ -n "$epmd_pid" ] && kill "$epmd_pid" 2>/dev/null || true
    [ "$keep" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private epmd in the foreground, so that it is ours to stop.
epmd -port "$EPMD_PORT" </dev/null >/dev/null 2>&1 &
epmd_pid=$!

# RABBITMQ_ALLOW_INPUT makes the script exec the Erlang VM in its place: $! is the broker.
# One scheduler that sleeps when idle: enough for an example, kind to a small machine.
HOME=$dir \
RABBITMQ_MNESIA_BASE=$dir/mnesia \
RABBITMQ_LOG_BASE=$dir/log \
RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
RABBITMQ_PLUGINS_EXPAND_DIR=$dir/plugins \
RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf \
RABBITMQ_CONFIG_FILE=$dir/rabbitmq \
RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config \
RABBITMQ_NODENAME=$NAME \
ERL_CRASH_DUMP=$dir/erl_crash.dump \
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
RABBITMQ_NODE_PORT=$RABBIT_PORT \
RABBITMQ_DIST_PORT=$DIST_PORT \
ERL_EPMD_PORT=$EPMD_PORT \
RABBITMQ_ALLOW_INPUT=1 \
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none' \
    "$SERVER" -noinput </dev/null >"$dir/server.out" 2>&1 &
server_pid=$!

# Up when the listener answers the AMQP 0-9-1 header with a method frame.
i=0
until python3 - "$RABBIT_PORT" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"AMQP\x00\x00\x09\x01")
sys.exit(0 if s.recv(1) == b"\x01" else 1)
EOF
do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "rabbitmq-server exited:" >&2
        tail -n 30 "$dir/server.out" >&2
        server_pid=""
        exit 1
    fi
    i=$((i + 1))
    [ "$i" -lt 600 ] || { echo "rabbitmq-server did not start in 60 s (log: $dir/server.out)" >&2; exit 1; }
    sleep 0.1
done

echo "rabbitmq is up on amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f (files in $dir; Ctrl-C stops it)"
echo "inspect it with: HOME=$dir ERL_EPMD_PORT=$EPMD_PORT $CTL -n $NAME list_queues name messages consumers arguments"
wait "$server_pid"
