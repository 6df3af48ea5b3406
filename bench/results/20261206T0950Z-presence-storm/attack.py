# attack: N connections from 127.0.0.1 to one node, each alternating subscribe-with-presence / unsubscribe
# at RATE msgs/s; mode shared|distinct topics; users distinct|same
import asyncio, json, time, sys, websockets, collections
from common import url
port=int(sys.argv[1]); N=int(sys.argv[2]); mode=sys.argv[3]; users=sys.argv[4]; dur=float(sys.argv[5]); RATE=float(sys.argv[6]); OUT=sys.argv[7]
tag=sys.argv[8] if len(sys.argv)>8 else "a"
# presence.data near PRESENCE_MAX_DATA_SIZE (4096 bytes of serialized data)
def data_for(i):
    base={"i":i,"p":""}
    fill=4096-len(json.dumps(base,separators=(",",":")))-8
    base["p"]="x"*fill
    s=json.dumps(base,separators=(",",":")); assert len(s)<=4096, len(s)
    return base
stats=collections.Counter()
async def one(i):
    topic="storm.shared" if mode=="shared" else f"storm.t{tag}{i}"
    user=f"att{tag}{i}" if users=="distinct" else "attacker"
    try:
        ws=await websockets.connect(url(port,user),max_size=2**24,compression=None,ping_interval=None,max_queue=None)
    except Exception as e:
        stats["connect_fail"]+=1; print("connect fail",i,e,file=sys.stderr); return
    await ws.recv()
    d=data_for(i)
    subf=json.dumps({"type":"subscribe","topic":topic,"presence":{"data":d},"id":1},separators=(",",":"))
    unsf=json.dumps({"type":"unsubscribe","topic":topic,"id":2},separators=(",",":"))
    async def reader():
        try:
            async for m in ws:
                stats["rx"]+=1; stats["rx_bytes"]+=len(m)
                if m.startswith('{"type":"error"') or '"type":"error"' in m[:40]:
                    try: stats["err_%s"%json.loads(m).get("code")]+=1
                    except Exception: stats["err_?"]+=1
        except Exception as e:
            stats["closed"]+=1; stats["close:"+str(getattr(e,'code',e))[:40]]+=1
    rt=asyncio.create_task(reader())
    t0=time.time(); k=0; nxt=t0
    try:
        while time.time()-t0<dur:
            await ws.send(subf if k%2==0 else unsf); k+=1; stats["sent"]+=1
            nxt=max(nxt+1/RATE, time.time()-0.02); dl=nxt-time.time()
            if dl>0: await asyncio.sleep(dl)
        if k%2==1: await ws.send(unsf)
        await asyncio.sleep(1)
        await ws.close()
    except Exception as e:
        stats["send_fail"]+=1
    rt.cancel()
async def main():
    t=time.time()
    await asyncio.gather(*[one(i) for i in range(N)])
    stats["elapsed"]=round(time.time()-t,1)
    with open(OUT,"a") as f: f.write(json.dumps({"tag":tag,"mode":mode,"users":users,"N":N,**stats})+"\n")
    print(dict(stats))
asyncio.run(main())
