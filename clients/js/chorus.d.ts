// Types of chorus.js (hand-written; checked with `tsc --noEmit` by clients/js/test/types.test.mjs).

/** Any JSON value. */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };
export type JSONObject = { [key: string]: JSONValue };

/**
 * What `JSON.rawJSON(text)` returns (Node 21+, Chromium 114+; TypeScript's lib does not declare
 * it yet): `JSON.stringify` writes `text` as it is, e.g. a number past 2^53 with every digit.
 */
export interface RawJSON { readonly rawJSON: string }
/** Data as `publish` sends it: JSON, with `JSON.rawJSON` values anywhere in it. */
export type PublishData = JSONValue | RawJSON | PublishData[] | { [key: string]: PublishData };

/** A request id as the node echoes it. */
export type RequestId = string | number;

/** The connection state; each is also an event name. */
export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting";

/** A position in a topic's history. */
export interface StreamPosition {
  offset: number;
  epoch: string;
}

/** A delivered `message`. `offset`/`epoch` only on topics with history. */
export interface Message<Data = JSONValue> {
  type: "message";
  topic: string;
  eventType: string;
  data: Data;
  metadata: { senderId: string; [key: string]: JSONValue };
  timestamp: string;
  offset?: number;
  epoch?: string;
  messageId?: string;
  /** `data`'s JSON text exactly as published (non-enumerable, found in the frame's text each time it is read): numbers past 2^53 keep their digits here, for a parser of your choice. */
  readonly rawData: string;
}

/** A `message` the application addressed to this user (`POST /api/publish` with `userId`): no topic, no position. */
export interface UserMessage<Data = JSONValue> extends Omit<Message<Data>, "topic" | "offset" | "epoch"> {
  topic?: undefined;
}

/** The node's `subscribed` reply. */
export interface SubscribedReply {
  type: "subscribed";
  topic: string;
  recovered?: boolean;
  offset?: number;
  epoch?: string;
  /** "node": answered from the node's fallback rings while it could not reach Redis. */
  scope?: "node";
  id?: RequestId;
  timestamp?: string;
}

/** The node's `published` reply to a publish with an `id`. */
export interface PublishedReply {
  type: "published";
  topic: string;
  messageId?: string;
  offset?: number;
  epoch?: string;
  duplicate?: boolean;
  id?: RequestId;
  /** false when `publishAcks` is off: the node read the message and did not refuse it (no offset, no duplicate check). */
  acknowledged?: boolean;
  /** `"node"` when only the node's own subscribers received it: its link to Redis was down (the other nodes' subscribers get a `gap` notice once it is back). */
  scope?: "node";
  /** With `scope`: the message was on its way to Redis when the link fell back; Redis may have published it to the other nodes after all. */
  uncertain?: true;
}

export interface PresenceMember<Data = JSONValue> {
  userId: string;
  data?: Data;
  connections?: number;
}

/** A member's `join`, `leave` or `update` (the node's `batch` form is unpacked into these by the SDK). */
export interface PresenceChangeEvent<Data = JSONValue> {
  type: "presence";
  topic: string;
  event: "join" | "leave" | "update";
  member: PresenceMember<Data>;
  timestamp: string;
}

/**
 * Presence events of `topic` may have been missed: read the members again with `members(topic)`.
 * Sent by the node when its link to Redis is back after an outage, and emitted by the SDK when a
 * subscription with presence events is live again after a reconnect (not after the first subscribe).
 */
export interface PresenceResyncEvent {
  type: "presence";
  topic: string;
  event: "resync";
  member?: undefined;
  timestamp: string;
}

/** A `presence` event: narrow on `event` (a `resync` has no `member`). */
export type PresenceEvent<Data = JSONValue> = PresenceChangeEvent<Data> | PresenceResyncEvent;

