/// The live cluster page served at `GET /dashboard`: one self-contained HTML document (no
/// framework, no build step, no external request) that polls `/stats?scope=cluster` every
/// 1.5 s and draws the nodes, recent rates, the busiest topics and a banner when a node is in
/// Redis fallback or has stopped reporting.
///
/// Rates come from each node's own sample times (its `uptimeSeconds`), not from the poll's:
/// the documents are the nodes' heartbeat announcements (every `CLUSTER_HEARTBEAT_INTERVAL`),
/// so a poll often finds the same one again, and dividing by the poll's interval made a steady
/// rate swing between too high and zero. The page also says what it cannot know (a node that
/// stopped before it was opened; other nodes while the cluster view cannot be read).
///
/// When the node requires `STATS_TOKEN`, open the page as `/dashboard#token=<STATS_TOKEN>`: the
/// token stays in the URL fragment (never sent to a server or a proxy log) and goes out as
/// `Authorization: Bearer` on each stats request.
///
/// Elements carry `data-*` attributes (node rows, each chart's latest value, the banner) so the
/// browser test can read what a person sees.
enum DashboardPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chorus cluster</title>
<style>
  :root { --fg:#1d2330; --muted:#6b7385; --line:#e3e6ec; --ok:#1f8a4c; --warn:#b7791f; --bad:#c53030; --accent:#3566d6; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:#f6f7f9; }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 20px; background:#fff; border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; }
  header .meta { color:var(--muted); }
  #banner { display:none; padding:10px 20px; font-weight:600; color:#fff; background:var(--bad); }
  #banner.shown { display:block; }
  main { padding:16px 20px; display:grid; gap:16px; }
  section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
  h2 { font-size:14px; margin:0 0 10px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--muted); font-weight:500; }
  td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
  .pill { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; color:#fff; }
  .ok { background:var(--ok); } .warn { background:var(--warn); } .bad { background:var(--bad); } .muted { background:var(--muted); }
  .charts { display:grid; grid-template-columns:repeat(auto-fill, minmax(260px, 1fr)); gap:12px; }
  .chart { border:1px solid var(--line); border-radius:6px; padding:8px 10px; }
  .chart .title { color:var(--muted); font-size:12px; }
  .chart .value { font-size:20px; font-weight:600; font-variant-numeric:tabular-nums; }
  .chart svg { width:100%; height:60px; display:block; }
  .chart polyline { fill:none; stroke:var(--accent); stroke-width:1.5; }
  #error { color:var(--bad); }
  .note { color:var(--muted); font-size:12px; margin:8px 0 0; }
  .note li { margin:2px 0; }
</style>
</head>
<body>
<header><h1>Chorus cluster</h1><span class="meta" id="summary">loading…</span><span id="error"></span></header>
<div id="banner" data-banner=""></div>
<main>
  <section>
    <h2>Nodes</h2>
    <table>
      <thead><tr><th>node</th><th>state</th><th>Redis</th><th class="num">uptime</th><th class="num">connections</th>
        <th class="num">subscriptions</th><th class="num">memory / connection</th><th class="num">published/s</th><th class="num">delivered/s</th></tr></thead>
      <tbody id="nodes"></tbody>
    </table>
  </section>
  <section>
    <h2>Last minutes</h2>
    <div class="charts" id="charts"></div>
  </section>
  <section>
    <h2>Busiest topics</h2>
    <table>
      <thead><tr><th>topic</th><th class="num">messages/s (busiest node)</th><th class="num">messages received (busiest node, since its start)</th><th class="num">nodes receiving</th></tr></thead>
      <tbody id="topics"></tbody>
    </table>
    <p class="note">Each node counts the messages of a topic that reached it, once per message however many of its clients
      subscribe. A message delivered on three nodes is counted by each of them, so the table shows the node that received the
      most, not a sum: about the topic's message rate while some node subscribes to all of it.</p>
  </section>
  <section>
    <h2>What this page can and cannot know</h2>
    <ul class="note" id="limits">
      <li>Nodes appear from what they announce in Redis every <code>CLUSTER_HEARTBEAT_INTERVAL</code> (2 s by default); rates
        are computed between those announcements.</li>
      <li>A node that stopped or hung <strong>before this page was opened</strong> is not listed at all: nothing announces it.
        A node that stops while the page is open shows as "not reporting" until it is forgotten after 5 minutes.
        Prometheus (<code>up</code>, the <code>ChorusNodeDown</code> alert) is the place that knows every node it was told about.</li>
      <li>While Redis is unreachable the cluster view holds only the node that answered this page: the others are shown as
        "unknown", not as stopped, since nothing can be said about them.</li>
    </ul>
  </section>
</main>
<script>
"use strict";
const POLL_MS = 1500, KEEP = 200;  // 200 points of 1.5 s: the last 5 minutes
const FORGET_MS = 5 * 60 * 1000;   // a node not reported for this long leaves the page
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const CHARTS = [
  ["published", "published / s"], ["delivered", "delivered / s"], ["opened", "connections opened / s"],
  ["closed", "connections closed / s"], ["slow", "slow-consumer closes / s"], ["dropped", "messages dropped / s"],
];
const series = Object.fromEntries(CHARTS.map(([key]) => [key, []]));
const seen = new Map();   // node id -> last time it was listed
// node id -> { startedAt, uptime, totals, topics: Map(topic -> messages), rates: {key: per second},
// topicRates: Map(topic -> per second) }: each node's last announcement and the rates between
// it and the one before. A poll that finds the same announcement again keeps the rates.
const samples = new Map();
let charted = false;      // the charts start once some node has a rate

const el = (tag, attrs = {}, text) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
};
const number = (value, digits = 0) => Number(value).toLocaleString("en-US", { maximumFractionDigits: digits });
const bytes = (value) => value >= 1048576 ? number(value / 1048576, 1) + " MiB" : value >= 1024 ? number(value / 1024, 1) + " KiB" : number(value) + " B";
const duration = (seconds) => seconds >= 86400 ? number(seconds / 86400, 1) + " d" : seconds >= 3600 ? number(seconds / 3600, 1) + " h" : seconds >= 60 ? number(seconds / 60, 1) + " min" : number(seconds) + " s";

