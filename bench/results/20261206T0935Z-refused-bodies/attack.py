import asyncio, sys, time, argparse, collections
p = argparse.ArgumentParser()
p.add_argument('--port', type=int, required=True)
p.add_argument('--mode', choices=['head', 'few', 'full', 'trickle'], required=True)
p.add_argument('--conns', type=int, default=3000)
p.add_argument('--addrs', type=int, default=20)
p.add_argument('--hold', type=float, default=30)   # seconds to hold after all sent
p.add_argument('--few', type=int, default=4096)
p.add_argument('--near', type=int, default=1048576 - 64)

p.add_argument('--chunk', type=int, default=65536)
a = p.parse_args()
CL = 1048576
head = (f"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {CL}\r\n\r\n").encode()
stats = collections.Counter()
writers = []
def log(*m): print(f"[{time.time():.1f}]", *m, flush=True)

async def reader_task(r, i):
    try:
        data = await r.read(200)
        if data:
            stats['status ' + data.split(b' ', 2)[1].decode()] += 1
        while data:
            data = await r.read(65536)
        stats['closed_by_server'] += 1
    except Exception as e:
        stats['read_err ' + type(e).__name__] += 1

async def one(i, sem):
    async with sem:
        src = f"127.0.0.{2 + i % a.addrs}"
        try:
            r, w = await asyncio.open_connection('127.0.0.1', a.port, local_addr=(src, 0))
        except Exception as e:
            stats['connect_err ' + type(e).__name__] += 1; return
        writers.append(w)
        asyncio.ensure_future(reader_task(r, i))
        try:
            w.write(head)
            if a.mode == 'few':
                w.write(b'{' + b' ' * (a.few - 1))
            elif a.mode in ('full', 'trickle'):
                sent = 0
                buf = b' ' * a.chunk
                w.write(b'{'); sent = 1
                while sent < a.near:
                    n = min(a.chunk, a.near - sent)
                    w.write(buf[:n]); sent += n
                    await asyncio.wait_for(w.drain(), 20)
            await w.drain()
            stats['sent_ok'] += 1
        except Exception as e:
            stats['write_err ' + type(e).__name__] += 1; return
    if a.mode == 'trickle':
        try:
            for _ in range(30):
                await asyncio.sleep(0.15); w.write(b' '); await w.drain()
            stats['trickled'] += 1
        except Exception as e:
            stats['trickle_err ' + type(e).__name__] += 1

async def main():
    sem = asyncio.Semaphore(200)
    log('start', vars(a))
    t0 = time.time()
    await asyncio.gather(*(one(i, sem) for i in range(a.conns)))
    log('all sent in %.1fs' % (time.time() - t0), dict(stats))
    await asyncio.sleep(a.hold)
    log('before close', dict(stats))
    for w in writers:
        try: w.transport.abort()
        except Exception: pass
    log('ALL_CLOSED')
    await asyncio.sleep(0.5)
    log('final', dict(stats))
asyncio.run(main())
