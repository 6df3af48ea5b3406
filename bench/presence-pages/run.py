#!/usr/bin/env python3
"""What one member list costs Redis: the whole room read (HGETALL of the member and connection
hashes, what nodes before the index did) against one page through the user id index
(RedisPresenceScripts.page, taken from the Swift source, with a 1 MiB budget), for rooms of
1,000 to 100,000.

Starts its own redis-server on a free loopback port and stops it. Reports, per room size and
read, Redis's own time per call (INFO commandstats) and the reply's size.
Usage: python3 bench/presence-pages/run.py [calls per measurement, default 200]
(needs the PyPI package redis)."""
import os, re, socket, subprocess, sys, tempfile, time
import redis

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
source = open(os.path.join(root, "Sources/Broker/RedisPresenceScripts.swift")).read()
page_script = re.search(r'static let page = """\n(.*?)"""', source, re.S).group(1).replace("\\\\", "\\")
whole_script = "return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}"

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
workdir = tempfile.mkdtemp()
server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                           "--dir", workdir], stdout=subprocess.DEVNULL)
try:
    r = redis.Redis(port=port)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    page = r.register_script(page_script)
    whole = r.register_script(whole_script)
    print(f"redis-server {r.info()['redis_version']}, {calls} calls each; member documents of about 60 bytes")
    print("| members | read | Redis µs per call | reply bytes |")
    print("|---|---|---|---|")
    for size in [1_000, 10_000, 100_000]:
        r.flushall()
        keys = [f"p:m:room{size}", f"p:n:room{size}", f"p:z:room{size}", f"p:zr:room{size}"]
        pipe = r.pipeline(transaction=False)
        for i in range(size):
            user = f"user-{i:06d}"
            pipe.hset(keys[0], user, '{"userId":"%s","data":{"name":"User %d"}}' % (user, i))
            pipe.hset(keys[1], user, 1)
            pipe.zadd(keys[2], {user: 0})
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        for name, run in [("whole room (before)", lambda: whole(keys=keys[:2])),
                          ("one page of 1,000 (after)", lambda: page(keys=keys, args=["", 1000, 1 << 20])),
                          ("a page from the middle (after)", lambda: page(keys=keys, args=[f"user-{size // 2:06d}", 1000, 1 << 20]))]:
            reply = run()
            size_bytes = len(repr(reply))  # close enough to the RESP size for a comparison
            r.config_resetstat()
            for _ in range(calls):
                run()
            stats = r.info("commandstats")
            usec = stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0)
            print(f"| {size:,} | {name} | {usec:,.1f} | {size_bytes:,} |")
finally:
    server.terminate()
    server.wait()