export interface PresenceState<Data = JSONValue> {
  topic: string;
  members: PresenceMember<Data>[];
  count: number;
  /** `"node"`: the node could not reach the cluster's presence (Redis) and listed its own members only. */
  scope?: "node";
  /**
   * `true`: more members follow this page (a page holds at most 1,000, and no more than a
   * quarter of the node's `WEBSOCKET_MAX_PENDING_BYTES`); `members` holds the first by user id,
   * `count` all of them, and `members(topic, { after: <last userId> })` gives the next page.
   */
  truncated?: true;
}

/** A `typing` event from another user. */
export interface TypingEvent {
  type: "typing";
  topic: string;
  userId: string;
  state: "start" | "stop";
  timestamp: string;
}

export interface ReadRecordedReply {
  type: "read_recorded";
  messageId: string;
  readAt: string;
  /** false when the user's read position was already at or past this message. */
  advanced?: boolean;
  id?: RequestId;
}

/** Any reply or event of the node, for `request()` and the `unhandled` event. */
export interface ServerMessage {
  type: string;
  id?: RequestId;
  [key: string]: unknown;
}

/** A WebSocket constructor: the browser's, Node's global (Node 22+, or 20 with --experimental-websocket), or `ws`. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onclose: ((event: { code?: number; reason?: string }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ChorusClientOptions {
  /** A token (sent as `auth` once the socket is open). */
  token?: string;
  /** Asked for a token before the first connection (unless `token` is given), before every reconnect (and a `connect()` after `disconnect()` once the token's known expiry is within `renewBefore`), `renewBefore` ahead of the token's expiry, on `auth_expired` and once after a refused token (a second refusal in a row stops the client until `setToken` or `connect`). A `setToken` while it is asked wins over its answer, and one made while the client waits to reconnect is the next attempt's token (the provider is not asked for that attempt). A provider that throws, or does not answer within `connectTimeout`, is asked again after the reconnect backoff (an `error` event says why). */
  getToken?: () => string | Promise<string>;
  /** A WebSocket class; defaults to `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor | (new (url: string) => unknown);
  /** false: never reconnect. Default true. */
  reconnect?: boolean;
  /** Backoff: attempt n waits random() * min(maxReconnectDelay, minReconnectDelay * reconnectFactor^n) ms. Defaults 500, 20000, 2. A subscribe refused with 429 (or unanswered) is retried with it too, at least minReconnectDelay apart. */
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  reconnectFactor?: number;
  /** A connection up this long (ms, default 10000) resets the backoff. */
  stableConnectionAfter?: number;
  /**
   * How long a request waits for its reply (ms, default 15000; 0 = forever); then the SDK pings
   * at once to tell a node that left it unanswered from a dead connection (`pongTimeout`). A
   * publish rejects with `ChorusTimeoutError` only when the connection answers that ping; on a
   * dead one it goes back to the queue and out again on the next connection.
   */
  requestTimeout?: number;
  /** How long opening the WebSocket, and asking `getToken`, may take before it counts as failed (ms, default 15000; 0 = no limit). */
  connectTimeout?: number;
  /** Most publishes waiting while disconnected or unacknowledged (default 100). */
  offlineQueueSize?: number;
  /**
   * The largest frame (UTF-8 bytes) to send. The limit is the node's `maxMessageSize` from
   * `auth_success` (its WEBSOCKET_MAX_MESSAGE_SIZE), or 1048576 from a node that does not
   * announce one; this option replaces that default and may lower an announced limit (a proxy's).
   * A publish, join or other request over it rejects at once with a `ChorusError` of `code` 413,
   * unsent, and the connection and the publishes behind it go on (a frame over the node's limit
   * would make it close the connection with 1009).
   */
  maxMessageSize?: number;
  /** Wait for the node's `published` reply (default true); false for nodes without publish acks. */
  publishAcks?: boolean;
  /** Send `ping` this often (ms, default 25000; 0 = off); a ping is also sent when a request times out. */
  pingInterval?: number;
  /** A ping without a `pong` this long (ms, default 10000) means a dead (half-open) connection: closed with 4000 and reconnected. */
  pongTimeout?: number;
  /**
   * A request the node dropped past its message rate (error 429 with `details.retryAfter` and
   * `details.limit`) is sent again after that delay, doubled per attempt and jittered, spaced
   * to two thirds of `limit`, at most this often (default 4); then it rejects with the 429. A
   * publish's own `requestTimeout` still applies; with `publishAcks: false` a publish is not
   * sent again (it rejects).
   */
  rateLimitRetries?: number;
  /** A typing `start` goes out at most this often per topic (ms, default 2000). */
  typingThrottle?: number;
  /** `stop` is sent this long after the last `typing()` call (ms, default 4000). */
  typingTimeout?: number;
  /**
   * With `getToken`: ask for a fresh token this long before the current one expires (ms,
   * default 30000, at most half the token's life ahead) and authenticate with it on the
   * open connection, so delivery never pauses at the expiry. 0: renew only on `auth_expired`.
   */
  renewBefore?: number;
  /** The random source of the backoff's jitter (tests). */
  random?: () => number;
}

