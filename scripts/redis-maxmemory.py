#!/usr/bin/env python3
"""What a full Redis does to other users, by `maxmemory-policy`.

    scripts/redis-maxmemory.py CHORUS_BINARY POLICY [MAXMEMORY]     (e.g. volatile-lru 40mb)

Starts a private redis-server (`--maxmemory MAXMEMORY --maxmemory-policy POLICY`) and one node
with the Redis adapter. A victim joins `rooms.victim` (with presence data) and, once a second for
30 s, publishes there and lists its presence; from its third second, 20 connections of another
user publish one-byte messages to new 255-byte topics, 90 a second each, for 20 s (each topic
gets a history in Redis). Prints the victim's publishes refused and received, how often its
presence entry was missing, and Redis's memory and evictions. Loopback only; everything it
starts is stopped. Needs redis-server, redis-cli and the PyPI package websockets.
"""
import asyncio, json, os, socket, subprocess, sys, tempfile, time, urllib.request

import websockets

binary, policy = os.path.abspath(sys.argv[1]), sys.argv[2]
maxmemory = sys.argv[3] if len(sys.argv) > 3 else "40mb"

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

port, redis_port = free_port(), free_port()
work = tempfile.mkdtemp(prefix="chorus-maxmemory.")
env = dict(os.environ, JWT_SECRET="0123456789abcdef0123456789abcdef", HTTP_HOST="127.0.0.1", HTTP_PORT=str(port),
           DATABASE_URL="none", LOG_LEVEL="warning", PUBSUB_ADAPTER="redis", PUBSUB_REDIS_URL=f"redis://127.0.0.1:{redis_port}")
redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--maxmemory", maxmemory, "--maxmemory-policy", policy, "--dir", work], stdout=subprocess.DEVNULL)
time.sleep(0.5)
node = subprocess.Popen([binary, "serve"], env=env, cwd=work, stdout=open(f"{work}/node.log", "w"), stderr=subprocess.STDOUT)

def token(user):
    return subprocess.check_output([binary, "token", "--sub", user, "--ttl", "1h"], env=env).decode().strip()

def redis_info(section, field):
    out = subprocess.check_output(["redis-cli", "-p", str(redis_port), "info", section]).decode()
    return [l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith(field + ":")][0]

async def victim(url):
    result = {"published": 0, "received": 0, "refused": 0, "presenceWithoutVictim": 0}
    async with websockets.connect(url + "?token=" + token("victim")) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "topic": "rooms.victim", "id": 1, "presence": {"data": {"name": "v"}}}))
        while json.loads(await ws.recv()).get("type") != "subscribed":
            pass
        for n in range(1, 31):
            result["published"] += 1
            await ws.send(json.dumps({"type": "message", "topic": "rooms.victim", "data": n, "id": 1000 + n}))
            await ws.send(json.dumps({"type": "presence.get", "topic": "rooms.victim", "id": 5000 + n}))
            deadline = time.time() + 1
            while (left := deadline - time.time()) > 0:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                except asyncio.TimeoutError:
                    break
                if frame.get("type") == "message" and frame.get("topic") == "rooms.victim":
                    result["received"] += 1
                elif frame.get("type") == "error" and frame.get("id", 0) >= 1000:
                    result["refused"] += 1
                    result["refusal"] = frame.get("message", "")[:120]
                elif frame.get("type") == "presence.state" and not any(m.get("userId") == "victim" for m in frame.get("members", [])):
                    result["presenceWithoutVictim"] += 1
    return result

async def flood(url, connection):
    async with websockets.connect(url + "?token=" + token("mallory"), ping_interval=None) as ws:
        await ws.recv()
        start = time.time()
        n = 0
        while time.time() - start < 20:
            name = f"flood.c{connection}.n{n}."
            await ws.send(json.dumps({"type": "message", "topic": (name + "x" * 255)[:255], "data": 1}))
            n += 1
            await asyncio.sleep(max(0, start + n / 90 - time.time()))

async def main():
    url = f"ws://127.0.0.1:{port}/ws"
    for _ in range(100):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1).status == 200:
                break
        except Exception:
            time.sleep(0.1)
    watched = asyncio.create_task(victim(url))
    await asyncio.sleep(3)
    await asyncio.gather(*(flood(url, c) for c in range(20)), return_exceptions=True)
    result = await watched
    result.update(policy=policy, maxmemory=maxmemory, usedMemory=redis_info("memory", "used_memory_human"),
                  evictedKeys=int(redis_info("stats", "evicted_keys")))
    print(json.dumps(result))

try:
    asyncio.run(main())
finally:
    node.terminate()
    print("node exit", node.wait(30))
    redis.terminate()
    redis.wait(10)
