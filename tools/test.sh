#!/usr/bin/env bash
# tools/test.sh [STEP...]: the whole test suite, as CI runs it (.ci/run). Installs what it needs
# first (tools/setup.sh), then runs each step with a banner and its time, goes on past a failed
# step so that one run shows every problem, prints a summary and exits non-zero if any step failed.
#
# Steps, in order (name them to run only those; setup always runs):
#   fmt       cargo fmt --all -- --check
#   clippy    cargo clippy --workspace --all-targets -- -D warnings
#   test      cargo test --workspace
#   peers     python3 -m pytest -q tests/peers: websockets, raw-socket and headless Chromium peers
#   doc       RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
#   autobahn  tools/autobahn.sh: all 517 Autobahn cases against a release build (AUTOBAHN_FULL=0: sections 1-11)
#   fuzz      each cargo-fuzz target in fuzz/: replays fuzz/seeds/T and fuzz/corpus/T once, then a
#             fixed-seed bounded run (-seed=1 -runs=FUZZ_RUNS, default 10000): deterministic
#   smoke     tools/smoke.sh 127.0.0.1:PORT against a release corecast, when tools/smoke.sh exists
#
# Environment: AUTOBAHN_FULL=1, FUZZ_RUNS=N, CI=true (set by .ci/run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

ALL_STEPS=(fmt clippy test peers doc autobahn fuzz smoke)
if [ "$#" -gt 0 ]; then
    for s in "$@"; do
        case " ${ALL_STEPS[*]} " in
            *" $s "*) ;;
            *) echo "test: unknown step '$s' (steps: ${ALL_STEPS[*]})" >&2; exit 2 ;;
        esac
    done
    steps=("$@")
else
    steps=("${ALL_STEPS[@]}")
fi

if [ "${CI:-}" = true ]; then
    export CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0
fi

fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# --- helpers shared by steps ---------------------------------------------------------------------

free_port() {
    python3 - <<'EOF'
import random, socket
for _ in range(500):
    p = random.randint(61001, 65000)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        print(p)
        break
else:
    raise SystemExit("no free port above 61000")
EOF
}

