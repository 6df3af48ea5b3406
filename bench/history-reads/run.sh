#!/usr/bin/env bash
# bench/history-reads/run.sh BIN CLIENTS SECONDS: a Redis on 16379 and a node (BIN, release build)
# on 18080, loopback; CLIENTS connections loop subscribe {replay:10} / unsubscribe on topics of
# their own (reads.py), so every subscribe is one history read on the node's command queue.
set -u
DIR=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "$1"); C=$2; S=$3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/history-reads.XXXXXX")
cd "$WORK"
redis-server --port 16379 --save "" --appendonly no --daemonize no > redis.log 2>&1 &
RP=$!
trap 'kill $RP ${NP:-} 2>/dev/null; rm -rf "$WORK"' EXIT
for i in $(seq 50); do redis-cli -p 16379 ping >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 $! 2>/dev/null || { echo "redis-server did not start (port 16379 taken?): $(tail -1 redis.log)" >&2; exit 1; }
JWT_SECRET=$(printf 's%.0s' $(seq 32)) HTTP_PORT=18080 PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL=redis://127.0.0.1:16379 \
  DATABASE_URL=none WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=100000 LOG_LEVEL=warning \
  "$BIN" > node.log 2>&1 &
NP=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:18080/health >/dev/null && break; sleep 0.1; done
python3 "$DIR/reads.py" 18080 "$BIN" "$C" "$S"
kill -TERM $NP; wait $NP; echo "node exit $?"
