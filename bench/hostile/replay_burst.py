"""bench/hostile/replay_burst.py, run by replay_burst.sh. A replay burst: each attacker holds
100 subscriptions to topics whose history is about 768 KB each, and sends a `subscribe` with
`replay` for all of them in one write, reads every answer and message, and does it again; a probe
in another connection measures delivery latency on its own topic. Reports the node's peak RSS,
bytes Redis sent, bursts completed, history messages received, closes, probe p50/p99."""
import asyncio, json, sys, time, urllib.request
import websockets
from hostile_common import peak_rss, quantile, redis_out as redis_bytes, rss, token as mint

PORT, REDIS = int(sys.argv[1]), int(sys.argv[2])
BIN, SECONDS, ATTACKERS, PID, MODE = sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
SECRET, API_KEY = "s" * 32, "k" * 32
URL = f"ws://127.0.0.1:{PORT}/ws"
TOPICS, PER_TOPIC, SIZE = 100, 8, 96_000


def token(sub): return mint(BIN, SECRET, sub)


def redis_out(): return redis_bytes(REDIS)


def seed():
    pad = "x" * SIZE
    for t in range(TOPICS):
        for i in range(PER_TOPIC):
            body = json.dumps({"topic": f"burst.{t}", "data": {"i": i, "pad": pad}}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{PORT}/api/publish", data=body, method="POST",
                                             headers={"Content-Type": "application/json", "X-API-Key": API_KEY})
            urllib.request.urlopen(request).read()


async def connect(sub):
    return await websockets.connect(f"{URL}?token={token(sub)}", max_size=None, compression=None)


async def main():
    if MODE == "seed":
        return seed()
    stop = False
    bursts, received, closes, lat = [0], [0], {}, []

    async def attacker(n):
        while not stop:
            try:
                ws = await connect(f"att{n}")
                while not stop:
                    batch = [json.dumps({"type": "subscribe", "topic": f"burst.{t}", "replay": PER_TOPIC, "id": t})
                             for t in range(TOPICS)]
                    for message in batch: await ws.send(message)
                    answered = 0
                    while answered < TOPICS and not stop:
                        m = json.loads(await ws.recv())
                        if m.get("type") in ("subscribed", "error"): answered += 1
                        elif m.get("type") == "message": received[0] += 1
                    if answered == TOPICS: bursts[0] += 1
            except websockets.ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else None
                closes[code] = closes.get(code, 0) + 1

    async def prober():
        probe, sender = await connect("probe"), await connect("sender")
        await probe.send(json.dumps({"type": "subscribe", "topic": "probe.t", "id": 1}))
        json.loads(await probe.recv())

        async def read():
            while True:
                m = json.loads(await probe.recv())
                if m.get("type") == "message": lat.append((time.time() - m["data"]["t"]) * 1000)
        reading = asyncio.create_task(read())
        while not stop:
            await sender.send(json.dumps({"type": "message", "topic": "probe.t", "data": {"t": time.time()}}))
            await asyncio.sleep(0.05)
        reading.cancel()

    before, start_rss = redis_out(), rss(PID)
    tasks = [asyncio.create_task(attacker(n)) for n in range(ATTACKERS)] + [asyncio.create_task(prober())]
    peak = await peak_rss(PID, SECONDS, every=0.25)
    stop = True
    out = redis_out() - before
    await asyncio.sleep(0.5)
    for t in tasks: t.cancel()
    lat.sort()
    q = lambda p: quantile(lat, p)
    print(json.dumps({"attackers": ATTACKERS, "seconds": SECONDS, "rss_start_MiB": start_rss, "peak_rss_MiB": peak,
                      "redis_MB_out": round(out / 1e6, 1), "bursts": bursts[0], "history_messages": received[0],
                      "closes": closes, "probe_n": len(lat), "p50_ms": round(q(0.5), 2), "p99_ms": round(q(0.99), 2)}))

asyncio.run(main())
