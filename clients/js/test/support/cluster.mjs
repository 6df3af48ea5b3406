// Real processes for the SDK's tests: redis-server, `chorus` nodes (the debug build, or
// $CHORUS_BINARY) and nginx in front, all on loopback ports, logs under
// .build/test-logs/js/<test>/. `stop()` ends every process it started and returns the problems
// with how the nodes ended (exit status other than 0 after SIGTERM, a crash line in the log).
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdirSync, openSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { request as httpRequest } from "node:http";

/**
 * One HTTP request on a connection of its own (`agent: false`), resolving with `{ status, json(),
 * text }`. Not `fetch`: Node's fetch keeps connections alive in a pool that Node's built-in
 * WebSocket shares, and a node upgrades only on a connection's first request (see
 * docs/troubleshooting.md), so a WebSocket to an origin fetched before would fail.
 */
export function http(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolveResponse, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(body);
    if (payload) headers = { ...headers, "Content-Length": String(payload.length) };
    const request = httpRequest(url, { method, headers, agent: false }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => { text += chunk; });
      response.on("end", () => resolveResponse({ status: response.statusCode, text, json: () => JSON.parse(text) }));
    });
    request.on("error", reject);
    if (payload) request.write(payload);
    request.end();
  });
}

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
export const secret = "js-sdk-test-secret-0123456789abcdef";
export const apiKey = "js-sdk-test-api-key";

const crashMarkers = [
  "Assertion failed", "Fatal error", "Precondition failed", "Program crashed", "Crash", "*** Signal ",
  "Signal 4", "Signal 6", "Signal 11", "Backtracing", "Thread 0 crashed",
];

/** An HS256 token for `sub`, as `chorus token` mints them. */
export function mintToken(sub, { ttlSeconds = 3600, extra = {}, signingSecret = secret } = {}) {
  const b64 = (object) => Buffer.from(JSON.stringify(object)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, iat: now, exp: now + ttlSeconds, ...extra })}`;
  return `${body}.${createHmac("sha256", signingSecret).update(body).digest("base64url")}`;
}

/** Polls `check` (async, truthy = done) until it holds; throws with `what` after `timeout` ms. */
export async function eventually(what, check, { timeout = 30000, every = 50 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try { last = await check(); } catch (error) { last = error; }
    if (last && !(last instanceof Error)) return last;
    await delay(every);
  }
  throw new Error(`${what}: not within ${timeout} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/** Resolves with the first value `register(resolve)` delivers; rejects after `timeout` ms (a generous bound, not a measurement). */
