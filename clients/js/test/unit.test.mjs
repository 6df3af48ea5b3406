// The SDK's logic without a node: topic patterns, the backoff's bounds, and the reconnect
// decisions, driven through a scripted WebSocket (every step is an event the test causes).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ChorusClient, ChorusError, ChorusAuthError, ChorusClosedError, ChorusQueueFullError, ChorusTimeoutError, DEFAULT_MAX_MESSAGE_SIZE, backoffDelay, topicMatches, isPattern, newMessageId, rawMember,
} from "../chorus.js";

test("patterns match like the node's: * is one segment, ** one or more", () => {
  assert.ok(topicMatches("chat.*", "chat.lobby"));
  assert.ok(!topicMatches("chat.*", "chat.lobby.typing"));
  assert.ok(topicMatches("chat.**", "chat.lobby.typing"));
  assert.ok(!topicMatches("chat.**", "chat"));
  assert.ok(topicMatches("**.typing", "rooms.a.typing"));
  assert.ok(topicMatches("chat.lobby", "chat.lobby"));
  assert.ok(isPattern("a.*") && isPattern("**") && !isPattern("a.b"));
  assert.notEqual(newMessageId(), newMessageId());
});

test("backoff is full jitter under a capped exponential", () => {
  const o = { minReconnectDelay: 500, maxReconnectDelay: 20000, reconnectFactor: 2 };
  assert.equal(backoffDelay(0, o, () => 0), 0);
  assert.equal(backoffDelay(0, o, () => 0.5), 250);
  assert.equal(backoffDelay(3, o, () => 0.5), 2000);
  assert.equal(backoffDelay(30, o, () => 0.999999), 19999);  // capped
});

/** A WebSocket whose every event the test fires. */
class ScriptedSocket {
  static instances = [];
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; this.texts = []; ScriptedSocket.instances.push(this); }
  send(text) { this.texts.push(text); this.sent.push(JSON.parse(text)); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen?.({}); }
  reply(object) { this.onmessage?.({ data: JSON.stringify(object) }); }
  replyText(text) { this.onmessage?.({ data: text }); }
  drop(code, reason = "") { this.readyState = 3; this.onclose?.({ code, reason }); }
  last(type) { return this.sent.filter((m) => m.type === type).at(-1); }
  /** Answers the last ping, if any: the connection is alive. */
  pong() { const ping = this.last("ping"); if (ping) this.reply({ type: "pong", id: ping.id }); }
}

function scripted(options = {}) {
  ScriptedSocket.instances = [];
  return new ChorusClient("ws://test/ws", { WebSocket: ScriptedSocket, token: "t1", pingInterval: 0, random: () => 0.5, ...options });
}

async function settle() { for (let i = 0; i < 5; i++) await Promise.resolve(); await new Promise((r) => setImmediate(r)); }

/** Lets timers and promises run until `condition` holds (a reconnect timer of the scripted delay). */
/** Waits until `condition()` holds; throws after `within` ms, so that a test fails rather than hangs. */
async function until(condition, within = 60000) {
  const deadline = Date.now() + within;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${within} ms waiting for ${condition}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function connectScripted(client) {
  const connected = client.connect();
  await settle();
  const socket = ScriptedSocket.instances.at(-1);
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await connected;
  return socket;
}

/**
 * Drops `socket` with 1001 (a reconnect at once) and authenticates the next one, which it
 * returns; `beforeAuthenticated` runs just before (e.g. to mock the timers the resubscribes set).
 */
async function reconnectScripted(socket, beforeAuthenticated = () => {}) {
  const count = ScriptedSocket.instances.length;
  socket.drop(1001);
  await until(() => ScriptedSocket.instances.length === count + 1);
  const next = ScriptedSocket.instances.at(-1);
  next.open();
  beforeAuthenticated();
  next.reply({ type: "auth_success", userId: "alice", id: next.last("auth").id });
  return next;
}

test("close 1001 reconnects at once; other closes wait a jittered backoff", async () => {
  const client = scripted();
  const events = [];
  client.on("reconnecting", (e) => events.push(e));
  let socket = await connectScripted(client);
  socket.drop(1001, "draining");
  assert.equal(events.at(-1).delay, 0);
  await until(() => ScriptedSocket.instances.length >= 2, 1000);
  socket = ScriptedSocket.instances.at(-1);
  assert.equal(ScriptedSocket.instances.length, 2);
  socket.drop(1006);  // never opened: a failed attempt, backoff grows
  assert.equal(events.at(-1).delay, backoffDelay(1, client.options, () => 0.5));
  client.disconnect();
});

test("on() and once() refuse an event name the client never emits (a misspelling would never fire)", () => {
  const client = scripted();
  assert.throws(() => client.on("recoverFailed", () => {}), (e) => e instanceof TypeError && /unknown event 'recoverFailed'/.test(e.message));
  assert.throws(() => client.once("messages"), TypeError);
  for (const event of ["state", "message", "recoveryFailed", "gap", "subscriptionEnded", "error"]) client.on(event, () => {})();
});

test("connect() while waiting out the backoff tries at once, and the publishes queued meanwhile go out on that connection", async () => {
  const client = scripted({ minReconnectDelay: 60000, maxReconnectDelay: 60000 });
  let socket = await connectScripted(client);
  socket.drop(1006);
  assert.equal(client.state, "reconnecting");
  const published = client.publish("rooms.a", { n: 1 });
  const connected = client.connect();
  await settle();
  assert.equal(ScriptedSocket.instances.length, 2, "a new attempt at once, not after the backoff");
  socket = ScriptedSocket.instances[1];
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await connected;
  const message = socket.last("message");
  assert.deepEqual(message?.data, { n: 1 }, "the queued publish goes out on it");
  socket.reply({ type: "published", topic: "rooms.a", messageId: message.messageId, duplicate: false, id: message.id });
  await published;
  client.disconnect();
});

test("a socket that neither opens nor fails within connectTimeout counts as closed (1006) and is retried", async () => {
  const client = scripted({ connectTimeout: 20, minReconnectDelay: 1, maxReconnectDelay: 1 });
  const closes = [];
  client.on("disconnected", (e) => closes.push(e));
  const connected = client.connect();
  await until(() => closes.length === 1);
  assert.equal(closes[0].code, 1006);
  assert.equal(closes[0].willReconnect, true);
  await until(() => ScriptedSocket.instances.length === 2);
  const socket = ScriptedSocket.instances[1];
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await connected;
  assert.equal(client.state, "connected");
  client.disconnect();
});

test("a failed connect that the WebSocket reports again from close() (as Node's built-in one may) is one close, not a loop", async () => {
  class ReportingAgain extends ScriptedSocket {
    close() { this.onerror?.({}); super.close(); }
  }
  const client = scripted({ WebSocket: ReportingAgain });
  const closes = [];
  client.on("disconnected", (e) => closes.push([e.code, e.willReconnect]));
  client.connect().catch(() => {});
  await settle();
  ScriptedSocket.instances[0].onerror({});  // the connect failed
  assert.deepEqual(closes, [[1006, true]]);
  client.disconnect();
});

test("resubscribes after a reconnect with since from the last position, and reports recovered:false", async () => {
  const client = scripted();
  let socket = await connectScripted(client);
  const got = [];
  const failed = [];
  client.subscribe("rooms.a", { onMessage: (m) => got.push(m.offset), onRecoveryFailed: (e) => failed.push(e) });
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "e1", id: socket.last("subscribe").id });
  await settle();
  socket.reply({ type: "message", topic: "rooms.a", data: {}, offset: 5, epoch: "e1" });
  socket.reply({ type: "message", topic: "rooms.a", data: {}, offset: 5, epoch: "e1" });  // repeated: dropped
  assert.deepEqual(got, [5]);
  socket = await reconnectScripted(socket);
  await settle();
  const resubscribe = socket.last("subscribe");
  assert.deepEqual(resubscribe.since, { offset: 5, epoch: "e1" });
  socket.reply({ type: "subscribed", topic: "rooms.a", recovered: false, offset: 9, epoch: "e2", id: resubscribe.id });
  await settle();
  assert.equal(failed.length, 1);
  assert.deepEqual(failed[0].since, { offset: 5, epoch: "e1" });
  assert.deepEqual(client.positions.get("rooms.a"), { offset: 9, epoch: "e2" });
  client.disconnect();
});

test("a handler with since added while the topic's subscribe is unanswered starts live: recoveryFailed when its since is behind the reply's position, which stays the topic's", async () => {
  const client = scripted();
  let socket = await connectScripted(client);
  const failed = { a: [], b: [], c: [] };
  client.subscribe("rooms.a", { onMessage: () => {}, onRecoveryFailed: (e) => failed.a.push(e) });
  await settle();
  const subscribe = socket.last("subscribe");
  assert.equal(subscribe.since, undefined);
  // A component mounting again with the position it saved, before the first subscribe is answered.
  client.subscribe("rooms.a", { onMessage: () => {}, since: { offset: 2, epoch: "e1" }, onRecoveryFailed: (e) => failed.b.push(e) });
  client.subscribe("rooms.a", { onMessage: () => {}, since: { offset: 7, epoch: "e1" }, onRecoveryFailed: (e) => failed.c.push(e) });
  await settle();
  assert.equal(socket.sent.filter((m) => m.type === "subscribe").length, 1, "the topic is subscribed once");
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 7, epoch: "e1", id: subscribe.id });
  await settle();
  assert.deepEqual(client.positions.get("rooms.a"), { offset: 7, epoch: "e1" }, "the reply's position, not the later handler's since");
  assert.equal(failed.b.length, 1, "offsets 3 to 7 are not replayed to it");
  assert.deepEqual(failed.b[0].since, { offset: 2, epoch: "e1" });
  assert.equal(failed.b[0].offset, 7);
  assert.deepEqual(failed.a, []);
  assert.deepEqual(failed.c, [], "at the topic's position: nothing missed");
  socket = await reconnectScripted(socket);
  await settle();
  assert.deepEqual(socket.last("subscribe").since, { offset: 7, epoch: "e1" }, "no history from before the first handler subscribed");
  client.disconnect();
});

test("an unacknowledged publish is sent again with the same messageId after a reconnect; the queue is bounded", async () => {
  const client = scripted({ offlineQueueSize: 2, random: () => 0 });
  let socket = await connectScripted(client);
  const published = client.publish("rooms.a", { n: 1 });
  const first = socket.last("message");
  socket.drop(1006);
  const queued = client.publish("rooms.a", { n: 2 });
  await assert.rejects(client.publish("rooms.a", { n: 3 }), ChorusQueueFullError);
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances.at(-1);
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  const resent = socket.sent.filter((m) => m.type === "message");
  assert.deepEqual(resent.map((m) => m.messageId), [first.messageId, resent[1].messageId]);
  for (const m of resent) socket.reply({ type: "published", topic: m.topic, messageId: m.messageId, duplicate: false, id: m.id });
  assert.equal((await published).messageId, first.messageId);
  await queued;
  client.disconnect();
});

test("a publish unanswered within requestTimeout on a connection that answers a ping rejects with ChorusTimeoutError; a reply during the ping still counts", async (t) => {
  const client = scripted({ requestTimeout: 1000, pongTimeout: 500 });
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout"] });  // before the publishes' timers
  const late = client.publish("rooms.a", { n: 1 });
  const unanswered = client.publish("rooms.a", { n: 2 });
  const [first] = socket.sent.filter((m) => m.type === "message");
  t.mock.timers.tick(1000);
  const pings = socket.sent.filter((m) => m.type === "ping");
  assert.equal(pings.length, 1, "one ping checks the connection for both publishes, at once");
  socket.reply({ type: "published", topic: "rooms.a", messageId: first.messageId, duplicate: false, id: first.id });
  socket.reply({ type: "pong", id: pings[0].id });
  assert.equal((await late).messageId, first.messageId);
  await assert.rejects(unanswered, ChorusTimeoutError);
  assert.equal(client.state, "connected");
  assert.equal(client.queuedPublishes, 0);
  assert.equal(ScriptedSocket.instances.length, 1, "a live connection is kept");
  client.disconnect();
});

