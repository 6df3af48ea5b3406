#!/usr/bin/env python3
"""Memory held by full topic histories: 1,000 topics x HISTORY_SIZE messages.

    scripts/history-memory.py CHORUS_BINARY [--redis]

Starts one node (memory adapter, or Redis with --redis on a private redis-server), publishes
HISTORY_SIZE (100) messages of about 100 bytes of data to each of 1,000 topics on one
WebSocket, and prints the node's /stats `history` figures and resident memory before and after
(for Redis: `used_memory` of the Redis server). Loopback only; everything it starts is stopped.
"""
import asyncio, json, os, subprocess, sys, tempfile, time, urllib.request

import websockets

binary = sys.argv[1]
use_redis = "--redis" in sys.argv
topics, per_topic = 1000, 100
port, redis_port = 26510, 26511
secret = "0123456789abcdef0123456789"
work = tempfile.mkdtemp()
env = dict(os.environ, JWT_SECRET=secret, HTTP_HOST="127.0.0.1", HTTP_PORT=str(port), DATABASE_URL="none",
           LOG_LEVEL="warning", WEBSOCKET_MAX_MESSAGES_PER_SECOND="1000000", WEBSOCKET_MAX_BYTES_PER_SECOND="1073741824", HISTORY_SIZE=str(per_topic))
procs = []
if use_redis:
    procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL))
    time.sleep(0.5)
    env.update(PUBSUB_ADAPTER="redis", PUBSUB_REDIS_URL=f"redis://127.0.0.1:{redis_port}")
procs.append(subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

def stats():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as r:
        return json.load(r)

def redis_memory():
    out = subprocess.check_output(["redis-cli", "-p", str(redis_port), "info", "memory"]).decode()
    return int([l for l in out.splitlines() if l.startswith("used_memory:")][0].split(":")[1])

async def main():
    for _ in range(100):
        try:
            stats(); break
        except Exception:
            await asyncio.sleep(0.1)
    token = subprocess.check_output([binary, "token", "--sub", "loader"], env={"JWT_SECRET": secret}).decode().split()[-1]
    before = stats(); redis_before = redis_memory() if use_redis else 0
    data = {"text": "x" * 80, "n": 0}
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={token}", max_size=None) as ws:
        await ws.recv()
        for n in range(per_topic):
            for t in range(topics):
                data["n"] = n
                await ws.send(json.dumps({"type": "message", "topic": f"room.{t}", "data": data}))
        await ws.send(json.dumps({"type": "message", "topic": "room.0", "data": data, "id": "last"}))
        while json.loads(await ws.recv()).get("type") != "published":
            pass
    after = stats()
    print(json.dumps({"adapter": "redis" if use_redis else "memory", "history": after.get("history"),
                      "residentBefore": before["memory"]["residentBytes"], "residentAfter": after["memory"]["residentBytes"],
                      "redisUsedMemoryDelta": (redis_memory() - redis_before) if use_redis else None}, indent=1))

try:
    asyncio.run(main())
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=10)