function buildCharts() {
  const box = document.getElementById("charts");
  for (const [key, title] of CHARTS) {
    const chart = el("div", { class: "chart", id: "chart-" + key, "data-chart": key, "data-latest": "0", "data-points": "0" });
    chart.append(el("div", { class: "title" }, title), el("div", { class: "value" }, "0"));
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 " + KEEP + " 60");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.append(document.createElementNS("http://www.w3.org/2000/svg", "polyline"));
    chart.append(svg);
    box.append(chart);
  }
}

function totalsOf(stats) {
  const m = stats.messages, c = stats.connections, a = stats.adapter;
  return {
    published: m.published, delivered: m.delivered, opened: c.acceptedSinceStart,
    closed: c.acceptedSinceStart - c.total, slow: c.closedSlowConsumer,
    dropped: (m.droppedBacklog || 0) + (a.dropped || 0), topics: m.topTopics || [],
  };
}

function draw(key, value) {
  const points = series[key];
  points.push(value);
  if (points.length > KEEP) points.shift();
  const chart = document.getElementById("chart-" + key);
  chart.dataset.latest = String(value);
  chart.dataset.points = String(points.length);
  chart.querySelector(".value").textContent = number(value, 1);
  const top = Math.max(1, ...points);
  const offset = KEEP - points.length;
  chart.querySelector("polyline").setAttribute("points",
    points.map((v, i) => (offset + i) + "," + (58 - (v / top) * 56).toFixed(1)).join(" "));
}

/// Records node `n`'s document; rates use the node's own sample times (uptimeSeconds).
function sample(n) {
  const totals = totalsOf(n);
  const before = samples.get(n.nodeId);
  if (before && before.startedAt === n.startedAt && before.uptime === n.uptimeSeconds) return before;
  const topics = new Map(totals.topics.map((t) => [t.topic, t.messages]));
  const next = { startedAt: n.startedAt, uptime: n.uptimeSeconds, totals, topics, rates: null, topicRates: new Map() };
  const seconds = before && before.startedAt === n.startedAt ? n.uptimeSeconds - before.uptime : 0;
  if (seconds > 0) {
    next.rates = {};
    for (const [key] of CHARTS) next.rates[key] = Math.max(0, (totals[key] - before.totals[key]) / seconds);
    for (const [topic, messages] of topics) {
      const was = before.topics.get(topic);
      if (was !== undefined) next.topicRates.set(topic, Math.max(0, (messages - was) / seconds));
    }
  }
  samples.set(n.nodeId, next);
  return next;
}

