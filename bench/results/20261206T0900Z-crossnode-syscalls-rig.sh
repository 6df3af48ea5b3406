#!/bin/bash
# Redis + 2 Chorus nodes + 2 nginx/Nchan (nostore); for each, chorus-bench latency (100 subscribers on
# the second instance, 100 msg/s), and the user and system CPU ticks of the second instance (node 2,
# or its nginx worker) over 10 s of the trial from /proc/<pid>/stat. Used for the 2026-12-06 section
# of 20261206T0000Z-crossnode-cpu-breakdown.md (there also with strace -c and perf in measure()).
set -u
B=${B:-.build-bench/release}
P=36100
W=/tmp/crossnode-rig; rm -rf $W; mkdir -p $W
ulimit -n 100000
source "$(dirname "$0")/../../scripts/lib/nchan.sh"
redis-server --bind 127.0.0.1 --port $P --save '' --appendonly no --dir $W --logfile $W/redis.log </dev/null & RP=$!
sleep 0.5
export JWT_SECRET=rigsecret0123456789abcdef
for i in 1 2; do
  env HTTP_HOST=127.0.0.1 HTTP_PORT=$((P+i)) NODE_ID=rig-$i PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL=redis://127.0.0.1:$P \
   WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 WEBSOCKET_MAX_BYTES_PER_SECOND=1073741824 \
   LOG_LEVEL=warning ${EXTRA_ENV:-} $B/chorus serve </dev/null >>$W/chorus-$i.log 2>&1 &
  eval N$i=$!
  mkdir -p $W/nginx-$i/tmp
  nchan_conf $W/nginx-$i 127.0.0.1 $((P+10+i)) $P 1 nostore off > $W/nginx-$i/nginx.conf
  nginx -c $W/nginx-$i/nginx.conf -e $W/nginx-$i/error.log </dev/null >>$W/nginx-$i.out 2>&1 &
  eval G$i=$!
done
for i in 1 2; do for _ in $(seq 100); do curl -sf http://127.0.0.1:$((P+i))/ready >/dev/null && curl -sf http://127.0.0.1:$((P+10+i))/health >/dev/null && break; sleep 0.1; done; done
W2=$(pgrep -P $G2)
measure() { # NAME PID
  sleep 4
  a=$(awk '{print $14, $15}' /proc/$2/stat); c1=$(awk '/^ctxt/{print $2}' /proc/stat); sleep 10; b=$(awk '{print $14, $15}' /proc/$2/stat)
  echo "$a $b" | awk '{printf "user %d ms  sys %d ms  (per message over 1000: user %.0f us, sys %.0f us)\n", ($3-$1)*10, ($4-$2)*10, ($3-$1)*10, ($4-$2)*10}' > $W/ticks-$1.txt
  true
}
for round in 1 2 3; do
for t in chorus nchan; do
  if [ $t = chorus ]; then U="--url 127.0.0.1:$((P+1)) --url 127.0.0.1:$((P+2))"; PID=$N2; else U="--url 127.0.0.1:$((P+11)) --url 127.0.0.1:$((P+12))"; PID=$W2; fi
  measure $t-$round $PID &
  M=$!
  $B/chorus-bench latency --target $t $U --topic lat.$t.$round --subscribers 100 --rate 100 --duration 16 --warmup 1 > $W/bench-$t-$round.txt 2>&1
  wait $M
  echo "== $t round $round"; grep -E "p50|p99" $W/bench-$t-$round.txt | head -3; cat $W/ticks-$t-$round.txt
done
done
kill $N1 $N2 $G1 $G2; wait $N1 $N2; echo "node exits: $?"; kill $RP; wait
