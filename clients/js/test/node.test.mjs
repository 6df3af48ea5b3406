// The SDK against real nodes: two `chorus` nodes sharing a real redis-server behind nginx, all
// started by this file and stopped at its end (each node must exit 0 after SIGTERM, no crash).
// Every feature is probed once (support/cluster.mjs): a node that lacks one fails the suite.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, connect as tcpConnect } from "node:net";
import { ChorusClient, ChorusAuthError, ChorusError, ChorusQueueFullError } from "../chorus.js";
import { startCluster, probeFeatures, mintToken, http } from "./support/cluster.mjs";
import { client, closeAll, Inbox, nextEvent, routed, TestWebSocket, WsPackage } from "./support/client.mjs";
import { startProxy } from "./support/proxy.mjs";

let cluster;
let features;
const unique = () => randomUUID().slice(0, 8);

before(async () => {
  cluster = await startCluster("sdk", { nodes: 2 });
  features = await probeFeatures(cluster.wsURL, TestWebSocket);
});

after(async () => {
  closeAll();
  const problems = cluster ? await cluster.stop() : [];
  assert.deepEqual(problems, [], `nodes ended badly (logs in ${cluster?.directory})`);
});

/** Options for a client on a node that may lack publish acks. */
const acks = () => ({ publishAcks: features.publishAcks });