test("a publish unanswered on a connection that then misses its pong is not failed: the connection closes with 4000 and the publish goes out again on the next one", async (t) => {
  const client = scripted({ requestTimeout: 1000, pongTimeout: 500, random: () => 0 });
  let socket = await connectScripted(client);
  const closes = [];
  client.on("disconnected", (e) => closes.push(e.code));
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let settled = false;
  const published = client.publish("rooms.a", { n: 1 });
  published.finally(() => { settled = true; });
  const first = socket.last("message");
  t.mock.timers.tick(1000);
  assert.ok(socket.last("ping"), "the connection is checked at once");
  t.mock.timers.tick(500);  // no pong
  assert.deepEqual(closes, [4000]);
  t.mock.timers.tick(0);  // the reconnect (no delay with random() = 0)
  await settle();
  assert.equal(ScriptedSocket.instances.length, 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  assert.equal(settled, false, "still waiting for its reply");
  const again = socket.last("message");
  assert.equal(again.messageId, first.messageId);
  socket.reply({ type: "published", topic: "rooms.a", messageId: again.messageId, duplicate: true, id: again.id });
  assert.equal((await published).duplicate, true);
  client.disconnect();
});

test("a refused token stops the client: no reconnect until setToken", async () => {
  const client = scripted();
  const connected = client.connect();
  await settle();
  const socket = ScriptedSocket.instances.at(-1);
  socket.open();
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  await assert.rejects(connected, ChorusAuthError);
  assert.equal(client.state, "disconnected");
  assert.equal(ScriptedSocket.instances.length, 1);
  client.setToken("t2");
  await settle();
  assert.equal(ScriptedSocket.instances.length, 2);
  client.disconnect();
});

test("a client that stops without reconnecting rejects its queued publishes (a refused token, a close with reconnect: false)", async () => {
  // A token refused on the connection (4001), no provider: the client stops until setToken.
  let client = scripted();
  let socket = await connectScripted(client);
  const sent = client.publish("rooms.a", { n: 1 });  // sent, unacknowledged
  socket.drop(4001, "token expired");
  const queued = client.publish("rooms.a", { n: 2 });  // queued while stopped
  await assert.rejects(sent, ChorusAuthError);
  await assert.rejects(queued, ChorusAuthError);
  assert.equal(client.queuedPublishes, 0);
  client.setToken("t2");  // starts again: publishes wait for the connection
  await settle();
  socket = ScriptedSocket.instances.at(-1);
  const later = client.publish("rooms.a", { n: 2 });
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  const again = socket.last("message");
  assert.deepEqual(again.data, { n: 2 });
  socket.reply({ type: "published", topic: "rooms.a", messageId: again.messageId, duplicate: false, id: again.id });
  await later;
  client.disconnect();
  await assert.rejects(client.publish("rooms.a", { n: 4 }), (error) => error.name === "ChorusClosedError");

  // reconnect: false: a dropped connection ends the client.
  client = scripted({ reconnect: false });
  socket = await connectScripted(client);
  const unacknowledged = client.publish("rooms.a", { n: 3 });
  socket.drop(1006);
  await assert.rejects(unacknowledged, (error) => error.name === "ChorusClosedError" && error.code === 1006);
  assert.equal(client.queuedPublishes, 0);
  assert.equal(ScriptedSocket.instances.length, 1, "no reconnect");
  client.disconnect();
});

test("a handler that acts while the client stops decides: connect() from a disconnected handler after reconnect: false, connect() or setToken() from an error handler after a refused token", async () => {
  // reconnect: false: the close settles the old connect() first; the handler's own connect() opens.
  let client = scripted({ reconnect: false });
  let socket = await connectScripted(client);
  let again;
  client.on("disconnected", () => { if (!again) again = client.connect(); });
  socket.drop(1006);
  const published = client.publish("rooms.a", { n: 1 });
  await settle();
  assert.equal(ScriptedSocket.instances.length, 2, "the handler's connect() opened");
  socket = ScriptedSocket.instances.at(-1);
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  await again;
  const message = socket.last("message");
  socket.reply({ type: "published", topic: "rooms.a", messageId: message.messageId, duplicate: false, id: message.id });
  await published;
  assert.equal(client.state, "connected");
  client.disconnect();

  // A refused token with no provider: an error handler's setToken() is tried, not stopped on.
  client = scripted();
  socket = await connectScripted(client);
  socket.drop(1006);  // a reconnect is planned (at once with random 0.5? after a short backoff)
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances.at(-1);
  const queued = client.publish("rooms.a", { n: 2 });
  socket.open();
  client.on("error", () => client.setToken("good"));
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  await settle();
  assert.equal(ScriptedSocket.instances.length, 3, "the new token is tried");
  socket = ScriptedSocket.instances.at(-1);
  socket.open();
  assert.equal(socket.last("auth").token, "good");
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  const second = socket.last("message");
  socket.reply({ type: "published", topic: "rooms.a", messageId: second.messageId, duplicate: false, id: second.id });
  await queued;
  client.disconnect();

  // A provider whose fresh token is refused too: an error handler's connect() opens again, and
  // the publishes made meanwhile wait for it instead of rejecting.
  let n = 1;
  client = scripted({ token: undefined, getToken: async () => `t${n++}` });
  socket = await connectScripted(client);
  socket.drop(4001, "token expired");
  await until(() => ScriptedSocket.instances.length === 3);
  socket = ScriptedSocket.instances.at(-1);
  socket.open();
  await settle();
  let reopened;
  client.on("error", () => { if (!reopened) reopened = client.connect(); });
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  const meanwhile = client.publish("rooms.a", { n: 3 });
  await until(() => ScriptedSocket.instances.length === 4);
  socket = ScriptedSocket.instances.at(-1);
  socket.open();
  await until(() => socket.last("auth"));
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await reopened;
  await settle();
  const third = socket.last("message");
  socket.reply({ type: "published", topic: "rooms.a", messageId: third.messageId, duplicate: false, id: third.id });
  await meanwhile;
  assert.equal(client.state, "connected");
  client.disconnect();
});

test("a presence batch reaches the handlers as single events", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const events = [];
  client.subscribe("rooms.a", { onPresence: (e) => events.push(`${e.topic}:${e.event}:${e.member.userId}`) });
  socket.reply({ type: "presence", topic: "rooms.a", event: "batch", timestamp: "t", events: [
    { event: "join", member: { userId: "u1" } }, { event: "leave", member: { userId: "u2" } },
  ] });
  socket.reply({ type: "presence", topic: "rooms.a", event: "join", member: { userId: "u3" }, timestamp: "t" });
  assert.deepEqual(events, ["rooms.a:join:u1", "rooms.a:leave:u2", "rooms.a:join:u3"]);
  client.disconnect();
});

test("resync: the node's reaches the presence handlers; the SDK emits one itself once a subscription with presence events is live again after a reconnect", async () => {
  const client = scripted();
  let socket = await connectScripted(client);
  const events = [];
  const announced = [];
  client.on("presence", (e) => announced.push(`${e.topic}:${e.event}`));
  const leave = client.join("rooms.a", { name: "A" }, { onPresence: (e) => events.push(e) });
  const plain = client.subscribe("rooms.b", () => {});  // no presence events: nothing to resync
  await settle();
  for (const m of socket.sent.filter((m) => m.type === "subscribe")) socket.reply({ type: "subscribed", topic: m.topic, id: m.id });
  await Promise.all([leave.ready, plain.ready]);
  assert.deepEqual(events, [], "none after the first subscribe");
  const fromNode = { type: "presence", topic: "rooms.a", event: "resync", timestamp: "2026-12-04T19:00:00.000Z" };
  socket.reply(fromNode);
  assert.deepEqual(events, [fromNode]);
  socket = await reconnectScripted(socket);
  await settle();
  const resubscribes = socket.sent.filter((m) => m.type === "subscribe");
  assert.equal(events.length, 1, "not before the subscription is live again");
  for (const m of resubscribes) socket.reply({ type: "subscribed", topic: m.topic, id: m.id });
  assert.equal(events.length, 2);
  const { timestamp, ...rest } = events[1];
  assert.deepEqual(rest, { type: "presence", topic: "rooms.a", event: "resync" });
  assert.equal(new Date(timestamp).toISOString(), timestamp);
  assert.deepEqual(announced, ["rooms.a:resync", "rooms.a:resync"], "the client's presence event too, once each");
  client.disconnect();
});

test("resync after the last join of a topic ends while other presence handlers stay: the unsubscribe and subscribe between may miss events", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const events = [];
  const leave = client.join("rooms.a", { name: "A" });
  const watch = client.subscribe("rooms.a", { onPresence: (e) => events.push(e.event) });
  await settle();
  for (const m of socket.sent.filter((m) => m.type === "subscribe")) socket.reply({ type: "subscribed", topic: m.topic, id: m.id });
  await Promise.all([leave.ready, watch.ready]);
  leave();
  await settle();
  socket.reply({ type: "unsubscribed", topic: "rooms.a", id: socket.last("unsubscribe").id });
  await settle();
  const again = socket.last("subscribe");
  assert.equal(again.presence, undefined, "subscribed again without presence");
  socket.reply({ type: "subscribed", topic: "rooms.a", id: again.id });
  assert.deepEqual(events, ["resync"]);
  client.disconnect();
});

test("on a node that leaves in place (presenceLeave), the last join ending while other handlers stay sends one subscribe with presence:false (and presenceEvents:false when none watches): no unsubscribe, no resync; dropped past the rate it goes again as it was", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const client = scripted();
  const connected = client.connect();
  await settle();
  const socket = ScriptedSocket.instances.at(-1);
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", presenceLeave: true, id: socket.last("auth").id });
  await connected;
  const events = [];
  client.on("presence", (e) => events.push(e.event));
  const leave = client.join("rooms.a", { name: "A" });
  const plain = client.subscribe("rooms.a", () => {});
  await settle();
  for (const m of socket.sent.filter((m) => m.type === "subscribe")) socket.reply({ type: "subscribed", topic: m.topic, offset: 3, epoch: "e1", id: m.id });
  await Promise.all([leave.ready, plain.ready]);
  const before = socket.sent.length;
  leave();
  await settle();
  const sent = socket.sent.slice(before);
  assert.deepEqual(sent.map((m) => m.type), ["subscribe"], "one subscribe, no unsubscribe");
  assert.equal(sent[0].presence, false);
  assert.equal(sent[0].presenceEvents, false, "the join watched; the plain handler does not");
  assert.equal(sent[0].since, undefined, "live on this connection: the node keeps every message without a history read");
  // Dropped past the node's message rate: sent again, still a leave.
  socket.reply({ type: "error", code: 429, message: "rate", details: { retryAfter: 100 }, id: sent[0].id });
  await settle();
  t.mock.timers.tick(1000);
  await settle();
  const again = socket.sent.slice(before + 1).filter((m) => m.type === "subscribe");
  assert.equal(again.length, 1, "sent again");
  assert.equal(again[0].presence, false);
  socket.reply({ type: "subscribed", topic: "rooms.a", recovered: true, offset: 3, epoch: "e1", id: again[0].id });
  await settle();
  assert.deepEqual(events, [], "no resync: no presence event was missed");
  // A later subscribe of the topic (a join again) carries the data, not presence:false.
  client.join("rooms.a", { name: "B" });
  await settle();
  assert.deepEqual(socket.last("subscribe").presence, { data: { name: "B" } });
  client.disconnect();
});

test("a resubscribe with since whose history read an unsubscribe cancelled (the last join left meanwhile) is answered without a position: no recoveryFailed, the subscribe after it counts", async () => {
  const client = scripted({ random: () => 0 });
  let socket = await connectScripted(client);
  const failed = [];
  client.on("recoveryFailed", (e) => failed.push(e));
  const leave = client.join("rooms.a", { name: "A" });
  const watch = client.subscribe("rooms.a", { onPresence: () => {} });
  await settle();
  for (const m of socket.sent.filter((m) => m.type === "subscribe")) socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "e1", id: m.id });
  await Promise.all([leave.ready, watch.ready]);
  socket = await reconnectScripted(socket);
  await settle();
  const resubscribe = socket.last("subscribe");
  assert.deepEqual(resubscribe.since, { offset: 4, epoch: "e1" });
  leave();  // while the resubscribe's history read runs
  await settle();
  const unsubscribe = socket.last("unsubscribe");
  // The node cancels the read and answers the subscribe first, without a position, then the unsubscribe.
  socket.reply({ type: "subscribed", topic: "rooms.a", id: resubscribe.id });
  socket.reply({ type: "unsubscribed", topic: "rooms.a", id: unsubscribe.id });
  await settle();
  const again = socket.last("subscribe");
  assert.notEqual(again.id, resubscribe.id);
  socket.reply({ type: "subscribed", topic: "rooms.a", recovered: true, offset: 4, epoch: "e1", id: again.id });
  await settle();
  assert.deepEqual(failed, [], "nothing was lost: no recoveryFailed");
  client.disconnect();
});

test("replay on a topic without history (400 naming 'replay') subscribes again without it", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const unsubscribe = client.subscribe("rooms.plain", () => {}, { replay: 10 });
  await settle();
  const first = socket.last("subscribe");
  assert.equal(first.replay, 10);
  socket.reply({ type: "error", code: 400, message: "'replay' needs a topic with history", details: { field: "replay" }, id: first.id });
  await settle();
  const second = socket.last("subscribe");
  assert.notEqual(second.id, first.id);
  assert.equal(second.replay, undefined);
  socket.reply({ type: "subscribed", topic: "rooms.plain", id: second.id });
  assert.equal((await unsubscribe.ready).topic, "rooms.plain");
  client.disconnect();
});

test("after a replay subscribe, the page and live messages move the position, and a reconnect resubscribes with since", async () => {
  const client = scripted({ random: () => 0 });
  let socket = await connectScripted(client);
  const got = [];
  client.subscribe("rooms.a", (m) => got.push(m.offset), { replay: 3 });
  client.subscribe("rooms.empty", () => {}, { replay: 10 });
  await settle();
  const [a, empty] = socket.sent.filter((m) => m.type === "subscribe");
  assert.equal(a.replay, 3);
  assert.equal(empty.replay, 10);
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 5, epoch: "e1", id: a.id });
  socket.reply({ type: "subscribed", topic: "rooms.empty", offset: 0, epoch: "e9", id: empty.id });
  await settle();
  // Kept before the page arrives: where the page starts, so a reconnect now would ask for it.
  assert.deepEqual(client.positions.get("rooms.a"), { offset: 2, epoch: "e1" });
  assert.deepEqual(client.positions.get("rooms.empty"), { offset: 0, epoch: "e9" });
  for (const offset of [3, 4, 5]) socket.reply({ type: "message", topic: "rooms.a", data: {}, offset, epoch: "e1" });
  assert.deepEqual(client.positions.get("rooms.a"), { offset: 5, epoch: "e1" });
  socket.reply({ type: "message", topic: "rooms.a", data: {}, offset: 6, epoch: "e1" });
  socket.reply({ type: "message", topic: "rooms.a", data: {}, offset: 6, epoch: "e1" });  // repeated: dropped
  assert.deepEqual(got, [3, 4, 5, 6], "the page is delivered, then live messages, each once");
  socket.drop(1006);
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances.at(-1);
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  const resubscribes = socket.sent.filter((m) => m.type === "subscribe");
  const byTopic = Object.fromEntries(resubscribes.map((m) => [m.topic, m]));
  assert.deepEqual(byTopic["rooms.a"].since, { offset: 6, epoch: "e1" });
  assert.equal(byTopic["rooms.a"].replay, undefined);
  assert.deepEqual(byTopic["rooms.empty"].since, { offset: 0, epoch: "e9" });
  assert.equal(byTopic["rooms.empty"].replay, undefined);
  client.disconnect();
});

test("refused tokens from a provider: one retry with a fresh token, then a stop; a successful connection allows one retry again", async () => {
  let asked = 0;
  const client = scripted({ token: undefined, random: () => 0, getToken: () => `t${++asked}` });
  const refuse = (socket) => socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  const connected = client.connect();
  await until(() => ScriptedSocket.instances.length === 1);
  ScriptedSocket.instances[0].open();
  refuse(ScriptedSocket.instances[0]);
  await until(() => ScriptedSocket.instances.length === 2);
  let socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "t2");
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await connected;
  socket.drop(1006);
  await until(() => ScriptedSocket.instances.length === 3);
  socket = ScriptedSocket.instances[2];
  socket.open();
  assert.equal(socket.last("auth").token, "t3");
  const stopped = new Promise((resolve) => client.on("disconnected", (e) => { if (e.error) resolve(e); }));
  refuse(socket);
  await until(() => ScriptedSocket.instances.length === 4);
  socket = ScriptedSocket.instances[3];
  socket.open();
  assert.equal(socket.last("auth").token, "t4");
  refuse(socket);
  // Without the bound, a fifth socket would open with t5 and the client would never stop.
  let decided = false;
  const fifth = until(() => decided || ScriptedSocket.instances.length === 5).then(() => "a fifth socket");
  const event = await Promise.race([stopped, fifth]);
  decided = true;
  assert.ok(event.error instanceof ChorusAuthError, `expected a stop with the auth error, got ${event}`);
  assert.equal(event.willReconnect, false);
  await settle();
  assert.equal(asked, 4, "asked for the reconnect and once after its refusal, not again");
  assert.equal(ScriptedSocket.instances.length, 4);
  assert.equal(client.state, "disconnected");
  client.disconnect();
});

