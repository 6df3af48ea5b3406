#!/usr/bin/env bash
# Instructions per delivery on the WebSocket delivery path, counted by valgrind's callgrind
# (stable on a noisy machine, unlike wall-clock).
#
#   scripts/callgrind-delivery.sh [--chorus PATH] [--bench PATH] [--subscribers N] [--rate R]
#                                 [--duration S] [--out DIR]
#
# Starts one node (PUBSUB_ADAPTER=memory) under callgrind with collection switched on only
# inside the delivery path (the hub's hand-off and the registry's fan-out, everything they call
# included: encoding, matching, NIO writes and flushes up to the system call), runs
# chorus-bench broadcast against it, stops the node (SIGTERM, callgrind writes its file at
# exit) and prints the instructions counted divided by the deliveries the node reported.
# System-call time in the kernel is not counted: compare flush counts for that.
#
# valgrind 3.19 (Debian 12) cannot read the DWARF 5 debug info of Swift 6 binaries: with it, the
# node runs from a copy stripped of debug info (the symbol table still names every function), or
# use 3.20 or newer (VALGRIND=/path/to/valgrind, VALGRIND_LIB=... for an unpacked .deb). libdispatch's
# dispatch_main() parks the main thread in sigsuspend() on a static mask that valgrind fails
# to read (internal SIGSEGV), so a small LD_PRELOAD shim copies the mask to the stack first.
#
# Defaults: 200 subscribers, 20 msg/s, 5 s (about 20,000 deliveries; one message per batch,
# the low-rate case where every delivery is its own write and flush).

set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHORUS="$REPO/.build-bench/release/chorus"
BENCH="$REPO/.build-bench/release/chorus-bench"
SUBSCRIBERS=200
RATE=20
DURATION=5
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --chorus) CHORUS="$2"; shift 2 ;;
        --bench) BENCH="$2"; shift 2 ;;
        --subscribers) SUBSCRIBERS="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "callgrind-delivery: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
VALGRIND="${VALGRIND:-valgrind}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chorus-callgrind.XXXXXX")"
OUT="${OUT:-$WORK}"
mkdir -p "$OUT"
NODE_PID=""
cleanup() {
    [ -n "$NODE_PID" ] && kill -KILL "$NODE_PID" 2>/dev/null || true
    rm -rf "$WORK/shim" "$WORK/chorus-nodebug"
}
trap cleanup EXIT

mkdir -p "$WORK/shim"
cat >"$WORK/shim/shim.c" <<'EOF'
#define _GNU_SOURCE
#include <signal.h>
#include <unistd.h>
#include <sys/syscall.h>
int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, 8);
}
EOF
clang -O2 -shared -fPIC "$WORK/shim/shim.c" -o "$WORK/shim/libshim.so"

if "$VALGRIND" --version | grep -Eq '^valgrind-3\.(1[0-9]|[0-9])(\.|$)'; then
    objcopy --strip-debug "$CHORUS" "$WORK/chorus-nodebug"
    CHORUS="$WORK/chorus-nodebug"
fi

# Collection is switched on inside these functions only (callgrind toggles on every entry of
# a matching function, so they must not call one another): the hub's hand-off on the
# adapter's thread (encoding included), and the fan-out on the loops: the registry's
# `deliver([Delivery])` before the inbox existed, `drainInbox()` since.
TOGGLES=(
    --toggle-collect='$s4Node13ConnectionHubC7deliveryySay6Broker8EnvelopeVGF'
    --toggle-collect='$s4Node18ConnectionRegistryC7deliveryySayAA8DeliveryVGF'
    --toggle-collect='$s4Node18ConnectionRegistryC10drainInboxyyF'
)

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export JWT_SECRET="callgrind-secret-0123456789abcdef"
env LD_PRELOAD="$WORK/shim/libshim.so" HTTP_HOST=127.0.0.1 HTTP_PORT="$PORT" PUBSUB_ADAPTER=memory \
    WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 WEBSOCKET_MAX_BYTES_PER_SECOND=1073741824 LOG_LEVEL=warning \
    "$VALGRIND" --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" --collect-atstart=no \
    "${TOGGLES[@]}" \
    "$CHORUS" serve >"$OUT/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 600); do
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/ready" && break
    sleep 0.5
done
"$BENCH" broadcast --url "127.0.0.1:$PORT" --subscribers "$SUBSCRIBERS" --rate "$RATE" --duration "$DURATION" \
    --warmup 1 --drain 60 --connect-timeout 120 --quiet --json "$OUT/bench.json" >"$OUT/bench.txt" 2>&1 || true
DELIVERED="$(curl -s --max-time 30 "http://127.0.0.1:$PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"]["delivered"])')"
kill -TERM "$NODE_PID"
wait "$NODE_PID" 2>/dev/null || true
NODE_PID=""
IR="$(grep -E '^(summary|totals):' "$OUT/callgrind.out" | head -1 | awk '{print $2}')"
python3 - "$IR" "$DELIVERED" "$SUBSCRIBERS" "$RATE" <<'EOF'
import sys
ir, delivered, subs, rate = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"subscribers {subs}, rate {rate} msg/s: {delivered} deliveries, {ir:,} instructions on the delivery path, "
      f"{ir / max(1, delivered):,.0f} per delivery")
EOF
echo "callgrind file: $OUT/callgrind.out (callgrind_annotate --inclusive=yes)"