export interface SubscribeOptions<Data = JSONValue> {
  onMessage?: (message: Message<Data>) => void;
  /** Each presence event; on a `resync`, read the members again (`members(topic)`). */
  onPresence?: (event: PresenceEvent) => void;
  onTyping?: (event: TypingEvent) => void;
  /** Called when messages of this subscription were missed (a failed recovery, a `gap`): reload, then continue. */
  onRecoveryFailed?: (event: RecoveryFailedEvent) => void;
  /** On the first subscription, ask for the last `replay` messages (history topics only). */
  replay?: number;
  /** Start from this position (history topics only). */
  since?: StreamPosition;
  /** Join the topic's presence with this data. */
  presence?: JSONValue;
  /** Receive presence events. */
  presenceEvents?: boolean;
}

/**
 * Calling it unsubscribes (or leaves); `ready` resolves with the first `subscribed` reply, and
 * rejects with the node's refusal, with a `ChorusError` 413 (data over the size limit), or with
 * a `ChorusClosedError` when it is called before the node confirmed the subscription.
 */
export interface Unsubscribe {
  (): void;
  readonly ready: Promise<SubscribedReply>;
  readonly topic: string;
}

export interface PublishOptions {
  metadata?: JSONObject;
  eventType?: string;
  /** Idempotency key; generated when absent. Reuse it to retry a publish safely. */
  messageId?: string;
  /** false: reject at once when not connected instead of queueing. */
  queue?: boolean;
}

export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  code?: number;
  reason?: string;
  willReconnect?: boolean;
  attempt?: number;
  delay?: number;
  userId?: string;
  reconnected?: boolean;
  error?: ChorusError;
}

export interface SubscribedEvent {
  topic: string;
  recovered?: boolean;
  offset?: number;
  epoch?: string;
  /**
   * "node": the node could not reach Redis and answered from its own fallback rings (its own
   * messages since the outage, not the topic's history); subscribe again once it is back.
   */
  scope?: "node";
  /**
   * true only for the first confirmation on a new connection of a subscription confirmed on an
   * earlier one (a reconnect): the topic is live again from here, so this (not `connected`,
   * which comes before the resubscribe) is when to reload a topic without history. false for a
   * first subscribe and for a subscribe sent again on the same connection while the
   * subscription stayed live (a `join` of a live topic, new presence data, its last `join`
   * ending, a catch-up after a late token renewal), which is no reason to reload. A
   * reconnect's resubscribe confirmed only after a retry (409, 429) is still the reconnect's:
   * true, once.
   */
  resubscribed: boolean;
}