/**
 * A token provider that answers `first` at once, then holds its second call (`asked` resolves
 * when it comes) until `release(token)`; later calls answer `later`.
 */
function heldProvider(first = "t1", later = undefined) {
  const provider = { calls: 0, release: undefined };
  provider.asked = new Promise((resolve) => {
    provider.getToken = () => {
      provider.calls += 1;
      if (provider.calls === 1) return first;
      if (provider.calls > 2 && later !== undefined) return later;
      resolve();
      return new Promise((answer) => { provider.release = answer; });
    };
  });
  return provider;
}

test("a disconnect() while the provider is asked again after a refusal opens no socket and stays disconnected", async () => {
  const provider = heldProvider("refused");
  const client = scripted({ token: undefined, getToken: provider.getToken });
  const connected = client.connect();
  await until(() => ScriptedSocket.instances.length === 1);
  const socket = ScriptedSocket.instances[0];
  socket.open();
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  await provider.asked;
  client.disconnect();
  await assert.rejects(connected, /client disconnected/);
  provider.release("good");
  await settle();  // ends with setImmediate: every promise job, where a retry would open its socket, has run
  assert.equal(ScriptedSocket.instances.length, 1, "no socket after disconnect()");
  assert.equal(client.state, "disconnected");
});

test("a connect() after a disconnect() while the provider is asked again opens one socket, not two", async () => {
  const provider = heldProvider("refused", "good");
  const client = scripted({ token: undefined, getToken: provider.getToken });
  client.connect().catch(() => {});
  await until(() => ScriptedSocket.instances.length === 1);
  const refused = ScriptedSocket.instances[0];
  refused.open();
  refused.reply({ type: "auth_error", code: 401, message: "invalid signature", id: refused.last("auth").id });
  await provider.asked;
  client.disconnect();
  const connected = client.connect();
  provider.release("also good");
  await settle();  // ends with setImmediate: every promise job, where a socket would be opened, has run
  assert.equal(ScriptedSocket.instances.length, 2, "the refused socket and the one of the new connect()");
  const socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "good");
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await connected;
  await settle();
  assert.equal(ScriptedSocket.instances.length, 2);
  client.disconnect();
});

test("connect(), disconnect(), connect() in one tick opens one socket", async () => {
  const client = scripted();
  const first = client.connect();
  client.disconnect();
  const second = client.connect();
  await assert.rejects(first, /client disconnected/);
  await settle();
  assert.equal(ScriptedSocket.instances.length, 1);
  const socket = ScriptedSocket.instances[0];
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await second;
  assert.equal(client.state, "connected");
  client.disconnect();
});

test("publishes whose sends fail on a closing socket are queued and sent again in their order", async () => {
  const client = scripted({ random: () => 0 });
  let socket = await connectScripted(client);
  socket.readyState = 2;  // closing: the state is still "connected" until the close event
  const published = [1, 2, 3].map((n) => client.publish("rooms.a", { n }));
  await settle();
  assert.equal(client.queuedPublishes, 3);
  socket.drop(1006);
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  const sent = socket.sent.filter((m) => m.type === "message");
  assert.deepEqual(sent.map((m) => m.data.n), [1, 2, 3]);
  for (const m of sent) socket.reply({ type: "published", topic: m.topic, messageId: m.messageId, duplicate: false, id: m.id });
  assert.deepEqual((await Promise.all(published)).map((r) => r.messageId), sent.map((m) => m.messageId));
  client.disconnect();
});

test("a resubscription refused with 409 (its earlier subscribe still reads the history) is retried until the read ends, not given up after five", async () => {
  const client = scripted({ random: () => 0 });
  let socket = await connectScripted(client);
  const ended = [];
  client.on("subscriptionEnded", (e) => ended.push(e));
  client.on("error", () => {});
  const unsubscribe = client.subscribe("rooms.a", () => {});
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "e1", id: socket.last("subscribe").id });
  await unsubscribe.ready;
  socket.drop(1006);
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  const subscribes = () => socket.sent.filter((m) => m.type === "subscribe");
  for (let answered = 0; answered < 8; answered++) {
    await until(() => subscribes().length > answered);
    socket.reply({ type: "error", code: 409, message: "a subscribe with history to this topic is still reading", details: { topic: "rooms.a" }, id: subscribes()[answered].id });
  }
  await until(() => subscribes().length > 8);
  const last = subscribes()[8];
  assert.deepEqual(last.since, { offset: 4, epoch: "e1" });
  socket.reply({ type: "subscribed", topic: "rooms.a", recovered: true, offset: 4, epoch: "e1", id: last.id });
  await settle();
  assert.deepEqual(ended, [], "the subscription goes on");
  client.disconnect();
});

test("a join of a topic live on this connection refused with 409 more often than a resubscription may be (a slow history read) is retried until answered: the subscription never ends", async () => {
  const client = scripted({ random: () => 0 });
  const socket = await connectScripted(client);
  const ended = [];
  client.on("subscriptionEnded", (e) => ended.push(e));
  client.on("error", () => {});
  const plain = client.subscribe("rooms.a", () => {});
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "e1", id: socket.last("subscribe").id });
  await plain.ready;
  const join = client.join("rooms.a", { name: "A" });
  const subscribes = () => socket.sent.filter((m) => m.type === "subscribe");
  for (let refused = 1; refused <= 8; refused++) {
    await until(() => subscribes().length > refused);
    socket.reply({ type: "error", code: 409, message: "still reading", details: { topic: "rooms.a" }, id: subscribes()[refused].id });
  }
  await until(() => subscribes().length > 9);
  const last = subscribes()[9];
  assert.deepEqual(last.presence, { data: { name: "A" } });
  socket.reply({ type: "subscribed", topic: "rooms.a", recovered: true, offset: 4, epoch: "e1", id: last.id });
  await join.ready;
  assert.deepEqual(ended, []);
  client.disconnect();
});

test("a subscribe sent again on the same connection (a join of a live topic, a 409 retry, its last join ending) is no reconnect: subscribed says resubscribed false", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const events = [];
  client.on("subscribed", (e) => events.push(e.resubscribed));
  const plain = client.subscribe("rooms.a", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "E", id: socket.last("subscribe").id });
  await plain.ready;
  const leave = client.join("rooms.a", { name: "A" });
  const joined = socket.last("subscribe");
  assert.deepEqual(joined.presence, { data: { name: "A" } });
  socket.reply({ type: "error", code: 409, message: "still reading", details: { topic: "rooms.a" }, id: joined.id });
  await until(() => socket.last("subscribe").id !== joined.id);
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "E", recovered: true, id: socket.last("subscribe").id });
  await leave.ready;
  leave();
  await settle();
  socket.reply({ type: "unsubscribed", topic: "rooms.a", id: socket.last("unsubscribe").id });
  await settle();
  const again = socket.last("subscribe");
  assert.equal(again.presence, undefined);
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "E", recovered: true, id: again.id });
  assert.deepEqual(events, [false, false, false]);
  client.disconnect();
});

test("the first confirmation on a new connection of a subscription live on an earlier one says resubscribed true, also when that connection was lost before confirming it; later ones on it say false", async () => {
  const client = scripted();
  let socket = await connectScripted(client);
  const events = [];
  client.on("subscribed", (e) => events.push(e.resubscribed));
  const plain = client.subscribe("rooms.a", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "E", id: socket.last("subscribe").id });
  await plain.ready;
  socket = await reconnectScripted(socket);
  await settle();
  assert.ok(socket.last("subscribe"), "resubscribed");
  socket = await reconnectScripted(socket);  // lost before the node answered
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 6, epoch: "E", recovered: true, id: socket.last("subscribe").id });
  const leave = client.join("rooms.a", { name: "A" });
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 6, epoch: "E", recovered: true, id: socket.last("subscribe").id });
  await leave.ready;
  assert.deepEqual(events, [false, true, false]);
  client.disconnect();
});

test("a resubscription after a reconnect refused with 409 and then confirmed is still the reconnect's: resubscribed true, once", async () => {
  const client = scripted();
  let socket = await connectScripted(client);
  const events = [];
  client.on("subscribed", (e) => events.push(e.resubscribed));
  const plain = client.subscribe("rooms.a", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "E", id: socket.last("subscribe").id });
  await plain.ready;
  socket = await reconnectScripted(socket);
  await settle();
  const first = socket.last("subscribe");
  socket.reply({ type: "error", code: 409, message: "still reading", details: { topic: "rooms.a" }, id: first.id });
  await until(() => socket.last("subscribe").id !== first.id);
  assert.deepEqual(socket.last("subscribe").since, { offset: 4, epoch: "E" });
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 6, epoch: "E", recovered: true, id: socket.last("subscribe").id });
  const leave = client.join("rooms.a", { name: "A" });
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 6, epoch: "E", recovered: true, id: socket.last("subscribe").id });
  await leave.ready;
  assert.deepEqual(events, [false, true, false]);
  client.disconnect();
});

test("after a 4001 close the client is not connected while its provider is asked for a fresh token", async () => {
  const provider = heldProvider();
  const client = scripted({ token: undefined, getToken: provider.getToken });
  let socket = await connectScripted(client);
  const states = [];
  client.on("state", (e) => states.push(e));
  socket.drop(4001, "token expired");
  await provider.asked;
  assert.equal(client.state, "reconnecting", "not connected from the close on");
  assert.deepEqual(states.map((e) => e.state), ["disconnected", "reconnecting"]);
  assert.equal(states[0].code, 4001);
  assert.equal(states[0].willReconnect, true);
  provider.release("t2");
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "t2");
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await client.once("connected");
  client.disconnect();
});

/** A provider whose first answer is `t1` and whose later answers wait for `release`; `asked` resolves at the second call. */
test("a setToken() while the provider is asked wins over the provider's older answer (reconnect, 4001 retry, auth_expired)", async () => {
  // Reconnecting: the token of the next connection is the application's.
  let provider = heldProvider();
  let client = scripted({ token: undefined, random: () => 0, getToken: provider.getToken });
  const announced = [];
  client.on("token", (e) => announced.push(e.token));
  let socket = await connectScripted(client);
  socket.drop(1006);
  await provider.asked;
  client.setToken("from-app");
  provider.release("from-provider");
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "from-app");
  assert.deepEqual(announced, ["t1"], "the provider's overruled answer is not announced as the token");
  client.disconnect();

  // The retry after a 4001 close: the application's token is tried.
  provider = heldProvider();
  client = scripted({ token: undefined, getToken: provider.getToken });
  socket = await connectScripted(client);
  socket.drop(4001, "token expired");
  await provider.asked;
  client.setToken("from-app");
  provider.release("from-provider");
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "from-app");
  client.disconnect();

  // auth_expired: the connection authenticates with the application's token, not again with the provider's.
  provider = heldProvider();
  client = scripted({ token: undefined, getToken: provider.getToken });
  socket = await connectScripted(client);
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await provider.asked;
  client.setToken("from-app");
  provider.release("from-provider");
  await settle();
  assert.deepEqual(socket.sent.filter((m) => m.type === "auth").map((m) => m.token), ["t1", "from-app"]);
  client.disconnect();
});

test("a setToken() while waiting out the backoff is the token of the next attempt: the provider is not asked to replace it; the attempt after asks again", async (t) => {
  let calls = 0;
  const client = scripted({ token: undefined, minReconnectDelay: 40, maxReconnectDelay: 40, getToken: () => `provider-${++calls}` });
  t.after(() => client.disconnect());  // a failed assertion must not leave it reconnecting (the run would hang)
  let socket = await connectScripted(client);
  assert.equal(calls, 1);
  socket.drop(1006);
  assert.equal(client.state, "reconnecting");
  client.setToken("from-app");
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "from-app");
  assert.equal(calls, 1, "the provider was not asked");
  socket.drop(1006);  // never authenticated: the next attempt asks the provider as usual
  await until(() => ScriptedSocket.instances.length === 3);
  socket = ScriptedSocket.instances[2];
  socket.open();
  assert.equal(socket.last("auth").token, "provider-2");
});

test("a resubscription refused with 429 is retried on the same connection with growing delays, then ends with subscriptionEnded", async (t) => {
  const client = scripted({ random: () => 0.5 });
  let socket = await connectScripted(client);
  const ended = [];
  client.on("subscriptionEnded", (e) => ended.push(e));
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const resubscribed = [];
  client.on("subscribed", (e) => { if (e.resubscribed) resubscribed.push(e.topic); });
  const a = client.subscribe("rooms.a", () => {});
  const b = client.subscribe("rooms.b", () => {});
  await settle();
  for (const m of socket.sent.filter((m) => m.type === "subscribe")) socket.reply({ type: "subscribed", topic: m.topic, id: m.id });
  await Promise.all([a.ready, b.ready]);
  socket = await reconnectScripted(socket);
  // The resubscribes (sent in a promise job) and their retries run on a mock clock: each delay
  // is checked exactly. (A real timer cleared while the mock is on would stay.)
  t.mock.timers.enable({ apis: ["setTimeout"] });
  await settle();
  const subscribes = (topic) => socket.sent.filter((m) => m.type === "subscribe" && m.topic === topic);
  const limit = (m) => socket.reply({ type: "error", code: 429, message: "subscription limit reached: at most 100 per connection", details: { topic: m.topic }, id: m.id });
  // rooms.a: refused once, then the limit has room again (the application unsubscribed elsewhere).
  limit(subscribes("rooms.a")[0]);
  await settle();
  t.mock.timers.tick(499);
  assert.equal(subscribes("rooms.a").length, 1, "not before the first retry's delay");
  t.mock.timers.tick(1);
  assert.equal(subscribes("rooms.a").length, 2, "sent again on the same connection");
  socket.reply({ type: "subscribed", topic: "rooms.a", id: subscribes("rooms.a")[1].id });
  await settle();
  assert.deepEqual(resubscribed, ["rooms.a"]);
  // rooms.b: refused every time: 5 retries, at max(minReconnectDelay, the reconnect backoff), then it ends.
  const delays = [500, 1000, 2000, 4000, 8000];
  for (const [i, delay] of delays.entries()) {
    limit(subscribes("rooms.b")[i]);
    await settle();
    t.mock.timers.tick(delay - 1);
    assert.equal(subscribes("rooms.b").length, i + 1);
    t.mock.timers.tick(1);
    assert.equal(subscribes("rooms.b").length, i + 2, `retry ${i + 1} after ${delay} ms`);
  }
  limit(subscribes("rooms.b")[5]);
  await settle();
  t.mock.timers.tick(60000);
  assert.equal(subscribes("rooms.b").length, 6, "no retry after the fifth");
  assert.deepEqual(ended.map((e) => [e.topic, e.error.code]), [["rooms.b", 429]]);
  assert.deepEqual(errors.map((e) => e.code), [429]);
  assert.equal(ScriptedSocket.instances.length, 2, "all on the same connection");
  client.disconnect();
});

