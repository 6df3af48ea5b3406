#!/usr/bin/env python3
"""A stand-in for a node that sends frames in an order a real node makes only by chance, for
SDK tests that need that order every time. Prints `port N`, serves one client, then exits.

Scenario `pattern-before-page`: the client authenticates (token in the upgrade), subscribes to
a pattern, then to one of its topics with `replay`; a message of that topic arrives through the
pattern before the topic's `subscribed`, then the page (the message again among them), then a
live one.

Scenario `late-since`: the client authenticates and subscribes; the script prints `subscribe
TOPIC` and answers that subscribe (offset 3, epoch E) only after the client's next `ping`, so
that the client makes its later calls while the subscribe is unanswered; then message 4 and a
`gap` without a topic (a marker). It prints `subscribes
N` for every subscribe after the first.

Scenario `subscribes-unanswered`: the client authenticates and subscribes; no subscribe is
ever answered. The script prints `subscribes N` and `unsubscribe TOPIC` as they arrive, and
exits once the connection closes.

Scenario `closes-on-publish`: the client authenticates and subscribes; its first publish is
not answered: the connection closes (1011) instead.

Scenario `presence-storm`: the client authenticates and subscribes with presence events; one
`presence` frame brings 1,500 joins at once, then a message of the topic.

Scenario `refuses-reconnect`: the client authenticates and subscribes; once the subscribe is
answered the connection closes (1011), and the next upgrade is refused with 401.

Scenario `slow-auth`: every upgrade is answered with `auth_success` only after 300 ms (a node
waiting on a slow Redis); the script prints `upgrades N` as they come, and `auth TOKEN` for an
`auth` on the connection (answered with `auth_success`), and exits once a client that
authenticated closes.

Scenario `expiry-crossing`: the client authenticates and publishes; the node answers
`auth_expired`, then `error` 401 for that publish, as a node does for a request that arrived
after the token's expiry. An `auth` is answered with `auth_success`, and the publish sent again
with `published`. The script prints `publishes N` as they arrive.

Scenario `catch-up-refused`: the client authenticates and subscribes (answered at offset 5, then
message 6); the node says `auth_expired`, answers the fresh `auth`, and refuses the catch-up
`subscribe` with `since` (409), then sends message 9 live. The script prints `catch-up since N`.

Scenario `catch-up-expired`: as `catch-up-refused`, but the token expires again before the
catch-up is read: `auth_expired` and a 401 to the catch-up; after the next `auth_success` the
second catch-up is answered (recovered, messages 7 and 8), then message 9 live. Prints `catch-up
since N` for each catch-up.

Scenario `resubscribed`: every subscribe is answered at offset 5 (`recovered` when it has
`since`). On the first connection, the first subscribe with presence (a join of the live topic)
is answered, then the connection closes (1011). On the second, its first subscribe (the
reconnect's) is refused with 409 and the retry answered. Prints `subscribe C N since presence`
for each (connection C, its Nth), and exits once the second connection closes.

Scenario `still-reading`: the client authenticates and subscribes; the first eight subscribes
are refused with 409 (a history read of the topic still runs, as for a subscribe sent again after
its answer was late), the ninth answered. Prints `subscribe N` for each, and exits once the client
closes.

Scenario `gap`: the client authenticates and subscribes to a topic (answered at offset 5, then
message 6) and a pattern; after the second `subscribed` the node sends `gap` for the topic, the
pattern, no topic (messages to the user) and a topic not subscribed, as a node does once its
Redis link is back after an outage; a `ping` brings message 7 live, then the `pong`.

Scenario `join-refused`: the client authenticates and subscribes (answered); its next subscribe
(a join of the live topic) is dropped past the message rate (429 with `retryAfter` 100 ms), and
the one after it answered. Prints `subscribe N presence` for each, and exits once the client closes.

Scenario `max-message-size`: the client authenticates; `auth_success` says `maxMessageSize`
300. Subscribes are answered, publishes answered with `published`; the script prints `publish N
BYTES` for each and `connections N` for each connection, and exits once one closes.

Scenario `closes-too-big`: as `max-message-size`, but `auth_success` names no limit, and a
`message` frame over 500 bytes closes the connection with 1009 (message too big), as a node
with a lower WEBSOCKET_MAX_MESSAGE_SIZE than the client knows does. Exits once the second
connection closes.

Scenario `leave-first`: a node older than `presenceLeave` (its `auth_success` does not say it).
Subscribes are answered (at offset 5), and unsubscribes; the script prints `subscribe N SINCE
PRESENCE` (whether it has `since`; the `presence` field as sent, `-` without one) and
`unsubscribe TOPIC` as they arrive, and exits once the client closes.

Scenario `leave-in-place`: as `leave-first`, from a node that says `presenceLeave`.

Scenario `stand-in-refused`: a node that says `presenceLeave`. The first subscribe is answered
at offset 5, then message 6 and `auth_expired`; each `auth` is accepted. The second subscribe
(the one the client sends after the fresh token, in place of its catch-up) is dropped past the
message rate (429, `retryAfter` 100 ms); later ones are answered (recovered). Prints `subscribe N
SINCE PRESENCE` (whether it has each field) and exits once the client closes.

Needs the PyPI package websockets."""
import asyncio, json, sys
import websockets


