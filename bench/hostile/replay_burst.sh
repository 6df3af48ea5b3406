#!/usr/bin/env bash
# bench/hostile/replay_burst.sh BIN ATTACKERS SECONDS: a Redis on 16379 and a node on 18080
# (loopback, default limits), seeded with 100 topics of about 768 KB of history each; ATTACKERS
# connections send a `subscribe` with `replay` for all 100 at once, read everything, and do it
# again, while a probe measures delivery on another topic (docs/history.md, "Reads").
set -u
DIR=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "$1"); A=$2; S=$3
cd "${TMPDIR:-/tmp}"  # the node's SQLite file and the logs go here
redis-server --port 16379 --save "" --appendonly no --daemonize no > "${TMPDIR:-/tmp}/redis.log" 2>&1 &
RP=$!
for i in $(seq 50); do redis-cli -p 16379 ping >/dev/null 2>&1 && break; sleep 0.1; done
JWT_SECRET=$(printf 's%.0s' $(seq 32)) API_KEY=$(printf 'k%.0s' $(seq 32)) HTTP_PORT=18080 PUBSUB_ADAPTER=redis \
  PUBSUB_REDIS_URL=redis://127.0.0.1:16379 LOG_LEVEL=warning "$BIN" > "${TMPDIR:-/tmp}/node.log" 2>&1 &
NP=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:18080/ready >/dev/null && break; sleep 0.1; done
python3 "$DIR/replay_burst.py" 18080 16379 "$BIN" 0 0 $NP seed
python3 "$DIR/replay_burst.py" 18080 16379 "$BIN" "$S" "$A" $NP run
kill -TERM $NP; wait $NP; echo "node exit $?"
redis-cli -p 16379 flushall >/dev/null; kill $RP; wait $RP 2>/dev/null
