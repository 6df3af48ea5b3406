# presence victim: user "pvictim" on node 1 (from 127.0.0.2) joins/leaves topic victim.presence every 0.5 s;
# a watcher on node 2 with presenceEvents:true records join/leave event latency (change sent -> event received)
import asyncio, json, time, sys, websockets
from common import url
P1,P2=int(sys.argv[1]),int(sys.argv[2]); OUT=sys.argv[3]
out=open(OUT,"a",buffering=1)
sent={}
async def main():
    w=await websockets.connect(url(P2,"pwatcher"),compression=None,local_addr=("127.0.0.2",0),ping_interval=None,max_size=2**24)
    await w.recv()
    await w.send(json.dumps({"type":"subscribe","topic":"victim.presence","presenceEvents":True,"id":"w"}))
    v=await websockets.connect(url(P1,"pvictim"),compression=None,local_addr=("127.0.0.2",0),ping_interval=None,max_size=2**24)
    await v.recv()
    async def watch():
        async for m in w:
            now=time.time(); d=json.loads(m)
            if d.get("type")=="presence":
                evs=d.get("events") if d.get("event")=="batch" else [d]
                for e in evs:
                    if e.get("member",{}).get("userId")=="pvictim":
                        n=e["member"].get("data",{}).get("n")
                        if n is not None and e["event"] in ("join","update","leave"):
                            out.write(json.dumps({"ev":"pev","e":e["event"],"n":n,"lat":now-sent.get(n,now),"t":now})+"\n")
    async def vdrain():
        async for m in v:
            d=json.loads(m)
            if d.get("type")=="error": out.write(json.dumps({"ev":"verr","msg":m[:200]})+"\n")
    async def drive():
        n=0
        while True:
            n+=1; sent[n]=time.time()
            await v.send(json.dumps({"type":"subscribe","topic":"victim.presence","presence":{"data":{"n":n}},"id":n}))
            out.write(json.dumps({"ev":"pjoin","n":n,"t":sent[n]})+"\n")
            await asyncio.sleep(0.5)
            await v.send(json.dumps({"type":"unsubscribe","topic":"victim.presence","id":-n}))
            await asyncio.sleep(0.5)
    await asyncio.gather(watch(),vdrain(),drive())
asyncio.run(main())