export interface RecoveryFailedEvent extends SubscribedEvent {
  /**
   * The position the client asked to resume from. Absent after a `gap` (the node's Redis link
   * was down: messages of the topic published elsewhere meanwhile are missing, whatever the
   * position), when the subscription is live and its position unchanged.
   */
  since?: StreamPosition;
  /** Why, in words, for a log or a developer: the history was trimmed or expired, a new epoch, a Redis gap, no history on the topic, ... */
  reason: string;
}

/**
 * The node's link to Redis is back after an outage: messages other nodes published meanwhile
 * were not delivered. With `topic` (as subscribed, a pattern too): that subscription's (a
 * current one also hears `recoveryFailed`); without: messages addressed to this user. The
 * connection stayed up: reload from the HTTP API (`GET /api/messages`); what follows arrives.
 */
export interface GapEvent {
  topic?: string;
  timestamp: string;
}

export interface ChorusEvents {
  state: StateEvent;
  connecting: { attempt?: number };
  connected: { userId?: string; reconnected: boolean };
  /** After every failed attempt too, while no node answers: `willReconnect` true means a `reconnecting` follows (show "reconnecting", not "offline"). */
  disconnected: { code: number; reason: string; willReconnect: boolean; error?: ChorusError };
  reconnecting: { attempt: number; delay?: number; code?: number };
  /** Each message a subscription delivers, once however many cover it (a replay page may bring again what a pattern subscription delivered live), and each message addressed to this user (no `topic`). */
  message: Message | UserMessage;
  presence: PresenceEvent;
  typing: TypingEvent;
  subscribed: SubscribedEvent;
  recoveryFailed: RecoveryFailedEvent;
  gap: GapEvent;
  /** A live subscription ended: the node ended it (new grants), or its resubscription after a reconnect was refused (still 409, 429 or unanswered after the retries, 403, ...). Its handlers get nothing more. */
  subscriptionEnded: { topic: string; error: ChorusError };
  authExpired: ServerMessage;
  reauthenticated: { userId?: string };
  token: { token: string };
  error: ChorusError | Error;
  unhandled: ServerMessage;
}

export class ChorusError extends Error {
  constructor(message: string, options?: { code?: number; details?: JSONValue; reply?: ServerMessage; cause?: unknown });
  /**
   * The node's code (400, 401, 403, 409, 429, ...); 413 for a frame over the connection's size
   * limit (`maxMessageSize`, `details: { size, limit }`); 0 for the client's own errors.
   */
  readonly code: number;
  readonly details?: JSONValue;
  readonly reply?: ServerMessage;
}
export class ChorusAuthError extends ChorusError {}
/** No reply within `requestTimeout` (a publish: on a connection that answered a ping after it, so alive). */
export class ChorusTimeoutError extends ChorusError {}
export class ChorusQueueFullError extends ChorusError {}
export class ChorusClosedError extends ChorusError {}

export const CloseCode: Readonly<{
  normal: 1000; goingAway: 1001; protocolError: 1002; invalidData: 1007; policyViolation: 1008;
  tooBig: 1009; pingTimeout: 4000; tokenExpired: 4001;
  /** 4001 as well: the client also reports it when it stops because the node refused its token. */
  unauthorized: 4001; slowConsumer: 4008;
}>;

/** The exact text of the top-level member `key` of the JSON object `text` (what `Message.rawData` reads), or undefined when it is missing or the text malformed. */
export function rawMember(text: string, key: string): string | undefined;
export function topicMatches(pattern: string, topic: string): boolean;
export function isPattern(topic: string): boolean;
export function newMessageId(): string;
/** 1048576: the size limit assumed for a node whose `auth_success` names none. */
export const DEFAULT_MAX_MESSAGE_SIZE: number;
export function backoffDelay(
  attempt: number,
  options: { minReconnectDelay: number; maxReconnectDelay: number; reconnectFactor: number },
  random?: () => number,
): number;

