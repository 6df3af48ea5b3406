// Chorus client SDK for browsers and Node 20+: one ES module, no dependencies, no build step.
//
//   import { ChorusClient } from "./chorus.js";
//   const client = new ChorusClient("wss://chat.example.com/ws", { getToken: fetchToken });
//   const unsubscribe = client.subscribe("rooms.lobby", (message) => console.log(message.data));
//   await client.publish("rooms.lobby", { text: "hello" });
//
// What it does for the application: authenticates with a token or a token provider (asked again
// before every reconnect and when the node says `auth_expired`), reconnects with capped
// exponential backoff and full jitter (at once after a drain's close 1001, never in a loop on an
// auth failure), resubscribes every topic with `since` from the last position it saw (and tells
// the application when the node could not recover), matches replies to requests by `id`, queues
// publishes made while disconnected (bounded, each with a `messageId` so a retry is not
// delivered twice), and offers presence, typing and read-receipt helpers.
// The protocol is described in docs/protocol.md; the behaviour in docs/client-guide.md.
//
// Everything runs on the JavaScript event loop: no locks, one socket at a time.

/** Base class of every error the SDK rejects with or emits. */
export class ChorusError extends Error {
  constructor(message, { code = 0, details = undefined, reply = undefined, cause = undefined } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "ChorusError";
    /** The node's error code (400, 401, 403, 409, 429, ...), 0 for errors of the client itself. */
    this.code = code;
    /** The node's `details` object, when it sent one. */
    this.details = details;
    /** The node's whole reply, when there was one. */
    this.reply = reply;
  }
}

/** The node refused the token (`auth_error`), or the connection was closed for authentication. */
export class ChorusAuthError extends ChorusError {
  constructor(message, options) { super(message, options); this.name = "ChorusAuthError"; }
}

/** A request got no reply within `requestTimeout` (a publish: on a connection that answered a ping after it). */
export class ChorusTimeoutError extends ChorusError {
  constructor(message, options) { super(message, options); this.name = "ChorusTimeoutError"; }
}

/** A publish could not be queued: the offline queue holds `offlineQueueSize` publishes already. */
export class ChorusQueueFullError extends ChorusError {
  constructor(message, options) { super(message, options); this.name = "ChorusQueueFullError"; }
}

/** The request was cut off: the client was closed, or the connection dropped before a reply. */
export class ChorusClosedError extends ChorusError {
  constructor(message, options) { super(message, options); this.name = "ChorusClosedError"; }
}

/**
 * Close codes the node uses; see the README's "Protocol" section, paragraph "Close codes".
 * 1007, 1008 and 1009 carry RFC 6455's names. 4001 is the node's `tokenExpired` (a token that
 * expired and was not renewed); `unauthorized` is the same code, which the client also reports
 * when it stops because the node refused its token.
 */
export const CloseCode = Object.freeze({
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  invalidData: 1007,
  policyViolation: 1008,
  tooBig: 1009,
  pingTimeout: 4000,
  tokenExpired: 4001,
  unauthorized: 4001,
  slowConsumer: 4008,
});

/** The longest delay `setTimeout` honours (ms). */
const MAX_TIMER_DELAY = 2 ** 31 - 1;

/**
 * The largest client frame (UTF-8 bytes) a node accepts when its `auth_success` does not say
 * (`maxMessageSize`, from nodes that announce it): its default WEBSOCKET_MAX_MESSAGE_SIZE.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 1048576;

/** The length of `text` in UTF-8 bytes. */
function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { bytes += 4; i++; }
    else bytes += 3;
  }
  return bytes;
}

/** The 413 a frame over the connection's limit is refused with, before it is sent. */
function tooLargeError(size, limit, type) {
  return new ChorusError(`'${type}' frame of ${size} bytes exceeds the node's maximum message size of ${limit} bytes`, {
    code: 413, details: { size, limit },
  });
}

const DEFAULTS = Object.freeze({
  reconnect: true,
  minReconnectDelay: 500,
  maxReconnectDelay: 20000,
  reconnectFactor: 2,
  stableConnectionAfter: 10000,
  requestTimeout: 15000,
  connectTimeout: 15000,
  offlineQueueSize: 100,
  publishAcks: true,
  pingInterval: 25000,
  pongTimeout: 10000,
  rateLimitRetries: 4,
  typingThrottle: 2000,
  typingTimeout: 4000,
  renewBefore: 30000,
});

