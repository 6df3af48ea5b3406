#!/usr/bin/env bash
# redis :7300; Chorus H (threaded link) :7311 :7312; Chorus L (loop link) :7321 :7322; NIO floor :7305 :7306
D=/tmp/rig3; cd $D
redis-server --bind 127.0.0.1 --port 7300 --save '' --appendonly no --daemonize yes --pidfile $D/redis.pid --logfile $D/redis.log
for _ in $(seq 50); do redis-cli -p 7300 ping >/dev/null 2>&1 && break; sleep 0.1; done
export JWT_SECRET=0123456789abcdef0123456789abcdef API_KEY=benchkey0123456789
node() { # name port binary-dir
  env ${LOOPS:+NIO_SINGLETON_GROUP_LOOP_COUNT=$LOOPS} HTTP_HOST=127.0.0.1 HTTP_PORT=$2 NODE_ID=rig-$1 PUBSUB_ADAPTER=redis PUBSUB_REDIS_URL=redis://127.0.0.1:7300 \
    WEBSOCKET_MAX_CONNECTIONS_PER_IP=1000000 WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 LOG_LEVEL=warning \
    $3/chorus serve </dev/null >>$D/$1.log 2>&1 & echo $! > $D/$1.pid; }
node H-1 7311 /work/main/.build-D/release; node H-2 7312 /work/main/.build-D/release
node L-1 7321 /work/main/.build-L/release; node L-2 7322 /work/main/.build-L/release
for i in 1 2; do env FLOOR_NODELAY=1 /work/main/.build-H/release/chorus-floor-nio 127.0.0.1 730$((i+4)) 7300 </dev/null >>$D/fn-$i.log 2>&1 & echo $! > $D/fn-$i.pid; done
for p in 7311 7312 7321 7322; do for _ in $(seq 100); do curl -sf http://127.0.0.1:$p/ready >/dev/null && break; sleep 0.2; done; done
for p in 7305 7306; do for _ in $(seq 100); do curl -sf http://127.0.0.1:$p/health >/dev/null && break; sleep 0.2; done; done
echo started