export class ChorusClient {
  constructor(url: string, options?: ChorusClientOptions);
  readonly url: string;
  readonly state: ConnectionState;
  readonly userId: string | undefined;
  /**
   * The last position per topic: the concrete subscription's of that topic, else the highest a
   * pattern subscription delivered, else where the application left it (the last 1,000 topics
   * unsubscribed from): subscribe again with `since: client.positions.get(topic)` to resume.
   */
  readonly positions: Map<string, StreamPosition>;
  readonly queuedPublishes: number;

  /** Throws `TypeError` for a name that is not one of `ChorusEvents` (a misspelling would never fire). */
  on<E extends keyof ChorusEvents>(event: E, handler: (value: ChorusEvents[E]) => void): () => void;
  off<E extends keyof ChorusEvents>(event: E, handler: (value: ChorusEvents[E]) => void): void;
  /** Throws `TypeError` (synchronously) for a name that is not one of `ChorusEvents`. */
  once<E extends keyof ChorusEvents>(event: E): Promise<ChorusEvents[E]>;

  /**
   * Starts connecting, and keeps reconnecting until `disconnect()`. Resolves once connected and
   * authenticated; rejects with `ChorusAuthError` when the token is refused. While no node is
   * reachable it stays pending (attempts go on with backoff): race it with a timeout of your own
   * if the page must not wait, and follow `state` events for progress. Called while the client
   * waits between reconnect attempts, it makes the next attempt at once (the network is back):
   * queued publishes and subscriptions are kept.
   */
  connect(): Promise<void>;
  disconnect(): void;
  /**
   * Replaces the token; on a live connection, authenticates it with the token. Another user's
   * token (409) closes the connection and connects again at once with it (subscriptions are made
   * again for that user); a refused one (401) is a refused token as at a connect: with `getToken`
   * one retry with a fresh token, then the client stops.
   */
  setToken(token: string): void;

  subscribe<Data = JSONValue>(topic: string, handler: (message: Message<Data>) => void, options?: Omit<SubscribeOptions<Data>, "onMessage">): Unsubscribe;
  subscribe<Data = JSONValue>(topic: string, handlers: SubscribeOptions<Data>): Unsubscribe;

  /**
   * Resolves with the node's reply; rejects with its error, `ChorusQueueFullError` (the queue
   * holds `offlineQueueSize` publishes), `ChorusClosedError` (`disconnect()`, or `queue: false`
   * while not connected) or `ChorusTimeoutError` (no reply within `requestTimeout` on a
   * connection that then answered a ping). Never for a connection that died: unanswered then, it
   * is sent again, with its `messageId`, on the next connection. While the client connects or
   * will reconnect it waits in the queue; once the client has stopped (`disconnect()`, a refused
   * token without a fresh one, a close with `reconnect: false`) it rejects with what stopped it
   * (`ChorusClosedError` or `ChorusAuthError`), and so do the publishes that were queued.
   * Over the connection's size limit (`maxMessageSize`, checked when it is about to be sent):
   * a `ChorusError` with `code` 413, never sent again. If the node closes the connection with
   * 1009 anyway (a limit the client did not know), the largest publish sent on it and not
   * acknowledged rejects with 413 instead of going back to the queue.
   */
  publish(topic: string, data: PublishData, options?: PublishOptions): Promise<PublishedReply>;

  join(topic: string, data?: JSONValue, options?: Omit<SubscribeOptions, "presence" | "presenceEvents">): Unsubscribe;
  /** Leaves every `join` of `topic`. */
  leave(topic: string): void;
  members<Data = JSONValue>(topic: string, options?: { after?: string }): Promise<PresenceState<Data>>;
  /** Sends nothing while not connected (and a `start` not sent does not count for the throttle). */
  typing(topic: string): void;
  stopTyping(topic: string): void;
  markRead(messageId: string): Promise<ReadRecordedReply>;
  ping(): Promise<ServerMessage>;
  request(type: string, fields?: Record<string, unknown>): Promise<ServerMessage>;
}

export default ChorusClient;
