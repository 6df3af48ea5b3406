#!/usr/bin/env bash
# bench/hostile/replay.sh BIN ATTACKERS SECONDS: a Redis on 16379 and a node on 18080 (loopback),
# seeded with 100 messages of 1 MB on big.t; ATTACKERS connections loop subscribe {replay:100} /
# unsubscribe while a probe in its own process measures delivery on another topic (docs/history.md).
set -u
DIR=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "$1"); A=$2; S=$3
cd "${TMPDIR:-/tmp}"  # the node's SQLite file and the logs go here
redis-server --port 16379 --save "" --appendonly no --daemonize no > ${TMPDIR:-/tmp}/redis.log 2>&1 &
RP=$!
sleep 0.5
JWT_SECRET=$(printf 's%.0s' $(seq 32)) HTTP_PORT=18080 PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL=redis://127.0.0.1:16379 \
  WEBSOCKET_MAX_MESSAGE_SIZE=2097152 WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000 HISTORY_MAX_BYTES=268435456 LOG_LEVEL=warning \
  $BIN > ${TMPDIR:-/tmp}/node.log 2>&1 &
NP=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:18080/health >/dev/null && break; sleep 0.1; done
python3 "$DIR/replay_amplification.py" 18080 16379 $BIN 0 0 $NP seed
python3 "$DIR/replay_amplification.py" 18080 16379 $BIN $S 0 $NP probe > ${TMPDIR:-/tmp}/probe.out &
PP=$!
[ "$A" -gt 0 ] && python3 "$DIR/replay_amplification.py" 18080 16379 $BIN $S $A $NP attack
wait $PP; cat ${TMPDIR:-/tmp}/probe.out
kill -TERM $NP; wait $NP; echo "node exit $?"
redis-cli -p 16379 flushall >/dev/null; kill $RP; wait $RP 2>/dev/null
