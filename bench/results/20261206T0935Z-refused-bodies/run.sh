#!/bin/bash
# usage: run.sh NAME PORT MODE ADDRS [extra env...]
name=$1; port=$2; mode=$3; addrs=$4; shift 4
cd "$(dirname "$0")"
env HTTP_HOST=127.0.0.1 HTTP_PORT=$port NODE_ID=n1 PUBSUB_ADAPTER=memory JWT_SECRET=secret0123456789abcdef0123456789 LOG_LEVEL=warning TRUSTED_PROXIES=127.0.0.1/32 HTTP_MAX_CONNECTIONS_PER_IP=100000 "$@" ${WRAP} ${BIN:-/tmp/rel457/chorus} serve > $name.node.log 2>&1 &
npid=$!
echo $npid > $name.pid
sleep 3
pid=$(pgrep -P $npid chorus || echo $npid)   # in case of a wrapper
[ -n "$WRAP" ] && pid=$(pgrep -f "^/tmp/rel457/chorus serve" -n)
echo "node pid $pid (launcher $npid)"
curl -s -m 3 http://127.0.0.1:$port/health; echo
( while kill -0 $pid 2>/dev/null; do echo "$(date +%s.%N | cut -c1-13) $(awk '/VmRSS/{print $2}' /proc/$pid/status)"; sleep 0.5; done ) > $name.rss &
mpid=$!
sleep 3
( while ! grep -q "all sent" $name.attack.log 2>/dev/null; do sleep 0.5; done; sleep 10; echo "rss_at_peakstats $(awk '/VmRSS/{print $2}' /proc/$pid/status)" > $name.peak; gdb -p $pid -batch -ex 'call (void)malloc_stats()' > /dev/null 2>&1; echo PEAKSTATS_DONE >> $name.peak ) &
python3 attack.py --port $port --mode $mode --addrs $addrs ${ATTACK_ARGS} > $name.attack.log 2>&1
sleep 61
cat /proc/$pid/smaps_rollup > $name.smaps_rollup 2>/dev/null
echo "rss_before_trim $(awk '/VmRSS/{print $2}' /proc/$pid/status)" > $name.trim
gdb -p $pid -batch -ex 'call (void)malloc_stats()' -ex 'call (int)malloc_trim(0)' > $name.gdb.log 2>&1
sleep 1
echo "rss_after_trim $(awk '/VmRSS/{print $2}' /proc/$pid/status)" >> $name.trim
curl -s -m 3 http://127.0.0.1:$port/stats > $name.stats.json
kill $pid; sleep 1; kill $mpid 2>/dev/null; kill $npid 2>/dev/null
python3 summarize.py $name; cat $name.trim
