// The example chat app: plain DOM code on the Chorus JavaScript SDK, no framework, no build.
//
// Accounts and stored messages go through the node's HTTP API (/api/auth, /api/messages);
// everything live goes through one ChorusClient: new messages (`message.sent` events on
// `rooms.<name>` and on the user's own `messages.user.<id>`), presence, typing and read
// receipts. After a reconnect (a drained node, a network change) the open conversation is
// reloaded from /api/messages once its subscription is live again and merged by message id, so
// nothing posted meanwhile is lost even on a node without history; with history the SDK's
// `since` recovers the gap directly. A `gap` (the node's Redis link was down: messages posted
// through other nodes meanwhile never came) reloads it the same way.
//
// Served from the same origin as the node's /api and /ws (nginx in front, see README "Example
// chat app"). In development only (the page itself on localhost), `?api=http://host:port` points
// it at another origin (set CORS_ALLOWED_ORIGINS).
import { ChorusClient, ChorusAuthError, ChorusError } from "../../clients/js/chorus.js";

const params = new URLSearchParams(location.search);
// On a deployed page `?api=` would let any link send the login form's password (and the
// token) to another origin, so it is honoured only when the page is served from this machine.
const isLocalPage = ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname);
const apiBase = (isLocalPage && params.get("api")) || location.origin;
const wsURL = apiBase.replace(/^http/, "ws") + "/ws";
const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  user: null,
  client: null,
  current: null,          // { kind: "room"|"dm", key, topic, title }
  rooms: ["lobby", "random"],
  people: new Map(),      // userId -> username, from the node's accounts only
  members: [],            // the open room's members (user ids), as the node last listed them
  messages: new Map(),    // conversation key -> Map(messageId -> message)
  unread: new Map(),      // conversation key -> count
  typing: new Map(),      // userId -> timer
  readBy: new Map(),      // messageId -> Set(userId)
  presenceLeave: null,
  roomUnsubscribe: null,
};

// MARK: HTTP

