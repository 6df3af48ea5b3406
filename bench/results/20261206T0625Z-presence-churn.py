# Presence churn (the hostile drill of 2026-12-06): N users, one connection each, join a topic
# with D bytes of presence data and leave it again, 40 times a second each, for S seconds.
# usage: PORT=35610 TOPIC=other.room python3 20261206T0625Z-presence-churn.py N S D
# Needs `pip install websockets`; the node's JWT_SECRET must be the one below. Each user connects
# from its own loopback address (127.4.x.y) to stay under the per-address connection limit.
import asyncio, base64, hashlib, hmac, json, os, sys, time
import websockets

SECRET = b"drill-secret-0123456789abcdef"
URL = f"ws://127.0.0.1:{os.environ.get('PORT', '35610')}/ws"
TOPIC = os.environ.get("TOPIC", "other.room")


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(sub):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "iat": int(time.time()), "exp": int(time.time()) + 3600}).encode())
    sig = b64(hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


async def user(i, seconds, size, outcomes):
    address = f"127.4.{i // 90}.{1 + i % 90}"
    try:
        async with websockets.connect(f"{URL}?token={token(f'pc{i}')}", max_size=2**23, max_queue=4,
                                      local_addr=(address, 0)) as ws:
            end, n = time.time() + seconds, 0
            while time.time() < end:
                n += 1
                await ws.send(json.dumps({"type": "subscribe", "topic": TOPIC, "presence": {"data": {"n": n, "p": "P" * size}}}))
                await ws.send(json.dumps({"type": "unsubscribe", "topic": TOPIC}))
                await asyncio.sleep(0.025)
    except Exception as error:  # a close is an outcome to report, not a harness failure
        key = type(error).__name__
        outcomes[key] = outcomes.get(key, 0) + 1


async def main(users, seconds, size):
    outcomes = {}
    await asyncio.gather(*[user(i, seconds, size, outcomes) for i in range(users)])
    print("attackers:", outcomes)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
