#!/usr/bin/env bash
D=/tmp/rig2
for f in $D/*.pid; do [ "$f" = $D/redis.pid ] && continue; [ -f $f ] && kill $(cat $f) 2>/dev/null; done
for f in $D/*.pid; do [ "$f" = $D/redis.pid ] && continue; for _ in $(seq 50); do kill -0 $(cat $f) 2>/dev/null || break; sleep 0.1; done; kill -0 $(cat $f) 2>/dev/null && echo "still $f"; rm -f $f; done
redis-cli -p 7300 shutdown nosave 2>/dev/null; rm -f $D/redis.pid; true
