#!/bin/bash
# usage: ab.sh LABEL BIN : redis + 2 nodes of BIN; probe + victim2 for 15 s base, 40 s attack A (100 conns, shared topic, distinct users, 90/s), 10 s after
L=$1; BIN=$2; cd "$(dirname "$0")"
R=36601; P1=36611; P2=36612
rm -f phases-$L.log presence-$L.jsonl victim-$L.jsonl
redis-server --port $R --bind 127.0.0.1 --save '' --appendonly no --logfile /tmp/storm-ab/redis-$L.log & RP=$!
sleep 0.5
for i in 1 2; do
  env HTTP_HOST=127.0.0.1 HTTP_PORT=$((36610+i)) NODE_ID=n$i PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL=redis://127.0.0.1:$R JWT_SECRET=secret0123456789abcdef0123456789 LOG_LEVEL=warning DATABASE_URL=none $BIN serve > node$i-$L.log 2>&1 &
  eval N$i=$!
done
for i in 1 2; do for _ in $(seq 100); do curl -sf http://127.0.0.1:$((36610+i))/ready >/dev/null && break; sleep 0.1; done; done
ph(){ echo "$(date +%s.%N) $1" >> phases-$L.log; }
python3 presence_probe.py $P1 $P2 presence-$L.jsonl 2> probe-$L.err & PR=$!
python3 victim2.py $P1 $P2 victim-$L.jsonl 2> victim-$L.err & VI=$!
ph base; sleep 15
ph attack
nice -n 10 python3 attack.py $P1 50 shared distinct 40 90 attack-$L.jsonl a > /dev/null 2>&1 & a1=$!
nice -n 10 python3 attack.py $P1 50 shared distinct 40 90 attack-$L.jsonl b > /dev/null 2>&1 & a2=$!
wait $a1 $a2
ph after; sleep 10; ph end
kill $PR $VI
kill $N1 $N2; wait $N1; e1=$?; wait $N2; e2=$?; echo "node exits $e1 $e2"
kill $RP; wait $RP 2>/dev/null
python3 presence_an.py presence-$L.jsonl phases-$L.log
python3 analyze.py victim-$L.jsonl /dev/null phases-$L.log 2>&1 | head -20