async function api(path, { method = "GET", body, token = state.token } = {}) {
  const response = await fetch(apiBase + path, {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch { /* a proxy's error page (nginx's 502) is HTML */ }
  if (!response.ok) throw new ChorusError(json.message ?? `HTTP ${response.status}`, { code: response.status, details: json.details });
  return json;
}

/** A random (version 4) UUID; `crypto.randomUUID` exists only in secure contexts (HTTPS, localhost). */
function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Posts a message under an id of our own, retrying what may not have reached a node (no
 * answer, or a proxy's 502/503/504, e.g. while a node drains): the node stores an id once and
 * answers a retry with the message it stored.
 */
async function postMessage(body) {
  const message = { id: newId(), ...body };
  // The author's token throughout: retries of a post must not go out as a user who logged in
  // at the prompt meanwhile.
  const [client, token] = [state.client, state.token];
  for (let attempt = 1; ; attempt++) {
    try {
      return await api("/api/messages", { method: "POST", body: message, token });
    } catch (error) {
      const unanswered = !(error instanceof ChorusError) || [502, 503, 504].includes(error.code);
      if (!unanswered || attempt === 5 || state.client !== client) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
    }
  }
}

// MARK: login

async function authenticate(kind) {
  $("login-error").textContent = "";
  try {
    const reply = await api(`/api/auth/${kind}`, { method: "POST", body: { username: $("username").value, password: $("password").value } });
    state.token = reply.token;
    if (state.client && reply.user.id === state.user.id) {
      // Logged in again after the session expired: the open connection (or a stopped client)
      // goes on with the new token, and each conversation gets what it missed.
      $("login").style.display = "none";
      state.client.setToken(state.token);
      return;
    }
    if (state.client) {
      // Another account at the prompt: nothing of the previous user's stays on the page.
      state.client.disconnect();
      for (const timer of state.typing.values()) clearTimeout(timer);
      for (const map of [state.people, state.messages, state.unread, state.typing, state.readBy, lookups]) map.clear();
      Object.assign(state, { current: null, presenceLeave: null, roomUnsubscribe: null, rooms: ["lobby", "random"], members: [] });
    }
    state.user = reply.user;
    state.people.set(reply.user.id, reply.user.username);
    start();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

$("login").addEventListener("submit", (event) => { event.preventDefault(); authenticate("login"); });
$("register-button").addEventListener("click", () => authenticate("register"));

// MARK: connection

function start() {
  $("login").style.display = "none";
  $("app").classList.add("open");
  $("me").textContent = state.user.username;
  $("me").dataset.userId = state.user.id;
  const client = new ChorusClient(wsURL, { getToken: () => state.token });
  state.client = client;
  window.chorus = client;  // for the console (and the browser test)
  // Between two reconnect attempts the client is `disconnected` with `willReconnect`: still reconnecting to the user.
  client.on("state", ({ state: s, willReconnect }) => {
    const shown = s === "disconnected" && willReconnect ? "reconnecting" : s;
    $("status").textContent = shown;
    $("status").dataset.state = shown;
  });
  // Reload once the conversation's subscription is live again on the new connection (a failed
  // recovery included): a reload on `connected` could read the store before a message committed
  // that then went out before the resubscribe, and that message would be missed by both.
  client.on("subscribed", ({ topic, resubscribed }) => { if (resubscribed && topic === liveTopic(state.current)) reloadAfterReconnect(); });
  // The node sends it once its Redis link is live again, so a reload now misses nothing. Direct
  // messages come on our own topic, not addressed to the user: a gap without topic is not ours.
  client.on("gap", ({ topic }) => { if (topic !== undefined && topic === liveTopic(state.current)) loadHistory(state.current); });
  client.on("error", (error) => console.warn("chorus:", error.message));
  // The login token (AUTH_TOKEN_TTL) has no refresh: when it expires, or is refused, the user
  // logs in again, and the page goes on where it was.
  client.on("authExpired", sessionExpired);
  client.on("state", ({ state: s, error }) => { if (s === "disconnected" && error instanceof ChorusAuthError) sessionExpired(); });
  client.on("typing", onTyping);
  client.on("presence", () => refreshPresence());
  client.subscribe(`messages.user.${state.user.id}`, onEvent);
  client.connect().catch((error) => { $("status").textContent = "error: " + error.message; });
  renderRooms();
  openConversation({ kind: "room", key: "room:lobby", topic: "rooms.lobby", title: "# lobby" });
}

// Back online (a laptop waking, a phone leaving a tunnel): reconnect now rather than after the
// backoff's wait. Only while reconnecting: a client stopped on purpose stays stopped.
window.addEventListener("online", () => {
  if (state.client?.state === "reconnecting") state.client.connect().catch(() => {});
});

function sessionExpired() {
  $("login-error").textContent = "Your session expired: log in again.";
  $("password").value = "";
  $("login").style.display = "";
}

/** The subscription that carries a conversation's new messages: the room's, or our own for direct messages. */
function liveTopic(conversation) {
  if (!conversation) return undefined;
  return conversation.kind === "room" ? conversation.topic : `messages.user.${state.user.id}`;
}

async function reloadAfterReconnect() {
  if (state.current) await loadHistory(state.current);
  refreshPresence();
}

// MARK: conversations

function conversationOf(message) {
  if (message.topic?.startsWith("rooms.")) return `room:${message.topic.slice(6)}`;
  const other = message.authorId === state.user.id ? message.recipientId : message.authorId;
  return `dm:${other}`;
}

function store(message) {
  const key = conversationOf(message);
  if (!state.messages.has(key)) state.messages.set(key, new Map());
  // Ids are the node's and unique: one already held under another author is a forgery.
  const held = state.messages.get(key).get(message.id);
  if (held && held.authorId !== message.authorId) return { key, fresh: false };
  const known = held !== undefined;
  state.messages.get(key).set(message.id, message);
  learnName(message.authorId);
  return { key, fresh: !known };
}

/**
 * Looks up, once, a user's name in the node's accounts. Names come only from there: a message's
 * metadata and a member's presence data are what their publisher wrote, and anyone could
 * write "alice" in them.
 */
const lookups = new Set();
async function learnName(userId) {
  if (state.people.has(userId) || lookups.has(userId)) return;
  lookups.add(userId);
  try {
    const user = await api(`/api/users/${encodeURIComponent(userId)}`);
    state.people.set(user.id, user.username);
    render();
    renderPeople();
    renderPresence();
  } catch {
    // Not an account of this node (a token from elsewhere): the id stays on screen.
  }
}

/**
 * Whether a stored-message event is what it says (docs/protocol.md, "Which events to believe").
 * Any client may publish a `message.sent` with any data, so it must come from the message's
 * author (`metadata.senderId`, which only the node sets) and arrive on the message's own topic:
 * the room's, or our private topic for a direct message to or from us. The node refuses the
 * other three event types from clients; they are checked the same way all the same.
 */
function believable(event) {
  const data = event.data ?? {};
  const sender = event.metadata?.senderId;
  if (event.eventType === "message.read") return data.userId === sender;
  if (data.authorId !== sender) return false;
  if (event.topic === `messages.user.${state.user.id}`) {
    return !data.topic && (data.recipientId === state.user.id || data.authorId === state.user.id);
  }
  return data.topic === event.topic && !data.recipientId;
}

function onEvent(event) {
  if (!["message.sent", "message.updated", "message.deleted", "message.read"].includes(event.eventType)) return;
  if (!believable(event)) return console.warn("ignored an event that is not what it says:", event);
  if (event.eventType === "message.read") return onRead(event.data);
  if (event.eventType === "message.deleted") {
    for (const list of state.messages.values()) list.delete(event.data.id);
    return render();
  }
  const { key, fresh } = store(event.data);
  if (event.data.authorId !== state.user.id) clearTyping(event.data.authorId);
  if (state.current?.key === key) { render(); markRead(event.data); }
  else if (fresh && event.data.authorId !== state.user.id) {
    state.unread.set(key, (state.unread.get(key) ?? 0) + 1);
  }
  renderRooms();
  renderPeople();
}

async function loadHistory(conversation) {
  const query = conversation.kind === "room" ? `topic=${encodeURIComponent(conversation.topic)}` : `with=${encodeURIComponent(conversation.key.slice(3))}`;
  const client = state.client;
  try {
    const page = await api(`/api/messages?${query}&limit=50`);
    if (state.client !== client) return;  // another user logged in meanwhile: not theirs
    for (const message of page.messages) store(message);
    render();
    // Another conversation opened meanwhile: this one's messages are not on screen, not read.
    if (state.current?.key !== conversation.key) return;
    const newest = page.messages[0];
    if (newest && newest.authorId !== state.user.id) markRead(newest);
  } catch (error) {
    console.warn("history:", error.message);
  }
}

function openConversation(conversation) {
  state.current = conversation;
  state.unread.delete(conversation.key);
  $("title").textContent = conversation.title;
  $("title").dataset.key = conversation.key;
  $("typing").textContent = "";
  state.typing.clear();
  state.presenceLeave?.();
  state.presenceLeave = null;
  state.members = [];
  state.roomUnsubscribe?.();
  state.roomUnsubscribe = null;
  if (conversation.kind === "room") {
    // One subscription for the room's messages, typing and presence; joining shows us as online.
    state.roomUnsubscribe = state.client.join(conversation.topic, {}, { onMessage: onEvent });
    state.roomUnsubscribe.ready.then(() => refreshPresence(), () => {});
  }
  render();
  renderRooms();
  renderPeople();
  loadHistory(conversation);
}

// MARK: sending

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = $("text").value.trim();
  if (!content || !state.current) return;
  $("text").value = "";
  const topicOrRecipient = state.current.kind === "room" ? { topic: state.current.topic } : { recipientId: state.current.key.slice(3) };
  if (state.current.kind === "room") state.client.stopTyping(state.current.topic);
  const client = state.client;
  try {
    const message = await postMessage({ ...topicOrRecipient, content });
    if (state.client !== client) return;  // another user logged in meanwhile
    store(message);
    render();
  } catch (error) {
    showNotice("not sent: " + error.message);
  }
});

$("text").addEventListener("input", () => {
  if (state.current?.kind === "room" && $("text").value) state.client.typing(state.current.topic);
});

$("new-room").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("room-name").value.trim().toLowerCase().replace(/[^a-z0-9_-]/g, "-");
  if (!name) return;
  if (!state.rooms.includes(name)) state.rooms.push(name);
  $("room-name").value = "";
  openConversation({ kind: "room", key: `room:${name}`, topic: `rooms.${name}`, title: `# ${name}` });
});

// MARK: typing, presence, receipts

function onTyping(event) {
  if (event.userId === state.user.id || event.topic !== state.current?.topic) return;
  clearTimeout(state.typing.get(event.userId));
  if (event.state === "start") state.typing.set(event.userId, setTimeout(() => clearTyping(event.userId), 6000));
  else state.typing.delete(event.userId);
  renderTyping();
}

function clearTyping(userId) {
  clearTimeout(state.typing.get(userId));
  if (state.typing.delete(userId)) renderTyping();
}

function renderTyping() {
  const names = [...state.typing.keys()].map((id) => state.people.get(id) ?? id);
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
  $("typing").dataset.users = names.join(",");
}

async function refreshPresence() {
  const list = $("presence");
  if (state.current?.kind !== "room") { list.replaceChildren(); return; }
  const [client, topic] = [state.client, state.current.topic];
  try {
    const { members } = await client.members(topic);
    if (state.client !== client || state.current?.topic !== topic) return;  // another user, or another room meanwhile
    state.members = members.map((member) => member.userId);
    for (const id of state.members) learnName(id);
    list.dataset.supported = "true";
    renderPresence();
  } catch (error) {
    if (state.client !== client || state.current?.topic !== topic) return;
    list.dataset.supported = "false";
    list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "(presence not available)" }));
  }
}