test("a first subscribe refused with 429 rejects its ready at once, is not retried and leaves no topic behind", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const sub = client.subscribe("rooms.extra", () => {});
  await settle();
  const request = socket.last("subscribe");
  socket.reply({ type: "error", code: 429, message: "subscription limit reached: at most 100 per connection", details: { topic: "rooms.extra" }, id: request.id });
  await assert.rejects(sub.ready, (e) => e.code === 429);
  await settle();
  assert.equal(socket.sent.filter((m) => m.type === "subscribe").length, 1, "not sent again");
  // Nor on the next connection: the refused topic is not kept.
  const next = await reconnectScripted(socket);
  await settle();
  assert.equal(next.sent.filter((m) => m.type === "subscribe").length, 0);
  client.disconnect();
});

test("requests the node drops past its message rate (429 with retryAfter) are sent again with the same id after growing, jittered delays; then the 429 stands", async (t) => {
  const client = scripted({ random: () => 0.5, rateLimitRetries: 2 });
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const rate = (m) => socket.reply({ type: "error", code: 429, message: "rate limit exceeded", details: { retryAfter: 1000 }, id: m.id });
  const sent = (type) => socket.sent.filter((m) => m.type === type);
  // A first subscribe and a publish, both dropped once: each goes out again 1.5 s later (1 s x 1.5).
  const sub = client.subscribe("rooms.a", () => {});
  const published = client.publish("rooms.a", { n: 1 });
  await settle();
  rate(sent("subscribe")[0]);
  rate(sent("message")[0]);
  await settle();
  t.mock.timers.tick(1499);
  assert.equal(sent("subscribe").length + sent("message").length, 2, "not before the delay");
  t.mock.timers.tick(1);
  assert.equal(sent("subscribe").length, 2);
  assert.equal(sent("message").length, 2);
  assert.equal(sent("subscribe")[1].id, sent("subscribe")[0].id, "the same request id");
  assert.equal(sent("message")[1].messageId, sent("message")[0].messageId, "the same messageId");
  socket.reply({ type: "subscribed", topic: "rooms.a", id: sent("subscribe")[1].id });
  socket.reply({ type: "published", topic: "rooms.a", messageId: sent("message")[1].messageId, duplicate: false, id: sent("message")[1].id });
  await sub.ready;
  assert.equal((await published).duplicate, false);
  // A presence.get dropped every time: retried after 1.5 s and 3 s (doubled), then rejected with the 429.
  const members = client.members("rooms.a");
  await settle();
  rate(sent("presence.get")[0]);
  await settle();
  t.mock.timers.tick(1500);
  rate(sent("presence.get")[1]);
  await settle();
  t.mock.timers.tick(2999);
  assert.equal(sent("presence.get").length, 2);
  t.mock.timers.tick(1);
  assert.equal(sent("presence.get").length, 3);
  rate(sent("presence.get")[2]);
  await assert.rejects(members, (e) => e.code === 429 && e.details.retryAfter === 1000);
  // A 429 without retryAfter (the subscription limit) is not a rate drop: not sent again here.
  const extra = client.subscribe("rooms.b", () => {});
  await settle();
  socket.reply({ type: "error", code: 429, message: "subscription limit reached", details: { topic: "rooms.b" }, id: sent("subscribe").at(-1).id });
  await assert.rejects(extra.ready, (e) => e.code === 429);
  client.disconnect();
});

test("rate refusals: a subscribe left during its retry wait is not sent again, nor an unsubscribe once the topic is subscribed again; without publish acks a refused publish rejects instead of being resent after its fence", async (t) => {
  const client = scripted({ random: () => 0.5 });
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const rate = (m) => socket.reply({ type: "error", code: 429, message: "rate limit exceeded", details: { retryAfter: 1000, limit: 10 }, id: m.id });
  const sent = (type, topic) => socket.sent.filter((m) => m.type === type && (topic === undefined || m.topic === topic));
  // A join refused, then left before its retry: no subscribe goes out again (no ghost member).
  const leave = client.join("rooms.ghost", { status: "here" });
  leave.ready.catch(() => {});
  await settle();
  rate(sent("subscribe", "rooms.ghost")[0]);
  await settle();
  leave();
  t.mock.timers.tick(10000);
  assert.equal(sent("subscribe", "rooms.ghost").length, 1, "the left join is not sent again");
  // An unsubscribe refused, then the topic subscribed again: the old unsubscribe stays unsent.
  const off = client.subscribe("rooms.b", () => {});
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.b", id: sent("subscribe", "rooms.b")[0].id });
  await off.ready;
  off();
  await settle();
  rate(sent("unsubscribe", "rooms.b")[0]);
  const again = client.subscribe("rooms.b", () => {});
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.b", id: sent("subscribe", "rooms.b")[1].id });
  await again.ready;
  t.mock.timers.tick(10000);
  assert.equal(sent("unsubscribe", "rooms.b").length, 1, "no late unsubscribe ends the new subscription");
  client.disconnect();

  // Without publish acks: the refused message is not sent again behind its fence ping.
  const noAcks = scripted({ random: () => 0.5, publishAcks: false });
  const other = await connectScripted(noAcks);
  const published = noAcks.publish("rooms.c", { n: 1 });
  await settle();
  const message = other.last("message");
  other.reply({ type: "error", code: 429, message: "rate limit exceeded", details: { retryAfter: 1000, limit: 10 }, id: message.id });
  other.pong();
  await assert.rejects(published, (e) => e.code === 429);
  t.mock.timers.tick(10000);
  assert.equal(other.sent.filter((m) => m.type === "message").length, 1);
  noAcks.disconnect();
});

test("publishes refused past the node's message rate go out again in publish order, and later publishes wait behind them", async (t) => {
  const client = scripted({ random: () => 0.5 });
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const rate = (m) => socket.reply({ type: "error", code: 429, message: "rate limit exceeded", details: { retryAfter: 1000, limit: 10 }, id: m.id });
  const messages = () => socket.sent.filter((m) => m.type === "message");
  const published = [1, 2, 3].map((n) => client.publish("rooms.a", { n }));
  await settle();
  for (const m of messages()) rate(m);
  await settle();
  const later = client.publish("rooms.a", { n: 4 });
  await settle();
  assert.equal(messages().length, 3, "nothing goes out while publishing is paused");
  // 1 s x 1.5: then the refused ones in publish order, and the later one behind them.
  t.mock.timers.tick(1499);
  assert.equal(messages().length, 3);
  t.mock.timers.tick(1);
  assert.deepEqual(messages().slice(3).map((m) => m.data.n), [1, 2, 3, 4]);
  // Refused again (the first only): the pause doubles, and the others wait behind it again.
  const [again, ...rest] = messages().slice(3);
  rate(again);
  for (const m of rest) rate(m);
  await settle();
  t.mock.timers.tick(2999);
  assert.equal(messages().length, 7);
  t.mock.timers.tick(1);
  assert.deepEqual(messages().slice(7).map((m) => m.data.n), [1, 2, 3, 4]);
  for (const m of messages().slice(7)) socket.reply({ type: "published", topic: "rooms.a", messageId: m.messageId, duplicate: false, id: m.id });
  const replies = await Promise.all([...published, later]);
  assert.deepEqual(replies.map((r) => r.messageId), messages().slice(7).map((m) => m.messageId));
  client.disconnect();
});

test("after a rate refusal a long publish queue drains at two thirds of the node's limit a second, in order", async (t) => {
  const client = scripted({ random: () => 0.5 });
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const messages = () => socket.sent.filter((m) => m.type === "message");
  const published = Array.from({ length: 10 }, (_, n) => client.publish("rooms.a", { n }));
  await settle();
  for (const m of messages()) socket.reply({ type: "error", code: 429, message: "rate limit exceeded", details: { retryAfter: 1000, limit: 6 }, id: m.id });
  await settle();
  t.mock.timers.tick(1500);
  assert.deepEqual(messages().slice(10).map((m) => m.data.n), [0, 1, 2, 3], "a batch of 4 (two thirds of 6)");
  t.mock.timers.tick(1000);
  assert.deepEqual(messages().slice(10).map((m) => m.data.n), [0, 1, 2, 3, 4, 5, 6, 7]);
  t.mock.timers.tick(1000);
  assert.deepEqual(messages().slice(10).map((m) => m.data.n), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  for (const m of messages().slice(10)) socket.reply({ type: "published", topic: "rooms.a", messageId: m.messageId, duplicate: false, id: m.id });
  await Promise.all(published);
  // Drained: the next publish goes out at once.
  const next = client.publish("rooms.a", { n: 10 });
  await settle();
  assert.equal(messages().at(-1).data.n, 10);
  socket.reply({ type: "published", topic: "rooms.a", messageId: messages().at(-1).messageId, duplicate: false, id: messages().at(-1).id });
  await next;
  client.disconnect();
});

test("requests sent again after rate refusals are spaced to two thirds of the node's limit, so a burst drains", async (t) => {
  const client = scripted({ random: () => 0 });
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  const topics = Array.from({ length: 10 }, (_, i) => `rooms.p${i}`);
  for (const topic of topics) client.subscribe(topic, () => {}).ready.catch(() => {});
  await settle();
  for (const m of socket.sent.filter((m) => m.type === "subscribe")) {
    socket.reply({ type: "error", code: 429, message: "rate limit exceeded", details: { retryAfter: 1000, limit: 10 }, id: m.id });
  }
  await settle();
  const resent = () => socket.sent.filter((m) => m.type === "subscribe").length - 10;
  // 1 s, then one every 150 ms (1,500 / limit).
  t.mock.timers.tick(999);
  assert.equal(resent(), 0);
  t.mock.timers.tick(1);
  assert.equal(resent(), 1);
  t.mock.timers.tick(150 * 4);
  assert.equal(resent(), 5);
  t.mock.timers.tick(150 * 5);
  assert.equal(resent(), 10);
  client.disconnect();
});

test("a liveness ping answered with a rate refusal counts as alive: the publish that timed out rejects, the connection stays", async (t) => {
  const client = scripted();
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const published = client.publish("rooms.a", { n: 1 });
  await settle();
  t.mock.timers.tick(client.options.requestTimeout);
  const ping = socket.last("ping");
  assert.ok(ping, "a timeout checks the connection");
  socket.reply({ type: "error", code: 429, message: "rate limit exceeded", details: { retryAfter: 1000 }, id: ping.id });
  await assert.rejects(published, ChorusTimeoutError);
  assert.equal(ScriptedSocket.instances.length, 1, "no reconnect");
  assert.equal(socket.readyState, 1);
  client.disconnect();
});

test("a resubscription the node left unanswered (dropped by its message rate limit) is sent again after its timeout", async (t) => {
  const client = scripted({ random: () => 0.5 });
  let socket = await connectScripted(client);
  const unsubscribe = client.subscribe("rooms.a", () => {});
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await unsubscribe.ready;
  // The mock before the resubscribe's request timer is set.
  socket = await reconnectScripted(socket, () => t.mock.timers.enable({ apis: ["setTimeout"] }));
  await settle();
  const subscribes = () => socket.sent.filter((m) => m.type === "subscribe");
  assert.equal(subscribes().length, 1);
  t.mock.timers.tick(client.options.requestTimeout);  // no reply: the request times out
  socket.pong();  // the connection is alive (a timeout checks it with a ping)
  await settle();
  t.mock.timers.tick(500);
  assert.equal(subscribes().length, 2, "sent again on the same connection");
  socket.reply({ type: "subscribed", topic: "rooms.a", id: subscribes()[1].id });
  await settle();
  client.disconnect();
});

test("a subscribe unanswered through every retry ends, and is undone on the node with an unsubscribe", async (t) => {
  const client = scripted({ random: () => 0.5 });
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout"] });  // before the subscribe's request timer
  const sub = client.subscribe("rooms.slow", () => {});
  const refused = assert.rejects(sub.ready, (e) => e.name === "ChorusTimeoutError" || /time/i.test(e.message));
  await settle();
  const delays = [500, 1000, 2000, 4000, 8000];
  for (const delay of delays) {
    t.mock.timers.tick(client.options.requestTimeout);
    socket.pong();  // the connection is alive (a timeout checks it with a ping)
    await settle();
    t.mock.timers.tick(delay);
    await settle();
  }
  t.mock.timers.tick(client.options.requestTimeout);  // the sixth attempt times out too
  await settle();
  await refused;
  assert.equal(socket.sent.filter((m) => m.type === "subscribe").length, 6);
  assert.deepEqual(socket.sent.filter((m) => m.type === "unsubscribe").map((m) => m.topic), ["rooms.slow"]);
  client.disconnect();
});

test("a pattern's live message before a replay subscribe's reply leaves the page to the concrete subscription, each delivered once", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const all = [];
  const one = [];
  const events = [];
  client.on("message", (m) => events.push(m.offset));
  const pattern = client.subscribe("rooms.*", (m) => all.push(m.offset));
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.*", id: socket.last("subscribe").id });
  await pattern.ready;
  const message = (offset) => socket.reply({ type: "message", topic: "rooms.a", data: {}, offset, epoch: "e1" });
  message(4);
  const concrete = client.subscribe("rooms.a", (m) => one.push(m.offset), { replay: 3 });
  await settle();
  const request = socket.last("subscribe");
  assert.equal(request.replay, 3);
  message(5);  // live, through the pattern, before the reply: also in the page
  // The page follows the reply in the same read, before any promise job runs.
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 5, epoch: "e1", id: request.id });
  for (const offset of [3, 4, 5]) message(offset);
  message(6);
  await concrete.ready;
  assert.deepEqual(one, [3, 4, 5, 6], "the whole page, then live");
  assert.deepEqual(all, [4, 5, 6], "the pattern is not given again what it delivered");
  assert.deepEqual(events, [4, 5, 3, 4, 5, 6], "the message event: each delivery by some subscription");
  assert.deepEqual(client.positions.get("rooms.a"), { offset: 6, epoch: "e1" });
  client.disconnect();
});

test("a disconnect() before the socket opened leaves no timer running (none keeps a Node process alive)", async () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
  const before = timers();
  const client = scripted();
  client.connect().catch(() => {});
  await settle();
  assert.equal(ScriptedSocket.instances.length, 1, "a socket, not open yet");
  assert.ok(timers() > before, "the connect timeout runs");
  client.disconnect();
  assert.equal(timers(), before);
});

