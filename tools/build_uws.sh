#!/usr/bin/env bash
# tools/build_uws.sh: builds uWebSockets (C++) as a reference server for tools/compare.sh, from
# sources the caller has already fetched. Nothing of uWebSockets or uSockets is committed here:
# this script only writes a ~60-line app next to the build output and compiles it.
#
# The app serves, on 127.0.0.1:PORT (argv[1]), one event loop, one thread:
#   /echo        sends every data message back with the same opcode
#   /broadcast   every connection subscribes to one topic; every message it receives is
#                published to that topic (app.publish: the sender gets it too)
# Limits mirror corecast's defaults: 16 MiB messages, 1 MiB backpressure per connection (over
# it a send is dropped, not closed), idle timeout 60 s with automatic pings; no compression.
#
# Build: uSockets as C11 (epoll backend, the Linux default), the app as C++20, both with
# -O3 -flto -DLIBUS_NO_SSL -DUWS_NO_ZLIB. No -march=native (corecast is not built with
# target-cpu=native either); UWS_EXTRA_FLAGS adds flags to both compilers.
#
# Usage: UWS_SRC=DIR [USOCKETS_SRC=DIR] [UWS_OUT=DIR] tools/build_uws.sh
#   UWS_SRC        a uWebSockets checkout (has src/App.h)
#   USOCKETS_SRC   a uSockets checkout (has src/libusockets.h); default $UWS_SRC/uSockets
#   UWS_OUT        build directory (default /tmp/uws/build); the binary is $UWS_OUT/uws-anchor
#   CC, CXX        compilers (default cc, c++)
#   UWS_DESC       what the sources are, for the table (default: the commits when the source
#                  directories are git work trees); written to $UWS_OUT/uws-anchor.version
# Then: UWS_BIN=$UWS_OUT/uws-anchor tools/compare.sh
#
# Getting the sources (any way works; the commits measured are in docs/benchmarks.md):
#   git clone https://github.com/uNetworking/uWebSockets /tmp/uws/uWebSockets
#   git clone https://github.com/uNetworking/uSockets /tmp/uws/uWebSockets/uSockets
set -euo pipefail

log() { printf 'build_uws: %s\n' "$*" >&2; }

: "${UWS_SRC:?set UWS_SRC to a uWebSockets checkout}"
usockets=${USOCKETS_SRC:-$UWS_SRC/uSockets}
out=${UWS_OUT:-/tmp/uws/build}
cc=${CC:-cc}
cxx=${CXX:-c++}
extra=${UWS_EXTRA_FLAGS:-}

[ -f "$UWS_SRC/src/App.h" ] || { log "no src/App.h under UWS_SRC=$UWS_SRC"; exit 1; }
[ -f "$usockets/src/libusockets.h" ] || { log "no src/libusockets.h under $usockets"; exit 1; }
mkdir -p "$out/obj"

flags="-O3 -flto -DLIBUS_NO_SSL -DUWS_NO_ZLIB"

cat >"$out/uws_anchor.cpp" <<'CPP'
// uws_anchor: /echo and /broadcast on 127.0.0.1:PORT, one thread (written by
// corecast's tools/build_uws.sh; a benchmark reference, not part of corecast).
#include "App.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = std::atoi(argv[1]);
    struct PerSocketData {};

    uWS::App app;
    uWS::App *appPtr = &app;

    app.ws<PerSocketData>("/echo", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 16 * 1024 * 1024,
        .idleTimeout = 60,
        .maxBackpressure = 1024 * 1024,
        .closeOnBackpressureLimit = false,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = true,
        .message = [](auto *ws, std::string_view message, uWS::OpCode opCode) {
            ws->send(message, opCode, false);
        },
    }).ws<PerSocketData>("/broadcast", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 16 * 1024 * 1024,
        .idleTimeout = 60,
        .maxBackpressure = 1024 * 1024,
        .closeOnBackpressureLimit = false,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = true,
        .open = [](auto *ws) {
            ws->subscribe("broadcast");
        },
        .message = [appPtr](auto * /*ws*/, std::string_view message, uWS::OpCode opCode) {
            appPtr->publish("broadcast", message, opCode, false);
        },
    }).listen("127.0.0.1", port, [port](auto *listenSocket) {
        if (listenSocket) {
            std::fprintf(stderr, "uws-anchor: listening on 127.0.0.1:%d\n", port);
        } else {
            std::fprintf(stderr, "uws-anchor: cannot listen on 127.0.0.1:%d\n", port);
            std::exit(1);
        }
    }).run();
    return 0;
}
CPP

log "compiling uSockets ($usockets) with $cc"
rm -f "$out"/obj/*.o
# The same file set as uSockets' Makefile; SSL, io_uring and QUIC parts compile to nothing
# without their LIBUS_USE_* defines.
for f in "$usockets"/src/*.c "$usockets"/src/eventing/*.c "$usockets"/src/crypto/*.c \
    "$usockets"/src/io_uring/*.c; do
    [ -f "$f" ] || continue
    rel=${f#"$usockets"/src/}
    # shellcheck disable=SC2086 # flag lists are word lists on purpose
    "$cc" $flags $extra -std=c11 -I"$usockets/src" -c "$f" -o "$out/obj/${rel//\//_}.o"
done

log "compiling and linking the app ($UWS_SRC) with $cxx"
# shellcheck disable=SC2086
"$cxx" $flags $extra -std=c++20 -I"$UWS_SRC/src" -I"$usockets/src" \
    "$out/uws_anchor.cpp" "$out"/obj/*.o -o "$out/uws-anchor"

# commit DIR: the short commit of DIR when DIR is the top of a git work tree, else "?".
commit() {
    if [ "$(git -C "$1" rev-parse --show-toplevel 2>/dev/null)" = "$(cd "$1" && pwd -P)" ]; then
        git -C "$1" rev-parse --short=12 HEAD
    else
        echo "?"
    fi
}
echo "${UWS_DESC:-uWebSockets $(commit "$UWS_SRC") + uSockets $(commit "$usockets")}" \
    >"$out/uws-anchor.version"

log "built $out/uws-anchor (run: $out/uws-anchor PORT)"
echo "$out/uws-anchor"