/** Whether `pattern` (with `*` for one segment and `**` for one or more) matches `topic`. */
export function topicMatches(pattern, topic) {
  const p = pattern.split(".");
  const t = topic.split(".");
  const match = (i, j) => {
    if (i === p.length) return j === t.length;
    if (p[i] === "**") {
      for (let k = j + 1; k <= t.length; k++) if (match(i + 1, k)) return true;
      return false;
    }
    if (j === t.length) return false;
    return (p[i] === "*" || p[i] === t[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}

/** Whether two member data values are the same JSON (undefined: not a member). */
function samePresence(one, other) {
  if (one === undefined || other === undefined) return one === other;
  return JSON.stringify(one) === JSON.stringify(other);
}

/** True when `topic` names one topic rather than a pattern. */
export function isPattern(topic) {
  return topic.split(".").some((segment) => segment === "*" || segment === "**");
}

/** A random idempotency key: a UUID where the platform has one. */
export function newMessageId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  let text = "";
  for (let i = 0; i < 32; i++) text += Math.floor(Math.random() * 16).toString(16);
  return text;
}

/**
 * The delay before reconnect attempt `attempt` (0-based): full jitter over a capped
 * exponential, `random() * min(max, min * factor^attempt)`.
 */
export function backoffDelay(attempt, { minReconnectDelay, maxReconnectDelay, reconnectFactor }, random = Math.random) {
  const ceiling = Math.min(maxReconnectDelay, minReconnectDelay * Math.pow(reconnectFactor, attempt));
  return Math.floor(random() * ceiling);
}

/**
 * One topic the client is subscribed to on the node, shared by every handler the application
 * registered for it.
 */
/**
 * The exact text of the top-level member `key` of the JSON object `text` (the node writes
 * keys without escapes), or undefined: found by skipping values, not by parsing them.
 */
export function rawMember(text, key) {
  const wanted = JSON.stringify(key);
  let i = 0;
  const space = () => { while (i < text.length && " \t\n\r".includes(text[i])) i++; };
  const skipString = () => {
    for (i++; i < text.length; i++) {
      if (text[i] === "\\") i++;
      else if (text[i] === '"') { i++; return true; }
    }
    return false;
  };
  const skipValue = () => {
    if (text[i] === '"') return skipString();
    if (text[i] === "{" || text[i] === "[") {
      let depth = 0;
      while (i < text.length) {
        const c = text[i];
        if (c === '"') { if (!skipString()) return false; continue; }
        if (c === "{" || c === "[") depth++;
        else if ((c === "}" || c === "]") && --depth === 0) { i++; return true; }
        i++;
      }
      return false;
    }
    const start = i;
    while (i < text.length && !" \t\n\r,}]".includes(text[i])) i++;
    return i > start;
  };
  space();
  if (text[i] !== "{") return undefined;
  i++;
  for (;;) {
    space();
    if (text[i] !== '"') return undefined;
    const keyStart = i;
    if (!skipString()) return undefined;
    const isWanted = text.slice(keyStart, i) === wanted;
    space();
    if (text[i] !== ":") return undefined;
    i++;
    space();
    const valueStart = i;
    if (!skipValue()) return undefined;
    if (isWanted) return text.slice(valueStart, i);
    space();
    if (text[i] !== ",") return undefined;
    i++;
  }
}

/**
 * The last `capacity` messages a subscription delivered without a position, by topic and
 * `messageId`. On a topic without history the node cannot tell a repeated `messageId` (a
 * publish sent again after a reconnect, a post retried over HTTP): this drops the second copy.
 */
class RecentMessageIds {
  constructor(capacity = 1000) {
    this.capacity = capacity;
    /** Insertion-ordered: the first key is the oldest. */
    this.keys = new Set();
  }

  /** Records `messageId` on `topic`; false when it is among the recent ones already. */
  insert(messageId, topic) {
    const key = `${topic}\u0000${messageId}`;
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    if (this.keys.size > this.capacity) this.keys.delete(this.keys.values().next().value);
    return true;
  }
}

/** The most topics whose positions a pattern subscription keeps: the least recently delivered go. */
const MAX_PATTERN_TOPICS = 10000;

class TopicEntry {
  constructor(topic) {
    this.topic = topic;
    /** @type {Set<{onMessage?:Function,onPresence?:Function,onTyping?:Function,onRecoveryFailed?:Function,presence?:any,presenceEvents?:boolean,replay?:number}>} */
    this.handlers = new Set();
    /** Subscribed on the current connection. */
    this.active = false;
    /** Was subscribed on a connection that ended: presence events may have been missed since. */
    this.missedPresence = false;
    /**
     * Its last join ended while other handlers stay, on a node that leaves in place
     * (`presenceLeave`): its subscribes say `presence: false` until one is answered.
     */
    this.leaving = false;
    /**
     * Was subscribed on a connection that ended and not yet on a later one: its next
     * confirmation is a reconnect's (`resubscribed: true`). Not `lastReply`, which says it was
     * ever live: a subscribe sent again on the same connection is no reconnect.
     */
    this.reconnecting = false;
    /** Resolved with the `subscribed` reply of the current or next connection. */
    this.readyWaiters = [];
    /** The socket its last subscribe went out on (a connection's resubscribe sends it once). */
    this.sentOn = null;
    this.lastReply = undefined;
    this.replayDone = false;
    /**
     * This subscription's own last position per topic (`seen`: of a message it delivered), for
     * its `since` and to drop repeats. Per subscription, not per client: a pattern that
     * delivered a topic's offset 10 must not make a later `replay` of that topic look repeated.
     * A pattern's: of the `MAX_PATTERN_TOPICS` topics it delivered most lately.
     * @type {Map<string, {offset:number, epoch:string, seen?:boolean}>}
     */
    this.positions = new Map();
    /** Messages without a position delivered lately, to drop a repeated `messageId`. */
    this.recentIds = new RecentMessageIds();
    /** The subscribe in flight that asked for history (`since`/`replay`), until answered. */
    this.awaiting = null;
    /**
     * Handlers that came with `since` while a subscribe sent without a position was unanswered:
     * checked against the position its reply gives.
     */
    this.lateSince = [];
    /** Retries of a 409 and of a 429 or timeout, reset by a `subscribed` or a new connection. */
    this.retries = 0;
    this.limitRetries = 0;
    this.retryTimer = null;
  }

  /** The member data: the newest join's still here (joining again with other data updates it). */
  get presence() {
    let data;
    for (const h of this.handlers) if (h.presence !== undefined) data = h.presence;
    return data;
  }

  get presenceEvents() {
    for (const h of this.handlers) if (h.presenceEvents || h.onPresence) return true;
    return false;
  }

  get replay() {
    let most = 0;
    for (const h of this.handlers) if (h.replay > most) most = h.replay;
    return most;
  }
}

/**
 * A connection to a Chorus node (or a load balancer in front of several) that stays
 * connected: see the module comment.
 */
/** The longest pause of publishing after rate refusals in a row (ms). */
const MAX_PUBLISH_PAUSE = 30000;

/** The events `on()` and `once()` take: a misspelt name throws instead of never firing. */
const EVENTS = new Set([
  "state", "connecting", "connected", "disconnected", "reconnecting", "message", "presence", "typing", "subscribed",
  "recoveryFailed", "gap", "subscriptionEnded", "authExpired", "reauthenticated", "token", "error", "unhandled",
]);

function checkEvent(event) {
  if (!EVENTS.has(event)) throw new TypeError(`unknown event '${event}': one of ${[...EVENTS].join(", ")}`);
}

export class ChorusClient {
  /**
   * @param {string} url `ws://host:port/ws` or `wss://...`
   * @param {object} [options] see chorus.d.ts `ChorusClientOptions`
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== "function") {
      throw new ChorusError("no WebSocket implementation: pass one as options.WebSocket (e.g. from the 'ws' package) or run Node with --experimental-websocket");
    }
    this._token = options.token;
    this._getToken = options.getToken;
    /** Counts setToken calls: a provider's answer that finds it changed is older than the application's token, which wins. */
    this._tokenGeneration = 0;
    /** A setToken() since the provider was last asked: the next connection attempt presents that token. */
    this._tokenGiven = false;
    this._random = options.random ?? Math.random;
    this._listeners = new Map();
    this._state = "disconnected";
    this._socket = null;
    this._wanted = false;
    this._attempt = 0;
    this._connectedAt = 0;
    this._reconnectTimer = null;
    this._openTimer = null;
    this._pingTimer = null;
    /** The liveness check in flight: `{ socket, timer, alive }` (see `_checkAlive`). */
    this._liveness = null;
    this._nextId = 1;
    /** When the next request sent again after a rate refusal may go (ms, `Date.now()` clock). */
    this._rateNext = 0;
    this._pending = new Map();
    this._opening = false;
    this._topics = new Map();
    this._queue = [];
    /**
     * After a publish refused past the node's message rate: the timer that sends the queue
     * again, and the refusals in a row (each doubles the wait). No publish goes out meanwhile.
     */
    this._publishPause = null;
    this._publishRefusals = 0;
    /** Publishes sent per second while the queue drains after a refusal: two thirds of the node's limit. */
    this._publishBatch = undefined;
    /** Positions of topics the application left (`_rememberLeft`), oldest first. */
    this._leftPositions = new Map();
    /** Set while the client has stopped without a plan to reconnect: what stopped it (publishes reject with it). */
    this._stoppedBy = undefined;
    this._inflight = new Map();
    /** Between `auth_expired` and the fresh token's `auth_success`: a 401 to a request is held. */
    this._renewing = false;
    /** Asks `getToken` ahead of the token's expiry (see `_scheduleRenewal`). */
    this._renewTimer = null;
    /** When the token last accepted expires (ms, `Date.now()` clock), from the node's `expiresIn`; kept after a disconnect(). */
    this._expiresAt = undefined;
    this._typing = new Map();
    /** The largest frame the current connection takes (bytes), set at its `auth_success`; undefined before. */
    this._maxMessageSize = undefined;
    /** The current connection's node leaves presence in place (`presenceLeave` in `auth_success`). */
    this._presenceLeave = false;
    this._joined = new Map();
    this._userId = undefined;
    this._authFailedToken = undefined;
    /** A refused token has been answered by one retry with a fresh token (until a success, setToken or connect). */
    this._authRetried = false;
    /** Counts _open calls and disconnects: an _open (or an auth retry) that finds it changed after an await was superseded. */
    this._openGeneration = 0;
    this._connectWaiters = [];
    this._reconnected = false;
  }

  // MARK: events

  /** Adds `handler` for `event`; returns a function that removes it. */
  on(event, handler) {
    checkEvent(event);
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(handler);
    return () => this.off(event, handler);
  }

  off(event, handler) {
    this._listeners.get(event)?.delete(handler);
  }

  /** Resolves with the next `event`'s value. */
  once(event) {
    checkEvent(event);
    return new Promise((resolve) => {
      const off = this.on(event, (value) => { off(); resolve(value); });
    });
  }

  _emit(event, value) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try { handler(value); } catch (error) { this._report(error); }
    }
  }

  /** An application handler threw: the `error` event gets it, or, with no listener, the console. */
  _report(error) {
    if (this._listeners.get("error")?.size) this._emit("error", error);
    else console.error("chorus: a handler threw", error);
  }

  // MARK: state

  /** `disconnected`, `connecting`, `connected` or `reconnecting`. */
  get state() { return this._state; }

  /** The user id the node authenticated, once connected. */
  get userId() { return this._userId; }

  /**
   * The last `{offset, epoch}` per topic (from messages and `subscribed` replies): the concrete
   * subscription's of that topic, else the highest a pattern subscription delivered.
   */
  get positions() {
    const result = new Map();
    const concrete = new Set();
    for (const entry of this._topics.values()) {
      for (const [topic, { offset, epoch }] of entry.positions) {
        const own = entry.topic === topic;
        if (concrete.has(topic)) continue;
        if (own) concrete.add(topic);
        if (own || !(result.get(topic)?.offset >= offset)) result.set(topic, { offset, epoch });
      }
    }
    for (const [topic, position] of this._leftPositions) if (!result.has(topic)) result.set(topic, { ...position });
    return result;
  }

  /**
   * Keeps the position of a topic the application unsubscribed from, so that subscribing to it
   * again (a component remounted, a screen reopened) can resume with `since:
   * client.positions.get(topic)` instead of starting live. The last 1,000 topics left.
   */
  _rememberLeft(topic, position) {
    this._leftPositions.delete(topic);
    if (!position) return;
    this._leftPositions.set(topic, position);
    if (this._leftPositions.size > 1000) this._leftPositions.delete(this._leftPositions.keys().next().value);
  }

  /** Publishes waiting for a connection or for their acknowledgement. */
  get queuedPublishes() { return this._queue.length + this._inflight.size; }

  _setState(state, detail = {}) {
    if (this._state === state) return;
    const previous = this._state;
    this._state = state;
    this._emit("state", { state, previous, ...detail });
    this._emit(state, detail);
  }

  // MARK: connecting

  /**
   * Starts connecting (and keeps reconnecting until `disconnect()`). Resolves once connected and
   * authenticated; rejects with a `ChorusAuthError` when the token is refused.
   */
  connect() {
    const promise = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this._state === "connected") {
      this._settleConnect(null);
    } else if (this._wanted && this._reconnectTimer) {
      // Waiting out the backoff between attempts: the app knows better (the network is back,
      // the app came to the foreground), so the next attempt goes now. The queue is kept, and
      // the backoff goes on growing if this attempt fails too.
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this._open();
    } else if (!this._wanted || (!this._socket && !this._reconnectTimer && !this._opening)) {
      this._wanted = true;
      this._authRetried = false;
      this._open();
    }
    return promise;
  }

  /** Closes the connection for good (code 1000); pending requests reject with `ChorusClosedError`. */
  disconnect() {
    this._wanted = false;
    // An _open or auth retry waiting for a token gives up when it resumes: no socket after this.
    this._openGeneration += 1;
    this._opening = false;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const socket = this._socket;
    this._dropSocket();
    if (socket) { try { socket.close(1000, "client closed"); } catch { /* already closing */ } }
    const error = new ChorusClosedError("client disconnected");
    this._failPending(error);
    this._rejectQueued(error);
    this._settleConnect(error);
    for (const t of this._typing.values()) { clearTimeout(t.stopTimer); }
    this._typing.clear();
    this._reconnected = false;
    this._attempt = 0;
    this._setState("disconnected", { code: 1000, reason: "client closed", willReconnect: false });
  }

  /** Replaces the token; reconnects at once if the client stopped on an auth failure. */
  setToken(token) {
    this._token = token;
    this._expiresAt = undefined;  // the known expiry was the previous token's
    this._tokenGeneration += 1;
    this._tokenGiven = true;
    this._authFailedToken = undefined;
    this._authRetried = false;
    // The token just given is used as it is (a provider is not asked to replace it), also by
    // an attempt after the backoff's wait: see _open.
    if (this._wanted && !this._socket && this._state === "disconnected") this._open({ freshToken: true });
    else if (this._state === "connected") this._reauthenticate(token);
  }

  /**
   * The client stopped and will not reconnect by itself (`disconnect()`, a refused token with no
   * fresh one, a close with `reconnect: false`): queued publishes reject with what stopped it
   * rather than wait for a connection nobody may open. Those sent before (`_dropSocket` put them
   * back) may have reached the node: sending again with the same `messageId` is safe.
   */
  _rejectQueued(error) {
    this._stoppedBy = error;  // and so do publishes made before the next connection attempt
    const queued = this._queue;
    this._queue = [];
    for (const item of queued) item.reject(error);
    // Subscribes not answered yet: their `ready` says what stopped the client. The handlers
    // stay registered, and are subscribed if the application connects again.
    for (const entry of this._topics.values()) for (const w of entry.readyWaiters.splice(0)) w.reject(error);
  }

  _settleConnect(error) {
    const waiters = this._connectWaiters;
    this._connectWaiters = [];
    for (const w of waiters) error ? w.reject(error) : w.resolve();
  }

  /** `stillWanted`: false when the provider answers, and its token is dropped (a renewal's connection closed meanwhile). */
  async _currentToken(refresh, stillWanted = () => true) {
    if (this._getToken && (refresh || this._token === undefined)) {
      const generation = this._tokenGeneration;
      const token = await this._askProvider();
      // A setToken() while the provider was asked: the application's token is the newer one.
      if (generation === this._tokenGeneration && stillWanted()) {
        this._token = token;
        this._emit("token", { token });
      }
    }
    return this._token;
  }

  /**
   * The provider's answer, given up after `connectTimeout` (a fetch with no timeout on a dead
   * network never settles): a provider that hangs fails as one that throws, and is asked again
   * after the backoff instead of holding the client in `reconnecting` for good.
   */
  _askProvider() {
    // Its answer is newer than a token set before (one set while it is asked wins: the generation).
    this._tokenGiven = false;
    const limit = this.options.connectTimeout;
    const asked = Promise.resolve().then(() => this._getToken());
    if (!(limit > 0)) return asked;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new ChorusTimeoutError(`getToken did not answer within ${limit} ms`)), limit);
    });
    return Promise.race([asked, timeout]).finally(() => clearTimeout(timer));
  }

  /** Opens a socket; `freshToken`: `this._token` was just obtained, the provider is not asked again. */
  async _open({ freshToken = false } = {}) {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const generation = ++this._openGeneration;
    this._stoppedBy = undefined;
    this._setState(this._reconnected ? "reconnecting" : "connecting", { attempt: this._attempt });
    let token, tokenGeneration;
    this._opening = true;
    try {
      // A provider is asked before every connection after the first (unless the application
      // set a token since it was last asked, below), so a reconnect never presents a token
      // that expired while the client was away; and before a connect() after disconnect()
      // once the token's known expiry is past or within renewBefore.
      const expiring = this._expiresAt !== undefined && Date.now() >= this._expiresAt - Math.max(0, this.options.renewBefore || 0);
      // A setToken() since the provider was last asked (e.g. while waiting out the backoff):
      // the application's token is newer than what the provider would answer. For this attempt only.
      const given = this._tokenGiven && !expiring;
      this._tokenGiven = false;
      token = freshToken || given ? this._token : await this._currentToken(this._reconnected || this._authFailedToken !== undefined || expiring);
      tokenGeneration = this._tokenGeneration;
    } catch (error) {
      if (generation !== this._openGeneration) return;
      this._opening = false;
      this._emit("error", new ChorusAuthError("getToken failed: " + (error?.message ?? error), { cause: error }));
      if (this._wanted) this._scheduleReconnect();
      return;
    }
    // Superseded while it waited for the token: a disconnect(), or a newer _open (connect()
    // after a disconnect() in the same tick), owns the connection now. Opening a socket here
    // would leave one open that nothing uses.
    if (generation !== this._openGeneration) return;
    this._opening = false;
    if (!this._wanted) return;
    if (token !== undefined && token === this._authFailedToken) {
      this._stopOnAuthFailure(new ChorusAuthError("the token was refused before and no new token is available"));
      return;
    }
    let socket;
    try {
      socket = new this._WebSocket(this.url);
    } catch (error) {
      this._emit("error", new ChorusError("cannot open " + this.url + ": " + (error?.message ?? error), { cause: error }));
      this._scheduleReconnect();
      return;
    }
    this._socket = socket;
    // A socket that neither opens nor fails (a dropped SYN, a proxy that never answers) is
    // given up after connectTimeout, like a closed one. The timer is kept on the client so that
    // _dropSocket clears it (a disconnect() before the open): left running, it would keep a
    // Node process alive for connectTimeout.
    let opened = false;
    const openTimer = this._openTimer = this.options.connectTimeout > 0 ? setTimeout(() => {
      if (this._socket !== socket || opened) return;
      this._closed(1006, "connect timed out");
      try { socket.close(); } catch { /* closing */ }
    }, this.options.connectTimeout) : null;
    socket.onopen = () => {
      opened = true;
      clearTimeout(openTimer);
      if (this._socket !== socket) return;
      if (token === undefined) {
        this._authenticated({ userId: undefined });
        return;
      }
      // A setToken() while the socket opened: its token is the one presented.
      if (tokenGeneration !== this._tokenGeneration) {
        token = this._token;
        tokenGeneration = this._tokenGeneration;
      }
      // Bounded even with requestTimeout 0: an upgrade the node never follows with auth_success is dropped.
      this._request({ type: "auth", token }, { timeout: this.options.requestTimeout || this.options.connectTimeout + this.options.pongTimeout })
        .then((reply) => {
          if (this._socket !== socket) return;
          this._authenticated(reply);
          // A setToken() while the node read the auth: the connection authenticates with it
          // now (another user's token connects again as that user: a 409, as on any connection).
          if (tokenGeneration !== this._tokenGeneration && this._isLive(socket)) this._reauthenticate(this._token);
        })
        .catch((error) => {
          if (this._socket !== socket) return;
          if (error instanceof ChorusAuthError) {
            this._authFailedToken = token;
            this._dropSocket();
            try { socket.close(1000, "authentication failed"); } catch { /* closing */ }
            // Requests sent while the node read the auth get no reply on this connection.
            this._failPending(new ChorusClosedError("connection closed (authentication failed)", { code: CloseCode.unauthorized }));
            this._afterAuthFailure(error, undefined, tokenGeneration);
          } else {
            // Decided now, as for a missing pong: the close event of a dead link may come late.
            this._closed(4000, "no auth reply");
            try { socket.close(4000, "no auth reply"); } catch { /* closing */ }
          }
        });
    };
    socket.onmessage = (event) => {
      if (this._socket !== socket) return;
      this._receive(typeof event.data === "string" ? event.data : String(event.data));
    };
    socket.onerror = () => {
      // Once open, the close event follows and decides. A connect that fails gets only this
      // event from some implementations (Node 20's built-in WebSocket), never a close.
      if (this._socket !== socket || opened) return;
      clearTimeout(openTimer);
      // Dropped before close(): Node's built-in WebSocket may report the failure again from
      // close(), synchronously, to this handler (a loop until the stack overflows).
      this._closed(1006, "connection failed");
      try { socket.close(); } catch { /* closing */ }
    };
    socket.onclose = (event) => {
      clearTimeout(openTimer);
      if (this._socket !== socket) return;
      this._closed(event.code ?? 1006, event.reason ?? "");
    };
  }

  /**
   * After a refused token: with a provider, one more try, at once, with a fresh token (as the
   * Swift SDK's `ReconnectPolicy`); if that one is refused too, or without a provider, stop
   * until `setToken` (or `connect`). So a provider that hands out a new but bad token each time
   * costs two tries, not a loop.
   */
  async _afterAuthFailure(error, close, tokenGeneration = this._tokenGeneration) {
    const retry = this._getToken && this._wanted && !this._authRetried && this.options.reconnect !== false;
    if (retry) {
      this._authRetried = true;
      this._opening = true;  // a connect() meanwhile waits for this retry
    }
    // Taken before any event: a handler's disconnect() or setToken() (which opens) supersedes
    // this retry. `tokenGeneration` is the refused token's: a setToken() since is tried too.
    const generation = this._openGeneration;
    // A connection closed with 4001 is not connected any more, also while a fresh token is
    // asked for. (Without a retry, _stopOnAuthFailure reports the close, with the error.)
    if (retry && close) this._setState("disconnected", { ...close, willReconnect: true });
    this._emit("error", error);
    if (retry) {
      if (generation !== this._openGeneration) return;
      this._setState(this._reconnected ? "reconnecting" : "connecting", { attempt: this._attempt });
      let fresh, failure;
      try { fresh = await this._askProvider(); } catch (caught) { failure = caught; }
      // A disconnect() (or a connect() after it) while the provider was asked: that call decides.
      if (generation !== this._openGeneration) return;
      this._opening = false;
      if (this._wanted && tokenGeneration !== this._tokenGeneration) {
        // setToken() meanwhile: its token is newer than the provider's answer, and is tried.
        this._open({ freshToken: true });
        return;
      }
      if (this._wanted && failure !== undefined) {
        // The provider failed (its server down, the device offline): not a refused token, so
        // asked again after the backoff, as before any connection, instead of stopping for good.
        this._emit("error", new ChorusAuthError("getToken failed: " + (failure?.message ?? failure), { cause: failure }));
        this._scheduleReconnect();
        return;
      }
      if (this._wanted && fresh !== undefined && fresh !== this._authFailedToken) {
        this._token = fresh;
        this._emit("token", { token: fresh });
        this._authFailedToken = undefined;
        this._open({ freshToken: true });
        return;
      }
    }
    // A handler of the events above may have acted: its disconnect() or connect() decides, and
    // a token it set is tried rather than stopped on.
    if (generation !== this._openGeneration) return;
    if (this._wanted && tokenGeneration !== this._tokenGeneration) {
      this._open({ freshToken: true });
      return;
    }
    this._stopOnAuthFailure(error);
  }

  _stopOnAuthFailure(error) {
    this._stop(error, CloseCode.unauthorized);
  }

  /** Stops until the application acts: queued publishes and waiting calls reject with `error`. */
  _stop(error, code) {
    this._dropSocket();
    this._rejectQueued(error);
    // Settled before the state event, so a connect() made by its handler waits for its own open.
    this._settleConnect(error);
    this._setState("disconnected", { code, reason: error.message, willReconnect: false, error });
  }

  _authenticated(reply) {
    const socket = this._socket;
    this._userId = reply.userId;
    // The node's limit (older nodes do not say: their default). The option may lower an
    // announced limit (a proxy's), and replaces the default where none is announced.
    const size = (value) => (typeof value === "number" && value > 0 ? value : undefined);
    const announced = size(reply.maxMessageSize), own = size(this.options.maxMessageSize);
    this._maxMessageSize = own !== undefined && announced !== undefined ? Math.min(own, announced) : own ?? announced ?? DEFAULT_MAX_MESSAGE_SIZE;
    // The node ends a membership on `presence: false` and keeps the subscription.
    this._presenceLeave = reply.presenceLeave === true;
    this._authFailedToken = undefined;
    this._authRetried = false;
    this._connectedAt = Date.now();
    const reconnected = this._reconnected;
    this._reconnected = true;
    this._setState("connected", { userId: reply.userId, reconnected });
    // A handler's disconnect() (or its connect() after one) owns the client now.
    if (this._socket !== socket) return;
    this._startPing();
    this._scheduleRenewal(reply);
    this._settleConnect(null);
    for (const entry of this._topics.values()) {
      // Subscribed by a handler of the events above (on this connection already): sent once.
      if (entry.sentOn === socket) continue;
      entry.retries = entry.limitRetries = 0;  // a new connection: the retries start again
      this._sendSubscribe(entry);
    }
    this._flushQueue();
  }

  /** `tokenOfAnotherUser`: closed for a new token of another user, which reconnects at once with it. */
  _closed(code, reason, { tokenOfAnotherUser = false } = {}) {
    if (code === CloseCode.tooBig) this._rejectTooBig();
    this._dropSocket();
    const error = new ChorusClosedError(`connection closed (${code}${reason ? ": " + reason : ""})`, { code });
    this._failPending(error);
    if (code === CloseCode.unauthorized) {
      this._authFailedToken = this._token;
      this._afterAuthFailure(new ChorusAuthError(reason || "connection closed for authentication", { code }), { code, reason });
      return;
    }
    const willReconnect = this._wanted && this.options.reconnect !== false;
    if (!willReconnect) {
      this._rejectQueued(error);
      // Before the state event, so a connect() made by its handler waits for its own open.
      this._settleConnect(error);
    }
    this._setState("disconnected", { code, reason, willReconnect });
    if (willReconnect) this._scheduleReconnect(code, tokenOfAnotherUser);
  }

  /**
   * The node closed the connection with 1009: a frame was over its limit although under the one
   * this client knew (an option set too high, a proxy's lower limit). Sent again, it would close
   * every connection in turn: the largest publish sent on this connection and not acknowledged
   * (the oldest of equals) is taken to be that frame and rejects with 413 instead of going back
   * to the queue. A subscribe or other request over the limit is not recognised this way.
   */
  _rejectTooBig() {
    let culprit, culpritSize = -1;
    for (const item of [...this._inflight.values()].sort((a, b) => a.seq - b.seq)) {
      const size = utf8Length(JSON.stringify(item.message));
      if (size > culpritSize) { culprit = item; culpritSize = size; }
    }
    if (!culprit) return;
    this._inflight.delete(culprit.seq);
    clearTimeout(culprit.timer);
    culprit.send = undefined;  // its request's rejection, which follows, finds it settled
    culprit.reject(new ChorusError(`the node closed the connection (1009, message too big) after a 'message' frame of ${culpritSize} bytes: not sent again`, {
      code: 413, details: { size: culpritSize, limit: this._maxMessageSize },
    }));
  }

  /** `withToken`: at once, with `this._token` as it is (the provider is not asked to replace it). */
  _scheduleReconnect(code, withToken = false) {
    // Already reconnecting: a connect() from the `disconnected` handler opened a socket.
    if (!this._wanted || this._reconnectTimer || this._socket || this._opening) return;
    if (this.options.reconnect === false) {
      // A connect that failed before a connection (getToken threw, the socket could not be made).
      this._stop(new ChorusClosedError("could not connect, and reconnect is false", { code: code ?? 1006 }), code ?? 1006);
      return;
    }
    const wasConnected = this._connectedAt !== 0;
    if (wasConnected && Date.now() - this._connectedAt >= this.options.stableConnectionAfter) this._attempt = 0;
    this._connectedAt = 0;
    // A drain (1001) is planned and the other nodes are up: the first attempt goes at once.
    const delay = (code === CloseCode.goingAway && wasConnected) || withToken ? 0 : backoffDelay(this._attempt, this.options, this._random);
    this._attempt += 1;
    this._reconnected = true;
    // The timer first: a connect() from a `reconnecting` handler then replaces it.
    this._reconnectTimer = setTimeout(() => { this._reconnectTimer = null; if (this._wanted) this._open({ freshToken: withToken }); }, delay);
    this._setState("reconnecting", { attempt: this._attempt, delay, code });
  }

  _dropSocket() {
    const socket = this._socket;
    this._socket = null;
    clearTimeout(this._openTimer);
    this._openTimer = null;
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    clearTimeout(this._liveness?.timer);
    this._liveness = null;
    clearTimeout(this._renewTimer);
    this._renewTimer = null;
    this._renewing = false;  // a new connection authenticates afresh
    this._maxMessageSize = undefined;  // the next node says its own
    this._presenceLeave = false;
    for (const entry of this._topics.values()) {
      if (entry.active) entry.missedPresence = entry.reconnecting = true;
      entry.active = false;
      entry.leaving = false;  // a new connection is no member until it joins
      clearTimeout(entry.retryTimer);
      entry.retryTimer = null;
    }
    if (socket) { socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null; }
    // A new connection has a budget of its own: its queue goes out at once.
    clearTimeout(this._publishPause);
    this._publishPause = null;
    this._publishRefusals = 0;
    // Publishes sent but not acknowledged go back to the queue in publish order, also among
    // those in it already (refused past the rate and waiting out a pause, ahead of later ones):
    // their messageId makes the retry safe.
    if (this._inflight.size) {
      const back = [...this._inflight.values()];
      this._inflight.clear();
      for (const item of back) clearTimeout(item.timer);
      this._queue = [...back, ...this._queue].sort((a, b) => a.seq - b.seq);
    }
  }

  _startPing() {
    const every = this.options.pingInterval;
    if (!every) return;
    this._pingTimer = setInterval(() => this._checkAlive(), every);
  }

  /**
   * Pings the node now (unless a ping is out already) and resolves with true on its pong, false
   * if the connection ends first. No pong within `pongTimeout`: the connection is dead without a
   * close (half-open TCP: a NAT entry gone, a peer gone without a FIN), and only a close ends it:
   * closed with 4000, which puts unacknowledged publishes back in the queue and reconnects.
   */
  _checkAlive() {
    const socket = this._socket;
    if (!socket || this._state !== "connected") return Promise.resolve(false);
    if (this._liveness?.socket === socket) return this._liveness.alive;
    const check = { socket, timer: null, alive: null };
    this._liveness = check;
    check.timer = setTimeout(() => {
      if (this._socket === socket) { this._closed(4000, "no pong"); try { socket.close(4000, "no pong"); } catch { /* closing */ } }
    }, this.options.pongTimeout);
    // Any reply proves the connection alive, a refusal past the message rate (429) too.
    check.alive = this._request({ type: "ping" }, { timeout: 0, retryRateLimited: false }).then(
      () => true, (error) => error instanceof ChorusError && error.reply !== undefined).then((alive) => {
      clearTimeout(check.timer);
      if (this._liveness === check) this._liveness = null;
      return alive;
    });
    return check.alive;
  }

  /**
   * Authenticates the open connection with `token`. Refused with 409 (another user's token):
   * closed and connected again at once with it. Refused otherwise (401), as a token refused at a
   * connect (`_afterAuthFailure`), unless `ahead` (a renewal before the expiry): the connection
   * goes on with the token it has, and the `auth_expired` path renews at the expiry.
   */
  async _reauthenticate(token, ahead = false) {
    const socket = this._socket;
    try {
      const reply = await this._request({ type: "auth", token }, {
        // On the reply itself, not in a promise job: the node delivers again from the next
        // frame on, which must find the catch-up's hold in place.
        onReply: (message) => { if (message.type === "auth_success" && this._renewing) this._catchUp(); },
      });
      this._userId = reply.userId;
      this._renewing = false;
      this._scheduleRenewal(reply);
      // What the node refused for the expired token goes again, with its id, in its order.
      for (const [id, pending] of this._pending) {
        if (!pending.awaitingRenewal) continue;
        pending.awaitingRenewal = false;
        if (pending.type === "message" && this._publishPause) {
          // Publishing is paused after a rate refusal: it goes back to the queue, in its order,
          // behind the refused one, instead of overtaking it.
          this._pending.delete(id);
          pending.reject(new ChorusClosedError("held behind a rate refusal"));
          continue;
        }
        try {
          this._sendPending(id, pending);
        } catch (error) {
          this._pending.delete(id);
          pending.reject(error);
          continue;
        }
        pending.onResend?.();
        pending.afterResend?.();
        pending.afterResend = undefined;
      }
      this._emit("reauthenticated", { userId: reply.userId });
    } catch (error) {
      const refused = error instanceof ChorusAuthError && this._socket === socket;
      if (refused && error.code === 409) {
        // Another user's token (setToken() after a change of account): this connection stays
        // the old user's, so a new one authenticates with the new token and subscribes again
        // for that user. Not a refused token.
        const reason = "the new token is another user's";
        this._closed(CloseCode.normal, reason, { tokenOfAnotherUser: true });
        try { socket.close(CloseCode.normal, reason); } catch { /* closing */ }
        this._emit("error", error);
      } else if (refused && !ahead) {
        // After auth_expired (delivery is paused) or the application's token: as at a connect,
        // one retry on a new connection with a fresh token from the provider, then a stop.
        this._authFailedToken = token;
        this._dropSocket();
        try { socket.close(CloseCode.normal, "authentication failed"); } catch { /* closing */ }
        this._failPending(new ChorusClosedError("connection closed (authentication failed)", { code: CloseCode.unauthorized }));
        this._afterAuthFailure(error, { code: CloseCode.unauthorized, reason: error.message });
      } else {
        this._emit("error", error);
      }
    }
  }

  // MARK: requests and replies

  /**
   * Sends `object`; false when not connected. Throws a `ChorusError` 413, sending nothing, when
   * the frame is over the connection's limit: the node would close the connection (1009), and a
   * frame sent again after the reconnect would close the next one too.
   */
  _send(object) {
    const socket = this._socket;
    if (!socket || socket.readyState !== 1) return false;
    const text = JSON.stringify(object);
    const limit = this._maxMessageSize;
    // A UTF-16 unit is 1 to 3 UTF-8 bytes: counted only when it may matter.
    if (limit !== undefined && text.length * 3 > limit) {
      const size = utf8Length(text);
      if (size > limit) throw tooLargeError(size, limit, object.type);
    }
    socket.send(text);
    return true;
  }

  /** `_send` for frames nothing waits on (typing): a 413 is an `error` event, not a throw. */
  _sendQuietly(object) {
    try { return this._send(object); } catch (error) { this._emit("error", error); return false; }
  }

  /**
   * Sends `object` with a fresh `id`; resolves with the reply, rejects with the node's error.
   * A request the node dropped past its message rate (error 429 with `details.retryAfter`) is
   * sent again with the same id, up to `rateLimitRetries` times, while `stillWanted()` holds,
   * unless `retryRateLimited` is false.
   */
  _request(object, { timeout = this.options.requestTimeout, onReply, retryRateLimited = true, stillWanted = () => true } = {}) {
    return new Promise((resolve, reject) => {
      const id = this._nextId++;
      // afterResend: run once the request is sent again after a renewal (a publish's fence);
      // onHold and onResend: when it is held for the renewal and sent again (a publish's deadline).
      const pending = { resolve, reject, onReply, timer: null, retry: null, type: object.type, object, timeout, retryRateLimited, stillWanted, rateRetries: 0, afterResend: undefined, onHold: undefined, onResend: undefined };
      this._pending.set(id, pending);
      this._sendPendingOrReject(id, pending);
    });
  }

  /**
   * `_sendPending`, or the request rejects: `ChorusClosedError` when not connected, the 413
   * when the frame is over the connection's limit.
   */
  _sendPendingOrReject(id, pending) {
    let sent;
    try { sent = this._sendPending(id, pending); } catch (error) { sent = error; }
    if (sent === true) return;
    this._pending.delete(id);
    pending.reject(sent === false ? new ChorusClosedError("not connected") : sent);
  }

  /** Sends a pending request (again) and arms its timeout; false when not connected. */
  _sendPending(id, pending) {
    const socket = this._socket;
    if (!this._send({ ...pending.object, id })) return false;
    if (pending.timeout) {
      pending.timer = setTimeout(() => {
        this._pending.delete(id);
        pending.reject(new ChorusTimeoutError(`no reply to '${pending.type}' within ${pending.timeout} ms`));
        // The node may just not have answered, or the connection may be dead: found out now
        // rather than at the next ping.
        if (this._socket === socket) this._checkAlive();
      }, pending.timeout);
    }
    return true;
  }

  /**
   * The node dropped the request past its message rate and said so (429 with
   * `details.retryAfter`, in ms, and `details.limit`, its messages a second): sent again on the
   * same connection after that delay, doubled per attempt and jittered (×1 to ×2), and the
   * requests sent again are spaced out to two thirds of the limit, so that a burst (a reconnect
   * resubscribing hundreds of topics) drains instead of being dropped again until the node
   * closes the connection for flooding. True when it will be.
   */
  _retryRateLimited(id, pending, reply) {
    const after = reply.details?.retryAfter;
    if (reply.code !== 429 || typeof after !== "number" || !pending.retryRateLimited) return false;
    if (pending.rateRetries >= this.options.rateLimitRetries || !pending.stillWanted()) return false;
    pending.rateRetries += 1;
    const socket = this._socket;
    const limit = reply.details?.limit;
    const now = Date.now();
    const at = Math.max(now + after * 2 ** (pending.rateRetries - 1) * (1 + this._random()), this._rateNext);
    this._rateNext = at + (typeof limit === "number" && limit > 0 ? 1500 / limit : 0);
    pending.retry = setTimeout(() => {
      pending.retry = null;
      // Settled meanwhile (the connection closed, or a publish's own deadline): nothing to send.
      if (this._socket !== socket || this._pending.get(id) !== pending) return;
      if (!pending.stillWanted()) {
        // Its subscription was left meanwhile: sent now, it would undo what came after.
        this._pending.delete(id);
        pending.reject(new ChorusError(reply.message ?? "rate limit exceeded", { code: reply.code, details: reply.details, reply }));
        return;
      }
      this._sendPendingOrReject(id, pending);
    }, at - now);
    return true;
  }

  /** Sends any request and resolves with its reply (for messages this SDK has no helper for). */
  request(type, fields = {}) {
    return this._request({ ...fields, type });
  }

  _failPending(error) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const p of pending) { clearTimeout(p.timer); clearTimeout(p.retry); p.reject(error); }
  }

  _receive(text) {
    let message;
    try { message = JSON.parse(text); } catch { return; }
    if (message === null || typeof message !== "object") return;
    const id = message.id;
    const isReply = id !== undefined && message.type !== "message" && this._pending.has(id);
    if (isReply) {
      const pending = this._pending.get(id);
      clearTimeout(pending.timer);
      if (message.type === "error" && this._retryRateLimited(id, pending, message)) return;
      if (message.type === "error" && message.code === 401 && this._renewing && pending.type !== "auth") {
        // It crossed the token's expiry: sent again once the fresh token is accepted.
        pending.awaitingRenewal = true;
        pending.onHold?.();
        return;
      }
      this._pending.delete(id);
      // At once, not in a promise job: frames that came in the same read (a replay's page
      // behind its `subscribed`) are handled before the promise's reactions run.
      pending.onReply?.(message);
      if (message.type === "error") pending.reject(new ChorusError(message.message ?? "error", { code: message.code, details: message.details, reply: message }));
      else if (message.type === "auth_error") pending.reject(new ChorusAuthError(message.message ?? "authentication failed", { code: message.code, details: message.details, reply: message }));
      else pending.resolve(message);
      return;
    }
    switch (message.type) {
      case "message":
        // `data` as published, for numbers past 2^53 that JSON.parse rounds: found when read.
        Object.defineProperty(message, "rawData", { get: () => rawMember(text, "data"), enumerable: false });
        return this._deliver(message);
      case "presence":
        // Above the node's PRESENCE_BATCH_RATE, a second's events come as one batch: the
        // application sees them one by one either way.
        if (message.event === "batch" && Array.isArray(message.events)) {
          for (const event of message.events) this._dispatch("presence", { type: "presence", topic: message.topic, timestamp: message.timestamp, ...event }, "onPresence");
          return;
        }
        return this._dispatch("presence", message, "onPresence");
      case "typing": return this._dispatch("typing", message, "onTyping");
      case "gap": return this._gap(message);
      case "auth_expired": return this._authExpired(message);
      case "auth_error": {
        // An auth_error without the request's id still answers the pending auth.
        for (const [pid, pending] of this._pending) {
          if (pending.type !== "auth") continue;
          this._pending.delete(pid);
          clearTimeout(pending.timer);
          pending.reject(new ChorusAuthError(message.message ?? "authentication failed", { code: message.code, details: message.details, reply: message }));
          return;
        }
        const error = new ChorusAuthError(message.message ?? "authentication failed", { code: message.code, details: message.details, reply: message });
        this._emit("error", error);
        return;
      }
      case "error": {
        const error = new ChorusError(message.message ?? "error", { code: message.code, details: message.details, reply: message });
        const topic = message.details?.topic;
        if (message.details?.subscriptionEnded === true && topic && this._topics.has(topic)) {
          // The node ended this subscription (a new token's grants no longer cover it). Other
          // errors naming a topic (a typing there refused) leave it as it is.
          const entry = this._topics.get(topic);
          clearTimeout(entry.retryTimer);
          this._topics.delete(topic);
          // A subscribe of it still unanswered: its reply finds the topic gone, so its `ready`
          // settles here. Its joins have ended too: `leave(topic)` has nothing left to leave.
          for (const w of entry.readyWaiters.splice(0)) w.reject(error);
          this._joined.delete(topic);
          this._emit("subscriptionEnded", { topic, error });
        }
        this._emit("error", error);
        return;
      }
      default:
        this._emit("unhandled", message);
    }
  }

  /**
   * After a token renewed late (past `auth_expired`): the node delivered nothing in between.
   * Each live subscription of a topic with a position asks for what came after it (a
   * `subscribe` with `since`, without presence fields: the membership stays as it is); what
   * the node no longer has is a `recoveryFailed`, as after a reconnect.
   */
  _catchUp() {
    for (const entry of this._topics.values()) {
      const position = entry.positions.get(entry.topic);
      if (!entry.active || entry.awaiting || isPattern(entry.topic) || !position) continue;
      const request = { type: "subscribe", topic: entry.topic, since: { offset: position.offset, epoch: position.epoch } };
      // Until the reply, the topic's live messages wait: the node sends them after the page.
      entry.awaiting = request;
      this._sendCatchUp(entry, request, 0);
    }
  }

  /**
   * One catch-up of `_catchUp`, as `request` (sent as a copy: each attempt has its own id). A
   * 409 (the node still reads the topic's position for a presence change sent just before)
   * goes again shortly, a few times.
   */
  _sendCatchUp(entry, request, attempt) {
    const answered = () => { if (entry.awaiting === request) entry.awaiting = null; };
    const caughtUp = (reply) => {
      if (reply.type === "error") return;  // the rejection below decides
      answered();
      // On the same connection: not a reconnect, but what was published during the expiry
      // may be missing, as after one.
      if (reply.type === "subscribed" && this._topics.get(entry.topic) === entry) this._subscribed(entry, request, reply, false, true);
    };
    const socket = this._socket;
    // Not sent again after a rate refusal once the application left the topic.
    this._request({ ...request }, { onReply: caughtUp, stillWanted: () => this._topics.get(entry.topic) === entry }).catch((error) => {
      if (error instanceof ChorusClosedError) return answered();  // the next connection resubscribes with since
      if (this._topics.get(entry.topic) !== entry) return answered();  // left meanwhile: nothing to recover
      if (error.code === 409 && attempt < 5) {
        setTimeout(() => {
          if (this._socket === socket && this._state === "connected" && this._topics.get(entry.topic) === entry && entry.awaiting === request) {
            this._sendCatchUp(entry, request, attempt + 1);
          } else {
            answered();
          }
        }, Math.min(2000, 100 * (attempt + 1)));
        return;
      }
      answered();
      // Refused or unanswered: what was published during the expiry will not come. The
      // subscription goes on live; the application reloads, as after any failed recovery.
      const event = { topic: entry.topic, recovered: false, resubscribed: false, since: request.since, reason: `catching up after the token's renewal failed: ${error.message}` };
      this._recoveryFailed(entry, event);
      this._emit("error", error);
    });
  }

  /**
   * With `getToken`, asks for a fresh token `renewBefore` ms before the one just accepted
   * expires (at most half its life ahead), and authenticates with it on the open
   * connection: delivery never pauses at the expiry, so no message is missed. The time comes
   * from the node (`expiresIn` of `auth_success`), so the device's clock does not matter.
   */
  _scheduleRenewal(reply) {
    clearTimeout(this._renewTimer);
    this._renewTimer = null;
    const left = reply.expiresIn;
    this._expiresAt = typeof left === "number" ? Date.now() + left : undefined;
    if (typeof left !== "number" || !this._getToken || !(this.options.renewBefore > 0)) return;
    this._renewAfter(left - Math.min(this.options.renewBefore, left / 2));
  }

  _renewAfter(delay) {
    const socket = this._socket;
    const at = Date.now() + delay;
    const wait = () => {
      // A timer's delay is at most 2^31 - 1 ms (24.8 days; a longer one fires at once): a
      // token with longer to live is waited for in steps.
      this._renewTimer = setTimeout(() => {
        this._renewTimer = null;
        if (this._socket !== socket || this._state !== "connected") return;
        if (Date.now() < at) wait();
        else this._renewAhead();
      }, Math.min(Math.max(0, at - Date.now()), MAX_TIMER_DELAY));
    };
    wait();
  }

  async _renewAhead() {
    const socket = this._socket;
    const generation = this._tokenGeneration;
    const current = this._token;
    // Closed meanwhile (a disconnect()): the provider's answer, or failure, concerns nobody.
    const live = () => this._isLive(socket);
    let token;
    try {
      token = await this._currentToken(true, live);
    } catch (error) {
      if (live()) this._emit("error", new ChorusAuthError("getToken failed: " + (error?.message ?? error), { cause: error }));
    }
    // Closed meanwhile (the next connection asks anyway), the token expired meanwhile (the
    // auth_expired path renews), or setToken() re-authenticated with the application's token.
    if (this._socket !== socket || this._state !== "connected" || this._renewing || generation !== this._tokenGeneration) return;
    if (token === undefined || token === current) {
      // The provider failed, or handed back the token in use (a cache that renews later):
      // asked again at half the time left, until 2 s before; then auth_expired renews.
      const left = this._expiresAt - Date.now();
      if (left >= 2000) this._renewAfter(left / 2);
      return;
    }
    await this._reauthenticate(token, true);
  }

  async _authExpired(message) {
    this._renewing = true;
    this._emit("authExpired", message);
    if (!this._getToken) {
      this._emit("error", new ChorusAuthError(message.message ?? "token expired", { code: 401, reply: message }));
      return;
    }
    this._renewExpired(0);
  }

  /**
   * Asks the provider for the token the node waits for since `auth_expired` and sends it on
   * the open connection. A provider that fails is asked again after the reconnect backoff's
   * delays (jittered) while the connection waits, so delivery resumes once it answers,
   * not only at the node's 4001 close (`JWT_RENEWAL_GRACE`) and the reconnect after it.
   */
  /** Whether `socket` is still the client's connection, and connected. */
  _isLive(socket) {
    return this._socket === socket && this._state === "connected";
  }

  async _renewExpired(attempt) {
    const socket = this._socket;
    const generation = this._tokenGeneration;
    // Closed meanwhile (a disconnect(), the node's 4001): the next connection asks for its own token.
    const live = () => this._isLive(socket);
    let token;
    try {
      token = await this._currentToken(true, live);
    } catch (error) {
      if (!live()) return;
      this._emit("error", error instanceof ChorusError ? error : new ChorusAuthError("getToken failed", { cause: error }));
      const waiting = () => live() && this._renewing && generation === this._tokenGeneration;
      if (!waiting()) return;
      // Jittered as reconnects are: clients whose tokens expired together (after a stall) do
      // not ask an endpoint that is down all at the same moments.
      const delay = backoffDelay(attempt, this.options, this._random);
      clearTimeout(this._renewTimer);
      this._renewTimer = setTimeout(() => {
        this._renewTimer = null;
        if (waiting()) this._renewExpired(attempt + 1);
      }, delay);
      return;
    }
    // A setToken() meanwhile has re-authenticated with the application's token already.
    if (generation !== this._tokenGeneration || !live()) return;
    await this._reauthenticate(token);
  }

  // MARK: subscriptions

  /**
   * Subscribes to `topic` (a topic or a pattern) and calls `handler` with each message; returns
   * a function that unsubscribes this handler, with `.ready` (the `subscribed` reply) and `.topic`.
   * `handler` may instead be an object: `{ onMessage, onPresence, onTyping, onRecoveryFailed,
   * replay, since, presence (the member data to join with), presenceEvents }`.
   */
  subscribe(topic, handler, options = {}) {
    const handlers = typeof handler === "function" ? { ...options, onMessage: handler } : { ...options, ...handler };
    // History is per concrete topic: the node refuses a pattern with replay or since (400).
    if (isPattern(topic) && (handlers.replay > 0 || handlers.since)) {
      throw new TypeError(`replay and since apply to a concrete topic, not to the pattern "${topic}"`);
    }
    let entry = this._topics.get(topic);
    const fresh = !entry;
    if (!entry) { entry = new TopicEntry(topic); this._topics.set(topic, entry); }
    // Its subscribe went out on this connection already (answered or not): nothing more is
    // sent for this handler, so its `since` must not become the topic's position, which the
    // reply (or a later resubscribe) would then take as what everyone has.
    const sent = !fresh && this._socket !== null && entry.sentOn === this._socket;
    if (handlers.since && !sent && !entry.positions.has(topic)) entry.positions.set(topic, { ...handlers.since });
    else if (!fresh && handlers.since && !isPattern(topic)) {
      // The topic is subscribed for another handler of this client: this one starts live, and
      // what came between its `since` and the topic's position is not replayed to it. A
      // subscribe unanswered without a position: its reply says where the topic is.
      if (sent && !entry.active && !entry.positions.has(topic)) entry.lateSince.push(handlers);
      else this._startsLive(entry, handlers, true);
    }
    const previousData = entry.presence;
    const hadEvents = entry.presenceEvents;
    entry.handlers.add(handlers);
    const ready = new Promise((resolve, reject) => entry.readyWaiters.push({ resolve, reject, handlers }));
    ready.catch(() => {});
    // A join with other data than the member has: subscribed again with it (an `update`).
    const changed = !fresh && ((handlers.presence !== undefined && !samePresence(handlers.presence, previousData)) || (entry.presenceEvents && !hadEvents));
    if (fresh || changed) {
      if (this._state === "connected") this._sendSubscribe(entry);
    } else if (entry.lastReply && entry.active) {
      for (const w of entry.readyWaiters.splice(0)) w.resolve(entry.lastReply);
    }
    let done = false;
    const unsubscribe = () => {
      if (done) return;
      done = true;
      const data = entry.presence;
      entry.handlers.delete(handlers);
      // Given up before the node confirmed it (a React StrictMode remount): its `ready` settles
      // now, as the Swift SDK's subscribe throws when its task is cancelled.
      const waiting = entry.readyWaiters.filter((w) => w.handlers === handlers);
      if (waiting.length) {
        entry.readyWaiters = entry.readyWaiters.filter((w) => w.handlers !== handlers);
        for (const w of waiting) w.reject(new ChorusClosedError(`unsubscribed from "${topic}" before the node confirmed the subscription`));
      }
      // A subscription that ended (the node ended it, or refused its subscribe) has nothing left
      // on the node to undo: an unsubscribe or subscribe now would act on a later subscription
      // of the topic (and its membership).
      if (this._topics.get(topic) !== entry) return;
      if (entry.handlers.size === 0) {
        this._topics.delete(topic);
        clearTimeout(entry.retryTimer);
        this._rememberLeft(topic, entry.positions.get(topic));
        // Sent again after a rate refusal only while the topic stays unsubscribed: a late one
        // would end a new subscription of it.
        if (this._state === "connected") this._request({ type: "unsubscribe", topic }, { stillWanted: () => !this._topics.has(topic) }).catch(() => {});
      } else if (handlers.presence !== undefined && entry.presence === undefined && this._state === "connected" && this._presenceLeave) {
        // The last member left while other handlers stay subscribed: the node ends the
        // membership on `presence: false`, and the subscription goes on (nothing is missed).
        entry.leaving = true;
        this._sendSubscribe(entry);
      } else if (handlers.presence !== undefined && entry.presence === undefined && this._state === "connected") {
        // The same with an older node: unsubscribe, then subscribe again without presence.
        // Presence events between the two are missed: a resync follows the reply.
        entry.missedPresence = true;
        // A subscribe still in flight is overtaken: its answer (without a position, if the
        // unsubscribe cancelled its history read) is not the subscription's.
        entry.latestSubscribe = undefined;
        this._request({ type: "unsubscribe", topic }, { stillWanted: () => this._topics.get(topic) === entry })
          .catch(() => {}).then(() => {
            // Not if the topic's other handlers left meanwhile, or the connection changed.
            if (this._topics.get(topic) === entry && this._state === "connected") this._sendSubscribe(entry);
          });
      } else if (handlers.presence !== undefined && !samePresence(entry.presence, data) && this._state === "connected") {
        // The newest join left while an earlier one stays: the member's data is that one's again.
        this._sendSubscribe(entry);
      }
    };
    unsubscribe.ready = ready;
    unsubscribe.topic = topic;
    return unsubscribe;
  }

  _sendSubscribe(entry) {
    clearTimeout(entry.retryTimer);
    entry.retryTimer = null;
    entry.sentOn = this._socket;
    const request = { type: "subscribe", topic: entry.topic };
    const position = entry.positions.get(entry.topic);
    // Live on this connection, on a node that keeps a live subscription's messages through a
    // subscribe that only changes presence: no `since`, which would cost a history read and
    // hold the topic's messages back until its page (a late renewal catches up on its own).
    const live = entry.active && this._presenceLeave;
    if (!isPattern(entry.topic) && !live) {
      if (position) request.since = { offset: position.offset, epoch: position.epoch };
      else if (entry.replay > 0 && !entry.replayDone) request.replay = entry.replay;
    }
    const presence = entry.presence;
    if (presence !== undefined) {
      request.presence = { data: presence ?? {} };
      entry.leaving = false;  // joined again: the membership goes on
    } else if (entry.leaving) {
      request.presence = false;
    }
    if (entry.presenceEvents) request.presenceEvents = true;
    else if (entry.leaving) request.presenceEvents = false;
    // Live before (on any connection): a refusal now ends a subscription the application has.
    const wasLive = entry.lastReply !== undefined;
    if (request.since || request.replay) entry.awaiting = request;
    // The subscribe whose answer counts: an earlier one still in flight (its history read
    // cancelled by an unsubscribe sent since) is answered without a position, which would read
    // as a topic without history.
    entry.latestSubscribe = request;
    const answered = () => { if (entry.awaiting === request) entry.awaiting = null; };
    const socket = this._socket;
    /** Sends it again after `delay` ms, on this connection only (a new one resubscribes anyway). */
    const retry = (delay) => {
      entry.retryTimer = setTimeout(() => {
        entry.retryTimer = null;
        if (this._socket === socket && this._state === "connected" && this._topics.get(entry.topic) === entry) this._sendSubscribe(entry);
      }, delay);
    };
    // On the reply itself, not in a promise job: the `subscribed` (and `recoveryFailed`) events
    // come before the page that follows the reply in the same read.
    const accepted = (reply) => {
      answered();
      if (reply.type !== "subscribed" || this._topics.get(entry.topic) !== entry || entry.latestSubscribe !== request) return;
      entry.active = true;
      entry.retries = 0;
      entry.limitRetries = 0;
      entry.lastReply = reply;
      if (request.presence === false) entry.leaving = false;
      if (request.replay) entry.replayDone = true;
      const missedPresence = entry.missedPresence && request.presenceEvents;
      entry.missedPresence = false;
      // Taken at the reply: the first confirmation on a new connection is the reconnect's, even
      // after a 409 retry; later ones on this connection are not.
      const resubscribed = entry.reconnecting;
      entry.reconnecting = false;
      this._subscribed(entry, request, reply, resubscribed);
      for (const handlers of entry.lateSince.splice(0)) if (entry.handlers.has(handlers)) this._startsLive(entry, handlers);
      // Live again after a reconnect: the events of the time away are lost, so the application
      // is told as the node tells it after an outage, and reads the members again.
      if (missedPresence) this._dispatch("presence", { type: "presence", topic: entry.topic, event: "resync", timestamp: new Date().toISOString() }, "onPresence");
    };
    // Sent again after a rate refusal only while it is still what the topic needs: not after
    // the topic was left, nor with a membership its last member has left meanwhile.
    const joins = request.presence !== undefined && request.presence !== false;
    const stillWanted = () => this._topics.get(entry.topic) === entry && (entry.presence !== undefined) === joins;
    this._request(request, { onReply: accepted, stillWanted }).then((reply) => {
      if (this._topics.get(entry.topic) !== entry) return;
      for (const w of entry.readyWaiters.splice(0)) w.resolve(reply);
    }, (error) => {
      answered();
      if (error instanceof ChorusClosedError) return;  // resubscribed on the next connection
      if (this._topics.get(entry.topic) !== entry) return;
      const field = error.details?.field;
      if (error.code === 400 && (field === "replay" || field === "since")) {
        // The topic has no history (any more): subscribe without it. A lost position is a
        // failed recovery the application must hear about.
        entry.replayDone = true;
        if (field === "since") {
          entry.positions.delete(entry.topic);
          const event = { topic: entry.topic, recovered: false, resubscribed: entry.reconnecting, since: request.since, reason: "the topic has no history" };
          this._recoveryFailed(entry, event);
        }
        if (this._state === "connected") this._sendSubscribe(entry);
        return;
      }
      if (error.code === 409) {
        // The node is still reading the history for this topic's previous subscribe on this
        // connection (a join, new data or a leave sent while a slow read runs, or this subscribe
        // sent again after a timeout): retry soon, for as long as it takes. The read always ends.
        entry.retries += 1;
        retry(Math.min(2000, 100 * entry.retries));
        return;
      }
      if (((error.code === 429 && wasLive) || error instanceof ChorusTimeoutError) && entry.limitRetries < 5) {
        // A resubscription over the node's subscription limit (429), or any subscribe dropped
        // unanswered by its message rate limit (a timeout; e.g. a reconnect resubscribing many
        // topics at once). Either can pass on this connection (an unsubscribe, the next
        // second): retry with the reconnect backoff, at least minReconnectDelay, instead of
        // staying unsubscribed until a reconnect. A first subscribe's 429 rejects at once: the
        // application asked for one subscription too many and decides what to give up.
        entry.limitRetries += 1;
        retry(Math.max(this.options.minReconnectDelay, backoffDelay(entry.limitRetries, this.options, this._random)));
        return;
      }
      let ended = false;
      if ((error.code >= 400 && error.code < 500) || error instanceof ChorusTimeoutError) {
        this._topics.delete(entry.topic);
        // Its joins have ended too: `leave(topic)` has nothing left to leave.
        this._joined.delete(entry.topic);
        // A subscription that was live ends here (a resubscription refused, or still 409, 429
        // or unanswered after the retries): its handlers get nothing more, so the application
        // hears of it, as when the node ends a subscription. A first subscribe's refusal
        // rejects its `ready`.
        ended = wasLive;
        // Given up after a timeout or a 409: an earlier attempt may still succeed on the node
        // (a slow history read), which would keep a subscription (and membership) nobody has.
        // A join over a size limit (413, the SDK's or the node's) leaves the node holding the
        // topic live as it was: it is told to let it go too.
        if ((error.code === 409 || error.code === 413 || error instanceof ChorusTimeoutError) && this._socket === socket && this._state === "connected") {
          this._request({ type: "unsubscribe", topic: entry.topic }).catch(() => {});
        }
      }
      for (const w of entry.readyWaiters.splice(0)) w.reject(error);
      if (ended) this._emit("subscriptionEnded", { topic: entry.topic, error });
      this._emit("error", error);
    });
  }

  /**
   * `resubscribed`: the first confirmation on a new connection of a subscription confirmed on
   * an earlier one. `missable`: messages may have gone by undelivered (a reconnect, or a
   * catch-up after a late renewal).
   */
  _subscribed(entry, request, reply, resubscribed, missable = resubscribed) {
    const hasPosition = typeof reply.offset === "number" && typeof reply.epoch === "string";
    const info = { topic: entry.topic, recovered: reply.recovered, offset: reply.offset, epoch: reply.epoch, resubscribed };
    if (reply.scope) info.scope = reply.scope;
    this._emit("subscribed", info);
    if (request.since && reply.recovered === false) {
      // The node no longer has what came after our position (history expired, or a new epoch):
      // the application should reload (e.g. GET /api/messages) and continue from here.
      const reason = reply.epoch !== undefined && reply.epoch !== request.since.epoch
        ? "the topic's history was lost or started again (a new epoch): what came after the position is gone"
        : "the messages after the position are no longer kept (past HISTORY_SIZE or HISTORY_TTL)";
      const event = { ...info, since: request.since, reason };
      this._recoveryFailed(entry, event);
      if (hasPosition) entry.positions.set(entry.topic, { offset: reply.offset, epoch: reply.epoch });
      return;
    }
    if (request.since && !hasPosition && missable) {
      // A node without history: whatever was published while away is not replayed.
      const event = { ...info, recovered: false, since: request.since, reason: "no history on this topic" };
      this._recoveryFailed(entry, event);
      return;
    }
    if (hasPosition && !request.since && !entry.positions.has(entry.topic)) {
      // The reply's offset is the topic's current one. A replay's page (messages at or before
      // it) follows the reply: the position kept is where that page starts (`replay` before the
      // current offset, 0 at the least), and each delivered message moves it. So a reconnect,
      // even one before the page arrived or on a topic still empty, resubscribes with `since`
      // and gets what it missed, as the Swift SDK does. (Not `seen`: the page's messages, at
      // or before the reply's offset, must not look like repeats.)
      const offset = request.replay ? Math.max(0, reply.offset - request.replay) : reply.offset;
      entry.positions.set(entry.topic, { offset, epoch: reply.epoch });
    }
  }

  /**
   * The node's link to a Redis server is back after an outage: what other nodes published
   * through it meanwhile never came. With `topic` (as subscribed, a pattern too): that
   * subscription's messages, a failed recovery like any other; without: messages addressed to
   * this user. The position stays: nothing in the offsets says what was lost.
   */
  _gap(message) {
    const gap = { timestamp: message.timestamp };
    if (typeof message.topic === "string") gap.topic = message.topic;
    this._emit("gap", gap);
    const entry = gap.topic === undefined ? undefined : this._topics.get(gap.topic);
    if (!entry) return;  // left meanwhile: nobody to reload for
    this._recoveryFailed(entry, { topic: entry.topic, recovered: false, resubscribed: false,
      reason: "the node's link to Redis was down: messages published meanwhile on other nodes were not delivered" });
  }

  /**
   * A later handler of a subscribed topic starts live: a `since` behind the topic's position
   * (of another epoch, or with no position to recover from) is a failed recovery for it alone.
   * `later`: told after subscribe() returns, against the position as it is now.
   */
  _startsLive(entry, handlers, later = false) {
    const position = entry.positions.get(entry.topic);
    const since = handlers.since;
    if (position && position.epoch === since.epoch && position.offset <= since.offset) return;
    const event = { topic: entry.topic, recovered: false, since: { ...since }, ...(position && { offset: position.offset, epoch: position.epoch }),
      resubscribed: false, reason: "the topic is already subscribed: this handler starts live" };
    const tell = () => {
      this._emit("recoveryFailed", event);
      if (handlers.onRecoveryFailed) this._call(handlers.onRecoveryFailed, event);
    };
    if (later) queueMicrotask(tell); else tell();
  }

  /** Tells the application (the event, and each handler of `entry`) that messages were missed. */
  _recoveryFailed(entry, event) {
    this._emit("recoveryFailed", event);
    for (const h of entry.handlers) if (h.onRecoveryFailed) this._call(h.onRecoveryFailed, event);
  }

  _deliver(message) {
    const topic = message.topic;
    // Addressed to this user (no topic): no subscription covers it.
    if (typeof topic !== "string") return this._emit("message", message);
    const positioned = typeof message.offset === "number" && typeof message.epoch === "string";
    const takers = [];
    let covered = false;
    for (const entry of this._topics.values()) {
      if (entry.topic !== topic && !(isPattern(entry.topic) && topicMatches(entry.topic, topic))) continue;
      covered = true;
      if (positioned) {
        // Its subscribe asked for history and is not answered: the node sends this message
        // again in the page if it is part of what was asked (taking it now would drop the page
        // as repeats, or deliver it out of order). It came through another subscription.
        if (entry.awaiting) continue;
        const last = entry.positions.get(topic);
        // Delivered by this subscription already (a replay overlapping live delivery). Only
        // positions of delivered messages count: a `subscribed` reply's offset may include a
        // message still on its way.
        if (last && last.seen && last.epoch === message.epoch && message.offset <= last.offset) continue;
        // Moved last in the map's order: a pattern keeps the topics it delivered most lately
        // only (it is never recovered: its positions serve to drop repeats).
        entry.positions.delete(topic);
        entry.positions.set(topic, { offset: message.offset, epoch: message.epoch, seen: true });
        if (entry.positions.size > MAX_PATTERN_TOPICS) entry.positions.delete(entry.positions.keys().next().value);
      } else if (typeof message.messageId === "string" && !entry.recentIds.insert(message.messageId, topic)) {
        continue;
      }
      takers.push(entry);
    }
    // Once per message, however many subscriptions deliver it; not when each of them had it.
    if (covered && takers.length === 0) return;
    this._emit("message", message);
    for (const entry of takers) {
      for (const h of entry.handlers) if (h.onMessage) this._call(h.onMessage, message);
    }
  }

  _dispatch(event, message, handlerName) {
    this._emit(event, message);
    for (const entry of this._topics.values()) {
      if (entry.topic === message.topic || (isPattern(entry.topic) && topicMatches(entry.topic, message.topic))) {
        for (const h of entry.handlers) if (h[handlerName]) this._call(h[handlerName], message);
      }
    }
  }

  _call(fn, value) {
    try { fn(value); } catch (error) { this._report(error); }
  }

  // MARK: publishing

  /**
   * Publishes `data` to `topic`. Resolves with the node's `published` reply (`{ messageId,
   * offset?, epoch?, duplicate }`); rejects with the node's error as a `ChorusError`. While
   * disconnected the publish waits in the offline queue (`offlineQueueSize`, which counts the
   * unacknowledged publishes too; past it: `ChorusQueueFullError`) while the client is connecting
   * or will reconnect; once it has stopped (`disconnect()`, a refused token without a fresh one,
   * a close with `reconnect: false`) the queue rejects with what stopped it, until `connect()` or
   * `setToken()` starts it again. With `publishAcks: false` (nodes without publish acks) it resolves
   * once the node has read it without refusing it (a `ping` sent after it is answered).
   * Unanswered within `requestTimeout`, it rejects with `ChorusTimeoutError` if the connection
   * answers a ping then, and is sent again on the next connection if it does not (dead).
   */
  publish(topic, data, opts = {}) {
    const message = { type: "message", topic, data };
    if (opts.metadata !== undefined) message.metadata = opts.metadata;
    if (opts.eventType !== undefined) message.eventType = opts.eventType;
    message.messageId = opts.messageId ?? newMessageId();
    return new Promise((resolve, reject) => {
      if (this._stoppedBy) { reject(this._stoppedBy); return; }
      const item = { message, resolve, reject, seq: this._nextId++ };
      const connected = this._state === "connected" && this._queue.length === 0 && !this._publishPause;
      if (!connected && opts.queue === false) {
        reject(this._publishPause && this._state === "connected"
          ? new ChorusError("publishing is paused after a rate refusal (429): not sent", { code: 429 })
          : new ChorusClosedError("not connected"));
        return;
      }
      // Unacknowledged publishes count too: each is kept to be sent again after a reconnect.
      if (this._queue.length + this._inflight.size >= this.options.offlineQueueSize) {
        reject(new ChorusQueueFullError(`offline queue full (${this.options.offlineQueueSize} publishes waiting or unacknowledged)`));
        return;
      }
      if (connected) this._sendPublish(item);
      else this._queue.push(item);
    });
  }

  _sendPublish(item) {
    this._inflight.set(item.seq, item);
    // This send, not an earlier one of the same item (sent again after a reconnect).
    const send = item.send = {};
    const current = () => item.send === send && this._inflight.has(item.seq);
    const finish = (settle) => {
      if (!current()) return;
      this._inflight.delete(item.seq);
      clearTimeout(item.timer);
      settle();
    };
    const messageRequestId = this._nextId;
    // No timeout on the requests themselves: the publish's own, below, also waits for the
    // liveness check, during which a late reply still counts.
    // Without publish acks a later ping's pong stands for the message's acceptance, which holds
    // only if the message is not sent again after it: a rate refusal rejects it instead.
    this._request(item.message, { timeout: 0, retryRateLimited: false }).then(
      (reply) => {
        if (current()) this._publishRefusals = 0;
        finish(() => item.resolve(reply));
      },
      (error) => {
        // Not in flight any more: the dropped connection put it back in the queue (sent again,
        // with the same messageId, after the reconnect), or disconnect() rejected it.
        if (!current()) return;
        const requeue = () => {
          // Back in the queue in publish order: several publishes whose sends failed at once
          // (state still "connected", the socket already closing), or that the node refused
          // one after another, are re-queued one by one, each before those published after it.
          this._inflight.delete(item.seq);
          clearTimeout(item.timer);
          const at = this._queue.findIndex((queued) => queued.seq > item.seq);
          if (at === -1) this._queue.push(item);
          else this._queue.splice(at, 0, item);
        };
        if (error instanceof ChorusClosedError && this._wanted) return requeue();
        if (this._rateRefused(item, error)) return requeue();
        finish(() => item.reject(error));
      });
    // Not sent (over the size limit, or not connected): its handler above rejects or requeues it.
    if (!this._pending.has(messageRequestId)) return;
    let fenceRequestId;
    // A node without publish acks answers nothing to an accepted message but does answer a
    // refused one (error with the id), in order: a ping after it tells which happened.
    const fence = () => {
      fenceRequestId = this._nextId;
      this._request({ type: "ping" }, { timeout: 0 }).then(() => {
        if (!current()) return;
        const held = this._pending.get(messageRequestId);
        if (held?.awaitingRenewal) {
          // Refused for the expired token and held: fenced again once sent with the fresh one.
          held.afterResend = fence;
          return;
        }
        this._pending.delete(messageRequestId);
        finish(() => item.resolve({ type: "published", topic: item.message.topic, messageId: item.message.messageId, acknowledged: false }));
      }, () => { /* the connection dropped: the message request's handler requeues it */ });
    };
    if (!this.options.publishAcks) fence();
    const request = this._pending.get(messageRequestId);
    const arm = () => {
      if (!this.options.requestTimeout) return;
      const timer = item.timer = setTimeout(() => {
        // No reply yet: the node did not answer it (slow, or it dropped the message), or the
        // connection is dead without a close (half-open). A ping tells which. A dead connection
        // is closed, which puts the publish back in the queue: sent again with its messageId on
        // the next connection rather than failed. On a live one the timeout stands.
        this._checkAlive().then((alive) => {
          // Held meanwhile for the token's renewal (and maybe sent again): not this deadline's.
          if (!alive || !current() || item.timer !== timer) return;
          this._pending.delete(messageRequestId);
          if (fenceRequestId !== undefined) this._pending.delete(fenceRequestId);
          finish(() => item.reject(new ChorusTimeoutError(`no reply to 'message' within ${this.options.requestTimeout} ms`)));
        });
      }, this.options.requestTimeout);
    };
    // Refused with 401 after auth_expired and held for the fresh token: it does not time out
    // while it waits (the node answers the ping meanwhile), and is timed again once sent again.
    request.onHold = () => { clearTimeout(item.timer); item.timer = null; };
    request.onResend = arm;
    arm();
  }

  /**
   * A publish the node dropped past its message rate (429 with `details.retryAfter`), with
   * publish acknowledgements on: true when it goes back to the queue. Publishing then pauses
   * for `retryAfter`, doubled per refusal in a row and jittered (×1 to ×2), and the queue goes
   * out again in publish order, so a publish sent again never lands behind one published after
   * it (a retry of its own would, as long as later ones are accepted meanwhile): at two thirds
   * of the node's `details.limit` a second, a second's worth at a time, so a long queue drains
   * instead of being refused again. After `rateLimitRetries` refusals of one publish the 429
   * stands. Without acknowledgements a refused publish rejects: its fence ping may have been
   * taken for its acceptance already.
   */
  _rateRefused(item, error) {
    const after = error?.details?.retryAfter;
    if (error?.code !== 429 || typeof after !== "number" || !this.options.publishAcks) return false;
    if ((item.rateRetries ?? 0) >= this.options.rateLimitRetries) return false;
    item.rateRetries = (item.rateRetries ?? 0) + 1;
    const limit = error.details.limit;
    if (typeof limit === "number" && limit > 0) this._publishBatch = Math.max(1, Math.floor((limit * 2) / 3));
    if (!this._publishPause) {
      this._publishRefusals += 1;
      const delay = Math.min(after * 2 ** Math.min(this._publishRefusals - 1, 16) * (1 + this._random()), MAX_PUBLISH_PAUSE);
      this._publishPause = setTimeout(() => this._drainPaced(), delay);
    }
    return true;
  }

  /** After a rate refusal's pause: a batch of the queue now, the next a second later, until it is empty. */
  _drainPaced() {
    this._publishPause = null;
    if (this._state !== "connected") return;
    const batch = this._queue.splice(0, this._publishBatch ?? this._queue.length);
    for (const item of batch) this._sendPublish(item);
    if (this._queue.length) this._publishPause = setTimeout(() => this._drainPaced(), 1000);
  }

  _flushQueue() {
    if (this._publishPause || this._state !== "connected") return;
    const items = this._queue;
    this._queue = [];
    for (const item of items) this._sendPublish(item);
  }

  // MARK: presence, typing, receipts

  /**
   * Joins `topic`'s presence with `data` (and receives its presence events through
   * `options.onPresence` and the client's `presence` event: `join`, `leave`, `update`, and
   * `resync` when events may have been missed, after a reconnect or a node's Redis outage:
   * read `members()` again then). Returns the leave function.
   */
  join(topic, data = {}, options = {}) {
    const unsubscribe = this.subscribe(topic, { ...options, presence: data, presenceEvents: true });
    let joined = this._joined.get(topic);
    if (!joined) this._joined.set(topic, (joined = new Set()));
    const leave = () => {
      joined.delete(leave);
      if (joined.size === 0 && this._joined.get(topic) === joined) this._joined.delete(topic);
      unsubscribe();
    };
    leave.ready = unsubscribe.ready;
    leave.topic = topic;
    joined.add(leave);
    return leave;
  }

  /** Leaves `topic`'s presence: every `join` of it ends (as if each returned function were called). */
  leave(topic) {
    for (const leave of [...(this._joined.get(topic) ?? [])]) leave();
  }

  /**
   * The members present on `topic` now (`presence.get`): a page, by user id, of those after
   * `options.after` (from the first without it); `truncated: true` when more follow.
   */
  async members(topic, options = {}) {
    const request = { type: "presence.get", topic };
    if (typeof options.after === "string") request.after = options.after;
    const reply = await this._request(request);
    const state = { members: reply.members ?? [], count: reply.count ?? (reply.members ?? []).length, topic: reply.topic ?? topic };
    if (reply.scope !== undefined) state.scope = reply.scope;
    if (reply.truncated === true) state.truncated = true;
    return state;
  }

  /**
   * Says the user is typing on `topic`. Call it on every keystroke: a `start` goes out at most
   * once per `typingThrottle` ms, and a `stop` follows `typingTimeout` ms after the last call.
   */
  typing(topic) {
    let t = this._typing.get(topic);
    if (!t) { t = { lastStart: 0, stopTimer: null }; this._typing.set(topic, t); }
    const now = Date.now();
    // Throttled from the last start that went out: one not sent (offline) must not hold back the next.
    if (now - t.lastStart >= this.options.typingThrottle && this._sendQuietly({ type: "typing", topic, state: "start" })) {
      t.lastStart = now;
    }
    clearTimeout(t.stopTimer);
    t.stopTimer = setTimeout(() => this.stopTyping(topic), this.options.typingTimeout);
  }

  /** Sends `stop` for `topic` now (also done automatically, and before a publish is not needed). */
  stopTyping(topic) {
    const t = this._typing.get(topic);
    if (!t) return;
    clearTimeout(t.stopTimer);
    this._typing.delete(topic);
    this._sendQuietly({ type: "typing", topic, state: "stop" });
  }

  /** Records that the user read `messageId` (`read` -> `read_recorded`). */
  markRead(messageId) {
    return this._request({ type: "read", messageId });
  }

  /** Sends `ping` and resolves with the node's `pong`. */
  ping() {
    return this._request({ type: "ping" });
  }
}

export default ChorusClient;
