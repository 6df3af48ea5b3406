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

test("a disconnect() while the provider is asked again after a refusal opens no socket and stays disconnected", async () => {
  let asked = 0;
  let release;
  let secondAsk;
  const askedAgain = new Promise((resolve) => { secondAsk = resolve; });
  const client = scripted({
    token: undefined,
    getToken: () => {
      asked += 1;
      if (asked === 1) return "refused";
      secondAsk();
      return new Promise((resolve) => { release = resolve; });
    },
  });
  const connected = client.connect();
  await until(() => ScriptedSocket.instances.length === 1);
  const socket = ScriptedSocket.instances[0];
  socket.open();
  socket.reply({ type: "auth_error", code: 401, message: "invalid signature", id: socket.last("auth").id });
  await askedAgain;
  client.disconnect();
  await assert.rejects(connected, /client disconnected/);
  release("good");
  await settle();  // ends with setImmediate: every promise job, where a retry would open its socket, has run
  assert.equal(ScriptedSocket.instances.length, 1, "no socket after disconnect()");
  assert.equal(client.state, "disconnected");
});

test("a connect() after a disconnect() while the provider is asked again opens one socket, not two", async () => {
  let asked = 0;
  let release;
  let secondAsk;
  const askedAgain = new Promise((resolve) => { secondAsk = resolve; });
  const client = scripted({
    token: undefined,
    getToken: () => {
      asked += 1;
      if (asked === 1) return "refused";
      if (asked > 2) return "good";
      secondAsk();
      return new Promise((resolve) => { release = resolve; });
    },
  });
  client.connect().catch(() => {});
  await until(() => ScriptedSocket.instances.length === 1);
  const refused = ScriptedSocket.instances[0];
  refused.open();
  refused.reply({ type: "auth_error", code: 401, message: "invalid signature", id: refused.last("auth").id });
  await askedAgain;
  client.disconnect();
  const connected = client.connect();
  release("also good");
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

test("a resubscription still refused with 409 after the retries ends the subscription with subscriptionEnded", async () => {
  const client = scripted({ random: () => 0 });
  let socket = await connectScripted(client);
  const ended = [];
  client.on("subscriptionEnded", (e) => ended.push(e));
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const unsubscribe = client.subscribe("rooms.a", () => {});
  await settle();
  socket.reply({ type: "subscribed", topic: "rooms.a", offset: 4, epoch: "e1", id: socket.last("subscribe").id });
  await unsubscribe.ready;
  socket.drop(1006);
  await until(() => ScriptedSocket.instances.length === 2);
  socket = ScriptedSocket.instances[1];
  socket.open();
  socket.reply({ type: "auth_success", userId: "alice", id: socket.last("auth").id });
  const gaveUp = new Promise((resolve) => client.on("error", resolve));
  // The first resubscribe and each of its 5 retries are refused with 409 as they arrive.
  const subscribes = () => socket.sent.filter((m) => m.type === "subscribe");
  for (let answered = 0; answered < 6; answered++) {
    await until(() => subscribes().length > answered);
    socket.reply({ type: "error", code: 409, message: "a subscribe with history to this topic is still reading", details: { topic: "rooms.a" }, id: subscribes()[answered].id });
  }
  const error = await gaveUp;
  assert.equal(error.code, 409);
  assert.equal(subscribes().length, 6, "no retry after the fifth");
  assert.equal(ended.length, 1, "the application is told the subscription ended");
  assert.equal(ended[0].topic, "rooms.a");
  assert.equal(ended[0].error, error);
  assert.deepEqual(errors.map((e) => e.code), [409]);
  client.disconnect();
});
