#!/usr/bin/env bash
# alternating broadcast, 1000 subscribers: Chorus H, Chorus L, NIO floor (padded to Chorus's size)
B=/work/main/.build-H/release/chorus-bench; export JWT_SECRET=0123456789abcdef0123456789abcdef API_KEY=benchkey0123456789
cd /tmp/rig3; R=${RATE:-1000}; DUR=${DUR:-5}
one() { name=$1; tg=$2; urls=$3; w=$4; extra=$5
  $B broadcast --target $tg $urls --topic "ab.$name.$RANDOM" --subscribers 1000 --rate $R --duration $DUR --warmup 1 --drain 30 $w $extra > ab-$name.log 2>&1
  echo "$name rate $R $(grep -E '^latency' ab-$name.log | awk '{print "p50",$4,"p99",$8}') $(grep -E '^cpu per' ab-$name.log | cut -c17-) $(grep -E '^deliveries' ab-$name.log | grep -o 'lost [0-9]*')"; }
for r in $(seq ${ROUNDS:-3}); do
  for t in ${TARGETS:-H L floor}; do case $t in
   H) one H chorus "--url 127.0.0.1:7311 --url 127.0.0.1:7312" "--watch c1=$(cat H-1.pid) --watch c2=$(cat H-2.pid)" "";;
   L) one L chorus "--url 127.0.0.1:7321 --url 127.0.0.1:7322" "--watch c1=$(cat L-1.pid) --watch c2=$(cat L-2.pid)" "";;
   floor) one floor nchan "--url 127.0.0.1:7305 --url 127.0.0.1:7306" "--watch f1=$(cat fn-1.pid) --watch f2=$(cat fn-2.pid)" "--payload-bytes 229";;
  esac; done
done
