#!/usr/bin/env bash
# per-thread CPU and run-queue wait during a 1000 msg/s broadcast: chorus1 vs floorho
BENCH=/work/main/.build-H/release/chorus-bench
export JWT_SECRET=0123456789abcdef0123456789abcdef API_KEY=benchkey0123456789
D=/tmp/rig
snap() { for p in "$@"; do for t in /proc/$p/task/*; do echo "$p $(basename $t) $(cat $t/comm | tr ' ' _) $(cat $t/schedstat)"; done; done; }
run() { # name urls target pids...
  local name=$1 urls=$2 tg=$3; shift 3
  snap "$@" > $D/s0
  $BENCH broadcast --target $tg $urls --topic "sa.$name.$RANDOM" --subscribers 1000 --rate 1000 --duration 5 --warmup 1 --drain 30 > $D/sa-$name.log 2>&1
  snap "$@" > $D/s1
  echo "== $name $(grep -E '^latency' $D/sa-$name.log | cut -c1-90)"
  python3 - $D/s0 $D/s1 <<'PY'
import sys
a={};b={}
for f,d in ((sys.argv[1],a),(sys.argv[2],b)):
    for l in open(f):
        p,t,c,run,wait,n=l.split(); d[(p,t)]=(c,int(run),int(wait),int(n))
rows=[]
for k,v in b.items():
    if k in a:
        dr=(v[1]-a[k][1])/1e6; dw=(v[2]-a[k][2])/1e6; dn=v[3]-a[k][3]
        if dr>20: rows.append((k[0],v[0],dr,dw,dn))
for r in sorted(rows): print(f"  pid {r[0]} {r[1]:18s} cpu {r[2]:8.0f} ms  runq-wait {r[3]:7.0f} ms  slices {r[4]:7d}  wait/slice {r[3]/max(1,r[4])*1000:6.0f} us")
PY
}
for round in 1 2; do
  run chorus1 "--url 127.0.0.1:7311 --url 127.0.0.1:7312" chorus $(cat $D/one-1.pid) $(cat $D/one-2.pid)
  run floorho "--url 127.0.0.1:7307 --url 127.0.0.1:7308" nchan $(cat $D/fn-7.pid) $(cat $D/fn-8.pid)
done
