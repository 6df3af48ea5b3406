import json,sys,collections
ph=[(float(a),b) for a,b in (l.split() for l in open(sys.argv[2]))]
def phase_of(t):
    cur=None
    for a,b in ph:
        if t>=a: cur=b
    return cur
def pct(v,p):
    v=sorted(v); return v[min(len(v)-1,int(round(p/100*(len(v)-1))))] if v else float('nan')
sent={}; lat=collections.defaultdict(list)
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d['ev']=='sent': sent[(d['k'],d['seq'])]=d['ts']
    elif d['ev']=='recv':
        t=sent.get((d['k'],d['seq']))
        if t: lat[(d['k'],phase_of(t))].append(d['lat']*1000)
for (k,p),v in sorted(lat.items()):
    if p=='end' or p is None: continue
    print(f"{k:4} {p:7} n={len(v):4} p50={pct(v,50):6.1f} p99={pct(v,99):6.1f} max={max(v):6.1f} ms")
