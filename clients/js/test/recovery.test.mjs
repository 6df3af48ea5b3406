// Recovery with history, on two nodes behind nginx with
// HISTORY_SIZE=5 on rooms.** only: a client away for fewer messages than the history holds gets them all on
// reconnecting; one away for more is told with `recoveryFailed` and continues from the node's
// position. Skipped on a node without history.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { startCluster, probeFeatures } from "./support/cluster.mjs";
import { client, closeAll, Inbox, nextEvent, routed, TestWebSocket } from "./support/client.mjs";

let cluster;
let features;

before(async () => {
  cluster = await startCluster("recovery", { nodes: 2, env: { HISTORY_SIZE: "5", HISTORY_TOPICS: "rooms.**" } });
  features = await probeFeatures(cluster.wsURL, TestWebSocket);
});

after(async () => {
  closeAll();
  const problems = cluster ? await cluster.stop() : [];
  assert.deepEqual(problems, [], `nodes ended badly (logs in ${cluster?.directory})`);
});

/** A subscriber on node 1 that has seen one message from a publisher on node 2. */
async function subscribedPair() {
  const topic = `rooms.${randomUUID().slice(0, 8)}`;
  const subscriber = client(cluster.node(1).wsURL, "sub", { publishAcks: features.publishAcks });
  const publisher = client(cluster.node(2).wsURL, "pub", { publishAcks: features.publishAcks });
  await subscriber.connect();
  await publisher.connect();
  const inbox = new Inbox();
  const failures = [];
  await subscriber.subscribe(topic, { onMessage: inbox.handler, onRecoveryFailed: (e) => failures.push(e) }).ready;
  await routed(inbox, publisher, topic);
  await publisher.publish(topic, { n: 0 });
  await inbox.until(1);
  return { topic, subscriber, publisher, inbox, failures };
}

