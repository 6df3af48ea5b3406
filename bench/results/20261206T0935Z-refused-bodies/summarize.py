import sys, re
name = sys.argv[1]
rss = [(float(t), int(v)) for t, v in (l.split() for l in open(f'./{name}.rss') if len(l.split()) == 2)]
closed = None; start = None
for l in open(f'./{name}.attack.log'):
    m = re.match(r'\[([\d.]+)\] (\S+)', l)
    if m and m.group(2) == 'ALL_CLOSED': closed = float(m.group(1))
    if m and m.group(2) == 'start': start = float(m.group(1))
def at(t):
    c = [v for (tt, v) in rss if tt <= t]
    return c[-1] if c else None
before = at(start)
peak = max(v for _, v in rss)
print(f"{name}: before={before/1024:.1f}MB peak={peak/1024:.1f}MB atclose={at(closed)/1024:.1f}MB +10s={at(closed+10)/1024:.1f}MB +60s={at(closed+60)/1024:.1f}MB")
print(open(f'./{name}.attack.log').read()[-800:])