test("on a topic without history, a messageId the node delivers again reaches each subscription once; other ids and topics are not held back", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const exact = [];
  const pattern = [];
  const first = client.subscribe("rooms.a", (m) => exact.push(m.data));
  const second = client.subscribe("rooms.*", (m) => pattern.push(`${m.topic}:${m.data}`));
  await settle();
  for (const request of socket.sent.filter((m) => m.type === "subscribe")) {
    socket.reply({ type: "subscribed", topic: request.topic, id: request.id });
  }
  await Promise.all([first.ready, second.ready]);
  const message = (topic, messageId, data) => socket.reply({ type: "message", topic, data, ...(messageId ? { messageId } : {}) });
  message("rooms.a", "k1", 1);
  message("rooms.a", "k1", 1);  // a publish sent again after a reconnect, a retried post
  message("rooms.b", "k1", 2);  // the same key on another topic is another message
  message("rooms.a", "k2", 3);
  message("rooms.a", undefined, 4);
  message("rooms.a", undefined, 4);  // no key: nothing to compare
  assert.deepEqual(exact, [1, 3, 4, 4]);
  assert.deepEqual(pattern, ["rooms.a:1", "rooms.b:2", "rooms.a:3", "rooms.a:4", "rooms.a:4"]);
  client.disconnect();
});

test("rawMember finds a member's exact text past strings with escapes and brackets, and refuses malformed text", () => {
  const text = '{ "type":"message", "topic":"a\\"}{[", "metadata":{"data":[1,{"x":"]"}]}, "data" : 12345678901234567890.5 , "z":null}';
  assert.equal(rawMember(text, "data"), "12345678901234567890.5");
  assert.equal(rawMember(text, "metadata"), '{"data":[1,{"x":"]"}]}');
  assert.equal(rawMember(text, "topic"), '"a\\"}{["');
  assert.equal(rawMember(text, "z"), "null");
  assert.equal(rawMember('{"data":{"a":"\\\\"}}', "data"), '{"a":"\\\\"}');
  for (const bad of ['{"type":"message"}', "[1]", "", "{", '{"data":', '{"data":[1,2', '{"data":"abc', '{"a" 1,"data":2}', '{"a":1 "data":2}', "{}"]) {
    assert.equal(rawMember(bad, "data"), undefined, bad);
  }
});

test("a delivered message keeps data's text in rawData (not enumerable): digits JSON.parse rounds are there", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const got = [];
  const subscription = client.subscribe("rooms.a", (m) => got.push(m));
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await subscription.ready;
  socket.replyText('{"type":"message","topic":"rooms.a","data":{"id":12345678901234567890,"price":0.10},"metadata":{"senderId":"x"}}');
  assert.equal(got.length, 1);
  assert.equal(got[0].data.id, 12345678901234567000);
  assert.equal(got[0].rawData, '{"id":12345678901234567890,"price":0.10}');
  assert.ok(!Object.keys(got[0]).includes("rawData"));
  client.disconnect();
});

test("a replay subscription's subscribed event comes before the page that follows the reply in the same read", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const order = [];
  client.on("subscribed", (e) => order.push(`subscribed ${e.topic}`));
  const subscription = client.subscribe("rooms.a", (m) => order.push(`message ${m.offset}`), { replay: 2 });
  await settle();
  const request = socket.last("subscribe");
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 2, epoch: "e1", id: request.id });
  for (const offset of [1, 2]) socket.reply({ type: "message", topic: "rooms.a", data: {}, offset, epoch: "e1" });
  await subscription.ready;
  assert.deepEqual(order, ["subscribed rooms.a", "message 1", "message 2"]);
  client.disconnect();
});

test("a message addressed to the user reaches the message event also when a pattern subscription exists", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const pattern = client.subscribe("chat.*", () => {});
  await settle();
  socket.reply({ type: "subscribed", topic: "chat.*", id: socket.last("subscribe").id });
  await pattern.ready;
  const got = [];
  client.on("message", (m) => got.push(m));
  socket.reply({ type: "message", eventType: "invite", data: { n: 1 }, messageId: "m1", metadata: { senderId: "server" } });
  assert.equal(got.length, 1);
  assert.equal(got[0].topic, undefined);
  assert.deepEqual(got[0].data, { n: 1 });
  client.disconnect();
});

test("data with JSON.rawJSON values goes out with their text exactly (a number past 2^53, a decimal's digits)", { skip: typeof JSON.rawJSON !== "function" && "this runtime has no JSON.rawJSON" }, async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const sent = client.publish("rooms.a", { n: JSON.rawJSON("12345678901234567890"), price: JSON.rawJSON("0.10") });
  await settle();
  const frame = socket.texts.at(-1);
  assert.ok(frame.includes(`"data":{"n":12345678901234567890,"price":0.10}`), frame);
  socket.reply({ type: "published", id: socket.last("message").id, messageId: socket.last("message").messageId });
  await sent;
  client.disconnect();
});

test("publishes sent and not yet acknowledged count against offlineQueueSize while connected", async () => {
  const client = scripted({ offlineQueueSize: 2 });
  const socket = await connectScripted(client);
  const first = client.publish("rooms.a", { n: 1 });
  const second = client.publish("rooms.a", { n: 2 });
  await assert.rejects(client.publish("rooms.a", { n: 3 }), ChorusQueueFullError);
  const sent = socket.sent.filter((m) => m.type === "message");
  assert.equal(sent.length, 2, "the refused publish was not sent");
  for (const m of sent) socket.reply({ type: "published", topic: m.topic, messageId: m.messageId, duplicate: false, id: m.id });
  await Promise.all([first, second]);
  const third = client.publish("rooms.a", { n: 3 });  // acknowledged ones free their place
  const m = socket.last("message");
  socket.reply({ type: "published", topic: m.topic, messageId: m.messageId, duplicate: false, id: m.id });
  await third;
  client.disconnect();
});

test("replay or since with a pattern throws at once; a subscribed answered from a node's fallback carries scope", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  assert.throws(() => client.subscribe("rooms.*", () => {}, { replay: 5 }), TypeError);
  assert.throws(() => client.subscribe("rooms.**", () => {}, { since: { offset: 1, epoch: "e" } }), TypeError);
  const events = [];
  client.on("subscribed", (e) => events.push(e));
  const subscription = client.subscribe("rooms.a", () => {}, { replay: 5 });
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 0, epoch: "m1", scope: "node", id: socket.last("subscribe").id });
  await subscription.ready;
  assert.equal(events[0].scope, "node");
  assert.equal(socket.sent.filter((m) => m.type === "subscribe").length, 1, "nothing sent for the refused patterns");
  client.disconnect();
});

/** "pending", "resolved" or "rejected", once the promise jobs queued now have run. */
async function stateOf(promise) {
  let state = "pending";
  promise.then(() => { state = "resolved"; }, () => { state = "rejected"; });
  await settle();
  return state;
}

test("a client that stops rejects the ready of subscribes not answered yet (reconnect: false, a refused token); a 4001 with reconnect: false opens no socket", async () => {
  const client = scripted({ reconnect: false });
  client.on("error", () => {});
  const socket = await connectScripted(client);
  const waiting = client.subscribe("a.b", () => {});
  await settle();
  socket.drop(1006);
  assert.equal(await stateOf(waiting.ready), "rejected", "the connection's end was final");
  client.disconnect();

  const refused = scripted();
  refused.on("error", () => {});
  const first = await connectScripted(refused);
  const had = refused.subscribe("c.d", () => {});
  first.reply({ type: "subscribed", topic: "c.d", id: first.last("subscribe").id });
  await had.ready;
  first.drop(1001);
  await until(() => ScriptedSocket.instances.length === 2);
  const again = refused.subscribe("c.d", () => {});  // made during the reconnect
  const next = ScriptedSocket.instances.at(-1);
  next.open();
  next.reply({ type: "auth_error", code: 401, message: "bad token", id: next.last("auth").id });
  await settle();
  assert.equal(refused.state, "disconnected");
  assert.equal(await stateOf(again.ready), "rejected", "the refused token stopped the client");
  refused.disconnect();

  const withProvider = scripted({ reconnect: false, token: undefined, getToken: () => `tok${ScriptedSocket.instances.length}` });
  withProvider.on("error", () => {});
  const only = await connectScripted(withProvider);
  only.drop(4001, "token expired");
  await settle(); await settle();
  assert.equal(ScriptedSocket.instances.length, 1, "no new socket");
  assert.equal(withProvider.state, "disconnected");
  withProvider.disconnect();
});

test("requests the node refuses with 401 after auth_expired (a publish, a join of a live topic) wait for the fresh token and go again; nothing ends", async () => {
  let giveToken;
  const client = scripted({ token: undefined, getToken: () => ScriptedSocket.instances.length === 0 || !giveToken ? "t1" : new Promise((resolve) => { giveToken = resolve; }) });
  const events = [];
  client.on("error", (e) => events.push(`error ${e.code}`));
  client.on("subscriptionEnded", (e) => events.push(`ended ${e.topic}`));
  const socket = await connectScripted(client);
  const plain = client.subscribe("a.b", () => {});
  socket.reply({ type: "subscribed", topic: "a.b", id: socket.last("subscribe").id });
  await plain.ready;
  giveToken = () => {};  // from now on the provider waits
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  const published = client.publish("a.b", { n: 1 });
  const join = client.join("a.b", { name: "x" });
  await settle();
  const message = socket.last("message");
  const subscribe = socket.last("subscribe");
  socket.reply({ type: "error", code: 401, message: "token expired", id: message.id });
  socket.reply({ type: "error", code: 401, message: "token expired", id: subscribe.id });
  await settle();
  assert.equal(await stateOf(published), "pending");
  assert.equal(await stateOf(join.ready), "pending");
  giveToken("t2");
  await settle();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  const resent = socket.sent.filter((m) => m.type === "message");
  assert.equal(resent.length, 2);
  assert.equal(resent[1].messageId, resent[0].messageId, "the same messageId");
  socket.reply({ type: "published", id: resent[1].id, messageId: resent[1].messageId });
  const resubscribe = socket.last("subscribe");
  assert.notEqual(resubscribe, subscribe);
  assert.deepEqual(resubscribe.presence, { data: { name: "x" } });
  socket.reply({ type: "subscribed", topic: "a.b", id: resubscribe.id });
  assert.equal((await published).type, "published");
  await join.ready;
  assert.deepEqual(events, [], "no error, no subscription ended");
  client.disconnect();
});

test("without publish acks, a publish refused with 401 after auth_expired is not settled by its fence's pong: it goes again with the fresh token, fenced again, then resolves", async () => {
  let giveToken;
  const client = scripted({ token: undefined, publishAcks: false, getToken: () => !giveToken ? "t1" : new Promise((resolve) => { giveToken = resolve; }) });
  const socket = await connectScripted(client);
  giveToken = () => {};  // from now on the provider waits
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  const published = client.publish("a.b", { n: 1 });
  await settle();
  const message = socket.last("message");
  const fence = socket.last("ping");
  assert.ok(fence.id > message.id, "the fence follows the message");
  socket.reply({ type: "error", code: 401, message: "token expired", id: message.id });
  socket.reply({ type: "pong", id: fence.id });
  await settle();
  assert.equal(await stateOf(published), "pending", "refused, held for the fresh token: not done");
  giveToken("t2");
  await settle();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  const resent = socket.sent.filter((m) => m.type === "message");
  assert.equal(resent.length, 2, "sent again with the fresh token");
  assert.equal(resent[1].messageId, resent[0].messageId);
  const second = socket.last("ping");
  assert.ok(second.id > resent[1].id, "fenced again, after it");
  assert.equal(await stateOf(published), "pending");
  socket.reply({ type: "pong", id: second.id });
  const reply = await published;
  assert.equal(reply.acknowledged, false);
  assert.equal(reply.messageId, resent[0].messageId);
  client.disconnect();
});

test("no auth_success within requestTimeout, or with requestTimeout 0 within connectTimeout + pongTimeout: the connection is given up at once and retried", async () => {
  const client = scripted({ requestTimeout: 0, connectTimeout: 20, pongTimeout: 20 });
  const states = [];
  client.on("state", (e) => states.push(e.state));
  client.connect().catch(() => {});
  await settle();
  ScriptedSocket.instances.at(-1).open();  // and never answered
  await until(() => states.includes("reconnecting"));
  assert.equal(ScriptedSocket.instances[0].readyState, 3, "the silent socket is closed");
  client.disconnect();
});

test("the last join ending while the remaining handler leaves before the node answers: no subscribe is sent for the topic left", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const plain = client.subscribe("a.b", () => {});
  const join = client.join("a.b", { n: 1 });
  socket.reply({ type: "subscribed", topic: "a.b", id: socket.last("subscribe").id });
  await settle();
  const subscribes = socket.sent.filter((m) => m.type === "subscribe").length;
  join();
  plain();
  await settle();
  for (const unsubscribe of socket.sent.filter((m) => m.type === "unsubscribe")) socket.reply({ type: "unsubscribed", topic: "a.b", id: unsubscribe.id });
  await settle();
  assert.equal(socket.sent.filter((m) => m.type === "subscribe").length, subscribes, "nothing subscribed again");
  client.disconnect();
});

test("with getToken, a fresh token is asked for renewBefore ahead of the node's expiresIn and sent on the open connection: delivery never pauses", async (t) => {
  const tokens = ["t1", "t2", "t3"];
  const { client, socket } = await connectedWithExpiry(t, () => tokens.shift());
  const auths = () => socket.sent.filter((m) => m.type === "auth").map((m) => m.token);
  t.mock.timers.tick(19999);  // 40 s left, renewBefore 30 s: at most half the life ahead, 20 s
  await settle();
  assert.deepEqual(auths(), ["t1"]);
  t.mock.timers.tick(1);
  await settle();
  assert.deepEqual(auths(), ["t1", "t2"], "renewed 20 s before the expiry");
  socket.reply({ type: "auth_success", userId: "alice", expiresIn: 600000, id: socket.last("auth").id });
  await settle();
  t.mock.timers.tick(569999);  // the new token's 600 s, 30 s ahead
  await settle();
  assert.deepEqual(auths(), ["t1", "t2"]);
  t.mock.timers.tick(1);
  await settle();
  assert.deepEqual(auths(), ["t1", "t2", "t3"]);
  assert.equal(client.state, "connected");
  assert.equal(ScriptedSocket.instances.length, 1, "on the same connection");
  client.disconnect();
});

test("a provider that fails after auth_expired is asked again after a jittered delay (a random part of the backoff's), so clients expired together do not retry together", async (t) => {
  const answers = ["t1", new Error("down"), "t2"];
  let asked = 0;
  const client = scripted({ token: undefined, renewBefore: 0, random: () => 0.5, getToken: () => {
    asked += 1;
    const answer = answers.shift() ?? "t3";
    if (answer instanceof Error) throw answer;
    return answer;
  } });
  client.on("error", () => {});
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout"] });
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  assert.equal(asked, 2);
  t.mock.timers.tick(249);  // half of minReconnectDelay 500
  await settle();
  assert.equal(asked, 2);
  t.mock.timers.tick(1);
  await settle();
  assert.equal(asked, 3);
  assert.deepEqual(socket.sent.filter((m) => m.type === "auth").map((m) => m.token), ["t1", "t2"]);
  client.disconnect();
});