def still_reading(frame):
    """A node's 409 to `frame`: an earlier subscribe of its topic still reads the history."""
    return {"type": "error", "code": 409, "id": frame["id"], "details": {"topic": frame["topic"]},
            "message": "a subscribe to this topic is still reading its history"}


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


async def late_since(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    first = None
    subscribes = 0
    async for frame in frames(ws):
        if frame.get("type") == "subscribe":
            subscribes += 1
            if first is None:
                first = frame
                print("subscribe", frame["topic"], flush=True)
            else:
                print("subscribes", subscribes, flush=True)
        elif frame.get("type") == "ping" and first is not None:
            await ws.send(json.dumps({"type": "pong", "id": frame.get("id")}))
            await ws.send(json.dumps({"type": "subscribed", "topic": first["topic"], "id": first["id"], "offset": 3, "epoch": "E"}))
            await ws.send(message(first["topic"], 4))
            # A marker for the test: client events come in order, so everything before it is in.
            await ws.send(json.dumps({"type": "gap", "timestamp": "2026-12-04T00:00:00.000Z"}))
    done.set()


async def frames(ws):
    """The client's frames as objects, until it closes."""
    try:
        async for text in ws:
            yield json.loads(text)
    except websockets.ConnectionClosed:
        pass


async def closes_on_publish(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    async for frame in frames(ws):
        if frame.get("type") == "subscribe":
            await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"]}))
        elif frame.get("type") == "message":
            await ws.close(1011, "gone")
    done.set()


async def presence_storm(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    async for frame in frames(ws):
        if frame.get("type") == "subscribe":
            topic = frame["topic"]
            await ws.send(json.dumps({"type": "subscribed", "topic": topic, "id": frame["id"]}))
            members = [{"userId": f"u{n}", "connections": 1} for n in range(1500)]
            await ws.send(json.dumps({"type": "presence", "topic": topic, "event": "join", "members": members,
                                      "timestamp": "2026-12-05T00:00:00.000Z"}))
            await ws.send(message(topic, 1))  # read after the batch: the client has taken all of it
    done.set()


async def expiry_crossing(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    publishes = 0
    async for frame in frames(ws):
        kind = frame.get("type")
        if kind == "message":
            publishes += 1
            print("publishes", publishes, frame["messageId"], flush=True)
            if publishes == 1:
                await ws.send(json.dumps({"type": "auth_expired", "code": 401, "message": "token expired"}))
                await ws.send(json.dumps({"type": "error", "code": 401, "id": frame["id"],
                                          "message": "token expired: send 'auth' with a fresh token"}))
            else:
                await ws.send(json.dumps({"type": "published", "id": frame["id"], "messageId": frame["messageId"]}))
        elif kind == "auth":
            await ws.send(json.dumps({"type": "auth_success", "userId": "bob", "id": frame["id"]}))
        elif kind == "ping":
            await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
    done.set()


async def after_late_renewal(ws, answer_catch_up):
    """Subscribed at offset 5, message 6, then `auth_expired`; each fresh `auth` is accepted and
    each catch-up (`subscribe` with `since`) printed and answered by `answer_catch_up(frame, n)`."""
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    catch_ups = 0
    async for frame in frames(ws):
        kind = frame.get("type")
        if kind == "subscribe" and "since" not in frame:
            await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"], "offset": 5, "epoch": "E"}))
            await ws.send(message(frame["topic"], 6))
            await ws.send(json.dumps({"type": "auth_expired", "code": 401, "message": "token expired"}))
        elif kind == "auth":
            await ws.send(json.dumps({"type": "auth_success", "userId": "bob", "id": frame["id"]}))
        elif kind == "subscribe":
            catch_ups += 1
            print("catch-up since", frame["since"]["offset"], flush=True)
            for reply in answer_catch_up(frame, catch_ups):
                await ws.send(json.dumps(reply))
        elif kind == "ping":
            await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
    done.set()


async def catch_up_refused(ws, *_):
    await after_late_renewal(ws, lambda frame, _: [still_reading(frame), json.loads(message(frame["topic"], 9))])


async def catch_up_expired(ws, *_):
    def answer(frame, count):
        if count == 1:
            return [{"type": "auth_expired", "code": 401, "message": "token expired"},
                    {"type": "error", "code": 401, "id": frame["id"], "details": {"topic": frame["topic"]},
                     "message": "token expired: send auth with a fresh token"}]
        return [{"type": "subscribed", "topic": frame["topic"], "id": frame["id"], "offset": 8, "epoch": "E", "recovered": True}] \
            + [json.loads(message(frame["topic"], n)) for n in (7, 8, 9)]
    await after_late_renewal(ws, answer)


async def refuses_reconnect(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    async for frame in frames(ws):
        if frame.get("type") == "subscribe":
            await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"]}))
            await ws.close(1011, "gone")


upgrades = 0


async def slow_auth(ws, *_):
    global upgrades
    upgrades += 1
    print("upgrades", upgrades, flush=True)
    await asyncio.sleep(0.3)  # the scenario: a node slow to authenticate, not a synchronization
    try:
        await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
        async for frame in frames(ws):
            if frame.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
            elif frame.get("type") == "auth":
                print("auth", frame.get("token"), flush=True)
                await ws.send(json.dumps({"type": "auth_success", "userId": "bob", "id": frame["id"]}))
    except websockets.ConnectionClosed:
        pass  # a pong to a ping sent just before the client closed
    done.set()


async def silent_auth(ws, *_):
    """The first connection is never authenticated (a node stuck before auth_success); the
    second one is."""
    global upgrades
    upgrades += 1
    print("upgrades", upgrades, flush=True)
    if upgrades == 1:
        async for _ in frames(ws):
            pass
        print("first connection dropped", flush=True)
        return
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    async for _ in frames(ws):
        pass
    done.set()


closes = []


async def close_codes(ws, *_):
    """Each connection is authenticated and read until the client closes; after 10, prints the
    close code each one ended with (1000 for a close handshake, 1006 for TCP ended without one)."""
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    async for frame in frames(ws):
        if frame.get("type") == "ping":
            try:
                await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
            except websockets.ConnectionClosed:
                pass
    await ws.wait_closed()
    closes.append(ws.close_code)
    if len(closes) == 10:
        print("close codes", " ".join(str(code) for code in closes), flush=True)
        done.set()


connections = 0


async def resubscribed(ws, *_):
    global connections
    connections += 1
    connection = connections
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    subscribes = 0
    async for frame in frames(ws):
        kind = frame.get("type")
        if kind == "subscribe":
            subscribes += 1
            print("subscribe", connection, subscribes, "since" in frame, "presence" in frame, flush=True)
            if connection == 2 and subscribes == 1:
                await ws.send(json.dumps(still_reading(frame)))
                continue
            reply = {"type": "subscribed", "topic": frame["topic"], "id": frame["id"], "offset": 5, "epoch": "E"}
            if "since" in frame:
                reply["recovered"] = True
            await ws.send(json.dumps(reply))
            if connection == 1 and "presence" in frame:
                await ws.close(1011, "gone")
        elif kind == "ping":
            await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
    if connection == 2:
        done.set()


async def refused_while_reading(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    subscribes = 0
    async for frame in frames(ws):
        if frame.get("type") != "subscribe":
            continue
        subscribes += 1
        print("subscribe", subscribes, flush=True)
        if subscribes <= 8:
            await ws.send(json.dumps(still_reading(frame)))
        else:
            await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"], "offset": 5, "epoch": "E"}))
    done.set()


async def gap(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    subscribes = 0
    async for frame in frames(ws):
        kind = frame.get("type")
        if kind == "subscribe":
            subscribes += 1
            if "*" in frame["topic"]:
                await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"]}))
            else:
                await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"], "offset": 5, "epoch": "E"}))
                await ws.send(message(frame["topic"], 6))
            if subscribes == 2:
                timestamp = "2026-12-05T00:00:00.000Z"
                for topic in ("rooms.a", "rooms.*", None, "rooms.gone"):
                    await ws.send(json.dumps({"type": "gap", "timestamp": timestamp} | ({"topic": topic} if topic else {})))
        elif kind == "ping":
            await ws.send(message("rooms.a", 7))  # after the client read the position the gaps left
            await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
    done.set()


async def join_refused(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"}))
    subscribes = 0
    async for frame in frames(ws):
        if frame.get("type") != "subscribe":
            continue
        subscribes += 1
        print("subscribe", subscribes, "presence" in frame, flush=True)
        if subscribes == 2:
            await ws.send(json.dumps({"type": "error", "code": 429, "id": frame["id"], "message": "rate limit exceeded",
                                      "details": {"retryAfter": 100, "limit": 100}}))
        else:
            await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"]}))
    done.set()


async def leave_first(ws, *_):
    await leaves(ws, False)


async def leave_in_place(ws, *_):
    await leaves(ws, True)


async def leaves(ws, in_place):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"} | ({"presenceLeave": True} if in_place else {})))
    subscribes = 0
    async for frame in frames(ws):
        kind = frame.get("type")
        if kind == "subscribe":
            subscribes += 1
            print("subscribe", subscribes, "since" in frame, json.dumps(frame["presence"]) if "presence" in frame else "-", flush=True)
            reply = {"type": "subscribed", "topic": frame["topic"], "id": frame["id"], "offset": 5, "epoch": "E"}
            if "since" in frame:
                reply["recovered"] = True
            await ws.send(json.dumps(reply))
        elif kind == "unsubscribe":
            print("unsubscribe", frame["topic"], flush=True)
            await ws.send(json.dumps({"type": "unsubscribed", "topic": frame["topic"], "id": frame.get("id")}))
        elif kind == "ping":
            await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
    done.set()


async def stand_in_refused(ws, *_):
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob", "presenceLeave": True}))
    subscribes = 0
    async for frame in frames(ws):
        kind = frame.get("type")
        if kind == "subscribe":
            subscribes += 1
            print("subscribe", subscribes, "since" in frame, "presence" in frame, flush=True)
            if subscribes == 1:
                await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"], "offset": 5, "epoch": "E"}))
                await ws.send(message(frame["topic"], 6))
                await ws.send(json.dumps({"type": "auth_expired", "code": 401, "message": "token expired"}))
            elif subscribes == 2:
                await ws.send(json.dumps({"type": "error", "code": 429, "id": frame["id"], "message": "rate limit exceeded",
                                          "details": {"retryAfter": 100, "limit": 100}}))
            else:
                await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"], "offset": 6,
                                          "epoch": "E", "recovered": True}))
        elif kind == "auth":
            await ws.send(json.dumps({"type": "auth_success", "userId": "bob", "presenceLeave": True, "id": frame["id"]}))
        elif kind == "ping":
            await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
    done.set()


async def size_limited(ws, announce):
    global connections
    connections += 1
    connection = connections
    print("connections", connection, flush=True)
    await ws.send(json.dumps({"type": "auth_success", "userId": "bob"} | ({"maxMessageSize": 300} if announce else {})))
    publishes = 0
    try:
        async for text in ws:
            frame = json.loads(text)
            kind = frame.get("type")
            if kind == "subscribe":
                await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"]}))
            elif kind == "message":
                size = len(text.encode())
                if not announce and size > 500:
                    print("closed for", size, flush=True)
                    await ws.close(1009, "message too big")
                    break
                publishes += 1
                print("publish", publishes, size, flush=True)
                await ws.send(json.dumps({"type": "published", "id": frame["id"], "messageId": frame["messageId"]}))
            elif kind == "ping":
                await ws.send(json.dumps({"type": "pong", "id": frame["id"]}))
    except websockets.ConnectionClosed:
        pass
    if announce or connection == 2:
        done.set()


async def max_message_size(ws, *_):
    await size_limited(ws, True)


async def closes_too_big(ws, *_):
    await size_limited(ws, False)


def refuse_after_first(connection, request):
    """The `refuses-reconnect` scenario's second upgrade: refused with 401."""
    global upgrades
    upgrades += 1
    if upgrades > 1:
        print("refused upgrade", upgrades, flush=True)
        done.set()
        return connection.respond(401, '{"type":"error","code":401,"message":"token refused"}\n')
    return None


SCENARIOS = {"pattern-before-page": pattern_before_page, "subscribes-unanswered": subscribes_unanswered,
             "closes-on-publish": closes_on_publish, "presence-storm": presence_storm,
             "expiry-crossing": expiry_crossing, "refuses-reconnect": refuses_reconnect, "slow-auth": slow_auth,
             "silent-auth": silent_auth,
             "catch-up-refused": catch_up_refused, "catch-up-expired": catch_up_expired,
             "resubscribed": resubscribed, "still-reading": refused_while_reading, "gap": gap, "join-refused": join_refused,
             "max-message-size": max_message_size, "closes-too-big": closes_too_big, "close-codes": close_codes,
             "late-since": late_since, "leave-first": leave_first, "leave-in-place": leave_in_place, "stand-in-refused": stand_in_refused}


async def main(scenario):
    global done
    done = asyncio.Event()
    process_request = refuse_after_first if scenario == "refuses-reconnect" else None
    async with websockets.serve(SCENARIOS[scenario], "127.0.0.1", 0, process_request=process_request) as server:
        print("port", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.wait_for(done.wait(), 60)


if __name__ == "__main__":
    scenario = sys.argv[1] if len(sys.argv) > 1 else "pattern-before-page"
    assert scenario in SCENARIOS and len(sys.argv) <= 2, f"usage: scripted_node.py [{'|'.join(SCENARIOS)}]"
    asyncio.run(main(scenario))
