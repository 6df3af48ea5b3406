// Compiled (not run) by types.test.mjs with `tsc --noEmit --strict`: the API as an application
// uses it must type-check, and each misuse marked @ts-expect-error must not.
import ChorusClientDefault, {
  ChorusClient, ChorusAuthError, ChorusError, ChorusQueueFullError, CloseCode,
  type Message, type PresenceEvent, type PresenceMember, type PresenceState, type PublishedReply, type StateEvent, type Unsubscribe,
} from "../../chorus.js";

interface ChatLine { text: string; author?: string }

// JSON.rawJSON as TypeScript's lib is to declare it (not in it yet): an interface, which a
// type with an index signature (JSONValue's object) does not accept.
interface LibRawJSON { readonly rawJSON: string }
declare global { interface JSON { rawJSON(text: string): LibRawJSON } }

async function main(): Promise<void> {
  const client = new ChorusClient("wss://chat.example.com/ws", {
    getToken: async () => "token",
    maxReconnectDelay: 10_000,
    offlineQueueSize: 50,
  });
  const same: typeof ChorusClientDefault = ChorusClient;
  void same;
  const offState: () => void = client.on("state", (event: StateEvent) => console.log(event.state, event.previous));
  offState();
  client.on("recoveryFailed", (event) => console.log(event.topic, event.since?.offset, event.since?.epoch, event.reason));
  // @ts-expect-error: a gap's recoveryFailed has no since: check it first
  client.on("recoveryFailed", (event) => console.log(event.since.offset));
  client.on("gap", (event) => console.log(event.topic ?? "messages to me", event.timestamp.length));
  client.on("error", (error) => { if (error instanceof ChorusAuthError) console.log(error.code); });
  client.on("disconnected", (event) => { if (event.code === CloseCode.goingAway) console.log("drained"); });
  client.on("message", (m) => console.log(m.topic === undefined ? `to me: ${m.eventType}` : `${m.topic.length}`));
  await client.connect();

  const unsubscribe: Unsubscribe = client.subscribe<ChatLine>("rooms.lobby", (message: Message<ChatLine>) => {
    const text: string = message.data.text;
    const offset: number | undefined = message.offset;
    console.log(text, offset, message.metadata.senderId);
  }, { replay: 20 });
  const reply = await unsubscribe.ready;
  console.log(reply.recovered, reply.offset, reply.epoch);
  unsubscribe();

  const leave = client.join("rooms.lobby", { name: "Alice" }, { onPresence: (e) => console.log(e.event, e.event === "resync" ? e.topic : e.member.userId) });
  // @ts-expect-error: a resync has no member: narrow on event first
  client.on("presence", (e) => console.log(e.member.userId));
  client.on("presence", (e) => console.log(e.member?.userId ?? `resync of ${e.topic}`));

  // docs/client-guide.md's presence snippet, as written there.
  const present = new Map<string, PresenceMember>();
  let held: PresenceEvent[] | undefined;  // events that come while members() is asked

  async function reload(topic: string): Promise<void> {
    const mine: PresenceEvent[] = (held = []);
    // One page (up to 1,000 members; follow `truncated` for more). A failed read keeps the list.
    const state = await client.members(topic).catch(() => undefined);
    if (held !== mine) return;  // a newer reload is on its way
    held = undefined;
    if (state) {
      present.clear();
      for (const member of state.members) present.set(member.userId, member);
    }
    mine.forEach(onPresence);
  }

  function onPresence(event: PresenceEvent): void {
    if (event.event === "resync") void reload(event.topic);  // events may be missing: read the list again
    else if (held) held.push(event);
    else if (event.event === "leave") present.delete(event.member.userId);
    else present.set(event.member.userId, event.member);
  }

  await client.join("rooms.lobby", { name: "Alice" }, { onPresence }).ready;
  await reload("rooms.lobby");  // the first subscribe brings no resync
  const state: PresenceState = await client.members("rooms.lobby");
  console.log(state.count, state.members.map((m) => m.userId));
  leave();
  client.leave("rooms.lobby");
  client.subscribe("rooms.*", { onTyping: (e) => console.log(e.userId, e.state), onMessage: (m) => console.log(m.topic) });
  client.typing("rooms.lobby");
  client.stopTyping("rooms.lobby");

  try {
    const published: PublishedReply = await client.publish("rooms.lobby", { text: "hi" }, { messageId: "k1", eventType: "message.sent" });
    console.log(published.duplicate, published.offset);
  } catch (error) {
    if (error instanceof ChorusQueueFullError) console.log("queue full");
    else if (error instanceof ChorusError) console.log(error.code, error.details);
  }
  const read = await client.markRead("m1");
  console.log(read.readAt);

  // Numbers past 2^53 published exactly, as the client guide recommends.
  await client.publish("rooms.lobby", { n: JSON.rawJSON("12345678901234567890"), list: [JSON.rawJSON("1.10"), 2] });
  await client.publish("rooms.lobby", JSON.rawJSON("12345678901234567890"));
  // @ts-expect-error: data must be JSON
  await client.publish("rooms.lobby", () => 1);
  // @ts-expect-error: data must be JSON, nested too
  await client.publish("rooms.lobby", { at: new Date() });
  // @ts-expect-error: no such event
  client.on("connectd", () => {});
  // @ts-expect-error: state is read-only
  client.state = "connected";
  // @ts-expect-error: a handler or an options object, not a number
  client.subscribe("rooms.lobby", 5);
  client.disconnect();
}

void main();
