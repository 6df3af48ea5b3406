#!/usr/bin/env python3
"""Hop costs of a cross-node delivery, from the trace lines of bench/redis-hops.patch.

Apply the patch (temporary instrumentation, never merged), build release, run
  CHORUS_HOPTRACE=/tmp/chorus-hops/trace SCRATCH=.build SKIP_BUILD=1 scripts/bench.sh --only latency --targets chorus --runs 1
then  python3 bench/redis-hops.py '/tmp/chorus-hops/trace.*'
Each node appends 'hop key monotonic-ns' lines to trace.<pid>; both nodes share CLOCK_MONOTONIC.
"""
import glob, statistics, sys, collections
pat = sys.argv[1] if len(sys.argv) > 1 else '/tmp/chorus-hops/trace.*'
ev = collections.defaultdict(dict)      # id -> hop -> ns
drains = collections.defaultdict(list)  # arrivedAt -> [(drain, written)]
hubkey = {}
for f in glob.glob(pat):
    for line in open(f):
        parts = line.split()
        if len(parts) != 3: continue
        hop, key, ns = parts[0], parts[1], int(parts[2])
        if hop == 'hub':
            i, at = key.rsplit(':', 1)
            ev[i]['hub'] = ns; hubkey[i] = at
        elif hop in ('drain', 'written'):
            drains[key].append((hop, ns))
        else:
            ev[key].setdefault(hop, ns)
for i, at in hubkey.items():
    d = [ns for h, ns in drains.get(at, []) if h == 'drain']
    w = [ns for h, ns in drains.get(at, []) if h == 'written']
    if d: ev[i]['drain_first'] = min(d); ev[i]['drain_last'] = max(d)
    if w: ev[i]['written_last'] = max(w)
steps = [('pub','taken','publish() -> publisher thread took batch'),
         ('taken','sent','batch formatted + written to Redis'),
         ('sent','read','Redis -> subscriber node read (incl. reader wake)'),
         ('read','deliver','parse + decode on subscriber'),
         ('deliver','hub','hand to hub'),
         ('hub','drain_first','hub -> first loop drain starts (loop wake)'),
         ('hub','drain_last','hub -> last loop drain starts'),
         ('drain_last','written_last','last loop writes its subscribers'),
         ('pub','written_last','TOTAL publish() -> last socket write')]
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs)-1, int(p/100*len(xs)))]
full = [e for e in ev.values() if all(k in e for k in ('pub','taken','sent','read','deliver','hub','drain_first','written_last'))]
print(f"messages with every hop: {len(full)}")
print(f"{'hop':55s} {'p50 us':>8s} {'p90 us':>8s} {'p99 us':>8s}")
for a, b, name in steps:
    xs = [(e[b]-e[a])/1000 for e in full]
    print(f"{name:55s} {pct(xs,50):8.1f} {pct(xs,90):8.1f} {pct(xs,99):8.1f}")
