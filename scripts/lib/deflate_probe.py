#!/usr/bin/env python3
"""permessage-deflate (RFC 7692) probes against a running Chorus node, for the tests
(Tests/NodeTests/CompressionTests.swift) and for docs/benchmarks.md's bytes-per-delivery figures.

  deflate_probe.py websockets PORT SUB_TOKEN PUB_TOKEN TOPIC COUNT SIZE
      Python's `websockets` library, compression as it negotiates it by default: a subscriber
      and a publisher; the publisher sends COUNT messages of about SIZE bytes of JSON (compressed
      by the library, with context takeover), the subscriber must receive them all, intact.

  deflate_probe.py raw PORT TOKEN TOPIC COUNT [OFFER]
      A raw socket: upgrades with `Sec-WebSocket-Extensions: OFFER` (none when OFFER is empty),
      subscribes to TOPIC, prints "ready", then reads COUNT delivered messages frame by frame and
      reports, per message, whether RSV1 was set, its bytes on the wire (frame header included)
      and whether it inflated to the JSON delivered.

  deflate_probe.py measure PORT JWT_SECRET SIZE...
      Bytes on the wire per delivery: a subscriber that offers permessage-deflate (as Chromium
      does), one that offers nothing, and a publisher; for each SIZE, 20 chat messages whose
      `data` is about SIZE bytes of JSON. Reports per size the delivered JSON's bytes and the
      frames' bytes (headers included) for each subscriber.

Each prints one JSON object on its last line.
"""
import asyncio
import base64
import json
import os
import socket
import sys
import zlib


# Prose that does not repeat within a message, as a chat message's text does not: deflate finds
# little to reuse in it beyond English letter frequencies and the JSON around it.
PROSE = (
    "Morning all! The deploy went out at 9:40 and the error rate is back to normal. Bob, can you "
    "check the dashboards for the EU region when you get a minute? Carol said the login page felt "
    "slow around 10:15, maybe the cache warm-up after the restart, or the new font bundle we ship "
    "since Tuesday. I opened ticket 4821 with the traces I had. Lunch is at 12:30 in the usual place; "
    "Dmitri booked a table for eight, so tell him if you are coming. Reminder: the retro moved to "
    "Thursday at 3pm, bring one thing that went well and one that did not. Also, whoever borrowed the "
    "blue HDMI adapter from room 2B, please bring it back, the projector there has nothing else. "
    "Quick poll for the offsite in March: Lisbon, Krakow or Valencia? Reply with an emoji below. "
    "Finally, congratulations to Priya and the mobile team for shipping offline mode, the store "
    "reviews this week are the best we have had all year, and support tickets dropped by a third."
)


def realistic_message(seq, size):
    """A chat message of about `size` bytes of JSON, as a chat application would publish: ids,
    names and a text of prose (from a different place in PROSE for each message)."""
    import hashlib
    ident = hashlib.sha1(f"message-{seq}".encode()).hexdigest()
    message = {"id": f"{ident[:8]}-{ident[8:12]}-{ident[12:16]}-{ident[16:20]}-{ident[20:32]}",
               "seq": seq, "room": "general", "author": {"id": "u_7f3a91", "name": "Alice Martin"},
               "sentAt": f"2026-12-01T17:{seq % 60:02d}:{(seq * 7) % 60:02d}.{seq % 1000:03d}Z", "text": ""}
    room = max(0, size - len(json.dumps(message)))
    start = (seq * 97) % len(PROSE)
    message["text"] = (PROSE[start:] + " " + PROSE)[:room]
    return message


async def with_websockets(port, sub_token, pub_token, topic, count, size):
    import websockets
    url = f"ws://127.0.0.1:{port}/ws?token="
    async with websockets.connect(url + sub_token, max_size=None) as sub, \
            websockets.connect(url + pub_token, max_size=None) as pub:
        await sub.recv()  # auth_success
        await pub.recv()
        await sub.send(json.dumps({"type": "subscribe", "topic": topic, "id": "s"}))
        assert json.loads(await sub.recv())["type"] == "subscribed"
        sent = [realistic_message(seq, size) for seq in range(count)]
        for data in sent:
            await pub.send(json.dumps({"type": "message", "topic": topic, "data": data}))
        received = []
        while len(received) < count:
            message = json.loads(await asyncio.wait_for(sub.recv(), 20))
            if message.get("type") == "message":
                received.append(message["data"])
        return {
            "subscriberExtensions": sub.response.headers.get("Sec-WebSocket-Extensions"),
            "publisherExtensions": pub.response.headers.get("Sec-WebSocket-Extensions"),
            "negotiated": [type(e).__name__ for e in sub.protocol.extensions],
            "intact": received == sent,
            "received": len(received),
        }