test("a provider that fails after auth_expired is asked again after the reconnect backoff's delays on the same connection, until it answers; a setToken() stops the retries", async (t) => {
  const answers = ["t1", new Error("down"), new Error("down"), "t2"];
  let asked = 0;
  // random 1: the jitter's ceiling, the backoff's delays themselves.
  const client = scripted({ token: undefined, renewBefore: 0, random: () => 1, getToken: () => {
    asked += 1;
    const answer = answers.shift() ?? "t3";
    if (answer instanceof Error) throw answer;
    return answer;
  } });
  const errors = [];
  client.on("error", (e) => errors.push(e.message));
  const socket = await connectScripted(client);
  t.mock.timers.enable({ apis: ["setTimeout"] });
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  assert.equal(asked, 2);
  t.mock.timers.tick(499);  // minReconnectDelay 500
  await settle();
  assert.equal(asked, 2);
  t.mock.timers.tick(1);
  await settle();
  assert.equal(asked, 3);
  t.mock.timers.tick(1000);  // then 1,000
  await settle();
  assert.equal(asked, 4);
  assert.deepEqual(socket.sent.filter((m) => m.type === "auth").map((m) => m.token), ["t1", "t2"], "the fresh token, on the same connection");
  assert.equal(errors.length, 2);
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  t.mock.timers.tick(60000);
  await settle();
  assert.equal(asked, 4, "nothing more once accepted");

  // Expired again, the provider down: a setToken() re-authenticates and the retries stop.
  answers.unshift(new Error("down"));
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  assert.equal(asked, 5);
  client.setToken("app-token");
  await settle();
  t.mock.timers.tick(60000);
  await settle();
  assert.equal(asked, 5, "setToken() ended the retries");
  assert.equal(ScriptedSocket.instances.length, 1);
  client.disconnect();
});

test("a provider that hands back the token in use is asked again at half the time left, without an auth; renewBefore 0 and a fixed token never renew ahead", async (t) => {
  let asked = 0;
  const client = scripted({ token: undefined, getToken: () => { asked += 1; return "same"; } });
  const connected = client.connect();
  await settle();
  const socket = ScriptedSocket.instances[0];
  socket.open();
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });  // the time left is measured on Date.now()
  socket.reply({ type: "auth_success", userId: "alice", expiresIn: 100000, id: socket.last("auth").id });
  await connected;
  t.mock.timers.tick(70000);  // renewBefore ahead: 30 s left
  await settle();
  assert.equal(asked, 2);
  assert.equal(socket.sent.filter((m) => m.type === "auth").length, 1, "the same token is not sent again");
  t.mock.timers.tick(15000);  // half of the 30 s left
  await settle();
  assert.equal(asked, 3);
  client.disconnect();

  for (const options of [{ renewBefore: 0, getToken: () => "x" }, { token: "fixed" }]) {
    const other = scripted({ token: undefined, ...options });
    const ready = other.connect();
    await settle();
    const s = ScriptedSocket.instances.at(-1);
    s.open();
    s.reply({ type: "auth_success", userId: "alice", expiresIn: 1000, id: s.last("auth").id });
    await ready;
    t.mock.timers.tick(5000);
    await settle();
    assert.equal(s.sent.filter((m) => m.type === "auth").length, 1);
    other.disconnect();
  }
});

test("an error naming a topic ends its subscription only when the node says so (subscriptionEnded): a typing refused there (403) leaves it", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const got = [];
  const ended = [];
  client.on("subscriptionEnded", (e) => ended.push(e.topic));
  client.on("error", () => {});
  const ready = client.subscribe("rooms.announce", (m) => got.push(m.data)).ready;
  socket.reply({ type: "subscribed", topic: "rooms.announce", id: socket.last("subscribe").id });
  await ready;
  client.typing("rooms.announce");
  socket.reply({ type: "error", code: 403, message: "not allowed to publish to 'rooms.announce'", details: { topic: "rooms.announce" } });
  socket.reply({ type: "message", topic: "rooms.announce", data: 1, messageId: "m1" });
  assert.deepEqual(ended, []);
  assert.deepEqual(got, [1], "still subscribed");
  socket.reply({ type: "error", code: 403, message: "subscription ended: not granted", details: { topic: "rooms.announce", subscriptionEnded: true } });
  socket.reply({ type: "message", topic: "rooms.announce", data: 2, messageId: "m2" });
  assert.deepEqual(ended, ["rooms.announce"]);
  assert.deepEqual(got, [1]);
  client.disconnect();
});

test("after a token renewed late (auth_expired), each live topic with a position asks for what it missed (since, no presence fields): delivered in order, once; what is gone is a recoveryFailed", async () => {
  const client = scripted({ token: undefined, getToken: () => (ScriptedSocket.instances.length === 0 ? "t1" : "t2") });
  const got = [];
  const failed = [];
  client.on("recoveryFailed", (e) => failed.push(e.topic));
  const resubscribed = [];
  client.on("subscribed", (e) => resubscribed.push(e.resubscribed));
  const socket = await connectScripted(client);
  const joined = client.join("rooms.a", { name: "x" }, { onMessage: (m) => got.push(m.offset) });
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 5, epoch: "E", id: socket.last("subscribe").id });
  await joined.ready;
  const plain = client.subscribe("rooms.b", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.b", offset: 2, epoch: "F", id: socket.last("subscribe").id });
  await plain.ready;
  socket.reply({ type: "message", topic: "rooms.a", offset: 6, epoch: "E", data: 6 });
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  const subscribes = socket.sent.filter((m) => m.type === "subscribe").length;
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  // A live message right behind the auth_success: the node sends it again after the page.
  socket.reply({ type: "message", topic: "rooms.a", offset: 9, epoch: "E", data: 9 });
  const catchUps = socket.sent.filter((m) => m.type === "subscribe").slice(subscribes);
  assert.deepEqual(catchUps.map((m) => [m.topic, m.since, m.presence, m.presenceEvents]),
    [["rooms.a", { offset: 6, epoch: "E" }, undefined, undefined], ["rooms.b", { offset: 2, epoch: "F" }, undefined, undefined]]);
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 8, epoch: "E", recovered: true, id: catchUps[0].id });
  for (const offset of [7, 8, 9]) socket.reply({ type: "message", topic: "rooms.a", offset, epoch: "E", data: offset });
  socket.reply({ type: "subscribed", topic: "rooms.b", offset: 40, epoch: "F", recovered: false, id: catchUps[1].id });
  await settle();
  assert.deepEqual(got, [6, 7, 8, 9]);
  assert.deepEqual(failed, ["rooms.b"]);
  assert.deepEqual(resubscribed, [false, false, false, false], "the catch-up is on the same connection: no reconnect");
  client.disconnect();
});

test("a catch-up after a late renewal refused with 409 (the node still reads the topic's position for a presence change sent just before) goes again, and recovers: no recoveryFailed", async () => {
  const client = scripted({ token: undefined, getToken: () => (ScriptedSocket.instances.length === 0 ? "t1" : "t2") });
  const failed = [];
  client.on("recoveryFailed", (e) => failed.push(e.topic));
  client.on("error", () => {});
  const got = [];
  const socket = await connectScripted(client);
  const plain = client.subscribe("rooms.a", (m) => got.push(m.offset));
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 5, epoch: "E", id: socket.last("subscribe").id });
  await plain.ready;
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  const before = socket.sent.filter((m) => m.type === "subscribe").length;
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  const catchUps = () => socket.sent.filter((m) => m.type === "subscribe").slice(before);
  await until(() => catchUps().length === 1);
  socket.reply({ type: "error", code: 409, message: "still reading", details: { topic: "rooms.a" }, id: catchUps()[0].id });
  await until(() => catchUps().length === 2);
  const again = catchUps()[1];
  assert.deepEqual(again.since, { offset: 5, epoch: "E" });
  assert.notEqual(again.id, catchUps()[0].id);
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 6, epoch: "E", recovered: true, id: again.id });
  socket.reply({ type: "message", topic: "rooms.a", offset: 6, epoch: "E", data: 6 });
  await settle();
  assert.deepEqual(got, [6]);
  assert.deepEqual(failed, []);
  client.disconnect();
});

test("joining again with other data sends it as an update (one subscribe with the new presence); the newest join leaving sends the earlier data back; the same data sends nothing", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const subscribes = () => socket.sent.filter((m) => m.type === "subscribe");
  const online = client.join("rooms.a", { status: "online" });
  socket.reply({ type: "subscribed", topic: "rooms.a", id: subscribes().at(-1).id });
  await online.ready;
  const again = client.join("rooms.a", { status: "online" });
  await again.ready;
  assert.equal(subscribes().length, 1, "the same data: nothing to send");
  const away = client.join("rooms.a", { status: "away" });
  assert.equal(subscribes().length, 2);
  assert.deepEqual(subscribes().at(-1).presence, { data: { status: "away" } });
  socket.reply({ type: "subscribed", topic: "rooms.a", id: subscribes().at(-1).id });
  await away.ready;
  away();
  assert.equal(subscribes().length, 3);
  assert.deepEqual(subscribes().at(-1).presence, { data: { status: "online" } });
  assert.equal(socket.sent.filter((m) => m.type === "unsubscribe").length, 0, "no leave: an update");
  client.disconnect();
});

test("a token with more than 24.8 days to live is renewed once, near its end, not in a loop of timers that fire at once", async (t) => {
  let asked = 0;
  const client = scripted({ token: undefined, getToken: () => { asked += 1; return `t${asked}`; } });
  const connected = client.connect();
  await settle();
  const socket = ScriptedSocket.instances[0];
  socket.open();
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  const thirtyDays = 30 * 86400000;
  socket.reply({ type: "auth_success", userId: "alice", expiresIn: thirtyDays, id: socket.last("auth").id });
  await connected;
  t.mock.timers.tick(2 ** 31 - 1);  // the first step: not yet
  await settle();
  t.mock.timers.tick(thirtyDays - 30000 - (2 ** 31 - 1) - 1);
  await settle();
  assert.equal(asked, 1, "only for the connection");
  t.mock.timers.tick(1);
  await settle();
  assert.equal(asked, 2, "once, 30 s before the end");
  client.disconnect();
});

test("a catch-up after a late renewal that fails (unanswered) is a recoveryFailed, and the subscription goes on live", async (t) => {
  const client = scripted({ token: undefined, requestTimeout: 1000, getToken: () => (ScriptedSocket.instances.length === 0 ? "t1" : "t2") });
  const got = [];
  const failed = [];
  client.on("recoveryFailed", (e) => failed.push([e.topic, e.since]));
  client.on("error", () => {});
  const socket = await connectScripted(client);
  const ready = client.subscribe("rooms.a", (m) => got.push(m.offset)).ready;
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 5, epoch: "E", id: socket.last("subscribe").id });
  await ready;
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  t.mock.timers.enable({ apis: ["setTimeout"] });
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  assert.deepEqual(socket.last("subscribe").since, { offset: 5, epoch: "E" });
  t.mock.timers.tick(1000);
  socket.pong();
  await settle();
  assert.deepEqual(failed, [["rooms.a", { offset: 5, epoch: "E" }]]);
  socket.reply({ type: "message", topic: "rooms.a", offset: 9, epoch: "E", data: 9 });
  assert.deepEqual(got, [9], "live again");
  client.disconnect();
});

test("a catch-up of a topic the application left meanwhile fails quietly: no recoveryFailed for a topic nobody has", async (t) => {
  const client = scripted({ token: undefined, requestTimeout: 1000, getToken: () => (ScriptedSocket.instances.length === 0 ? "t1" : "t2") });
  const failed = [];
  client.on("recoveryFailed", (e) => failed.push(e.topic));
  client.on("error", () => {});
  const socket = await connectScripted(client);
  const leave = client.subscribe("rooms.a", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 5, epoch: "E", id: socket.last("subscribe").id });
  await leave.ready;
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  t.mock.timers.enable({ apis: ["setTimeout"] });
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  assert.deepEqual(socket.last("subscribe").since, { offset: 5, epoch: "E" });
  leave();
  t.mock.timers.tick(1000);
  socket.pong();
  await settle();
  assert.deepEqual(failed, []);
  client.disconnect();
});

test("a gap for a subscribed topic (the node's Redis link was down) is a gap event and a recoveryFailed (event and handler) without since; the position stays, so a reconnect resubscribes from it", async () => {
  const client = scripted();
  let socket = await connectScripted(client);
  const gaps = [];
  const failed = [];
  const handled = [];
  client.on("gap", (e) => gaps.push(e));
  client.on("recoveryFailed", (e) => failed.push(e));
  client.subscribe("rooms.a", { onRecoveryFailed: (e) => handled.push(e) });
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "e1", id: socket.last("subscribe").id });
  socket.reply({ type: "message", topic: "rooms.a", data: {}, offset: 5, epoch: "e1" });
  socket.reply({ type: "gap", topic: "rooms.a", timestamp: "2026-12-05T00:00:00.000Z" });
  assert.deepEqual(gaps, [{ topic: "rooms.a", timestamp: "2026-12-05T00:00:00.000Z" }]);
  assert.equal(failed.length, 1);
  assert.deepEqual(handled, failed);
  const { reason, ...event } = failed[0];
  assert.deepEqual(event, { topic: "rooms.a", recovered: false, resubscribed: false });
  assert.match(reason, /link to Redis was down/);
  assert.deepEqual(client.positions.get("rooms.a"), { offset: 5, epoch: "e1" });
  socket = await reconnectScripted(socket);
  await settle();
  assert.deepEqual(socket.last("subscribe").since, { offset: 5, epoch: "e1" });
  client.disconnect();
});

