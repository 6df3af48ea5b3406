#!/usr/bin/env bash
# run.sh BINDIR N [WRAPPER...]: redis + one chorus node (as bench.sh starts it) + chorus-bench connections N
set -euo pipefail
BIN="$1"; N="$2"; shift 2
ulimit -n "$(ulimit -Hn)"
W=$(mktemp -d /tmp/memconn/run.XXXX)
read -r RP CP <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"
export JWT_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef API_KEY=0123456789abcdef0123456789abcdef
redis-server --bind 127.0.0.1 --port $RP --save '' --appendonly no --dir $W --logfile $W/redis.log --daemonize no </dev/null & RPID=$!
cleanup() { kill -TERM ${NODEPID:-} ${NPID:-} 2>/dev/null || true; for i in $(seq 1 200); do kill -0 ${NPID:-0} 2>/dev/null || break; sleep 0.1; done; kill -KILL ${NPID:-} 2>/dev/null || true; kill $RPID 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
sleep 0.5
cd $W
env HTTP_HOST=127.0.0.1 HTTP_PORT=$CP NODE_ID=bench-1 PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL=redis://127.0.0.1:$RP \
  WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 LOG_LEVEL=warning WEBSOCKET_COMPRESSION=${COMPRESSION:-off} \
  "$@" "$BIN/chorus" serve </dev/null >$W/node.log 2>&1 & NPID=$!
for i in $(seq 1 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$CP/ready)" = 200 ] && break; sleep 0.2; done
sleep 1
NODEPID=$(pgrep -P $NPID -x chorus || echo $NPID)
T0=$(awk "{print \$14+\$15}" /proc/$NODEPID/stat); "$BIN/chorus-bench" connections --url 127.0.0.1:$CP --watch node=$NODEPID --connections $N --topics 100 --hold 3 --label connections --json $W/result.json 2>&1 | grep -E "memory|ready" || true
python3 -c "import json;d=json.load(open('$W/result.json'));print(json.dumps(d.get('memory', d), default=str)[:600])" 2>/dev/null || true
T1=$(awk "{print \$14+\$15}" /proc/$NODEPID/stat); echo "NODECPU ticks $((T1-T0))"
