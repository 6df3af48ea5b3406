"""bench/history-reads/reads.py, run by run.sh: CLIENTS clients loop subscribe {replay:10} / unsubscribe, each on its
own topic of 10 messages, for SECONDS; every subscribe is one history read on the node's Redis command queue.
Prints reads per second and the subscribe round trip's p50 / p99 in ms."""
import asyncio, json, os, subprocess, sys, time
import websockets
PORT, BIN, CLIENTS, SECONDS = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
SECRET = "s" * 32
def token(sub):
    return subprocess.check_output([BIN, "token", "--sub", sub, "--ttl", "1h"], env=dict(os.environ, JWT_SECRET=SECRET)).decode().strip()
async def client(n, lat):
    ws = await websockets.connect(f"ws://127.0.0.1:{PORT}/ws?token={token('u%d' % n)}", max_size=None, compression=None)
    topic = f"t{n}.h"
    for i in range(10):
        await ws.send(json.dumps({"type": "message", "topic": topic, "data": {"i": i}, "id": i}))
        while json.loads(await ws.recv()).get("type") != "published": pass
    end = time.time() + SECONDS
    while time.time() < end:
        t = time.perf_counter()
        await ws.send(json.dumps({"type": "subscribe", "topic": topic, "replay": 10, "id": "s"}))
        while json.loads(await ws.recv()).get("type") != "subscribed": pass
        lat.append((time.perf_counter() - t) * 1000)
        await ws.send(json.dumps({"type": "unsubscribe", "topic": topic, "id": "u"}))
        while True:
            m = json.loads(await ws.recv())
            if m.get("type") == "unsubscribed": break
    await ws.close()
async def main():
    lat = []
    await asyncio.gather(*[client(n, lat) for n in range(CLIENTS)])
    lat.sort()
    print(json.dumps({"clients": CLIENTS, "n": len(lat), "reads_per_s": round(len(lat) / SECONDS), "p50_ms": round(lat[len(lat)//2], 3), "p99_ms": round(lat[int(len(lat)*0.99)], 3)}))
asyncio.run(main())
