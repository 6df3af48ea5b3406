// The SDK's logic without a node: topic patterns, the backoff's bounds, and the reconnect
// decisions, driven through a scripted WebSocket (every step is an event the test causes).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ChorusClient, ChorusAuthError, ChorusQueueFullError, backoffDelay, topicMatches, isPattern, newMessageId,
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
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; ScriptedSocket.instances.push(this); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen?.({}); }
  reply(object) { this.onmessage?.({ data: JSON.stringify(object) }); }
  drop(code, reason = "") { this.readyState = 3; this.onclose?.({ code, reason }); }
  last(type) { return this.sent.filter((m) => m.type === type).at(-1); }
}

function scripted(options = {}) {
  ScriptedSocket.instances = [];
  return new ChorusClient("ws://test/ws", { WebSocket: ScriptedSocket, token: "t1", pingInterval: 0, random: () => 0.5, ...options });
}

async function settle() { for (let i = 0; i < 5; i++) await Promise.resolve(); await new Promise((r) => setImmediate(r)); }

/** Lets timers and promises run until `condition` holds (a reconnect timer of the scripted delay). */
async function until(condition) {
  while (!condition()) await new Promise((r) => setTimeout(r, 1));
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

test("close 1001 reconnects at once; other closes wait a jittered backoff", async () => {
  const client = scripted();
  const events = [];
  client.on("reconnecting", (e) => events.push(e));
  let socket = await connectScripted(client);
  socket.drop(1001, "draining");
  assert.equal(events.at(-1).delay, 0);
  await settle();
  await new Promise((r) => setTimeout(r, 0));
  await settle();
  socket = ScriptedSocket.instances.at(-1);
  assert.equal(ScriptedSocket.instances.length, 2);
  socket.drop(1006);  // never opened: a failed attempt, backoff grows
  assert.equal(events.at(-1).delay, backoffDelay(1, client.options, () => 0.5));
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
  socket.drop(1001);
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances.at(-1);
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
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