function renderPresence() {
  const list = $("presence");
  if (state.current?.kind !== "room" || list.dataset.supported !== "true") return;
  list.replaceChildren(...state.members.map((id) => {
    const li = document.createElement("li");
    li.textContent = state.people.get(id) ?? id;
    li.dataset.userId = id;
    li.addEventListener("click", () => openDirect(id));
    return li;
  }));
}

function markRead(message) {
  if (message.authorId === state.user.id || document.visibilityState === "hidden") return;
  state.client.markRead(message.id).catch(() => {});  // nodes without read receipts answer an error
}

// What arrived while the page was hidden went unread (markRead skips it then): once the page
// is seen again, the open conversation's newest message from someone else is read.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible" || !state.client || !state.current) return;
  const newest = sortedMessages(state.current.key).findLast((message) => message.authorId !== state.user.id);
  if (newest) markRead(newest);
});

function onRead({ messageId, userId }) {
  if (!state.readBy.has(messageId)) state.readBy.set(messageId, new Set());
  state.readBy.get(messageId).add(userId);
  render();
}

// MARK: rendering

function openDirect(userId) {
  if (userId === state.user.id) return;
  openConversation({ kind: "dm", key: `dm:${userId}`, topic: null, title: `@ ${state.people.get(userId) ?? userId}` });
}