describe("recovery after being away", () => {
  test("away for fewer messages than the history holds: all of them arrive on reconnecting, in order, once", async (t) => {
    if (!features.history) return t.skip("the node has no history yet");
    const { topic, subscriber, publisher, inbox, failures } = await subscribedPair();
    subscriber.disconnect();
    for (let n = 1; n <= 3; n++) await publisher.publish(topic, { n });
    const resubscribed = nextEvent(subscriber, "subscribed", (e) => e.topic === topic && e.resubscribed);
    await subscriber.connect();
    const reply = await resubscribed;
    assert.equal(reply.recovered, true);
    await publisher.publish(topic, { n: 4 });
    await inbox.until((ms) => ms.some((m) => m.data.n === 4));
    assert.deepEqual(inbox.data(), [0, 1, 2, 3, 4].map((n) => ({ n })));
    assert.deepEqual(failures, []);
  });

  test("a topic unsubscribed and subscribed again (a component remounted) resumes from client.positions: what came between arrives once, in order", async (t) => {
    if (!features.history) return t.skip("the node has no history yet");
    const topic = `rooms.${randomUUID().slice(0, 8)}`;
    const subscriber = client(cluster.node(1).wsURL, "sub", { publishAcks: features.publishAcks });
    const publisher = client(cluster.node(2).wsURL, "pub", { publishAcks: features.publishAcks });
    await subscriber.connect();
    await publisher.connect();
    const inbox = new Inbox();
    const unmount = subscriber.subscribe(topic, inbox.handler);
    await unmount.ready;
    await routed(inbox, publisher, topic);
    await publisher.publish(topic, { n: 0 });
    await inbox.until(1);
    unmount();
    const position = subscriber.positions.get(topic);
    assert.ok(position, "the position of the topic left is kept");
    for (let n = 1; n <= 3; n++) await publisher.publish(topic, { n });
    const again = new Inbox();
    await subscriber.subscribe(topic, again.handler, { since: position }).ready;
    await publisher.publish(topic, { n: 4 });
    await again.until((ms) => ms.some((m) => m.data.n === 4));
    assert.deepEqual(again.data(), [1, 2, 3, 4].map((n) => ({ n })));
  });

  test("away for more messages than the history holds: recoveryFailed, then live messages from the node's position", async (t) => {
    if (!features.history) return t.skip("the node has no history yet");
    const { topic, subscriber, publisher, inbox, failures } = await subscribedPair();
    const before = subscriber.positions.get(topic);
    subscriber.disconnect();
    for (let n = 1; n <= 8; n++) await publisher.publish(topic, { n });
    const failed = nextEvent(subscriber, "recoveryFailed", (e) => e.topic === topic);
    await subscriber.connect();
    const event = await failed;
    assert.equal(event.recovered, false);
    assert.deepEqual(event.since, before);
    assert.match(event.reason, /no longer kept/, "the event says why");
    assert.equal(failures.length, 1);
    assert.deepEqual(subscriber.positions.get(topic), { offset: event.offset, epoch: event.epoch });
    await publisher.publish(topic, { n: 9 });
    await inbox.until((ms) => ms.some((m) => m.data.n === 9));
    assert.deepEqual(inbox.data(), [{ n: 0 }, { n: 9 }], "nothing of the unrecoverable gap is made up");
  });

  test("a second handler of a live topic with since behind the topic's position starts live and hears recoveryFailed; one at the position does not", async (t) => {
    if (!features.history) return t.skip("the node has no history yet");
    const { topic, subscriber, publisher, inbox } = await subscribedPair();
    const current = subscriber.positions.get(topic);
    const behind = { offset: current.offset - 1, epoch: current.epoch };
    const late = new Inbox();
    const level = new Inbox();
    const lateFailures = [];
    const levelFailures = [];
    const failed = nextEvent(subscriber, "recoveryFailed", (e) => e.topic === topic);
    await subscriber.subscribe(topic, { onMessage: late.handler, since: behind, onRecoveryFailed: (e) => lateFailures.push(e) }).ready;
    await subscriber.subscribe(topic, { onMessage: level.handler, since: current, onRecoveryFailed: (e) => levelFailures.push(e) }).ready;
    const event = await failed;
    assert.deepEqual(event.since, behind);
    assert.equal(event.recovered, false);
    await publisher.publish(topic, { n: 1 });
    await late.until(1);
    await level.until(1);
    await inbox.until(2);
    assert.deepEqual(late.data(), [{ n: 1 }], "live from here");
    assert.deepEqual(level.data(), [{ n: 1 }]);
    assert.equal(lateFailures.length, 1);
    assert.deepEqual(levelFailures, []);
  });

  test("a replay subscription to a topic with nothing published yet recovers what was published while away", async (t) => {
    if (!features.history) return t.skip("the node has no history yet");
    const topic = `rooms.${randomUUID().slice(0, 8)}`;
    const subscriber = client(cluster.node(1).wsURL, "sub", { publishAcks: features.publishAcks });
    const publisher = client(cluster.node(2).wsURL, "pub", { publishAcks: features.publishAcks });
    await subscriber.connect();
    await publisher.connect();
    const inbox = new Inbox();
    const failures = [];
    const first = await subscriber.subscribe(topic, { onMessage: inbox.handler, onRecoveryFailed: (e) => failures.push(e), replay: 10 }).ready;
    assert.equal(first.offset, 0, "nothing published on the topic yet");
    assert.deepEqual(subscriber.positions.get(topic), { offset: 0, epoch: first.epoch });
    subscriber.disconnect();
    for (let n = 1; n <= 3; n++) await publisher.publish(topic, { n });
    const resubscribed = nextEvent(subscriber, "subscribed", (e) => e.topic === topic && e.resubscribed);
    await subscriber.connect();
    const reply = await resubscribed;
    assert.equal(reply.recovered, true, "the resubscription asked for everything after offset 0");
    await publisher.publish(topic, { n: 4 });
    await inbox.until((ms) => ms.some((m) => m.data.n === 4));
    assert.deepEqual(inbox.data(), [1, 2, 3, 4].map((n) => ({ n })));
    assert.deepEqual(inbox.messages.map((m) => m.offset), [1, 2, 3, 4]);
    assert.deepEqual(failures, []);
  });

  test("replay asked on a topic without history: the node's 400 is absorbed and the subscription made without it", async (t) => {
    if (!features.history) return t.skip("the node has no history yet");
    const subscriber = client(cluster.wsURL, "sub", { publishAcks: features.publishAcks });
    await subscriber.connect();
    const errors = [];
    subscriber.on("error", (e) => errors.push(e));
    const inbox = new Inbox();
    const topic = `plain.${randomUUID().slice(0, 8)}`;
    const reply = await subscriber.subscribe(topic, inbox.handler, { replay: 10 }).ready;
    assert.equal(reply.type, "subscribed");
    assert.equal(reply.offset, undefined, "no history position on this topic");
    await routed(inbox, subscriber, topic);
    await subscriber.publish(topic, { n: 1 });
    await inbox.until(1);
    assert.deepEqual(errors, []);
  });
});

