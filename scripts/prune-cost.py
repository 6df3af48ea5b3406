#!/usr/bin/env python3
"""Times the store's SQLite pruning statement (batches of 1,000, oldest first by the created_at index) on a file database of
N messages of ~200 bytes, WAL, synchronous=NORMAL, as the node opens it."""
import os, sqlite3, sys, time
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
path = "/tmp/chorus-prune-cost.db"
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix): os.remove(path + suffix)
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
db.execute("""CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, author_id TEXT NOT NULL,
 topic TEXT, recipient_id TEXT, peer_low TEXT, peer_high TEXT, content TEXT NOT NULL, metadata TEXT, created_at INTEGER NOT NULL, updated_at INTEGER)""")
db.execute("CREATE INDEX messages_topic ON messages (topic, seq) WHERE topic IS NOT NULL")
db.execute("CREATE INDEX messages_conversation ON messages (peer_low, peer_high, seq) WHERE peer_low IS NOT NULL")
db.execute("CREATE INDEX messages_created_at ON messages (created_at)")
db.execute("BEGIN")
content = "x" * 200
db.executemany("INSERT INTO messages (id, author_id, topic, content, created_at) VALUES (?, 'alice', ?, ?, ?)",
               ((f"{i:032x}", f"rooms.r{i % 1000}", content, 1_700_000_000_000 + i) for i in range(n)))
db.execute("COMMIT")
cutoff = 1_700_000_000_000 + n  # everything is old
PRUNE = "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE created_at < ? ORDER BY created_at LIMIT 1000) RETURNING seq"
start = time.monotonic(); batches = 0; total = 0; worst = 0.0
while True:
    t = time.monotonic()
    rows = db.execute(PRUNE, (cutoff,)).fetchall()
    worst = max(worst, time.monotonic() - t); batches += 1; total += len(rows)
    if len(rows) < 1000: break
elapsed = time.monotonic() - start
print(f"sqlite {sqlite3.sqlite_version}: {total:,} messages pruned in {elapsed:.1f} s ({total/elapsed:,.0f}/s), {batches} batches, slowest batch {worst*1000:.1f} ms")
# nothing old: the cost of a pass that finds nothing (a future-dated row at the head changes nothing)
db.executemany("INSERT INTO messages (id, author_id, topic, content, created_at) VALUES (?, 'alice', 'rooms.r', ?, ?)",
               ((f"y{i:031x}", content, 1_800_000_000_000 + i) for i in range(100_000)))
t = time.monotonic(); rows = db.execute(PRUNE, (cutoff,)).fetchall()
print(f"a pass with nothing to prune (100,000 young rows): {(time.monotonic()-t)*1000:.2f} ms, {len(rows)} rows")
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix): os.remove(path + suffix)
