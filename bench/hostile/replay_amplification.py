"""bench/hostile/replay_amplification.py, run by replay.sh. Replay amplification: attackers loop `subscribe {replay:100}` on a topic of 1 MB messages while a
probe measures another client's delivery latency. Reports Redis bytes sent (amplification), probe
p50/p99, subscribe loops completed, closes seen, node RSS."""
import asyncio, json, sys, time
import websockets
from hostile_common import peak_rss, quantile, redis_out as redis_bytes, token as mint

PORT, REDIS = int(sys.argv[1]), int(sys.argv[2])
BIN, SECONDS, ATTACKERS = sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
SECRET = "s" * 32
URL = f"ws://127.0.0.1:{PORT}/ws"

def token(sub): return mint(BIN, SECRET, sub)

def redis_out(): return redis_bytes(REDIS)

async def connect(sub):
    return await websockets.connect(f"{URL}?token={token(sub)}", max_size=None, compression=None)

async def main(pid):
    pub = await connect("pub")
    pad = "x" * (1000 * 1000)
    for i in range(100 if MODE == "seed" else 0):
        await pub.send(json.dumps({"type": "message", "topic": "big.t", "data": {"i": i, "pad": pad}, "id": i}))
        while True:
            m = json.loads(await pub.recv())
            if m.get("type") in ("published", "error"): break
    if MODE == "seed": return
    probe = await connect("probe")
    await probe.send(json.dumps({"type": "subscribe", "topic": "probe.t", "id": 1}))
    json.loads(await probe.recv())
    lat, stop = [], False
    loops, closes = [0], {}

    async def attacker(n):
        while not stop:
            try:
                ws = await connect(f"att{n}")
                while not stop:
                    await ws.send(json.dumps({"type": "subscribe", "topic": "big.t", "replay": 100, "id": 1}))
                    while True:  # the reply, then the history; read all of it like a normal client
                        m = json.loads(await ws.recv())
                        if m.get("type") == "subscribed": break
                    await ws.send(json.dumps({"type": "unsubscribe", "topic": "big.t", "id": 2}))
                    while True:
                        m = json.loads(await ws.recv())
                        if m.get("type") == "unsubscribed": break
                    loops[0] += 1
            except websockets.ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else None
                closes[code] = closes.get(code, 0) + 1

    async def prober():
        sender = await connect("sender")
        while not stop:
            await sender.send(json.dumps({"type": "message", "topic": "probe.t", "data": {"t": time.time()}}))
            await asyncio.sleep(0.05)

    async def reader():
        while True:
            m = json.loads(await probe.recv())
            if m.get("type") == "message": lat.append((time.time() - m["data"]["t"]) * 1000)

    before = redis_out()
    tasks = [asyncio.create_task(attacker(n)) for n in range(ATTACKERS if MODE != "probe" else 0)]
    if MODE != "attack": tasks += [asyncio.create_task(prober()), asyncio.create_task(reader())]
    peak = await peak_rss(pid, SECONDS, every=0.5)
    stop = True
    out = redis_out() - before
    await asyncio.sleep(0.5)
    for t in tasks: t.cancel()
    lat.sort()
    q = lambda p: quantile(lat, p)
    if MODE == "attack": print(json.dumps({"loops": loops[0], "closes": closes})); return
    print(json.dumps({"attackers": ATTACKERS, "seconds": SECONDS, "redis_MB_out": round(out / 1e6, 1),
                      "loops": loops[0], "closes": closes, "probe_n": len(lat), "p50_ms": round(q(0.5), 2),
                      "p99_ms": round(q(0.99), 2), "peak_rss_MiB": peak}))

MODE = sys.argv[7] if len(sys.argv) > 7 else "both"
asyncio.run(main(int(sys.argv[6])))
