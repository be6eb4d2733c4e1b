# shellcheck shell=bash
# tools/lib.sh: shell helpers shared by compare.sh and million.sh (sourced, not run). Other
# people's servers may listen on this machine: never start on, or send load to, a port that
# is not ours.

# port_in_use PORT: true when something listens on 127.0.0.1:PORT (or any address).
port_in_use() {
    if command -v ss >/dev/null; then
        [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# next_free_port PORT: PORT or the first port above it with no listener (stays below 65000).
next_free_port() {
    local p=$1
    while port_in_use "$p"; do
        p=$((p + 1))
        if [ "$p" -ge 65000 ]; then
            echo "no free port above $1" >&2
            return 1
        fi
    done
    echo "$p"
}

# wait_listening PID PORT: waits up to 5 s until process PID listens on PORT; false if it
# exits first, or if the listener on PORT belongs to another process.
wait_listening() {
    local pid=$1 port=$2 tries=0
    while :; do
        kill -0 "$pid" 2>/dev/null || return 1
        if command -v ss >/dev/null; then
            local line
            line=$(ss -Hltnp "sport = :$port" 2>/dev/null)
            if [ -n "$line" ]; then
                # `ss -p` names the owner when we may see it; a foreign owner is a failure.
                case "$line" in
                    *"pid=$pid,"*) return 0 ;;
                    *pid=*) return 1 ;;
                    *) return 0 ;;
                esac
            fi
        elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        tries=$((tries + 1))
        [ "$tries" -gt 100 ] && return 1
        sleep 0.05
    done
}
