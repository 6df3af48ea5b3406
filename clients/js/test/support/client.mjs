// Test helpers around ChorusClient: which WebSocket class, and collecting what arrives.
import { createRequire } from "node:module";
import { ChorusClient } from "../../chorus.js";
import { mintToken, waitFor } from "./cluster.mjs";

/** Node's global WebSocket (Node 22+, or Node 20 run with --experimental-websocket). */
export const GlobalWebSocket = globalThis.WebSocket;

/** The `ws` package when installed (npm, or Debian's node-ws in /usr/share/nodejs), else undefined. */
export const WsPackage = (() => {
  const require = createRequire(import.meta.url);
  for (const name of ["ws", "/usr/share/nodejs/ws"]) {
    try { return require(name); } catch { /* next */ }
  }
  return undefined;
})();

export const TestWebSocket = GlobalWebSocket ?? WsPackage;

/** A client for `user` with test-friendly defaults; closed by `closeAll()`. */
const open = new Set();
export function client(url, user, options = {}) {
  const c = new ChorusClient(url, {
    WebSocket: TestWebSocket,
    token: options.getToken ? undefined : mintToken(user),
    requestTimeout: 30000,
    ...options,
  });
  open.add(c);
  return c;
}

export function closeAll() {
  for (const c of open) c.disconnect();
  open.clear();
}

/** Collects the messages a handler gets; `until(n)` waits for the n-th. Probes (see `routed`) are counted apart. */
export class Inbox {
  constructor() { this.messages = []; this.waiters = []; this.probes = 0; this.handler = (m) => this.push(m); }
  push(message) {
    if (message.data && message.data.__probe === true) this.probes += 1;
    else this.messages.push(message);
    for (const w of this.waiters.splice(0)) if (!w.check()) this.waiters.push(w);
  }
  until(predicate, what = "messages", timeout = 30000) {
    const check = typeof predicate === "number" ? () => this.messages.length >= predicate : () => predicate(this.messages);
    return waitFor(what, (resolve) => {
      const w = { check: () => { if (check()) { resolve(this.messages); return true; } return false; } };
      if (!w.check()) this.waiters.push(w);
      return () => { const i = this.waiters.indexOf(w); if (i >= 0) this.waiters.splice(i, 1); };
    }, timeout);
  }
  data() { return this.messages.map((m) => m.data); }
}

/** Resolves with the next `event` of `c` for which `accept` holds. */
export function nextEvent(c, event, accept = () => true, timeout = 30000) {
  return waitFor(`event '${event}'`, (resolve) => c.on(event, (value) => { if (accept(value)) resolve(value); }), timeout);
}

/**
 * Publishes probes to `topic` from `publisher` until `inbox` has one: a `subscribed` reply does
 * not mean the node's Redis subscription is in place yet, so a message published right after it
 * may not be routed (the Swift tests' `awaitRoute`). Probes are paced by their round trips and a
 * short poll; they never reach `inbox.messages`.
 */
export async function routed(inbox, publisher, topic) {
  const { setTimeout: delay } = await import("node:timers/promises");
  const deadline = Date.now() + 30000;
  while (inbox.probes === 0) {
    if (Date.now() > deadline) throw new Error(`no route to ${topic} within 30 s`);
    await publisher.publish(topic, { __probe: true });
    await delay(20);
  }
}
