#!/usr/bin/env python3
"""A stand-in for a node that sends frames in an order a real node makes only by chance, for
SDK tests that need that order every time. Prints `port N`, serves one client, then exits.

Scenario `pattern-before-page`: the client authenticates (token in the upgrade), subscribes to
a pattern, then to one of its topics with `replay`; a message of that topic arrives through the
pattern before the topic's `subscribed`, then the page (the message again among them), then a
live one.

Scenario `subscribes-unanswered`: the client authenticates and subscribes; no subscribe is
ever answered. The script prints `subscribes N` and `unsubscribe TOPIC` as they arrive, and
exits once the connection closes. Needs the PyPI package websockets."""
import asyncio, json, sys
import websockets


def message(topic, n):
    return json.dumps({"type": "message", "topic": topic, "eventType": "message.sent", "data": {"n": n},
                       "metadata": {"senderId": "x"}, "timestamp": "2026-12-04T00:00:00.000Z",
                       "offset": n, "epoch": "E"})


async def pattern_before_page(ws, *_):
    async def expect(kind):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == kind:
                return frame
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    pattern = await expect("subscribe")
    await ws.send(json.dumps({"type": "subscribed", "topic": pattern["topic"], "id": pattern["id"]}))
    topic = await expect("subscribe")
    name = topic["topic"]
    await ws.send(message(name, 3))  # through the pattern: the node has not taken the subscribe yet
    await ws.send(json.dumps({"type": "subscribed", "topic": name, "id": topic["id"], "offset": 3, "epoch": "E"}))
    for n in range(4 - topic.get("replay", 0), 4):
        await ws.send(message(name, n))
    await ws.send(message(name, 4))
    await ws.wait_closed()
    done.set()


async def subscribes_unanswered(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    subscribes = 0
    try:
        async for text in ws:
            frame = json.loads(text)
            if frame.get("type") == "subscribe":
                subscribes += 1
                print("subscribes", subscribes, flush=True)
            elif frame.get("type") == "unsubscribe":
                print("unsubscribe", frame["topic"], flush=True)
    except websockets.ConnectionClosed:
        pass
    done.set()


SCENARIOS = {"pattern-before-page": pattern_before_page, "subscribes-unanswered": subscribes_unanswered}


async def main(scenario):
    global done
    done = asyncio.Event()
    async with websockets.serve(SCENARIOS[scenario], "127.0.0.1", 0) as server:
        print("port", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.wait_for(done.wait(), 60)


if __name__ == "__main__":
    scenario = sys.argv[1] if len(sys.argv) > 1 else "pattern-before-page"
    assert scenario in SCENARIOS and len(sys.argv) <= 2, f"usage: scripted_node.py [{'|'.join(SCENARIOS)}]"
    asyncio.run(main(scenario))
