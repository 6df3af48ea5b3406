import json,sys,collections
ph=[(float(a),b) for a,b in (l.split() for l in open(sys.argv[2]))]
def phase_of(t):
    cur=None
    for a,b in ph:
        if t>=a: cur=b
    return cur
def pct(v,p):
    v=sorted(v); return v[min(len(v)-1,int(round(p/100*(len(v)-1))))] if v else None
joins={}; lat={}
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d['ev']=='pjoin': joins[d['n']]=d['t']
    elif d['ev']=='pev' and d['e']=='join' and d['n'] not in lat: lat[d['n']]=d['lat']*1000
per=collections.defaultdict(list); miss=collections.Counter(); cnt=collections.Counter()
last=max(joins.values())
for n,t in joins.items():
    if t>last-2: continue
    p=phase_of(t); cnt[p]+=1
    if n in lat: per[p].append(lat[n])
    else: miss[p]+=1
print("presence join latency (pvictim subscribe on n1 -> join event at watcher on n2), ms: phase | joins | p50 | p99 | max | no join event seen")
for a,p in ph[:-1]:
    v=per[p]; print(p, cnt[p], *(("%.1f"%x if x is not None else "-") for x in (pct(v,50),pct(v,99),max(v) if v else None)), miss[p], sep=" | ")