test("a gap for a pattern subscription reaches it as subscribed; a gap without topic (messages to this user) and one for a topic the client does not subscribe are gap events only", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const gaps = [];
  const failed = [];
  const handled = [];
  client.on("gap", (e) => gaps.push(e));
  client.on("recoveryFailed", (e) => failed.push(e.topic));
  client.subscribe("rooms.*", { onRecoveryFailed: (e) => handled.push(e.topic) });
  const left = client.subscribe("rooms.b", { onRecoveryFailed: (e) => handled.push(e.topic) });
  await settle();
  for (const s of socket.sent.filter((m) => m.type === "subscribe")) socket.reply({ type: "subscribed", topic: s.topic, id: s.id });
  left();
  socket.reply({ type: "gap", timestamp: "2026-12-05T00:00:01.000Z" });
  socket.reply({ type: "gap", topic: "rooms.b", timestamp: "2026-12-05T00:00:02.000Z" });
  socket.reply({ type: "gap", topic: "rooms.c", timestamp: "2026-12-05T00:00:03.000Z" });
  socket.reply({ type: "gap", topic: "rooms.*", timestamp: "2026-12-05T00:00:04.000Z" });
  assert.deepEqual(gaps, [
    { timestamp: "2026-12-05T00:00:01.000Z" },
    { topic: "rooms.b", timestamp: "2026-12-05T00:00:02.000Z" },
    { topic: "rooms.c", timestamp: "2026-12-05T00:00:03.000Z" },
    { topic: "rooms.*", timestamp: "2026-12-05T00:00:04.000Z" },
  ]);
  assert.deepEqual(failed, ["rooms.*"], "rooms.c is not a subscription (only covered by the pattern), rooms.b was left");
  assert.deepEqual(handled, ["rooms.*"]);
  client.disconnect();
});

/** Connects with `auth_success` carrying `extra` (e.g. the node's maxMessageSize). */
async function connectAnnouncing(client, extra) {
  const connected = client.connect();
  await settle();
  const socket = ScriptedSocket.instances.at(-1);
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id, ...extra });
  await connected;
  return socket;
}

test("a frame over the node's maxMessageSize (auth_success) rejects with 413 at once, unsent: the connection stays and the next publish goes", { timeout: 10000 }, async () => {
  const client = scripted();
  const states = [];
  client.on("state", ({ state }) => states.push(state));
  const socket = await connectAnnouncing(client, { maxMessageSize: 200 });
  const big = client.publish("rooms.big", { big: "é".repeat(100) });  // 200 UTF-16 units, over 200 bytes in UTF-8
  await assert.rejects(big, (error) => error instanceof ChorusError && error.code === 413 && /\d+ bytes exceeds .* 200 bytes/.test(error.message));
  assert.equal(socket.sent.filter((m) => m.type === "message").length, 0, "not sent");
  const small = client.publish("rooms.big", { text: "hi" });
  await settle();
  const sent = socket.last("message");
  assert.deepEqual(sent.data, { text: "hi" });
  socket.reply({ type: "published", id: sent.id, messageId: sent.messageId });
  assert.equal((await small).messageId, sent.messageId);
  // A join whose data is over the limit: its ready rejects with 413, nothing is sent.
  const leave = client.join("rooms.big", { bio: "x".repeat(300) });
  await assert.rejects(leave.ready, (error) => error.code === 413);
  assert.equal(socket.sent.filter((m) => m.type === "subscribe").length, 0);
  assert.equal(client.state, "connected");
  assert.equal(ScriptedSocket.instances.length, 1, "no reconnect");
  assert.deepEqual(states, ["connecting", "connected"]);
  client.disconnect();
});

test("a join over the limit on a live topic ends the subscription on the client (subscriptionEnded) and tells the node to unsubscribe it", { timeout: 10000 }, async () => {
  const client = scripted();
  const socket = await connectAnnouncing(client, { maxMessageSize: 200 });
  const ended = [];
  client.on("subscriptionEnded", ({ topic, error }) => ended.push([topic, error.code]));
  const plain = client.subscribe("rooms.live", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.live", id: socket.last("subscribe").id });
  await plain.ready;
  const leave = client.join("rooms.live", { bio: "x".repeat(300) });
  await assert.rejects(leave.ready, (error) => error.code === 413);
  await settle();
  assert.deepEqual(ended, [["rooms.live", 413]]);
  assert.equal(socket.last("unsubscribe")?.topic, "rooms.live", "the node lets the topic go too");
  client.disconnect();
});

test("the limit: 1 MiB when auth_success names none; the option maxMessageSize replaces that default and may lower an announced limit", { timeout: 10000 }, async () => {
  assert.equal(DEFAULT_MAX_MESSAGE_SIZE, 1048576);
  const client = scripted();
  const socket = await connectAnnouncing(client, {});
  await assert.rejects(client.publish("rooms.big", { big: "x".repeat(1100000) }), (error) => error.code === 413 && error.details.limit === 1048576);
  client.publish("rooms.big", { big: "x".repeat(1000000) }).catch(() => {});
  await settle();
  assert.equal(socket.sent.filter((m) => m.type === "message").length, 1, "under 1 MiB: sent");
  client.disconnect();

  const lowered = scripted({ maxMessageSize: 300 });
  await connectAnnouncing(lowered, { maxMessageSize: 5000 });
  await assert.rejects(lowered.publish("rooms.a", { big: "x".repeat(400) }), (error) => error.details.limit === 300);
  lowered.disconnect();
  const raised = scripted({ maxMessageSize: 2000000 });
  await connectAnnouncing(raised, {});
  raised.publish("rooms.a", { big: "x".repeat(1100000) }).catch(() => {});
  await settle();
  assert.equal(ScriptedSocket.instances.at(-1).sent.filter((m) => m.type === "message").length, 1, "the option replaces the default");
  raised.disconnect();
});

test("a publish queued while offline is checked against the limit of the connection it goes out on; those behind it go", { timeout: 10000 }, async () => {
  const client = scripted();
  const big = client.publish("rooms.q", { big: "x".repeat(500) });
  const small = client.publish("rooms.q", { n: 1 });
  const socket = await connectAnnouncing(client, { maxMessageSize: 200 });
  await assert.rejects(big, (error) => error.code === 413);
  await settle();
  const sent = socket.sent.filter((m) => m.type === "message");
  assert.deepEqual(sent.map((m) => m.data), [{ n: 1 }]);
  socket.reply({ type: "published", id: sent[0].id, messageId: sent[0].messageId });
  await small;
  assert.equal(client.queuedPublishes, 0);
  client.disconnect();
});

test("a close with 1009 (a frame over a limit the client did not know) rejects the largest unacknowledged publish with 413 instead of sending it again: no loop", { timeout: 10000 }, async () => {
  const client = scripted({ minReconnectDelay: 1 });
  const socket = await connectAnnouncing(client, {});
  const small = client.publish("rooms.a", { n: 1 });
  const big = client.publish("rooms.a", { big: "x".repeat(5000) });
  const later = client.publish("rooms.a", { n: 2 });
  await settle();
  assert.equal(socket.sent.filter((m) => m.type === "message").length, 3);
  socket.drop(1009, "message too big");
  await assert.rejects(big, (error) => error.code === 413 && /1009/.test(error.message));
  await until(() => ScriptedSocket.instances.length === 2);
  const next = ScriptedSocket.instances[1];
  next.open();
  next.reply({ type: "auth_success", userId: "alice", id: next.last("auth").id });
  await settle();
  const resent = next.sent.filter((m) => m.type === "message");
  assert.deepEqual(resent.map((m) => m.data), [{ n: 1 }, { n: 2 }], "the others again, in order; the big one not");
  for (const m of resent) next.reply({ type: "published", id: m.id, messageId: m.messageId });
  await small;
  await later;
  assert.equal(client.state, "connected");
  client.disconnect();
});

test("ready settles when the subscription is given up before the node confirmed it: a ChorusClosedError (subscribe and join); the topic's other handlers still get the reply", { timeout: 10000 }, async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  const u = client.subscribe("rooms.q", () => {});
  u();
  await assert.rejects(u.ready, (error) => error instanceof ChorusClosedError && /before the node confirmed/.test(error.message));
  const leave = client.join("rooms.p", { status: "here" });
  leave();
  await assert.rejects(leave.ready, ChorusClosedError);
  // Two handlers, one leaves before the reply: the other's ready resolves with it.
  const first = client.subscribe("rooms.r", () => {});
  const second = client.subscribe("rooms.r", () => {});
  first();
  await assert.rejects(first.ready, ChorusClosedError);
  const subscribe = socket.sent.filter((m) => m.type === "subscribe" && m.topic === "rooms.r").at(-1);
  socket.reply({ type: "subscribed", topic: "rooms.r", id: subscribe.id });
  assert.equal((await second.ready).type, "subscribed");
  second();
  assert.equal((await second.ready).type, "subscribed", "settled already: unsubscribing later changes nothing");
  client.disconnect();
});

test("typing() while not connected sends nothing and does not use up the throttle: the first typing() once connected sends start", { timeout: 10000 }, async () => {
  const client = scripted({ typingTimeout: 60000 });
  client.typing("rooms.z");
  const socket = await connectScripted(client);
  client.typing("rooms.z");
  assert.deepEqual(socket.sent.filter((m) => m.type === "typing").map((m) => m.state), ["start"]);
  client.stopTyping("rooms.z");
  assert.deepEqual(socket.sent.filter((m) => m.type === "typing").map((m) => m.state), ["start", "stop"]);
  client.disconnect();
});

test("a publish held for the token's renewal (401 after auth_expired) does not time out while it waits, on a connection that answers pings; it is timed again once sent again", async (t) => {
  let giveToken;
  const client = scripted({ token: undefined, requestTimeout: 1000, pongTimeout: 500, getToken: () => !giveToken ? "t1" : new Promise((resolve) => { giveToken = resolve; }) });
  const socket = await connectScripted(client);
  giveToken = () => {};  // from now on the provider waits
  t.mock.timers.enable({ apis: ["setTimeout"] });
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  const published = client.publish("a.b", { n: 1 });
  const message = socket.last("message");
  socket.reply({ type: "error", code: 401, message: "token expired", id: message.id });
  const pings = () => socket.sent.filter((m) => m.type === "ping").length;
  t.mock.timers.tick(1000);
  socket.pong();  // the node answers pings with an expired token
  t.mock.timers.tick(10000);
  socket.pong();
  assert.equal(await stateOf(published), "pending", "held: it does not fail");
  assert.equal(pings(), 0, "no deadline ran out");
  giveToken("t2");
  await settle();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  const resent = socket.last("message");
  assert.notEqual(resent.id, undefined);
  assert.equal(resent.messageId, message.messageId);
  assert.equal(socket.sent.filter((m) => m.type === "message").length, 2);
  // Timed from the send again: unanswered within requestTimeout on a live connection, it times out.
  t.mock.timers.tick(999);
  assert.equal(pings(), 0);
  t.mock.timers.tick(1);
  assert.equal(pings(), 1, "the connection is checked at the new deadline");
  socket.pong();
  await assert.rejects(published, ChorusTimeoutError);
  client.disconnect();
});

test("a publish refused with 401 after auth_expired while the liveness ping of its deadline is out is held too: the pong does not time it out", async (t) => {
  let giveToken;
  const client = scripted({ token: undefined, requestTimeout: 1000, pongTimeout: 500, getToken: () => !giveToken ? "t1" : new Promise((resolve) => { giveToken = resolve; }) });
  const socket = await connectScripted(client);
  giveToken = () => {};
  t.mock.timers.enable({ apis: ["setTimeout"] });
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  const published = client.publish("a.b", { n: 1 });
  const message = socket.last("message");
  t.mock.timers.tick(1000);
  assert.ok(socket.last("ping"), "the deadline ran out: the connection is checked");
  socket.reply({ type: "error", code: 401, message: "token expired", id: message.id });
  socket.pong();
  assert.equal(await stateOf(published), "pending", "held: it does not fail");
  giveToken("t2");
  await settle();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await settle();
  const resent = socket.last("message");
  assert.equal(resent.messageId, message.messageId);
  socket.reply({ type: "published", topic: "a.b", messageId: resent.messageId, duplicate: false, id: resent.id });
  assert.equal((await published).type, "published");
  client.disconnect();
});

test("a subscription the node ends while a subscribe of it is unanswered rejects that ready with the node's error; its joins end too", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  client.on("error", () => {});
  const ended = [];
  client.on("subscriptionEnded", (e) => ended.push(e.topic));
  const plain = client.subscribe("rooms.a", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await plain.ready;
  const leave = client.join("rooms.a", { name: "x" });  // subscribed again, with presence
  const join = socket.last("subscribe");
  socket.reply({ type: "error", code: 403, message: "subscription ended: not granted", details: { topic: "rooms.a", subscriptionEnded: true } });
  socket.reply({ type: "subscribed", topic: "rooms.a", id: join.id });  // the reply to the subscribe in flight
  assert.equal(await stateOf(leave.ready), "rejected", "not pending for ever");
  await assert.rejects(leave.ready, (error) => error instanceof ChorusError && error.code === 403 && /subscription ended/.test(error.message));
  assert.deepEqual(ended, ["rooms.a"]);
  const sent = socket.sent.length;
  client.leave("rooms.a");
  assert.equal(socket.sent.length, sent, "nothing is left to leave: no unsubscribe");
  client.disconnect();
});

