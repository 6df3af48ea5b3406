#!/usr/bin/env bash
# run.sh BINDIR N TRIM_INTERVAL: redis + node; N connections held 3 s; then /stats memory every 2 s for 24 s
set -euo pipefail
BIN="$1"; N="$2"; TRIM="$3"
ulimit -n "$(ulimit -Hn)"
W=$(mktemp -d /tmp/trim/run.XXXX)
read -r RP CP <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"
export JWT_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef API_KEY=0123456789abcdef0123456789abcdef
redis-server --bind 127.0.0.1 --port $RP --save '' --appendonly no --dir $W --logfile $W/redis.log --daemonize no </dev/null & RPID=$!
cleanup() { kill -TERM ${NPID:-} 2>/dev/null || true; wait ${NPID:-} 2>/dev/null || true; kill $RPID 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
sleep 0.5
env HTTP_HOST=127.0.0.1 HTTP_PORT=$CP NODE_ID=trim-1 PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL=redis://127.0.0.1:$RP DATABASE_URL=none \
  WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 LOG_LEVEL=${LOGLEVEL:-debug} MEMORY_TRIM_INTERVAL=$TRIM \
  "$BIN/chorus" serve </dev/null >$W/node.log 2>&1 & NPID=$!
for i in $(seq 1 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$CP/ready)" = 200 ] && break; sleep 0.2; done
mem() { curl -s http://127.0.0.1:$CP/stats | python3 -c 'import json,sys;m=json.load(sys.stdin)["memory"];print(m)'; }
echo "before: $(mem)"
"$BIN/chorus-bench" connections --url 127.0.0.1:$CP --connections $N --topics 100 --hold 3 --label c --json $W/result.json 2>&1 | grep -E "ready|memory" | head -3 || true
for t in 2 4 6 8; do sleep 2; echo "t+$t s: $(mem)"; done
if [ -n "${GDB:-}" ]; then gdb -p $NPID -batch -ex "call (int)malloc_trim(0)" 2>&1 | grep -E "^\\$|rror" | head -3; sleep 1; echo "after gdb trim: $(mem)"; fi
grep -iE "trimmed|heap" $W/node.log | head -40 | cut -c1-300