class Raw:
    def __init__(self, port, token, offer):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        if offer:
            request += f"Sec-WebSocket-Extensions: {offer}\r\n"
        self.sock.sendall((request + "\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("connection closed during the upgrade")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0].split()[1] == "101", lines[0]
        self.extensions = None
        for line in lines[1:]:
            name, value = line.split(":", 1)
            if name.strip().lower() == "sec-websocket-extensions":
                self.extensions = value.strip()

    def read(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def frame(self):
        """(fin, rsv1, opcode, payload, bytes on the wire)."""
        first, second = self.read(2)
        length, header = second & 0x7F, 2
        if length == 126:
            length, header = int.from_bytes(self.read(2), "big"), 4
        elif length == 127:
            length, header = int.from_bytes(self.read(8), "big"), 10
        return first & 0x80 != 0, first & 0x40 != 0, first & 0x0F, self.read(length), header + length

    def send_text(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def message(self):
        """The next text message: (text, rsv1, wire bytes); pings are skipped."""
        while True:
            fin, rsv1, opcode, payload, wire = self.frame()
            assert fin, "the node sends whole messages in one frame"
            if opcode == 0x1:
                if rsv1:
                    payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
                return payload.decode(), rsv1, wire
            if opcode == 0x8:
                raise SystemExit(f"closed: {payload[:2].hex()}")


def raw(port, token, topic, count, offer):
    client = Raw(port, token, offer)
    client.message()  # auth_success
    client.send_text(json.dumps({"type": "subscribe", "topic": topic, "id": "s"}))
    assert json.loads(client.message()[0])["type"] == "subscribed"
    print("ready", flush=True)
    messages = []
    while len(messages) < count:
        text, rsv1, wire = client.message()
        message = json.loads(text)
        if message.get("type") == "message":
            messages.append({"rsv1": rsv1, "wireBytes": wire, "jsonBytes": len(text.encode())})
    return {"extensions": client.extensions, "messages": messages}


def mint(secret, subject):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    import hashlib, hmac, time
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": subject, "exp": int(time.time()) + 3600}).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def measure(port, secret, sizes):
    compressed = Raw(port, mint(secret, "measure-deflate"), "permessage-deflate; client_max_window_bits")
    plain = Raw(port, mint(secret, "measure-plain"), "")
    publisher = Raw(port, mint(secret, "measure-pub"), "")
    for client in (compressed, plain, publisher):
        client.message()  # auth_success
    for client in (compressed, plain):
        client.send_text(json.dumps({"type": "subscribe", "topic": "measure", "id": "s"}))
        assert json.loads(client.message()[0])["type"] == "subscribed"
    rows = []
    for size in sizes:
        totals = {"json": 0, "plain": 0, "compressed": 0, "compressedFrames": 0}
        count = 20
        for seq in range(count):
            publisher.send_text(json.dumps({"type": "message", "topic": "measure", "data": realistic_message(seq, size)}))
            text, _, wire = plain.message()
            totals["json"] += len(text.encode())
            totals["plain"] += wire
            _, rsv1, wire = compressed.message()
            totals["compressed"] += wire
            totals["compressedFrames"] += 1 if rsv1 else 0
        data_bytes = len(json.dumps(realistic_message(0, size)))
        rows.append({"dataBytes": data_bytes, "deliveredJSONBytes": totals["json"] / count,
                     "wirePlain": totals["plain"] / count, "wireCompressed": totals["compressed"] / count,
                     "compressedFrames": totals["compressedFrames"], "messages": count,
                     "extensions": compressed.extensions})
    return {"sizes": rows}


def main(argv):
    mode = argv[1]
    if mode == "websockets":
        port, sub, pub, topic, count, size = argv[2:8]
        result = asyncio.run(with_websockets(int(port), sub, pub, topic, int(count), int(size)))
    elif mode == "raw":
        port, token, topic, count = argv[2:6]
        offer = argv[6] if len(argv) > 6 else ""
        result = raw(int(port), token, topic, int(count), offer)
    elif mode == "measure":
        result = measure(int(argv[2]), argv[3], [int(size) for size in argv[4:]])
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
