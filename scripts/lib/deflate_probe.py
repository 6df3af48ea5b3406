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

Each prints one JSON object on its last line.
"""
import asyncio
import base64
import json
import os
import socket
import sys
import zlib


def realistic_message(seq, size):
    """A chat message of about `size` bytes of JSON, as a chat application would publish."""
    words = ("the deploy finished and the dashboards look green again, thanks everyone for "
             "staying late; tomorrow we look at the latency graphs and the flaky login test ")
    text = (words * (size // len(words) + 1))[: max(0, size - 160)]
    return {"seq": seq, "text": text, "author": "alice", "room": "general",
            "mentions": ["bob", "carol"], "clientTime": "2026-12-01T17:20:57.123Z"}


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


def main(argv):
    mode = argv[1]
    if mode == "websockets":
        port, sub, pub, topic, count, size = argv[2:8]
        result = asyncio.run(with_websockets(int(port), sub, pub, topic, int(count), int(size)))
    elif mode == "raw":
        port, token, topic, count = argv[2:6]
        offer = argv[6] if len(argv) > 6 else ""
        result = raw(int(port), token, topic, int(count), offer)
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