describe("on two nodes behind nginx", () => {
  test("a client connects with a token, receives what it subscribed to from another node, and nothing after unsubscribing", async () => {
    const topic = `rooms.${unique()}`;
    const alice = client(cluster.node(1).wsURL, "alice", acks());
    const bob = client(cluster.node(2).wsURL, "bob", acks());
    const states = [];
    alice.on("state", (e) => states.push(e.state));
    await alice.connect();
    await bob.connect();
    assert.equal(alice.state, "connected");
    assert.equal(alice.userId, "alice");
    assert.deepEqual(states, ["connecting", "connected"]);

    const inbox = new Inbox();
    const unsubscribe = alice.subscribe(topic, inbox.handler);
    await unsubscribe.ready;
    await routed(inbox, bob, topic);
    const marker = new Inbox();
    await alice.subscribe(`${topic}-ready`, marker.handler).ready;
    await routed(marker, alice, `${topic}-ready`);

    await bob.publish(topic, { text: "hello" }, { eventType: "message.sent", metadata: { priority: "high" } });
    const [message] = await inbox.until(1);
    assert.deepEqual(message.data, { text: "hello" });
    assert.equal(message.metadata.senderId, "bob");
    assert.equal(message.metadata.priority, "high");
    assert.equal(message.topic, topic);

    unsubscribe();
    // The unsubscribe reaches the node before a later publish from the same client does.
    await alice.publish(`${topic}-ready`, { after: "unsubscribe" });
    await alice.publish(topic, { text: "not for alice" });
    await marker.until((ms) => ms.some((m) => m.data.after === "unsubscribe"));
    assert.equal(inbox.messages.length, 1);
  });

  test("a pattern subscription gets each matching message once, and two handlers of one topic both get it", async () => {
    const room = `rooms.${unique()}`;
    const alice = client(cluster.wsURL, "alice", acks());
    await alice.connect();
    const all = new Inbox();
    const one = new Inbox();
    const two = new Inbox();
    await alice.subscribe(`${room}.*`, all.handler).ready;
    await alice.subscribe(`${room}.a`, one.handler).ready;
    await alice.subscribe(`${room}.a`, two.handler).ready;
    await routed(all, alice, `${room}.b`);
    await routed(one, alice, `${room}.a`);
    await alice.publish(`${room}.a`, { n: 1 });
    await alice.publish(`${room}.b`, { n: 2 });
    await alice.publish(`${room}.a.deeper`, { n: 3 });
    await alice.publish(`${room}.a`, { n: 4 });
    await all.until(3);
    await one.until(2);
    await two.until(2);
    assert.deepEqual(all.data(), [{ n: 1 }, { n: 2 }, { n: 4 }]);
    assert.deepEqual(one.data(), [{ n: 1 }, { n: 4 }]);
    assert.deepEqual(two.data(), [{ n: 1 }, { n: 4 }]);
  });

  test("publish to another user's private topic rejects with the node's 403 as a ChorusError", async () => {
    const alice = client(cluster.wsURL, "alice", acks());
    await alice.connect();
    const error = await alice.publish("messages.user.bob", { text: "psst" }).then(() => null, (e) => e);
    assert.ok(error instanceof ChorusError, `expected a ChorusError, got ${error}`);
    assert.equal(error.code, 403);
    const subscribeError = await alice.subscribe("messages.user.*", () => {}).ready.then(() => null, (e) => e);
    assert.equal(subscribeError?.code, 403);
  });

  test("publishes made before connecting wait in the bounded offline queue and are delivered once connected", async () => {
    const topic = `rooms.${unique()}`;
    const bob = client(cluster.wsURL, "bob", acks());
    await bob.connect();
    const inbox = new Inbox();
    await bob.subscribe(topic, inbox.handler).ready;
    const prober = client(cluster.node(2).wsURL, "prober", acks());
    await prober.connect();
    await routed(inbox, prober, topic);
    const alice = client(cluster.node(2).wsURL, "alice", { ...acks(), offlineQueueSize: 3 });
    const queued = [1, 2, 3].map((n) => alice.publish(topic, { n }));
    await assert.rejects(alice.publish(topic, { n: 4 }), ChorusQueueFullError);
    assert.equal(alice.queuedPublishes, 3);
    await alice.connect();
    const replies = await Promise.all(queued);
    assert.equal(new Set(replies.map((r) => r.messageId)).size, 3);
    await inbox.until(3);
    assert.deepEqual(inbox.data(), [{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  test("a refused token stops the client without a reconnect loop; a provider is asked once more, and setToken starts it again", async () => {
    let asked = 0;
    const forged = mintToken("mallory", { signingSecret: "not-the-node-secret-0123456789abcdef" });
    const mallory = client(cluster.wsURL, "mallory", { getToken: () => { asked += 1; return forged; } });
    const error = await mallory.connect().then(() => null, (e) => e);
    assert.ok(error instanceof ChorusAuthError, `expected ChorusAuthError, got ${error}`);
    assert.equal(mallory.state, "disconnected");
    assert.equal(asked, 2, "the provider is asked for the first connection and once more after the refusal");
    mallory.setToken(mintToken("mallory"));
    await nextEvent(mallory, "connected");
    assert.equal(mallory.userId, "mallory");
  });

  test("a provider that hands out a new but refused token each time is asked twice, then the client stops: no loop", async () => {
    let asked = 0;
    let thirdAsk;
    const askedThrice = new Promise((resolve) => { thirdAsk = resolve; });
    const mallory = client(cluster.wsURL, "mallory", {
      getToken: () => {
        asked += 1;
        if (asked === 3) thirdAsk("asked a third time");
        return mintToken("mallory", { signingSecret: "not-the-node-secret-0123456789abcdef", extra: { jti: randomUUID() } });
      },
    });
    const states = [];
    mallory.on("state", (e) => states.push(e));
    // Without a bound the client would loop through new tokens and connect() would never settle.
    const outcome = await Promise.race([mallory.connect().then(() => "connected", (e) => e), askedThrice]);
    assert.ok(outcome instanceof ChorusAuthError, `expected ChorusAuthError, got ${outcome}`);
    assert.equal(asked, 2, "the provider is asked for the first connection and once more after the refusal");
    assert.equal(mallory.state, "disconnected");
    const last = states.at(-1);
    assert.equal(last.willReconnect, false);
    assert.ok(last.error instanceof ChorusAuthError, "the disconnected state carries the auth error");
  });

  test("on auth_expired the client asks its provider for a token, authenticates again and keeps its subscriptions", async () => {
    const topic = `rooms.${unique()}`;
    const tokens = [mintToken("carol", { ttlSeconds: 2 })];
    let asked = 0;
    const carol = client(cluster.wsURL, "carol", {
      ...acks(),
      renewBefore: 0,  // renewed only when the node says the token expired
      getToken: () => { asked += 1; return tokens.shift() ?? mintToken("carol"); },
    });
    // Listened for from the start: on a loaded machine the token (2 s, and the node's 5-s
    // leeway) may expire before the subscription is routed, and the event would be missed.
    const expired = nextEvent(carol, "authExpired");
    const reauthenticated = nextEvent(carol, "reauthenticated");
    await carol.connect();
    const inbox = new Inbox();
    await carol.subscribe(topic, inbox.handler).ready;
    await routed(inbox, carol, topic);
    await expired;
    await reauthenticated;
    assert.equal(asked, 2);
    await carol.publish(topic, { after: "refresh" });
    await inbox.until(1);
    assert.deepEqual(inbox.data(), [{ after: "refresh" }]);
  });

  test("after a token renewed late (auth_expired), the messages published meanwhile still arrive, in order: the client asks for them with since", async () => {
    const topic = `rooms.${unique()}`;
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    let asked = 0;
    const gina = client(cluster.wsURL, "gina", {
      ...acks(),
      renewBefore: 0,
      // The first token lives 1-2 s past the node's JWT_LEEWAY; the renewal waits for release().
      getToken: async () => { asked += 1; return asked === 1 ? mintToken("gina", { ttlSeconds: 2 }) : held; },
    });
    // Henry first, so that less has to happen within gina's first token; her expiry listened
    // for from the start, as above: on a loaded machine it may come before n: 1.
    const henry = client(cluster.node(2).wsURL, "henry", acks());
    await henry.connect();
    const expired = nextEvent(gina, "authExpired");
    await gina.connect();
    const inbox = new Inbox();
    await gina.subscribe(topic, inbox.handler).ready;
    await routed(inbox, gina, topic);
    await henry.publish(topic, { n: 1 });
    await expired;
    await henry.publish(topic, { n: 2 });
    await henry.publish(topic, { n: 3 });
    const renewed = nextEvent(gina, "reauthenticated");
    release(mintToken("gina"));
    await renewed;
    await henry.publish(topic, { n: 4 });
    await inbox.until(4);
    assert.deepEqual(inbox.data(), [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
  });

  test("with getToken the client renews ahead of the token's expiry: no auth_expired, and every message published across the expiry arrives", async () => {
    const topic = `rooms.${unique()}`;
    // Lives 5-6 s past the node's JWT_LEEWAY (5 s): renewed half of that ahead, about 5 s,
    // time enough for the provider and the `auth` on a loaded machine.
    const tokens = [mintToken("erin", { ttlSeconds: 6 })];
    let asked = 0;
    const erin = client(cluster.wsURL, "erin", {
      ...acks(),
      getToken: () => { asked += 1; return tokens.shift() ?? mintToken("erin"); },
    });
    const events = [];
    erin.on("authExpired", () => events.push("authExpired"));
    const renewed = nextEvent(erin, "reauthenticated");
    let renewedAt;
    let renewFailure;
    renewed.then(() => { renewedAt = Date.now(); }, (error) => { renewFailure = error; });
    await erin.connect();
    const inbox = new Inbox();
    await erin.subscribe(topic, inbox.handler).ready;
    await routed(inbox, erin, topic);
    const frank = client(cluster.node(2).wsURL, "frank", acks());
    await frank.connect();
    // Published until 3 s after the renewal: past the first token's expiry.
    let sent = 0;
    const deadline = Date.now() + 30000;
    while (renewFailure === undefined && (renewedAt === undefined || Date.now() < renewedAt + 3000)) {
      if (Date.now() > deadline) throw new Error(`not renewed and published 3 s past the renewal within 30 s (renewed: ${renewedAt !== undefined}, ${sent} sent)`);
      await frank.publish(topic, { n: sent });
      sent += 1;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await renewed;  // rejects (no renewal within its bound) if the loop ended on that
    await inbox.until(sent);
    assert.deepEqual(inbox.data().map((d) => d.n), [...Array(sent).keys()]);
    assert.deepEqual(events, [], "the token never expired on the connection");
    assert.equal(asked, 2, "asked for the first connection and once ahead of the expiry");
    assert.equal(erin.state, "connected");
  });

  test("the ws package's WebSocket can be passed in", { skip: WsPackage ? false : "the ws package is not installed" }, async () => {
    const topic = `rooms.${unique()}`;
    const dave = new ChorusClient(cluster.wsURL, { WebSocket: WsPackage, token: mintToken("dave"), ...acks() });
    try {
      await dave.connect();
      const inbox = new Inbox();
      await dave.subscribe(topic, inbox.handler).ready;
      await routed(inbox, dave, topic);
      await dave.publish(topic, { via: "ws" });
      await inbox.until(1);
    } finally {
      dave.disconnect();
    }
  });

  test("publish resolves with the node's published reply; the same messageId again is a duplicate, delivered once", async (t) => {
    if (!features.publishAcks) return t.skip("the node does not acknowledge publishes yet");
    const topic = `rooms.${unique()}`;
    const alice = client(cluster.wsURL, "alice");
    await alice.connect();
    const inbox = new Inbox();
    await alice.subscribe(topic, inbox.handler).ready;
    await routed(inbox, alice, topic);
    const first = await alice.publish(topic, { n: 1 }, { messageId: "fixed-key" });
    assert.equal(first.type, "published");
    assert.equal(first.messageId, "fixed-key");
    assert.equal(first.duplicate, false);
    const again = await alice.publish(topic, { n: 1 }, { messageId: "fixed-key" });
    assert.equal(again.duplicate, true);
    await alice.publish(topic, { n: 2 });
    await inbox.until(2);
    assert.deepEqual(inbox.data(), [{ n: 1 }, { n: 2 }]);
  });

  test("a message the application addresses to a user reaches that user's clients on 'message', without a topic", async () => {
    const user = `u${unique()}`.replace(/[^A-Za-z0-9_-]/g, "");
    const [phone, laptop] = [client(cluster.node(1).wsURL, user), client(cluster.node(2).wsURL, user)];
    const received = [phone, laptop].map((c) => new Promise((resolve) => c.on("message", resolve)));
    await phone.connect();
    await laptop.connect();
    assert.equal(await cluster.publishToUser(user, { room: "r1" }, "invite.received"), 202);
    for (const message of await Promise.all(received)) {
      assert.equal(message.topic, undefined);
      assert.equal(message.eventType, "invite.received");
      assert.deepEqual(message.data, { room: "r1" });
      assert.equal(message.metadata.senderId, "server");
    }
  });

  test("replay: a new subscriber gets the last messages, then live ones, with offsets", async (t) => {
    if (!features.history) return t.skip("the node has no history yet");
    const topic = `rooms.${unique()}`;
    const alice = client(cluster.wsURL, "alice", acks());
    await alice.connect();
    for (let n = 1; n <= 5; n++) await alice.publish(topic, { n });
    const bob = client(cluster.wsURL, "bob", acks());
    await bob.connect();
    const inbox = new Inbox();
    await bob.subscribe(topic, inbox.handler, { replay: 3 }).ready;
    await routed(inbox, alice, topic);
    await alice.publish(topic, { n: 6 });
    await inbox.until(4);
    assert.deepEqual(inbox.data(), [{ n: 3 }, { n: 4 }, { n: 5 }, { n: 6 }]);
    const offsets = inbox.messages.map((m) => m.offset);
    assert.deepEqual(offsets.slice(0, 3), [offsets[0], offsets[0] + 1, offsets[0] + 2], "the replayed messages are consecutive");
    assert.ok(offsets[3] > offsets[2], "offsets increase");
  });

  test("presence: join with data, members() lists both users, and join/leave events arrive", async (t) => {
    if (!features.presence) return t.skip("the node has no presence yet");
    const topic = `rooms.${unique()}`;
    const alice = client(cluster.node(1).wsURL, "alice", acks());
    const bob = client(cluster.node(2).wsURL, "bob", acks());
    await alice.connect();
    await bob.connect();
    const events = new Inbox();
    await alice.join(topic, { name: "Alice" }, { onPresence: events.handler }).ready;
    const leave = bob.join(topic, { name: "Bob" });
    await leave.ready;
    await events.until((es) => es.some((e) => e.event === "join" && e.member.userId === "bob"), "bob's join");
    const state = await alice.members(topic);
    assert.deepEqual(state.members.map((m) => m.userId).sort(), ["alice", "bob"]);
    assert.deepEqual(state.members.find((m) => m.userId === "bob").data, { name: "Bob" });
    const after = await alice.members(topic, { after: "alice" });
    assert.deepEqual(after.members.map((m) => m.userId), ["bob"], "after: the page after that user id");
    assert.equal(after.count, 2);
    bob.leave(topic);
    await events.until((es) => es.some((e) => e.event === "leave" && e.member.userId === "bob"), "bob's leave");
  });

  test("presence: once a joined subscription is live again after a reconnect the SDK emits resync, and members() then lists who joined meanwhile", async (t) => {
    if (!features.presence) return t.skip("the node has no presence yet");
    const topic = `rooms.${unique()}`;
    const proxy = await startProxy(cluster.node(1).port);
    const alice = client(proxy.wsURL, "alice", { ...acks(), minReconnectDelay: 50, maxReconnectDelay: 200 });
    try {
      const bob = client(cluster.node(2).wsURL, "bob", acks());
      await alice.connect();
      await bob.connect();
      const order = [];
      alice.on("subscribed", (e) => { if (e.topic === topic) order.push(e.resubscribed ? "resubscribed" : "subscribed"); });
      await alice.join(topic, { name: "Alice" }, { onPresence: (e) => { if (e.event === "resync") order.push("resync"); } }).ready;
      // Alice's connection stops carrying anything, so bob's join may not reach her; then it closes.
      proxy.blackhole();
      await bob.join(topic, { name: "Bob" }).ready;
      const resync = nextEvent(alice, "presence", (e) => e.topic === topic && e.event === "resync");
      proxy.cut();
      const event = await resync;
      assert.equal(event.member, undefined);
      assert.equal(new Date(event.timestamp).toISOString(), event.timestamp);
      assert.deepEqual(order, ["subscribed", "resubscribed", "resync"], "none after the first subscribe; after the resubscription, on the handler too");
      const state = await alice.members(topic);
      assert.deepEqual(state.members.map((m) => m.userId).sort(), ["alice", "bob"]);
    } finally {
      alice.disconnect();  // not left reconnecting to the closed relay
      await proxy.close();
    }
  });

  test("typing: many keystrokes send one start, and a stop follows on its own", async (t) => {
    if (!features.typing) return t.skip("the node has no typing yet");
    const topic = `rooms.${unique()}`;
    const alice = client(cluster.node(1).wsURL, "alice", { ...acks(), typingTimeout: 200 });
    const bob = client(cluster.node(2).wsURL, "bob", acks());
    await alice.connect();
    await bob.connect();
    const typing = new Inbox();
    await bob.subscribe(topic, { onTyping: typing.handler }).ready;
    const aliceInbox = new Inbox();
    await alice.subscribe(topic, aliceInbox.handler).ready;
    const bobInbox = new Inbox();
    await bob.subscribe(topic, bobInbox.handler).ready;
    await routed(bobInbox, alice, topic);
    for (let i = 0; i < 10; i++) alice.typing(topic);
    await typing.until((es) => es.some((e) => e.state === "stop"), "typing stop");
    assert.deepEqual(typing.messages.map((e) => `${e.userId}:${e.state}`), ["alice:start", "alice:stop"]);
  });

  test("read receipts: markRead resolves with read_recorded, and the author sees message.read on the room", async (t) => {
    if (!features.readReceipts) return t.skip("the node has no read receipts yet");
    const register = async (username) => (await http(`${cluster.url}/api/auth/register`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password: "correct horse battery" }),
    })).json();
    const author = await register(`author-${unique()}`);
    const reader = await register(`reader-${unique()}`);
    const topic = `rooms.${unique()}`;
    const alice = client(cluster.node(1).wsURL, "unused", { ...acks(), token: author.token });
    const bob = client(cluster.node(2).wsURL, "unused", { ...acks(), token: reader.token });
    await alice.connect();
    await bob.connect();
    const events = new Inbox();
    await alice.subscribe(topic, events.handler).ready;
    await routed(events, bob, topic);
    const posted = (await http(`${cluster.url}/api/messages`, {
      method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${author.token}` },
      body: JSON.stringify({ topic, content: "read me" }),
    })).json();
    const reply = await bob.markRead(posted.id);
    assert.equal(reply.type, "read_recorded");
    assert.equal(reply.messageId, posted.id);
    const [read] = (await events.until((ms) => ms.some((m) => m.eventType === "message.read"), "message.read"))
      .filter((m) => m.eventType === "message.read");
    assert.equal(read.data.messageId, posted.id);
    assert.equal(read.data.userId, reader.user.id);
    const error = await bob.markRead("00000000-0000-0000-0000-000000000000").then(() => null, (e) => e);
    assert.equal(error?.code, 404);
  });
});

describe("a connection that goes half-open (through a relay that stops forwarding without closing)", () => {
  /**
   * Options that find a dead connection in a few seconds; no periodic ping: the publish's own timeout finds it.
   * The publish sent again on the new connection must be answered within requestTimeout (a node that answers
   * the ping but not yet the publish fails it): 5 s for a loaded machine, where 2 s was tight.
   */
  const quick = () => ({ ...acks(), requestTimeout: 5000, pongTimeout: 1000, pingInterval: 0, minReconnectDelay: 50, maxReconnectDelay: 200 });

  for (const [lost, blackhole, duplicate] of [
    ["nothing gets through either way", {}, false],
    ["the node's frames are lost, the client's still arrive", { toServer: false }, true],
  ]) {
    test(`${lost}: a publish made then is not failed but sent again on a new connection, and delivered once`, async () => {
      const topic = `rooms.${unique()}`;
      const proxy = await startProxy(cluster.node(1).port);
      const alice = client(proxy.wsURL, "alice", quick());
      try {
        const bob = client(cluster.node(2).wsURL, "bob", acks());
        await alice.connect();
        await bob.connect();
        const inbox = new Inbox();
        await bob.subscribe(topic, inbox.handler).ready;
        await routed(inbox, alice, topic);
        const closed = nextEvent(alice, "disconnected");
        proxy.blackhole(blackhole);
        const reply = await alice.publish(topic, { n: 1 });
        assert.equal((await closed).code, 4000, "the SDK closed the dead connection itself");
        assert.equal(reply.duplicate, duplicate, duplicate ? "the node had the first copy: the one sent again is a duplicate" : "the first copy never reached the node");
        await alice.publish(topic, { n: 2 });
        await inbox.until(2);
        assert.deepEqual(inbox.data(), [{ n: 1 }, { n: 2 }]);
        assert.equal(alice.state, "connected");
      } finally {
        alice.disconnect();  // not left reconnecting to the closed relay
        await proxy.close();
      }
    });
  }
});

describe("connecting", () => {
  /** A loopback port nothing listens on (bound, then released). */
  async function freePort() {
    const server = createServer();
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address();
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  test("a client that finds nothing listening retries, and connects once a node answers on that port", async () => {
    // Node 20's built-in WebSocket reports a refused connect with an error event and no close.
    const port = await freePort();
    const late = client(`ws://127.0.0.1:${port}/ws`, "late", { ...acks(), minReconnectDelay: 50, maxReconnectDelay: 200 });
    const failed = nextEvent(late, "disconnected", (e) => e.willReconnect);
    const connected = late.connect();
    assert.equal((await failed).code, 1006, "a failed connect counts as an abnormal close");
    // Now node 1 answers on that port, through a TCP relay.
    const relay = createServer((socket) => {
      const node = tcpConnect(cluster.node(1).port, "127.0.0.1");
      socket.pipe(node).pipe(socket);
      socket.on("error", () => node.destroy());
      node.on("error", () => socket.destroy());
    });
    await new Promise((resolve) => relay.listen(port, "127.0.0.1", resolve));
    try {
      await connected;
      assert.equal(late.state, "connected");
      assert.equal(late.userId, "late");
    } finally {
      late.disconnect();
      relay.close();
    }
  });
});

describe("one socket at a time", () => {
  let single;
  before(async () => { single = await startCluster("sdk-one-socket", { nodes: 1 }); });
  after(async () => {
    const problems = single ? await single.stop() : [];
    assert.deepEqual(problems, [], `node ended badly (logs in ${single?.directory})`);
  });

  test("connect(), disconnect(), connect() in one tick opens one socket, and the node holds one connection", async () => {
    const node = single.node(1);
    let constructed = 0;
    class CountingWebSocket extends TestWebSocket {
      constructor(url) { super(url); constructed += 1; }
    }
    const erin = client(node.wsURL, "erin", { WebSocket: CountingWebSocket });
    const first = erin.connect();
    erin.disconnect();
    const second = erin.connect();
    await assert.rejects(first, /client disconnected/);
    await second;
    await erin.ping();
    assert.equal(constructed, 1, "the connect() superseded by disconnect() opened no socket");
    const stats = (await http(`${node.url}/stats`)).json();
    assert.equal(stats.connections.total, 1, `the node's WebSocket connections: ${JSON.stringify(stats.connections)}`);
  });
});

describe("past the node's message rate", () => {
  let limited;
  before(async () => { limited = await startCluster("sdk-rate", { nodes: 1, env: { WEBSOCKET_MAX_MESSAGES_PER_SECOND: "20" } }); });
  after(async () => {
    const problems = limited ? await limited.stop() : [];
    assert.deepEqual(problems, [], `node ended badly (logs in ${limited?.directory})`);
  });

  test("publishing faster than the node takes: every message arrives once, in the order published", async () => {
    const node = limited.node(1);
    const topic = `rooms.${unique()}`;
    const reader = client(node.wsURL, "reader");
    const writer = client(node.wsURL, "writer");
    await reader.connect();
    await writer.connect();
    const inbox = new Inbox();
    await reader.subscribe(topic, inbox.handler).ready;
    await routed(inbox, writer, topic);
    // 60 publishes at about 60 a second to a node that takes 20 a second (a burst of 20):
    // some are refused (429) while later ones keep coming.
    const published = [];
    for (let n = 1; n <= 60; n++) {
      published.push(writer.publish(topic, { n }));
      await new Promise((resolve) => setTimeout(resolve, 16));
    }
    await Promise.all(published);
    const received = await inbox.until((ms) => ms.filter((m) => m.data?.n !== undefined).length >= 60);
    const order = received.map((m) => m.data?.n).filter((n) => n !== undefined);
    assert.deepEqual(order, Array.from({ length: 60 }, (_, i) => i + 1));
  });
});
