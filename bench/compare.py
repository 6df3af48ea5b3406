#!/usr/bin/env python3
"""Side-by-side table of one scripts/bench.sh run: medians over repeated runs, Chorus vs Nchan
(and the floor servers, bench/floor and bench/floor-nio, in columns of their own when they ran).

    bench/compare.py bench/results STAMP   (prints Markdown; also writes STAMP-summary.json)
"""
import glob
import json
import os
import statistics
import sys


def load(results, stamp):
    runs = {}
    for path in sorted(glob.glob(os.path.join(results, f"{stamp}-*.json"))):
        if path.endswith("-summary.json"):
            continue
        with open(path) as f:
            r = json.load(f)
        runs.setdefault((r.get("label") or r["scenario"], r["target"]), []).append(r)
    return runs


def get(r, path):
    for key in path.split("."):
        if r is None:
            return None
        if isinstance(r, list):
            r = r[int(key)] if len(r) > int(key) else None
        else:
            r = r.get(key)
    return r


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# (label, metric name, path in the JSON, format, higher is better)
ROWS = [
    ("broadcast-2000", "deliveries/s (1,000 subs, 2 nodes, 2,000 msg/s offered)", "result.deliveredPerSecond", "{:,.0f}", True),
    ("broadcast-2000", "offered deliveries/s actually published", "result.offeredDeliveriesPerSecond", "{:,.0f}", True),
    ("broadcast-2000", "lost deliveries (not arrived 30 s after publishing stopped)", "result.lost", "{:,.0f}", False),
    ("broadcast-2000", "deliveries/s after warm-up (end of warm-up to last delivery)", "result.measuredDeliveredPerSecond", "{:,.0f}", True),
    ("broadcast-2000", "p50 latency ms", "result.latency.p50Ms", "{:.2f}", False),
    ("broadcast-2000", "p99 latency ms", "result.latency.p99Ms", "{:.2f}", False),
    ("broadcast-2000", "max latency ms", "result.latency.maxMs", "{:.2f}", False),
    ("broadcast-2000", "server CPU per delivery, µs (all server processes incl. Redis)", "result.serverCPUMicrosPerDelivery", "{:.3f}", False),
    ("broadcast-2000", "generator CPU per delivery, µs", "result.benchCPUMicrosPerDelivery", "{:.3f}", False),
    ("broadcast-2000", "deliveries counted by the nodes (/stats)", "result.nodeReportedDeliveries", "{:,.0f}", True),
    ("saturation", "highest rate with no loss, p99 <= 50 ms (msg/s)", "saturation.highestPassingRate", "{:,.0f}", True),
    ("saturation", "deliveries/s at that rate", "saturation.deliveredPerSecondAtThatRate", "{:,.0f}", True),
    ("broadcast-100", "p50 latency ms (1,000 subs, 100 msg/s)", "result.latency.p50Ms", "{:.3f}", False),
    ("broadcast-100", "p99 latency ms", "result.latency.p99Ms", "{:.3f}", False),
    ("broadcast-100", "p99.9 latency ms", "result.latency.p999Ms", "{:.3f}", False),
    ("broadcast-100", "max latency ms", "result.latency.maxMs", "{:.3f}", False),
    ("broadcast-100", "lost deliveries", "result.lost", "{:,.0f}", False),
    ("broadcast-100", "server CPU per delivery, µs", "result.serverCPUMicrosPerDelivery", "{:.3f}", False),
    ("latency", "p50 latency ms (100 subs, 100 msg/s, cross-node)", "result.latency.p50Ms", "{:.3f}", False),
    ("latency", "p99 latency ms", "result.latency.p99Ms", "{:.3f}", False),
    ("latency", "p99.9 latency ms", "result.latency.p999Ms", "{:.3f}", False),
    ("latency", "max latency ms", "result.latency.maxMs", "{:.3f}", False),
    ("latency", "lost deliveries", "result.lost", "{:,.0f}", False),
    ("rooms", "p50 latency ms (1,000 subs over 100 topics, 1,000 msg/s)", "result.latency.p50Ms", "{:.3f}", False),
    ("rooms", "p99 latency ms", "result.latency.p99Ms", "{:.3f}", False),
    ("rooms", "lost deliveries", "result.lost", "{:,.0f}", False),
    ("patterns", "p50 latency ms (100 on a wildcard, 1,000 non-matching patterns)", "result.latency.p50Ms", "{:.3f}", False),
    ("patterns", "p99 latency ms", "result.latency.p99Ms", "{:.3f}", False),
    ("patterns", "lost deliveries", "result.lost", "{:,.0f}", False),
    ("slow-0", "p99 latency ms (1,000 subs, 100 msg/s, 1 KiB padding, none slow)", "result.latency.p99Ms", "{:.3f}", False),
    ("slow-10", "p99 latency ms of the others (10 of the 1,000 never read)", "result.latency.p99Ms", "{:.3f}", False),
    ("slow-10", "lost deliveries to the others", "result.lost", "{:,.0f}", False),
    ("slow-10", "slow ones closed by the server (Chorus: /stats closedSlowConsumer; Nchan has no such close)", "SLOW_CLOSED", "{:,.0f}", True),
    ("slow-0", "server RSS after, MiB (sum of watched processes)", "WATCHED_RSS", "{:.1f}", False),
    ("slow-10", "server RSS after, MiB (sum of watched processes)", "WATCHED_RSS", "{:.1f}", False),
    ("connections", "connections requested", "connect.requested", "{:,.0f}", True),
    ("connections", "connect rate (connections/s)", "connect.perSecond", "{:,.0f}", True),
    ("connections", "ready connections", "connect.ready", "{:,.0f}", True),
]