function renderRooms() {
  $("rooms").replaceChildren(...state.rooms.map((name) => {
    const key = `room:${name}`;
    const li = document.createElement("li");
    li.textContent = `# ${name}`;
    li.dataset.room = name;
    if (state.current?.key === key) li.classList.add("active");
    const unread = state.unread.get(key);
    if (unread) li.append(Object.assign(document.createElement("span"), { className: "unread", textContent: unread }));
    li.addEventListener("click", () => openConversation({ kind: "room", key, topic: `rooms.${name}`, title: `# ${name}` }));
    return li;
  }));
}

function renderPeople() {
  const ids = [...state.people.keys()].filter((id) => id !== state.user.id);
  $("people").replaceChildren(...ids.map((id) => {
    const key = `dm:${id}`;
    const li = document.createElement("li");
    li.textContent = `@ ${state.people.get(id)}`;
    li.dataset.userId = id;
    if (state.current?.key === key) li.classList.add("active");
    const unread = state.unread.get(key);
    if (unread) li.append(Object.assign(document.createElement("span"), { className: "unread", textContent: unread }));
    li.addEventListener("click", () => openDirect(id));
    return li;
  }));
}

/** A conversation's messages, oldest first. */
function sortedMessages(key) {
  return [...(state.messages.get(key)?.values() ?? [])]
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
}

function render() {
  const list = sortedMessages(state.current?.key);
  const box = $("messages");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 20;
  box.replaceChildren(...list.map((message) => {
    const div = document.createElement("div");
    div.className = "message";
    div.dataset.id = message.id;
    div.dataset.author = state.people.get(message.authorId) ?? message.authorId;
    div.append(
      Object.assign(document.createElement("span"), { className: "author", textContent: div.dataset.author }),
      Object.assign(document.createElement("span"), { className: "content", textContent: message.content }),
      Object.assign(document.createElement("span"), { className: "time", textContent: new Date(message.createdAt).toLocaleTimeString() }),
    );
    const readers = [...(state.readBy.get(message.id) ?? [])].filter((id) => id !== message.authorId);
    if (message.authorId === state.user.id && readers.length) {
      div.append(Object.assign(document.createElement("span"), { className: "receipt", textContent: `✓ read by ${readers.map((id) => state.people.get(id) ?? id).join(", ")}` }));
    }
    return div;
  }));
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function showNotice(text) {
  $("notice").textContent = text;
  $("notice").classList.add("shown");
  setTimeout(() => $("notice").classList.remove("shown"), 5000);
}