export function waitFor(what, register, timeout = 30000) {
  return new Promise((resolvePromise, reject) => {
    let cleanup = () => {};
    const timer = setTimeout(() => { cleanup(); reject(new Error(`${what}: not within ${timeout} ms`)); }, timeout);
    cleanup = register((value) => { clearTimeout(timer); cleanup(); resolvePromise(value); }) ?? (() => {});
  });
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Every process the tests started; whatever still runs when the test process exits is killed. */
const started = new Set();
process.on("exit", () => { for (const child of started) { try { child.kill("SIGKILL"); } catch { /* gone */ } } });
export function track(childProcess) {
  started.add(childProcess);
  childProcess.on("exit", () => started.delete(childProcess));
  return childProcess;
}

class Child {
  constructor(name, command, args, { env = {}, log }) {
    this.name = name;
    this.logPath = log;
    const fd = openSync(log, "a");
    this.process = track(spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", fd, fd] }));
    this.exit = new Promise((resolveExit) => this.process.on("exit", (code, signal) => resolveExit({ code, signal })));
    this.status = undefined;
    this.exit.then((s) => { this.status = s; });
  }
  get running() { return this.status === undefined; }
  output() { try { return readFileSync(this.logPath, "utf8"); } catch { return ""; } }
  signal(name) { if (this.running) this.process.kill(name); }
  async stop(timeout = 20000) {
    if (!this.running) return this.status;
    this.signal("SIGTERM");
    const timer = setTimeout(() => this.signal("SIGKILL"), timeout);
    const status = await this.exit;
    clearTimeout(timer);
    return status;
  }
}

/** One `chorus serve` process. */
export class ChorusNode {
  constructor(id, child) { this.id = id; this.child = child; this.port = 0; }
  get url() { return `http://127.0.0.1:${this.port}`; }
  get wsURL() { return `ws://127.0.0.1:${this.port}/ws`; }
  /** SIGTERM: the node drains (1001 to its WebSockets) and exits. */
  terminate() { this.child.signal("SIGTERM"); }
  /** Problems with how the node ended (empty while running). */
  exitProblems() {
    const s = this.child.status;
    if (!s) return [];
    const problems = [];
    if (s.code !== 0) problems.push(`${this.id} exited with ${s.code ?? s.signal}, expected 0 (log ${this.child.logPath})`);
    const crashes = this.child.output().split("\n").filter((line) => crashMarkers.some((m) => line.includes(m)));
    if (crashes.length) problems.push(`${this.id} logged a crash: ${crashes.slice(0, 3).join(" | ")}`);
    return problems;
  }
}

export function binaryPath() {
  const path = process.env.CHORUS_BINARY ?? process.env.CHORUS_BIN ?? join(root, ".build/debug/chorus");
  if (!existsSync(path)) throw new Error(`no chorus binary at ${path}: run 'swift build' first (or set CHORUS_BINARY)`);
  return path;
}

/** The nginx configuration: deploy/nginx.conf's proxy settings on loopback, plus the example app and the SDK as static files. */
function nginxConfiguration({ port, upstreamPorts, directory }) {
  const user = process.getuid?.() === 0 ? "user root root;\n" : "";
  const servers = upstreamPorts.map((p) => `        server 127.0.0.1:${p} max_fails=3 fail_timeout=10s;`).join("\n");
  const proxy = `
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 5s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 10s;`;
  return `${user}master_process off;
worker_processes 1;
pid ${directory}/nginx.pid;
error_log ${directory}/error.log notice;
events { worker_connections 1024; }
http {
    access_log ${directory}/access.log;
    client_body_temp_path ${directory}/tmp/client_body;
    proxy_temp_path ${directory}/tmp/proxy;
    fastcgi_temp_path ${directory}/tmp/fastcgi;
    uwsgi_temp_path ${directory}/tmp/uwsgi;
    scgi_temp_path ${directory}/tmp/scgi;
    types { text/html html; text/javascript js mjs; text/css css; }
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    upstream chorus_nodes {
        least_conn;
${servers}
    }
    server {
        listen 127.0.0.1:${port};
        location /ws {
            proxy_pass http://chorus_nodes;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;${proxy}
            proxy_read_timeout 75s;
            proxy_send_timeout 75s;
            proxy_buffering off;
        }
        # The example chat app and the SDK it imports, as static files (same origin as the API).
        location /examples/ { root ${root}; add_header Cache-Control no-store; }
        location /clients/js/ { root ${root}; add_header Cache-Control no-store; }
        location / {
            proxy_pass http://chorus_nodes;
            proxy_http_version 1.1;${proxy}
            proxy_read_timeout 30s;
        }
    }
}
`;
}

/**
 * Starts Redis, `nodes` chorus nodes sharing it, and nginx in front; resolves once every node is
 * ready and nginx serves /health. `env` is added to every node's environment.
 */
export async function startCluster(name, { nodes = 2, env = {} } = {}) {
  const directory = join(root, ".build/test-logs/js", `${name.replace(/[^A-Za-z0-9_-]+/g, "-").slice(0, 80)}-${process.pid}-${Date.now()}`);
  mkdirSync(join(directory, "nginx/tmp"), { recursive: true });
  const cluster = new Cluster(directory);
  try {
    const redisPort = await freePort();
    cluster.redis = new Child("redis", "redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory], { log: join(directory, "redis.log") });
    await eventually("redis-server listening", async () => {
      if (!cluster.redis.running) throw new Error("redis-server exited: " + cluster.redis.output());
      return cluster.redis.output().includes("Ready to accept connections");
    });
    const binary = binaryPath();
    for (let n = 1; n <= nodes; n++) {
      const id = `node-${n}`;
      const child = new Child(id, binary, ["serve"], {
        log: join(directory, `${id}.log`),
        env: {
          JWT_SECRET: secret, API_KEY: apiKey, NODE_ID: id, HTTP_HOST: "127.0.0.1", WEBSOCKET_HOST: "127.0.0.1",
          HTTP_PORT: "0", WEBSOCKET_PORT: "0", WEBSOCKET_ENABLED: "true", PUBSUB_ADAPTER: "redis",
          PUBSUB_REDIS_URL: `redis://127.0.0.1:${redisPort}`, PUBSUB_REDIS_PREFIX: `js${process.pid}:`,
          TRUSTED_PROXIES: "127.0.0.1", LOG_LEVEL: "info", DRAIN_TIMEOUT: "5000", AUTH_BCRYPT_COST: "4",
          // One store shared by every node, as in a deployment: any node answers /api/messages.
          DATABASE_URL: `sqlite:${join(directory, "chorus.sqlite")}`,
          WEBSOCKET_MAX_MESSAGES_PER_SECOND: "1000000",
          ...env,
        },
      });
      const node = new ChorusNode(id, child);
      cluster.nodes.push(node);
      node.port = await eventually(`${id} logs its port`, async () => {
        if (!child.running) throw new Error(`${id} exited during start: ${child.output().slice(-2000)}`);
        const line = child.output().split("\n").find((l) => l.includes("Server started and listening on"));
        return line ? Number(line.slice(line.lastIndexOf(":") + 1).match(/\d+/)[0]) : 0;
      }, { timeout: 60000 });
    }
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      writeFileSync(join(directory, "nginx/nginx.conf"), nginxConfiguration({ port, upstreamPorts: cluster.nodes.map((n) => n.port), directory: join(directory, "nginx") }));
      rmSync(join(directory, "nginx/error.log"), { force: true });
      cluster.nginx = new Child("nginx", "nginx", ["-p", join(directory, "nginx"), "-e", join(directory, "nginx/error.log"), "-c", join(directory, "nginx/nginx.conf"), "-g", "daemon off;"], { log: join(directory, "nginx/stdout.log") });
      cluster.port = port;
      const up = await eventually("nginx listening", async () => {
        if (!cluster.nginx.running) return "exited";
        const ok = await http(`http://127.0.0.1:${port}/health`).then((r) => r.status === 200, () => false);
        return ok ? "up" : false;
      }, { timeout: 30000 });
      if (up === "up") break;
      const errors = readFileSync(join(directory, "nginx/error.log"), "utf8");
      if (attempt >= 5 || !errors.includes("Address already in use")) throw new Error("nginx did not start: " + errors);
    }
    for (const node of cluster.nodes) {
      await eventually(`${node.id} ready`, async () => (await http(`${node.url}/ready`)).status === 200, { timeout: 30000 });
      await eventually(`${node.id} adapter connected`, async () => {
        const stats = (await http(`${node.url}/stats`)).json();
        return stats.adapter?.state === "connected";
      }, { timeout: 30000 });
    }
    return cluster;
  } catch (error) {
    await cluster.stop();
    error.message += ` (logs in ${directory})`;
    throw error;
  }
}

export class Cluster {
  constructor(directory) { this.directory = directory; this.nodes = []; this.redis = null; this.nginx = null; this.port = 0; }
  get url() { return `http://127.0.0.1:${this.port}`; }
  get wsURL() { return `ws://127.0.0.1:${this.port}/ws`; }
  node(n) { return this.nodes[n - 1]; }

  /** The node a connection from `userId` is on, from each node's /stats. */
  async nodeOf(count = 1) {
    const result = [];
    for (const node of this.nodes) {
      if (!node.child.running) continue;
      const stats = await http(`${node.url}/stats`).then((r) => r.json(), () => ({}));
      if ((stats.connections?.total ?? stats.connections?.current ?? 0) >= count) result.push(node);
    }
    return result;
  }

  /** POST /api/publish with the API key through nginx. */
  async publish(topic, data, eventType) {
    const response = await http(`${this.url}/api/publish`, {
      method: "POST", headers: { "X-API-Key": apiKey, "Content-Type": "application/json" },
      body: JSON.stringify({ topic, data, ...(eventType ? { eventType } : {}) }),
    });
    return response.status;
  }

  /** POST /api/publish to every connection of `userId`, with the API key through nginx. */
  async publishToUser(userId, data, eventType) {
    const response = await http(`${this.url}/api/publish`, {
      method: "POST", headers: { "X-API-Key": apiKey, "Content-Type": "application/json" },
      body: JSON.stringify({ userId, data, eventType }),
    });
    return response.status;
  }

  /** Stops nodes (SIGTERM), then nginx, then Redis; returns the nodes' exit problems. */
  async stop() {
    await Promise.all(this.nodes.map((n) => n.child.stop()));
    await this.nginx?.stop();
    await this.redis?.stop();
    return this.nodes.flatMap((n) => n.exitProblems());
  }
}

/**
 * What the node in front supports. Requests whose replies are always sent (an answer or an
 * `unknown message type` error) are awaited by id; publish acks are expected where the node has
 * history (the plan ships them together) or when `published` came before the `pong` sent after it.
 */
export async function probeFeatures(wsURL, WebSocketClass) {
  const ws = new WebSocketClass(wsURL);
  const replies = new Map();
  await new Promise((resolveOpen, reject) => { ws.onopen = resolveOpen; ws.onerror = reject; });
  let wake = () => {};
  ws.onmessage = (event) => {
    const m = JSON.parse(String(event.data));
    if (m.id !== undefined && !replies.has(m.id)) replies.set(m.id, { ...m, order: replies.size });
    wake();
  };
  const until = (ids) => new Promise((resolveDone, reject) => {
    const timer = setTimeout(() => reject(new Error(`probe: no reply to ${ids.filter((id) => !replies.has(id))} within 30 s`)), 30000);
    wake = () => { if (ids.every((id) => replies.has(id))) { clearTimeout(timer); resolveDone(); } };
    wake();
  });
  const topic = `rooms.probe-${randomUUID().slice(0, 8)}`;  // inside the recovery tests' HISTORY_TOPICS
  const send = (o) => ws.send(JSON.stringify(o));
  send({ type: "auth", token: mintToken("probe"), id: "auth" });
  send({ type: "subscribe", topic, id: "sub", presenceEvents: true });
  await until(["auth", "sub"]);
  const history = typeof replies.get("sub").offset === "number";
  send({ type: "message", topic, data: { probe: true }, messageId: "probe-1", id: "pub" });
  send({ type: "presence.get", topic, id: "presence" });
  send({ type: "typing", topic, state: "stop", id: "typing" });
  send({ type: "read", messageId: "00000000-0000-0000-0000-000000000000", id: "read" });
  send({ type: "ping", id: "end" });
  await until(history ? ["pub", "presence", "read", "end"] : ["presence", "read", "end"]);
  // Closed before the tests start: a probe connection still open would count on its node
  // (tests that find a client's node by connection counts, nginx's least_conn).
  await new Promise((resolveClosed) => { ws.onclose = resolveClosed; ws.close(); });
  const unknown = (id) => /unknown message type/.test(replies.get(id)?.message ?? "");
  const pub = replies.get("pub");
  const features = {
    history,
    publishAcks: pub?.type === "published",
    presence: replies.get("presence")?.type === "presence.state",
    typing: !unknown("typing"),
    readReceipts: !unknown("read"),
  };
  // The node of this checkout has every feature the SDK uses: a missing one is a failure, never
  // a skipped test. (The probe still lets the suite run against an older node by hand, with
  // CHORUS_JS_ALLOW_MISSING_FEATURES=1.)
  const missing = Object.entries(features).filter(([, present]) => !present).map(([name]) => name);
  if (missing.length > 0 && process.env.CHORUS_JS_ALLOW_MISSING_FEATURES !== "1") {
    throw new Error(`the node lacks ${missing.join(", ")}: every feature of the SDK must be tested against it`);
  }
  return features;
}