describe("a pattern subscription and a concrete one of the same topic", () => {
  test("replay and since on a topic a pattern delivered already: the concrete subscription gets its page, the pattern nothing twice", async (t) => {
    if (!features.history) return t.skip("the node has no history yet");
    const room = `rooms.${randomUUID().slice(0, 8)}`;
    const [a, b] = [`${room}.a`, `${room}.b`];
    const subscriber = client(cluster.node(1).wsURL, "sub", { publishAcks: features.publishAcks });
    const publisher = client(cluster.node(2).wsURL, "pub", { publishAcks: features.publishAcks });
    await subscriber.connect();
    await publisher.connect();
    const all = new Inbox();
    await subscriber.subscribe(`${room}.*`, all.handler).ready;
    await routed(all, publisher, a);
    for (const topic of [a, b]) for (let n = 1; n <= 3; n++) await publisher.publish(topic, { n });
    await all.until(6);
    const ofTopic = (inbox, topic) => inbox.messages.filter((m) => m.topic === topic).map((m) => m.data.n);

    // The pattern delivered a's offset of n=3: a replay of 3 is n=1..3, all below it.
    const replayed = new Inbox();
    await subscriber.subscribe(a, replayed.handler, { replay: 3 }).ready;
    // An older position than the pattern's on b: what came after n=1.
    const first = all.messages.find((m) => m.topic === b && m.data.n === 1);
    const recovered = new Inbox();
    const reply = await subscriber.subscribe(b, recovered.handler, { since: { offset: first.offset, epoch: first.epoch } }).ready;
    assert.equal(reply.recovered, true);
    await replayed.until(3, "the replay page");
    await recovered.until(2, "the page after since");

    for (const topic of [a, b]) await publisher.publish(topic, { n: 4 });
    await replayed.until(4);
    await recovered.until(3);
    await all.until(8);
    assert.deepEqual(replayed.data(), [1, 2, 3, 4].map((n) => ({ n })));
    assert.deepEqual(recovered.data(), [2, 3, 4].map((n) => ({ n })));
    assert.deepEqual(ofTopic(all, a), [1, 2, 3, 4], "the pattern got a's messages once each");
    assert.deepEqual(ofTopic(all, b), [1, 2, 3, 4], "and b's");
    assert.deepEqual(subscriber.positions.get(a), { offset: replayed.messages.at(-1).offset, epoch: replayed.messages.at(-1).epoch });
    assert.deepEqual(subscriber.positions.get(b), { offset: recovered.messages.at(-1).offset, epoch: recovered.messages.at(-1).epoch });
  });
});

describe("leaving presence while subscribed", () => {
  test("the last join of a topic without history ending while a plain handler stays: the watcher sees the leave, and the handler misses none of the messages published meanwhile", async () => {
    const topic = `live.${randomUUID().slice(0, 8)}`;  // outside HISTORY_TOPICS: nothing to recover from
    const bob = client(cluster.node(1).wsURL, "bob", { publishAcks: features.publishAcks });
    const alice = client(cluster.node(2).wsURL, "alice", { publishAcks: features.publishAcks });
    await bob.connect();
    await alice.connect();
    const presence = new Inbox();
    await alice.subscribe(topic, { onPresence: presence.handler, presenceEvents: true }).ready;
    const inbox = new Inbox();
    await bob.subscribe(topic, inbox.handler).ready;
    const leave = bob.join(topic, { name: "Bob" });
    await leave.ready;
    await presence.until((es) => es.some((e) => e.event === "join" && e.member.userId === "bob"), "bob's join");
    await routed(inbox, alice, topic);
    // Bob leaves in the middle of a run of messages.
    for (let n = 0; n < 200; n++) {
      await alice.publish(topic, { n });
      if (n === 50) leave();
    }
    await presence.until((es) => es.some((e) => e.event === "leave" && e.member.userId === "bob"), "bob's leave");
    await inbox.until(200);
    assert.deepEqual(inbox.data(), Array.from({ length: 200 }, (_, n) => ({ n })), "every message, once, in order");
    const members = await alice.members(topic);
    assert.deepEqual(members.members, [], "bob is no member");
  });
});
