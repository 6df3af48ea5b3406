#!/usr/bin/env bash
# bench/redis-tls/run.sh BIN BENCH ROUNDS SECONDS: the cost of TLS between the nodes and Redis.
# One redis-server with a plain port (16379) and a TLS port (16380, certificates from a CA made
# here), two nodes (BIN, release) on 18081/18082 that reach it as redis:// or rediss://, the two
# modes alternating ROUNDS times. Each round: cross-node latency (BENCH = chorus-bench: 100
# subscribers on the second node, 100 msg/s published on the first, SECONDS measured), then
# history reads (20 clients, bench/history-reads/reads.py) on the second node. Loopback only.
set -u
DIR=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "$1"); BENCH=$(realpath "$2"); ROUNDS=$3; S=$4
WORK=$(mktemp -d "${TMPDIR:-/tmp}/redis-tls.XXXXXX")
cd "$WORK"
PIDS=""
trap 'kill $PIDS 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bench-ca -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=bench-redis -keyout key.pem -out cert.csr 2>/dev/null
echo "subjectAltName=IP:127.0.0.1" > ext.cnf
openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile ext.cnf -out cert.pem 2>/dev/null
redis-server --port 16379 --tls-port 16380 --tls-cert-file cert.pem --tls-key-file key.pem --tls-ca-cert-file ca.pem \
    --tls-auth-clients no --save "" --appendonly no --daemonize no > redis.log 2>&1 &
PIDS="$!"
for i in $(seq 50); do redis-cli -p 16379 ping >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 $! 2>/dev/null || { echo "redis-server did not start (port 16379 taken?): $(tail -1 redis.log)" >&2; exit 1; }
export JWT_SECRET=$(printf 's%.0s' $(seq 32))
for round in $(seq "$ROUNDS"); do
    for mode in plain tls; do
        url=redis://127.0.0.1:16379
        [ "$mode" = tls ] && url=rediss://127.0.0.1:16380
        NODES=""
        for port in 18081 18082; do
            HTTP_PORT=$port NODE_ID=n$port PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL=$url PUBSUB_REDIS_TLS_CA_FILE=$([ "$mode" = tls ] && echo "$WORK/ca.pem") \
                DATABASE_URL=none WEBSOCKET_MAX_CONNECTIONS_PER_IP=100000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=100000 \
                LOG_LEVEL=warning "$BIN" > node-$port.log 2>&1 &
            NODES="$NODES $!"
        done
        PIDS="$PIDS $NODES"
        for port in 18081 18082; do
            for i in $(seq 100); do curl -sf http://127.0.0.1:$port/ready >/dev/null && break; sleep 0.1; done
        done
        "$BENCH" latency --url 127.0.0.1:18081 --url 127.0.0.1:18082 --subscribers 100 --rate 100 --duration "$S" \
            --quiet --json latency.json > bench.out 2>&1 || tail -3 bench.out
        latency=$(python3 -c 'import json; r=json.load(open("latency.json"))["result"]; l=r["latency"]; print(f"p50 {l['"'"'p50Ms'"'"']:.3f} p99 {l['"'"'p99Ms'"'"']:.3f} ms, lost {r['"'"'lost'"'"']}")')
        reads=$(python3 "$DIR/../history-reads/reads.py" 18082 "$BIN" 20 "$S")
        status=""
        for pid in $NODES; do kill -TERM "$pid"; wait "$pid"; status="$status $?"; done
        echo "round $round $mode latency $latency reads $reads node exits$status"
    done
done
