#!/usr/bin/env bash
# usage: rooms-cs.sh LABEL BIN LOOPS RATE TOPICS -> rooms trial + perf stat on node 1
LABEL=$1 BIN=$2 LOOPS=$3 RATE=$4 TOPICS=${5:-1000}
mkdir -p /tmp/rig/res
export NIO_SINGLETON_GROUP_LOOP_COUNT=$LOOPS
BIN=$BIN /tmp/rig/start.sh >/dev/null
unset NIO_SINGLETON_GROUP_LOOP_COUNT
export JWT_SECRET=0123456789abcdef0123456789abcdef
OUT=/tmp/rig/res/$LABEL-l$LOOPS-r$RATE-t$TOPICS-$(date +%H%M%S)
NODE=$(cat /tmp/rig/node-1.pid)
( sleep 5; perf stat -e context-switches,task-clock -p $NODE -x, -o $OUT.perf -- sleep 6 ) &
/work/main/.build-A/release/chorus-bench rooms --url 127.0.0.1:7301 --subscribers 1000 --topics $TOPICS --rate $RATE \
  --duration 10 --watch node=$NODE --quiet --json $OUT.json >/dev/null 2>/tmp/rig/res/last.err || cat /tmp/rig/res/last.err
wait
/tmp/rig/stop.sh >/dev/null
