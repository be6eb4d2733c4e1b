#!/usr/bin/env bash
# tools/setup.sh: installs what the test suite needs on a fresh machine (Debian 12, root or
# passwordless sudo). Idempotent: each item is checked first and installed only when missing, so a
# second run takes a second or two. Prints what it installs.
#
#   apt    redis-server nginx chromium rabbitmq-server   (apt-get update only if something is missing)
#   pip    kosoku websockets pytest pika (python3 -m pip)
#   cargo  cargo-fuzz                    (only if `cargo fuzz --version` fails; compiles for minutes)
#   rustup rustfmt + clippy on stable, a nightly toolchain (for cargo fuzz)
#
# Needs no standard input. Packages' services are not started by the install (policy-rc.d), so
# nothing is left listening on 6379, 80 or 5672.
set -euo pipefail

# chromium: tests/peers/test_chromium.py; rabbitmq-server: tests/amqp_bridge.rs (started by the test
# itself in the foreground, on its own ports and files).
APT_PACKAGES=(redis-server nginx chromium rabbitmq-server)

log() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    SUDO=()
fi

started=$(date +%s)
installed=()

# --- apt -----------------------------------------------------------------------------------------
apt_missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        apt_missing+=("$pkg")
    fi
done
if [ "${#apt_missing[@]}" -gt 0 ]; then
    log "installing apt packages: ${apt_missing[*]}"
    # Keep the packages' init scripts from starting services during the install (a redis on 6379
    # would collide with the tests' own; a rabbitmq-server would sit on 5672 and a CPU). Only
    # when no policy is in place already.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        own_policy=1
        # shellcheck disable=SC2064 # expand now: the array is fixed
        trap "${SUDO[*]} rm -f $policy" EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${apt_missing[@]}"
    if [ "$own_policy" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$policy"
        trap - EXIT
    fi
    installed+=("apt: ${apt_missing[*]}")
fi

# --- pip -----------------------------------------------------------------------------------------
pip_missing=()  # kosoku: the Autobahn runner; websockets: for Python test clients; pytest: tests/peers;
# pika: the services of the gateway's ride-sharing example (docs/examples/ride-sharing/)
python3 -c 'import websockets' 2>/dev/null || pip_missing+=(websockets)
python3 -c 'import pika' 2>/dev/null || pip_missing+=(pika)
python3 -c 'import pytest' 2>/dev/null || pip_missing+=(pytest)
command -v kosoku >/dev/null 2>&1 || pip_missing+=(kosoku)
if [ "${#pip_missing[@]}" -gt 0 ]; then
    log "installing pip packages: ${pip_missing[*]}"
    pip_args=(install --quiet --no-input --disable-pip-version-check)
    if ! python3 -m pip "${pip_args[@]}" "${pip_missing[@]}"; then
        # Debian's own python3 refuses system-wide installs (PEP 668) unless told otherwise.
        log "retrying with --break-system-packages"
        python3 -m pip "${pip_args[@]}" --break-system-packages "${pip_missing[@]}"
    fi
    # pyenv puts console scripts behind shims that exist only after a rehash.
    if command -v pyenv >/dev/null 2>&1; then
        pyenv rehash || true
    fi
    hash -r
    installed+=("pip: ${pip_missing[*]}")
fi
if ! command -v kosoku >/dev/null 2>&1; then
    log "note: kosoku is installed but not on PATH; tools/autobahn.sh runs it through python3"
fi

# --- rustup --------------------------------------------------------------------------------------
components=$(rustup component list --installed --toolchain stable 2>/dev/null || true)
comp_missing=()
for comp in rustfmt clippy; do
    grep -q "^$comp" <<<"$components" || comp_missing+=("$comp")
done
if [ "${#comp_missing[@]}" -gt 0 ]; then
    log "installing rustup components for stable: ${comp_missing[*]}"
    rustup component add --toolchain stable "${comp_missing[@]}"
    installed+=("rustup: ${comp_missing[*]}")
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    log "installing the nightly toolchain (minimal profile)"
    rustup toolchain install nightly --profile minimal
    installed+=("rustup: nightly")
fi

# --- cargo ---------------------------------------------------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (cargo install --locked; takes a few minutes)"
    cargo install cargo-fuzz --locked
    installed+=("cargo: cargo-fuzz")
fi

elapsed=$(($(date +%s) - started))
if [ "${#installed[@]}" -eq 0 ]; then
    log "everything already present (${elapsed}s)"
else
    for item in "${installed[@]}"; do log "installed $item"; done
    log "done (${elapsed}s)"
fi