test("the function returned for a subscription that ended (the node ended it, or refused its subscribe) sends nothing: a later subscription of the topic, and its membership, stay", async (t) => {
  const client = scripted();
  t.after(() => client.disconnect());  // also when an assertion fails: no reconnects left running
  const socket = await connectScripted(client);
  client.on("error", () => {});
  // Ended by the node: a plain subscription and two joins with other data.
  const plain = client.subscribe("rooms.a", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await plain.ready;
  const first = client.join("rooms.a", { name: "x" });
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await first.ready;
  const second = client.join("rooms.a", { name: "y" });  // an update: the member's data is y
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await second.ready;
  socket.reply({ type: "error", code: 403, message: "subscription ended: not granted", details: { topic: "rooms.a", subscriptionEnded: true } });
  // The application joins the topic again (a new grant): live on the node.
  const again = client.join("rooms.a", { name: "z" });
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await again.ready;
  let sent = socket.sent.length;
  second();  // the newest join of the ended subscription: no subscribe with x
  first();   // its last join: no unsubscribe
  plain();
  await settle();
  assert.deepEqual(socket.sent.slice(sent), [], "the ended subscription's functions send nothing");
  // Refused: a join of a live topic (wasLive) the node refuses ends it on the client.
  const b = client.subscribe("rooms.b", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.b", id: socket.last("subscribe").id });
  await b.ready;
  const refused = client.join("rooms.b", { name: "x" });
  socket.reply({ type: "error", code: 403, message: "not allowed to join 'rooms.b'", details: { topic: "rooms.b" }, id: socket.last("subscribe").id });
  await assert.rejects(refused.ready, (error) => error.code === 403);
  const bAgain = client.subscribe("rooms.b", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.b", id: socket.last("subscribe").id });
  await bAgain.ready;
  sent = socket.sent.length;
  refused();
  b();
  await settle();
  assert.deepEqual(socket.sent.slice(sent), [], "the refused subscription's functions send nothing");
  // The later subscriptions are still the application's to end.
  again();
  bAgain();
  await settle();
  assert.deepEqual(socket.sent.slice(sent).map((m) => [m.type, m.topic]), [["unsubscribe", "rooms.a"], ["unsubscribe", "rooms.b"]]);
});

test("a join whose subscribe the node refuses leaves no membership behind: leave(topic) later leaves only what was joined after, and a later subscription stays", async (t) => {
  const client = scripted();
  t.after(() => client.disconnect());  // also when an assertion fails: no reconnects left running
  const socket = await connectScripted(client);
  client.on("error", () => {});
  const refused = client.join("rooms.a", { name: "x" });
  socket.reply({ type: "error", code: 403, message: "not allowed to join 'rooms.a'", details: { topic: "rooms.a" }, id: socket.last("subscribe").id });
  await assert.rejects(refused.ready, (error) => error.code === 403);
  // Bookkeeping only once the refused join's function acts on nothing: read it directly.
  assert.equal(client._joined.has("rooms.a"), false, "the refused join is no membership");
  const plain = client.subscribe("rooms.a", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await plain.ready;
  const sent = socket.sent.length;
  client.leave("rooms.a");
  await settle();
  assert.deepEqual(socket.sent.slice(sent), [], "no join to leave: the plain subscription stays");
  const joined = client.join("rooms.a", { name: "y" });
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await joined.ready;
  joined();
  assert.equal(client._joined.has("rooms.a"), false, "its last join left: no membership is kept");
});

test("a connection dropped while publishing is paused after a rate refusal sends the refused publish again before those published after it", async () => {
  const client = scripted();
  let socket = await connectScripted(client);
  const messages = () => socket.sent.filter((m) => m.type === "message");
  const published = [1, 2, 3].map((n) => client.publish("rooms.a", { n }));
  await settle();
  socket.reply({ type: "error", code: 429, message: "rate limit exceeded", details: { retryAfter: 20000, limit: 10 }, id: messages()[0].id });
  await settle();
  const later = client.publish("rooms.a", { n: 4 });  // waits behind the refused one
  await settle();
  assert.equal(messages().length, 3);
  socket = await reconnectScripted(socket);  // 2 and 3 unacknowledged: back in the queue
  await settle();
  assert.deepEqual(messages().map((m) => m.data.n), [1, 2, 3, 4], "in publish order");
  for (const m of messages()) socket.reply({ type: "published", topic: "rooms.a", messageId: m.messageId, duplicate: false, id: m.id });
  await Promise.all([...published, later]);
  client.disconnect();
});

test("a new token of another user (auth_error 409 on a live connection) closes the connection and connects again at once with that token: the subscriptions are made again for the new user", async () => {
  const client = scripted({ token: undefined, getToken: () => "from-provider", minReconnectDelay: 60000, maxReconnectDelay: 60000 });
  let socket = await connectScripted(client);
  const u = client.subscribe("rooms.a", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await u.ready;
  const states = [];
  client.on("state", (e) => states.push(e));
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.setToken("bob-token");
  const auth = socket.last("auth");
  assert.equal(auth.token, "bob-token");
  socket.reply({ type: "auth_error", code: 409, message: "already authenticated as 'alice': open a new connection for another user", id: auth.id });
  await until(() => ScriptedSocket.instances.length >= 2, 1000);  // not the 60 s backoff
  assert.equal(ScriptedSocket.instances.length, 2, "a new connection, at once");
  assert.equal(socket.readyState, 3, "the old user's connection is closed");
  assert.equal(errors[0]?.code, 409);
  socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "bob-token", "the new token, not the provider's");
  socket.reply({ type: "auth_success", userId: "bob", id: socket.last("auth").id });
  await settle();
  assert.equal(client.userId, "bob");
  assert.equal(socket.last("subscribe")?.topic, "rooms.a");
  assert.deepEqual(states.map((e) => e.state), ["disconnected", "reconnecting", "connected"]);
  assert.equal(states[0].willReconnect, true);
  client.disconnect();
});

/**
 * A client with `getToken` connected on a fresh scripted socket, its token expiring in 40 s
 * by the node's word; the mock clock runs from the auth_success.
 */
async function connectedWithExpiry(t, getToken) {
  const client = scripted({ token: undefined, getToken });
  const connected = client.connect();
  await settle();
  const socket = ScriptedSocket.instances[0];
  socket.open();
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  socket.reply({ type: "auth_success", userId: "alice", expiresIn: 40000, id: socket.last("auth").id });
  await connected;
  return { client, socket };
}

test("a fresh token refused (401) on a live connection after auth_expired is a refused token, as at a connect: one retry with another fresh token on a new connection, then a stop; a renewal ahead refused leaves the connection", async (t) => {
  let asked = 0;
  let client = scripted({ token: undefined, renewBefore: 0, random: () => 0, getToken: () => `t${++asked}` });
  let socket = await connectScripted(client);
  const u = client.subscribe("rooms.a", () => {});
  socket.reply({ type: "subscribed", topic: "rooms.a", id: socket.last("subscribe").id });
  await u.ready;
  const states = [];
  client.on("state", (e) => states.push(e));
  client.on("error", () => {});
  const published = client.publish("rooms.a", { n: 1 });
  published.catch(() => {});  // awaited below
  const message = socket.last("message");
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await settle();
  assert.equal(socket.last("auth").token, "t2");
  socket.reply({ type: "error", code: 401, message: "token expired", id: message.id });  // held
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  await until(() => ScriptedSocket.instances.length >= 2, 1000);
  assert.equal(ScriptedSocket.instances.length, 2, "the provider is asked again and a new connection tries its token");
  assert.equal(socket.readyState, 3);
  assert.deepEqual(states.slice(0, 2).map((e) => [e.state, e.code, e.willReconnect]), [["disconnected", 4001, true], ["reconnecting", undefined, undefined]]);
  socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "t3");
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  await settle();
  assert.equal(client.state, "disconnected");
  assert.equal(states.at(-1).willReconnect, false, "then a stop");
  assert.ok(states.at(-1).error instanceof ChorusAuthError);
  await assert.rejects(published, ChorusAuthError, "the held publish rejects with what stopped the client");
  assert.equal(asked, 3);
  client.disconnect();

  // Ahead of the expiry the connection still has a good token: it goes on with it.
  const tokens = ["t1", "t2"];
  ({ client, socket } = await connectedWithExpiry(t, () => tokens.shift()));
  const errors = [];
  client.on("error", (e) => errors.push(e.code));
  t.mock.timers.tick(20000);
  await settle();
  assert.equal(socket.last("auth").token, "t2");
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  await settle();
  assert.deepEqual(errors, [401]);
  assert.equal(client.state, "connected");
  assert.equal(ScriptedSocket.instances.length, 1);
  client.disconnect();
});

test("connect() after disconnect() asks the provider once the token's known expiry is within renewBefore (an expired token is never presented); not for a token set with setToken()", async (t) => {
  let asked = 0;
  const client = scripted({ token: undefined, getToken: () => `t${++asked}` });
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  const connectWith = async (expiresIn) => {
    const connected = client.connect();
    await settle();
    const socket = ScriptedSocket.instances.at(-1);
    socket.open();
    const token = socket.last("auth").token;
    socket.reply({ type: "auth_success", userId: "alice", expiresIn, id: socket.last("auth").id });
    await connected;
    return token;
  };
  assert.equal(await connectWith(100000), "t1");
  client.disconnect();
  assert.equal(await connectWith(100000), "t1", "100 s left: the token is used again");
  client.disconnect();
  t.mock.timers.tick(75000);  // 25 s left, within renewBefore (30 s)
  assert.equal(await connectWith(100000), "t2", "the provider is asked");
  client.disconnect();
  client.setToken("from-app");  // its expiry is not known: used as given
  t.mock.timers.tick(200000);
  assert.equal(await connectWith(undefined), "from-app");
  client.disconnect();
});

test("a pattern subscription keeps the positions of the 10,000 topics it delivered most lately, not of every topic it ever delivered", async () => {
  const client = scripted();
  const socket = await connectScripted(client);
  let got = 0;
  const u = client.subscribe("rooms.*", () => { got += 1; });
  socket.reply({ type: "subscribed", topic: "rooms.*", id: socket.last("subscribe").id });
  await u.ready;
  const deliver = (topic, offset) => socket.reply({ type: "message", topic, data: 1, offset, epoch: "e", timestamp: "2026-01-01T00:00:00.000Z" });
  for (let i = 0; i < 10000; i++) deliver(`rooms.t${i}`, 1);
  deliver("rooms.t0", 2);  // delivered lately again: kept
  deliver("rooms.new", 1);  // one topic too many: the least recently delivered one (t1) goes
  const positions = client.positions;
  assert.equal(positions.size, 10000);
  assert.ok(positions.has("rooms.t0") && positions.has("rooms.new") && positions.has("rooms.t2"));
  assert.ok(!positions.has("rooms.t1"));
  deliver("rooms.t0", 2);  // a repeat on a topic kept is still dropped
  assert.equal(got, 10002);
  client.disconnect();
});

test("a provider that answers after disconnect() (asked after auth_expired, or ahead of the expiry) brings no error and no token event", async (t) => {
  let provider = heldProvider();
  let client = scripted({ token: undefined, getToken: provider.getToken });
  let socket = await connectScripted(client);
  const events = [];
  const listen = () => {
    client.on("error", (e) => events.push(`error ${e.message}`));
    client.on("token", (e) => events.push(`token ${e.token}`));
  };
  listen();
  socket.reply({ type: "auth_expired", code: 401, message: "token expired" });
  await provider.asked;
  client.disconnect();
  provider.release("t2");
  await settle();
  assert.deepEqual(events, [], "after auth_expired");
  assert.deepEqual(socket.sent.filter((m) => m.type === "auth").map((m) => m.token), ["t1"]);

  provider = heldProvider();
  ({ client, socket } = await connectedWithExpiry(t, provider.getToken));
  listen();
  t.mock.timers.tick(20000);
  await provider.asked;
  client.disconnect();
  provider.release("t2");
  await settle();
  assert.deepEqual(events, [], "ahead of the expiry");
});

test("a provider that throws when asked after a refused token is asked again after the backoff: the client connects once it answers, instead of stopping for good", async () => {
  let asked = 0;
  const client = scripted({ token: "stale", random: () => 0, getToken: () => {
    asked += 1;
    if (asked === 1) throw new Error("auth server down");
    return `t${asked}`;
  } });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const connected = client.connect();
  await until(() => ScriptedSocket.instances.length === 1);
  let socket = ScriptedSocket.instances[0];
  socket.open();
  socket.reply({ type: "auth_error", code: 401, message: "token expired", id: socket.last("auth").id });
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "t2", "the provider asked again, after the backoff");
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await connected;
  assert.equal(client.state, "connected");
  assert.ok(errors.some((e) => e instanceof ChorusAuthError && /getToken failed: auth server down/.test(e.message)), "the provider's failure is reported");
  client.disconnect();
});

test("a provider that never answers is given up after connectTimeout and asked again: the client connects when it answers", async () => {
  let asked = 0;
  const client = scripted({ token: undefined, connectTimeout: 50, random: () => 0, getToken: () => {
    asked += 1;
    return asked === 1 ? new Promise(() => {}) : "t2";
  } });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const connected = client.connect();
  await until(() => ScriptedSocket.instances.length === 1);
  const socket = ScriptedSocket.instances[0];
  socket.open();
  assert.equal(socket.last("auth").token, "t2");
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await connected;
  assert.equal(asked, 2);
  assert.ok(errors.some((e) => /getToken failed: getToken did not answer within 50 ms/.test(e.message)), errors.map(String).join());
  client.disconnect();
});

test("setToken() while the node reads the auth: an accepted old token is replaced on the connection at once, and a refused one makes way for the new token instead of stopping", async () => {
  // Accepted: the new token is sent on the connection as soon as it is authenticated.
  let client = scripted();
  let connected = client.connect();
  await until(() => ScriptedSocket.instances.length === 1);
  let socket = ScriptedSocket.instances[0];
  socket.open();
  const first = socket.last("auth");
  client.setToken("t-new");
  assert.equal(socket.sent.filter((m) => m.type === "auth").length, 1, "nothing sent before the reply");
  socket.reply({ type: "auth_success", userId: "alice", id: first.id });
  await connected;
  assert.equal(socket.last("auth").token, "t-new", "authenticated again with the application's token");
  client.disconnect();

  // Set before the socket opened: the new token is the one presented.
  client = scripted();
  connected = client.connect();
  await until(() => ScriptedSocket.instances.length === 1);
  socket = ScriptedSocket.instances[0];
  client.setToken("t-new");
  socket.open();
  assert.deepEqual(socket.sent.filter((m) => m.type === "auth").map((m) => m.token), ["t-new"]);
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await connected;
  client.disconnect();

  // Refused, no provider: the application's newer token is tried, and connect() resolves.
  client = scripted({ token: "bad" });
  connected = client.connect();
  await until(() => ScriptedSocket.instances.length === 1);
  socket = ScriptedSocket.instances[0];
  socket.open();
  client.setToken("good");
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  assert.equal(socket.last("auth").token, "good");
  socket.reply({ type: "auth_success", userId: "bob", id: socket.last("auth").id });
  await connected;
  assert.equal(client.userId, "bob");
  client.disconnect();
});

test("a subscribe or join made by a 'connected' handler is sent once on that connection, and a handler's disconnect() leaves no ping timer", async () => {
  const client = scripted({ pingInterval: 1000 });
  let joined;
  client.on("connected", () => { joined ??= client.join("rooms.x", { n: 1 }); });
  const connected = client.connect();
  await until(() => ScriptedSocket.instances.length === 1);
  const socket = ScriptedSocket.instances[0];
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  await connected;
  const subscribes = socket.sent.filter((m) => m.type === "subscribe");
  assert.deepEqual(subscribes.map((m) => m.topic), ["rooms.x"], "one subscribe");
  client.disconnect();

  const other = scripted({ pingInterval: 1000 });
  other.on("connected", () => other.disconnect());
  const failed = other.connect().catch((e) => e);
  await until(() => ScriptedSocket.instances.length === 1);
  const second = ScriptedSocket.instances[0];
  second.open();
  second.reply({ type: "auth_success", userId: "alice", id: second.last("auth").id });
  assert.ok((await failed) instanceof ChorusClosedError);
  assert.equal(other._pingTimer, null, "no ping timer keeps the process alive");
});

test("requests sent while the node reads the auth reject at once when the token is refused, not after requestTimeout", async () => {
  const client = scripted({ token: "bad", requestTimeout: 0 });
  const connected = client.connect().catch((e) => e);
  await until(() => ScriptedSocket.instances.length === 1);
  const socket = ScriptedSocket.instances[0];
  socket.open();
  const ping = client.request("ping").then(() => "answered", (e) => e);
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  assert.ok((await connected) instanceof ChorusAuthError);
  const outcome = await ping;
  assert.ok(outcome instanceof ChorusClosedError, `the ping rejects: ${outcome}`);
});