function render(cluster, now) {
  const nodes = cluster.nodes;
  const current = new Map(nodes.map((n) => [n.nodeId, sample(n)]));
  const rate = (id, key) => { const r = current.get(id).rates; return r ? r[key] : 0; };
  // Without the cluster view (Redis unreachable) the other nodes are unknown, not stopped.
  const viewComplete = cluster.complete || (cluster.error || "").startsWith("memory adapter");
  for (const n of nodes) seen.set(n.nodeId, now);
  // A node gone for FORGET_MS was removed on purpose (scaled down) or will not come back.
  for (const [id, last] of seen) if (now - last > FORGET_MS) { seen.delete(id); samples.delete(id); }

  const rows = document.getElementById("nodes");
  rows.replaceChildren();
  for (const n of nodes) {
    const redis = n.adapter.adapter === "memory" ? "memory (one node)"
      : n.adapter.backends.map((b) => b.address.replace(/^redis:\/\//, "") + ": " + b.state).join(", ") || n.adapter.state;
    const stateClass = n.status === "ready" ? "ok" : n.status === "draining" ? "warn" : "muted";
    const adapterClass = n.adapter.state === "connected" || n.adapter.state === "local" ? "ok" : n.adapter.state === "fallback" ? "bad" : "warn";
    const row = el("tr", { "data-node": n.nodeId, "data-connections": String(n.connections.total), "data-adapter": n.adapter.state });
    const state = el("td"); state.append(el("span", { class: "pill " + stateClass }, n.status));
    const adapter = el("td"); adapter.append(el("span", { class: "pill " + adapterClass }, n.adapter.state), document.createTextNode(" " + redis));
    row.append(el("td", {}, n.nodeId), state, adapter,
      el("td", { class: "num" }, duration(n.uptimeSeconds)),
      el("td", { class: "num" }, number(n.connections.total)),
      el("td", { class: "num" }, number(n.subscriptions.total)),
      el("td", { class: "num" }, n.connections.total ? bytes(n.memory.residentBytes / n.connections.total) : "–"),
      el("td", { class: "num" }, number(rate(n.nodeId, "published"), 1)),
      el("td", { class: "num" }, number(rate(n.nodeId, "delivered"), 1)));
    rows.append(row);
  }
  for (const [id, last] of seen) {
    if (current.has(id)) continue;
    const row = el("tr", { "data-node": id, "data-missing": viewComplete ? "true" : "unknown" });
    const state = el("td");
    state.append(el("span", { class: viewComplete ? "pill bad" : "pill muted" }, viewComplete ? "not reporting" : "unknown"));
    const why = viewComplete ? "last seen " + Math.round((now - last) / 1000) + " s ago"
      : "cannot be seen while the cluster view (Redis) is unreachable; last seen " + Math.round((now - last) / 1000) + " s ago";
    row.append(el("td", {}, id), state, el("td", { colspan: "7" }, why));
    rows.append(row);
  }

  charted = charted || [...current.values()].some((s) => s.rates);
  if (charted) {
    for (const [key] of CHARTS) {
      let sum = 0;
      for (const n of nodes) sum += rate(n.nodeId, key);
      draw(key, sum);
    }
  }

  // Each node counts a topic's messages once each as they reach it: the busiest node's count,
  // not a sum over nodes (which would count a message once per node that received it).
  const topics = new Map();
  for (const n of nodes) {
    const s = current.get(n.nodeId);
    for (const [topic, messages] of s.topics) {
      const entry = topics.get(topic) || { messages: 0, rate: 0, known: false, nodes: 0 };
      entry.messages = Math.max(entry.messages, messages);
      entry.rate = Math.max(entry.rate, s.topicRates.get(topic) || 0);
      // A topic first seen in this sample has no rate yet: shown as unknown, not as 0.
      entry.known = entry.known || s.topicRates.has(topic);
      entry.nodes += 1;
      topics.set(topic, entry);
    }
  }
  const topicRows = document.getElementById("topics");
  topicRows.replaceChildren();
  for (const [topic, entry] of [...topics].sort((a, b) => b[1].rate - a[1].rate || b[1].messages - a[1].messages).slice(0, 10)) {
    const row = el("tr", { "data-topic": topic, "data-rate": entry.known ? String(entry.rate) : "" });
    row.append(el("td", {}, topic), el("td", { class: "num" }, entry.known ? number(entry.rate, 1) : "–"), el("td", { class: "num" }, number(entry.messages)),
      el("td", { class: "num" }, number(entry.nodes)));
    topicRows.append(row);
  }

  const problems = [];
  for (const n of nodes) if (n.adapter.state === "fallback") problems.push(n.nodeId + " is in Redis fallback: its clients get local messages only");
  if (viewComplete) for (const [id] of seen) if (!current.has(id)) problems.push(id + " has stopped reporting");
  if (!viewComplete) problems.push("cluster view incomplete (" + (cluster.error || "unknown error") + "): only " +
    nodes.map((n) => n.nodeId).join(", ") + " can be seen; other nodes may be healthy");
  const banner = document.getElementById("banner");
  banner.textContent = problems.join(" · ");
  banner.dataset.banner = problems.join(" · ");
  banner.classList.toggle("shown", problems.length > 0);

  const totals = cluster.totals;
  document.getElementById("summary").textContent = totals.nodes + " node" + (totals.nodes === 1 ? "" : "s") + " · " +
    number(totals.connections) + " connections · " + number(totals.subscriptions) + " subscriptions · updated " + new Date(now).toLocaleTimeString();
}

async function poll() {
  try {
    const response = await fetch("stats?scope=cluster", { headers: token ? { Authorization: "Bearer " + token } : {}, cache: "no-store" });
    if (!response.ok) throw new Error("/stats answered " + response.status + (response.status === 401 ? ": open this page as /dashboard#token=<STATS_TOKEN>" : ""));
    render(await response.json(), Date.now());
    document.getElementById("error").textContent = "";
  } catch (error) {
    document.getElementById("error").textContent = String(error.message || error);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

buildCharts();
poll();
</script>
</body>
</html>
"""#
}