target_dir() {
    cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# wait_port PID PORT: until 127.0.0.1:PORT accepts (30 s), failing early if PID exits.
wait_port() {
    local pid=$1 port=$2
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || { echo "server exited before listening on $port" >&2; return 1; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing accepted on 127.0.0.1:$port within 30 s" >&2
    return 1
}

# stop_pid PID: TERM, then KILL after 5 s.
stop_pid() {
    local pid=$1
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# A step that has nothing to run says so and returns SKIP_RC.
SKIP_RC=99
skip() { echo "SKIPPED: $*"; exit "$SKIP_RC"; }

# --- steps (each runs in its own subshell with errexit on) -----------------------------------------

step_fmt() { cargo fmt --all -- --check; }

step_clippy() { cargo clippy --workspace --all-targets -- -D warnings; }

step_test() { cargo test --workspace; }

step_peers() { python3 -m pytest -q tests/peers; }

step_doc() { RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps; }

step_autobahn() {
    if [ "${AUTOBAHN_FULL:-1}" = 1 ]; then
        tools/autobahn.sh --full
    else
        tools/autobahn.sh --no-compression
    fi
}

step_fuzz() {
    [ -f fuzz/Cargo.toml ] || skip "no fuzz/Cargo.toml yet (cargo-fuzz workspace)"
    local runs=${FUZZ_RUNS:-10000} targets tmp t dirs n
    cd fuzz
    targets=$(cargo +nightly fuzz list)
    [ -n "$targets" ] || skip "cargo fuzz list shows no targets"
    echo "fuzz targets: $(echo "$targets" | tr '\n' ' ')"
    echo "deterministic: every committed seed and corpus input once, then -seed=1 -runs=$runs each"
    cargo +nightly fuzz build
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: $tmp is local and gone by the time the trap runs
    trap "rm -rf '$tmp'" EXIT
    for t in $targets; do
        echo "--- fuzz $t"
        dirs=()
        for d in "seeds/$t" "corpus/$t"; do
            [ -d "$d" ] && dirs+=("$d")
        done
        n=$(find "${dirs[@]}" -type f 2>/dev/null | wc -l)
        echo "inputs: ${dirs[*]:-none} ($n files)"
        # New inputs go to the temp dir (the first directory), never into the tree.
        mkdir -p "$tmp/$t"
        # 1. Replay: each committed input exactly once (no mutation).
        cargo +nightly fuzz run "$t" "$tmp/$t" "${dirs[@]}" -- -runs=0
        # 2. A bounded run from a fixed seed: the same commit always explores the same inputs.
        #    The time cap only guards against a pathological slowdown.
        cargo +nightly fuzz run "$t" "$tmp/$t" "${dirs[@]}" -- -seed=1 -runs="$runs" -max_total_time=300
    done
}

step_smoke() {
    [ -f tools/smoke.sh ] || skip "no tools/smoke.sh yet"
    local port pid rc=0
    cargo build --release --bin corecast
    port=$(free_port)
    echo "server: corecast --listen 127.0.0.1:$port --workers 2"
    "$(target_dir)/release/corecast" --listen "127.0.0.1:$port" --workers 2 &
    pid=$!
    # shellcheck disable=SC2064 # expand now: $pid is local and gone by the time the trap runs
    trap "stop_pid $pid" EXIT
    wait_port "$pid" "$port"
    bash tools/smoke.sh "127.0.0.1:$port" || rc=$?
    kill -0 "$pid" 2>/dev/null || { echo "the server died during the smoke run" >&2; rc=1; }
    return "$rc"
}

# --- runner --------------------------------------------------------------------------------------

names=()
statuses=()
durations=()
failed=0

# run_step NAME TITLE CMD...: banner, time, record. The command runs in a subshell that is not in
# a conditional context, so `set -e` holds inside it.
run_step() {
    local name=$1 title=$2 start rc status
    shift 2
    echo
    echo "======== [$name] $title ========"
    start=$(date +%s)
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    local took=$(($(date +%s) - start))
    case "$rc" in
        0) status=ok ;;
        "$SKIP_RC") status=skipped ;;
        *) status="FAILED (exit $rc)"; failed=$((failed + 1)) ;;
    esac
    echo "======== [$name] $status in $(fmt_time "$took") ========"
    names+=("$name")
    statuses+=("$status")
    durations+=("$took")
}

suite_start=$(date +%s)

run_step setup "tools/setup.sh" tools/setup.sh
if [ "$failed" -ne 0 ]; then
    echo "test: setup failed; not running the steps" >&2
    exit 1
fi

for s in "${steps[@]}"; do
    case "$s" in
        fmt) run_step fmt "cargo fmt --all -- --check" step_fmt ;;
        clippy) run_step clippy "cargo clippy --workspace --all-targets -- -D warnings" step_clippy ;;
        test) run_step test "cargo test --workspace" step_test ;;
        peers) run_step peers "python3 -m pytest -q tests/peers" step_peers ;;
        doc) run_step doc 'RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps' step_doc ;;
        autobahn) run_step autobahn "tools/autobahn.sh (Autobahn TestSuite via kosoku)" step_autobahn ;;
        fuzz) run_step fuzz "cargo +nightly fuzz: replay seeds + corpus, -seed=1 -runs=${FUZZ_RUNS:-10000}" step_fuzz ;;
        smoke) run_step smoke "tools/smoke.sh against a release corecast" step_smoke ;;
    esac
done

echo
echo "======== summary ========"
for i in "${!names[@]}"; do
    printf '  %-10s %8s  %s\n' "${names[$i]}" "$(fmt_time "${durations[$i]}")" "${statuses[$i]}"
done
printf '  %-10s %8s\n' total "$(fmt_time $(($(date +%s) - suite_start)))"
if [ "$failed" -ne 0 ]; then
    echo "test: $failed step(s) failed"
    exit 1
fi
echo "test: all steps passed"