def watched_rss_mib(r):
    processes = get(r, "result.processes") or []
    if not processes:
        return None
    return sum(p.get("rssBytes", 0) for p in processes) / 1048576


GROWTH = [
    ("subscriptions", ["growth-subs-100", "growth-subs-1000", "growth-subs-10000"]),
    ("topics", ["growth-topics-1", "growth-topics-100", "growth-topics-10000"]),
    ("patterns", ["growth-patterns-0", "growth-patterns-100", "growth-patterns-1000"]),
]


def slow_closed(r):
    """Connections the nodes closed as slow consumers, from their /stats after the trial.

    The slow clients never read, so they never see the close frame; the nodes' count is the
    evidence. Nchan has no such limit (it keeps buffering), so there is nothing to count."""
    if r["target"] != "chorus":
        return None
    stats = r.get("nodeStatsAfter") or {}
    return sum(node.get("closedSlowConsumer", 0) for node in stats.values())


def growth_table(runs):
    """Chorus only: server CPU per delivery (µs) and p99 as one dimension grows."""
    lines = []
    for dimension, labels in GROWTH:
        cells = []
        for label in labels:
            rs = runs.get((label, "chorus"), [])
            cpu = median([get(r, "result.serverCPUMicrosPerDelivery") for r in rs])
            p99 = median([get(r, "result.latency.p99Ms") for r in rs])
            lost = median([get(r, "result.lost") for r in rs])
            if cpu is None:
                continue
            size = label.rsplit("-", 1)[1]
            cells.append(f"{size}: {cpu:.2f} µs, p99 {p99:.1f} ms, lost {lost:,.0f} (n={len(rs)})")
        if cells:
            lines.append(f"| {dimension} | " + " | ".join(cells) + " |")
    if not lines:
        return []
    return ["", "Growth (Chorus only): server CPU per delivery, p99 latency, lost deliveries.", "",
            "| grows | small | medium | large |", "|---|---|---|---|"] + lines


def memory_per_connection(r):
    """Bytes of server memory per idle connection: /stats RSS for Chorus, worker RSS for Nchan."""
    m = r.get("memory") or {}
    if r["target"] == "chorus" and m.get("nodes"):
        return m["nodes"][0]["bytesPerConnection"]
    return m.get("watchedRSSBytesPerConnection")


def main():
    results, stamp = sys.argv[1], sys.argv[2]
    runs = load(results, stamp)
    summary = []
    floors = tuple(t for t in ("floor", "floor-nio") if any(target == t for _, target in runs))
    targets = ("chorus", "nchan") + floors
    lines = [
        f"Run {stamp}: medians over the runs shown as n; ratio = Chorus / Nchan.",
        "",
        "| scenario | metric | Chorus | Nchan | ratio |" + "".join(f" {t.capitalize()} |" for t in floors),
        "|---|---|---|---|---|" + "---|" * len(floors),
    ]

    def row(label, name, values_by_target, fmt):
        cells = []
        meds = {}
        for target in targets:
            values = values_by_target.get(target, [])
            med = median(values)
            meds[target] = med
            n = len([v for v in values if v is not None])
            cells.append("-" if med is None else (fmt.format(med) + (f" (n={n})" if n > 1 else "")))
        ratio = ""
        if meds["chorus"] is not None and meds["nchan"] not in (None, 0):
            ratio = f"{meds['chorus'] / meds['nchan']:.2f}x"
        floor_cells = "".join(f" {cell} |" for cell in cells[2:])
        lines.append(f"| {label} | {name} | {cells[0]} | {cells[1]} | {ratio} |{floor_cells}")
        summary.append({"scenario": label, "metric": name, **meds, "runs": {t: v for t, v in values_by_target.items()}})

    for label, name, path, fmt, _ in ROWS:
        special = {"WATCHED_RSS": watched_rss_mib, "SLOW_CLOSED": slow_closed}
        pick = special.get(path) or (lambda r, path=path: get(r, path))
        values = {t: [pick(r) for r in runs.get((label, t), [])] for t in targets}
        if not any(values.values()):
            continue
        row(label, name, values, fmt)
    mem = {t: [memory_per_connection(r) for r in runs.get(("connections", t), [])] for t in ("chorus", "nchan")}
    if any(mem.values()):
        row("connections", "server memory per idle subscribed connection (bytes)", mem, "{:,.0f}")
    lines += growth_table(runs)
    print("\n".join(lines))
    with open(os.path.join(results, f"{stamp}-summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
