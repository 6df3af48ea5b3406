# victim: cross-node (pub n1 -> recv n2), local n1 (pub n1 -> recv n1), local n2 (pub n2 -> recv n2)
# connects from 127.0.0.2 so the attacker's 100-per-address budget on 127.0.0.1 is untouched
import asyncio, json, time, sys, websockets
from common import url
P1,P2=int(sys.argv[1]),int(sys.argv[2]); OUT=sys.argv[3]
out=open(OUT,"a",buffering=1)
async def conn(port,user):
    ws=await websockets.connect(url(port,user),max_size=2**22,compression=None,local_addr=("127.0.0.2",0),ping_interval=None)
    await ws.recv()  # welcome
    return ws
async def recv_loop(ws,kind):
    async for m in ws:
        now=time.time()
        try: d=json.loads(m)
        except Exception: continue
        if d.get("type")=="message" and isinstance(d.get("data"),dict) and d["data"].get("k")==kind:
            out.write(json.dumps({"ev":"recv","k":kind,"seq":d["data"]["seq"],"ts":d["data"]["t"],"lat":now-d["data"]["t"]})+"\n")
        elif d.get("type") not in ("message","subscribed","pong"):
            out.write(json.dumps({"ev":"other","k":kind,"msg":m[:300]})+"\n")
async def sub(ws,topic):
    await ws.send(json.dumps({"type":"subscribe","topic":topic,"id":"s"}))
    while True:
        d=json.loads(await ws.recv())
        if d.get("type")=="subscribed": return
        print("sub reply",d,file=sys.stderr)
async def pub_loop(ws,topic,kind):
    seq=0
    nxt=time.time()
    while True:
        seq+=1; t=time.time()
        await ws.send(json.dumps({"type":"message","topic":topic,"data":{"k":kind,"seq":seq,"t":t},"id":seq}))
        out.write(json.dumps({"ev":"sent","k":kind,"seq":seq,"ts":t})+"\n")
        nxt+=0.2
        await asyncio.sleep(max(0,nxt-time.time()))
async def drain(ws,kind):
    async for m in ws:
        now=time.time()
        try: d=json.loads(m)
        except Exception: continue
        if d.get("type")=="published": out.write(json.dumps({"ev":"ack","k":kind,"seq":d["id"],"t":now})+"\n")
        elif d.get("type")!="message": out.write(json.dumps({"ev":"pubside","msg":m[:300]})+"\n")
async def main():
    rx=await conn(P2,"victim"); await sub(rx,"victim.room")
    tx=await conn(P1,"victim")
    l1r=await conn(P1,"victim"); await sub(l1r,"victim.local1")
    l1t=await conn(P1,"victim")
    l2r=await conn(P2,"victim"); await sub(l2r,"victim.local2")
    l2t=await conn(P2,"victim")
    await asyncio.gather(recv_loop(rx,"x"),recv_loop(l1r,"l1"),recv_loop(l2r,"l2"),
        pub_loop(tx,"victim.room","x"),pub_loop(l1t,"victim.local1","l1"),pub_loop(l2t,"victim.local2","l2"),
        drain(tx,"x"),drain(l1t,"l1"),drain(l2t,"l2"))
asyncio.run(main())
