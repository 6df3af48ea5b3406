#!/usr/bin/env python3
"""Memory a node holds while serving concurrent `GET /api/messages` pages of large messages.

    scripts/api-page-memory.py CHORUS_BINARY [CONCURRENCY]      (default 50)

Starts one node (SQLite in a temporary folder, memory adapter), registers a user, posts 101
messages of 40 KB of content (10,000 four-byte characters) and about 16 KiB of metadata to one
room, then reads `GET /api/messages?topic=...&limit=100` four times on each of CONCURRENCY
threads, and prints the node's resident memory before, at its peak (sampled every 5 ms) and
after, the largest page and the time taken. Loopback only; the node is stopped at the end.
"""
import json, os, subprocess, sys, time, threading, urllib.request, tempfile, socket
BIN = os.path.abspath(sys.argv[1]); CONC = int(sys.argv[2]) if len(sys.argv) > 2 else 50
s = socket.socket(); s.bind(("127.0.0.1", 0)); PORT = s.getsockname()[1]; s.close()
W = tempfile.mkdtemp(prefix="chorus-api-page.")
env = dict(os.environ, HTTP_HOST="127.0.0.1", HTTP_PORT=str(PORT), PUBSUB_ADAPTER="memory",
           JWT_SECRET="0123456789abcdef0123456789abcdef0123456789abcdef", LOG_LEVEL="warning",
           DATABASE_URL="sqlite://" + W + "/db.sqlite", WEBSOCKET_MAX_MESSAGES_PER_SECOND="100000")
node = subprocess.Popen([BIN, "serve"], env=env, cwd=W, stdout=open(W + "/node.log", "w"), stderr=subprocess.STDOUT)
base = f"http://127.0.0.1:{PORT}"
def req(method, path, body=None, token=None):
    r = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    r.add_header("Content-Type", "application/json")
    if token: r.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(r, timeout=120) as resp: return resp.status, resp.read()
for _ in range(300):
    try:
        if urllib.request.urlopen(base + "/ready", timeout=1).status == 200: break
    except Exception: time.sleep(0.1)
def rss():
    for line in open(f"/proc/{node.pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) * 1024
_, b = req("POST", "/api/auth/register", {"username": "mallory", "password": "correct horse battery"})
tok = json.loads(b)["token"]
content = "\U0001F600" * 10000   # 40 KB of UTF-8
meta = {"k": "\u0001" * 2600}       # ~16 KiB escaped
posted = 0
while posted < 101:
    try:
        req("POST", "/api/messages", {"topic": "rooms.big", "content": content, "metadata": meta}, tok); posted += 1
    except urllib.error.HTTPError as e:
        if e.code == 429: time.sleep(0.2); continue
        print("post", e.code, e.read()[:200]); break
time.sleep(1)
before = rss(); peak = [before]; stop = False
def watch():
    while not stop:
        peak[0] = max(peak[0], rss()); time.sleep(0.005)
t = threading.Thread(target=watch); t.start()
sizes = []
def reader():
    for _ in range(4):
        _, body = req("GET", "/api/messages?topic=rooms.big&limit=100", token=tok); sizes.append(len(body))
ths = [threading.Thread(target=reader) for _ in range(CONC)]
t0 = time.time(); [x.start() for x in ths]; [x.join() for x in ths]; el = time.time() - t0
stop = True; t.join()
print(json.dumps({"concurrency": CONC, "requests": len(sizes), "pageBytes": max(sizes), "rssBefore": before, "rssPeak": peak[0], "rssAfter": rss(), "seconds": round(el, 2)}))
node.terminate(); print("exit", node.wait(30))
