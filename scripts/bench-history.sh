#!/usr/bin/env bash
# The cost of history: the same scenarios with HISTORY_SIZE=0 (off) and HISTORY_SIZE=100 (on),
# alternating in one run on one Redis, with the release binaries of scripts/bench.sh.
#
#   scripts/bench-history.sh [--rounds N]
#
# Scenarios (chorus-bench broadcast, 2 nodes, PUBSUB_ADAPTER=redis):
#   fanout   1,000 subscribers, 2,000 msg/s offered (deliveries dominate)
#   publish  10 subscribers, --find-max with p99 <= 50 ms (publishes dominate: each one is an
#            EVALSHA of the history script instead of a PUBLISH)
# Prints one line per trial; the JSON results go to bench/results/<stamp>-history-*.json.
# Environment: SCRATCH=.build-bench (binaries in $SCRATCH/release; build them with
# scripts/bench.sh, or `release_build --scratch-path .build-bench` of scripts/lib/release-build.sh); SCENARIOS="fanout
# publish" (the default; SCENARIOS=publish runs the publish-bound scenario alone);
# PUBLISH_RATE=N runs the publish-bound scenario at N msg/s for 5 s instead of searching for the
# highest rate (the CPU each process spends at one rate is steadier on a busy machine than p99).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
ROUNDS=2
[ "${1:-}" = --rounds ] && ROUNDS="$2"
SCRATCH="${SCRATCH:-.build-bench}"
SCENARIOS="${SCENARIOS:-fanout publish}"
CHORUS="$REPO/$SCRATCH/release/chorus"
BENCH="$REPO/$SCRATCH/release/chorus-bench"
[ -x "$CHORUS" ] && [ -x "$BENCH" ] || { echo "missing $CHORUS or $BENCH" >&2; exit 1; }
# shellcheck source=lib/loopback.sh
source "$REPO/scripts/lib/loopback.sh"
WORK="$(mktemp -d)"
RESULTS="$REPO/bench/results"
mkdir -p "$RESULTS"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
read -r -a PORTS <<<"$(free_ports 3)"
JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
export JWT_SECRET
PIDS=()
NODES=()
cleanup() { for p in "${NODES[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
redis-server --bind 127.0.0.1 --port "${PORTS[0]}" --save '' --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" &
PIDS+=($!)
for _ in $(seq 1 100); do [ "$(redis-cli -p "${PORTS[0]}" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done

NODES=()
start_nodes() {  # HISTORY_SIZE
    NODES=()
    for i in 1 2; do
        env HTTP_HOST=127.0.0.1 HTTP_PORT="${PORTS[$i]}" NODE_ID="bench-$i" DATABASE_URL=none \
            PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL="redis://127.0.0.1:${PORTS[0]}" HISTORY_SIZE="$1" \
            WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 WEBSOCKET_MAX_BYTES_PER_SECOND=1073741824 LOG_LEVEL=warning \
            "$CHORUS" serve </dev/null >>"$WORK/chorus-$i.log" 2>&1 &
        NODES+=($!)
        wait_for "http://127.0.0.1:${PORTS[$i]}/ready" 30 "${NODES[-1]}" "chorus-$i" "$WORK/chorus-$i.log"
    done
}
stop_nodes() { for p in "${NODES[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done; redis-cli -p "${PORTS[0]}" flushall >/dev/null; }

run() {  # NAME SIZE ARGS...
    local name="$1" size="$2"; shift 2
    local out="$RESULTS/$STAMP-history-$name-size$size-$round.json"
    "$BENCH" broadcast --url "127.0.0.1:${PORTS[1]}" --url "127.0.0.1:${PORTS[2]}" --quiet --json "$out" \
        --watch "redis=${PIDS[0]}" --watch "chorus-1=${NODES[0]}" --watch "chorus-2=${NODES[1]}" "$@" >/dev/null 2>&1 || true
    python3 - "$out" "$name" "$size" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
res, sat = r["result"], r.get("saturation") or {}
line = f"{sys.argv[2]:8} HISTORY_SIZE={sys.argv[3]:3}  published/s {res['publishedPerSecond']:9.0f}  deliveries/s {res['deliveredPerSecond']:10.0f}  lost {res['lost']}  p50 {res['latency']['p50Ms']:.2f} ms  p99 {res['latency']['p99Ms']:.2f} ms  server CPU/delivery {res['serverCPUMicrosPerDelivery']:.3f} us"
if sat: line += f"  max rate (no loss, p99 <= {sat['p99BoundMs']} ms) {sat.get('highestPassingRate', 'none')} msg/s"
print(line)
PY
}

for round in $(seq 1 "$ROUNDS"); do
    for size in 0 100; do
        start_nodes "$size"
        if [[ " $SCENARIOS " == *" fanout "* ]]; then
            run fanout "$size" --subscribers 1000 --rate 2000 --duration 5 --warmup 1 --drain 30
        fi
        if [[ " $SCENARIOS " == *" publish "* && -n "${PUBLISH_RATE:-}" ]]; then
            run publish "$size" --subscribers 10 --rate "$PUBLISH_RATE" --duration 5 --warmup 1 --drain 8
        elif [[ " $SCENARIOS " == *" publish "* ]]; then run publish "$size" --subscribers 10 --find-max --rate 2000 --max-rate 200000 --search-steps 4 \
            --p99-bound-ms 50 --duration 3 --warmup 1 --drain 8
        fi
        stop_nodes
    done
done
echo "results: $RESULTS/$STAMP-history-*.json"
