#!/bin/bash
# usage: rig.sh CMD... ; env R=redis port base. Starts redis + 2 chorus nodes (release), runs CMD with $URLS $WATCH exported
set -u
B=${B:-/work/main/.build-bench/release}
P=${P:-38100}
W=/tmp/rig/w; rm -rf $W; mkdir -p $W
ulimit -n 1000000
redis-server --bind 127.0.0.1 --port $P --save '' --appendonly no --dir $W --logfile $W/redis.log --daemonize no </dev/null & RP=$!
sleep 0.5
export JWT_SECRET=rigsecret0123456789abcdef
for i in 1 2; do
  env HTTP_HOST=127.0.0.1 HTTP_PORT=$((P+i)) NODE_ID=rig-$i PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL=redis://127.0.0.1:$P \
   WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 WEBSOCKET_MAX_BYTES_PER_SECOND=1073741824 \
   LOG_LEVEL=warning ${EXTRA_ENV:-} $B/chorus serve </dev/null >>$W/chorus-$i.log 2>&1 &
  eval N$i=$!
done
for i in 1 2; do for _ in $(seq 100); do curl -sf http://127.0.0.1:$((P+i))/ready >/dev/null && break; sleep 0.1; done; done
export URLS="--url 127.0.0.1:$((P+1)) --url 127.0.0.1:$((P+2))"
export WATCH="--watch redis=$RP --watch chorus-1=$N1 --watch chorus-2=$N2"
"$@"; rc=$?
kill $N1 $N2; wait $N1 $N2; echo "node exits: $?"; kill $RP; wait $RP 2>/dev/null
exit $rc
