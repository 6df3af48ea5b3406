#!/usr/bin/env python3
"""How well `HISTORY_MAX_BYTES` counts what a memory history really holds.

    scripts/history-cost.py CHORUS_BINARY N TOPIC_LENGTH [msgid]    (PER=K: K messages a topic)

Starts one node (memory adapter, history on every topic, a bound it does not reach) and, on one
WebSocket, publishes N one-byte messages, one to each new topic (or K to each, with PER=K), with
topic names of TOPIC_LENGTH bytes and, with `msgid`, a 36-byte `messageId` each. Prints the
node's `/stats` `history.bytes` against the growth of its resident memory (VmRSS), both per
topic. Loopback only; the node is stopped at the end. Needs the PyPI package websockets.
"""
import asyncio, json, os, socket, subprocess, sys, tempfile, time, urllib.request, base64, hmac, hashlib
BIN, N, TLEN = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]); MSGID = len(sys.argv) > 4 and sys.argv[4] == "msgid"; PER = int(os.environ.get("PER", "1"))
import websockets
s = socket.socket(); s.bind(("127.0.0.1", 0)); PORT = s.getsockname()[1]; s.close()
W = tempfile.mkdtemp(prefix="chorus-history-cost.")
SECRET = "0123456789abcdef0123456789abcdef"
env = dict(os.environ, HTTP_HOST="127.0.0.1", HTTP_PORT=str(PORT), PUBSUB_ADAPTER="memory", JWT_SECRET=SECRET,
           LOG_LEVEL="warning", DATABASE_URL="none", HISTORY_SIZE="100", HISTORY_MAX_BYTES=str(1 << 32),
           WEBSOCKET_MAX_MESSAGES_PER_SECOND="1000000", WEBSOCKET_MAX_BYTES_PER_SECOND=str(1 << 30))
node = subprocess.Popen([BIN, "serve"], env=env, cwd=W, stdout=open(W + "/node.log", "w"), stderr=subprocess.STDOUT)
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def token(sub):
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()); p = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 3600}).encode())
    return f"{h}.{p}." + b64(hmac.new(SECRET.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
for _ in range(300):
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ready", timeout=1).status == 200: break
    except Exception: time.sleep(0.1)
def rss():
    return int([l for l in open(f"/proc/{node.pid}/status") if l.startswith("VmRSS")][0].split()[1]) * 1024
def stats(): return json.load(urllib.request.urlopen(f"http://127.0.0.1:{PORT}/stats"))
async def main():
    async with websockets.connect(f"ws://127.0.0.1:{PORT}/ws?token={token('u')}", max_size=None) as ws:
        await ws.recv()
        before = rss()
        pad = "t" * max(0, TLEN - 12)
        for i in range(N):
            m = {"type": "message", "topic": f"h.{pad}{i // PER:09d}"[:max(TLEN, 12)], "data": 1}
            if MSGID: m["messageId"] = f"{i:036d}"
            await ws.send(json.dumps(m))
            if i % 1000 == 999:
                await ws.send(json.dumps({"type": "ping", "id": i}))
                while json.loads(await ws.recv()).get("type") != "pong": pass
        await ws.send(json.dumps({"type": "ping", "id": -1}))
        while json.loads(await ws.recv()).get("type") != "pong": pass
        h = stats()["history"]
        print(json.dumps({"topics": h.get("topics"), "messages": h.get("messages"), "historyBytes": h.get("bytes"),
                          "rssGrowth": rss() - before, "rssPerTopic": round((rss() - before) / N), "countedPerTopic": round(h.get("bytes") / N)}))
asyncio.run(main())
node.terminate(); node.wait(30)
