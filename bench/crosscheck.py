#!/usr/bin/env python3
"""Tables of one scripts/bench-crosscheck.sh run: both generators on every server, medians
and ranges; cross-node latency; the rate curve; one event loop against two; Redis PUBLISH
throughput.

    bench/crosscheck.py bench/results STAMP   (prints Markdown)
"""
import glob
import json
import os
import re
import statistics
import sys

NAME = re.compile(
    r"^[0-9TZ]+-(?P<kind>xcheck|crossnode|curve|loops\d+)-(?P<server>chorus1|chorus|nchan-http|nchan)-(?P<gen>chorus-bench|gogen)"
    r"-r(?P<rate>\d+)-(?P<run>\d+)\.json$")


def load(results, stamp):
    runs = {}
    for path in sorted(glob.glob(os.path.join(results, f"{stamp}-*.json"))):
        m = NAME.search(os.path.basename(path))
        if not m:
            continue
        with open(path) as f:
            r = json.load(f).get("result") or {}
        key = (m["kind"], m["server"], m["gen"], int(m["rate"]))
        r["_run"] = int(m["run"])
        runs.setdefault(key, []).append(r)
    return runs


def pick(rs, path):
    out = []
    for r in rs:
        v = r
        for k in path.split("."):
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None:
            out.append(v)
    return out


def med_range(values, fmt):
    if not values:
        return "-"
    m = statistics.median(values)
    if len(values) == 1:
        return fmt.format(m)
    return f"{fmt.format(m)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def overlap(a, b):
    return bool(a and b) and min(a) <= max(b) and min(b) <= max(a)


def curve(runs, cs, stamp, gen):
    servers = [s for s in ("chorus", "nchan", "nchan-http") if any(k[1] == s for k in cs)]
    lines = [
        f"### Rate curve (`{stamp}`, generator: {gen}): 1,000 subscribers, p50 / p99 ms, deliveries/s, lost, messages the server accepted per second",
        "",
        "| msg/s | " + " | ".join(servers) + " |",
        "|---|" + "---|" * len(servers),
    ]
    for rate in sorted({k[3] for k in cs}):
        row = [f"{rate:,}"]
        for s in servers:
            rs = [r for k in cs if k[1] == s and k[3] == rate for r in runs[k]]
            if not rs:
                row.append("-")
                continue
            row.append(
                f"{statistics.median(pick(rs, 'latency.p50Ms')):.2f} / {statistics.median(pick(rs, 'latency.p99Ms')):.2f}, "
                f"{statistics.median(pick(rs, 'deliveredPerSecond')):,.0f}/s, lost {sum(pick(rs, 'lost')):,}, "
                f"published {statistics.median(pick(rs, 'publishedPerSecond')):,.0f} msg/s")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return lines


def crossnode(runs, stamp):
    """Cross-node latency per generator: each server's medians (ranges), and in how many runs
    Chorus's p50 and p99 were below Nchan's (run n of one against run n of the other)."""
    ks = sorted(k for k in runs if k[0] == "crossnode")
    if not ks:
        return []
    lines = [
        f"### Cross-node latency (`{stamp}`): 100 subscribers on the second instance, 100 msg/s published on the first, medians (range)",
        "",
        "| generator | server | runs | p50 ms | p99 ms | lost | server CPU µs/delivery |",
        "|---|---|---|---|---|---|---|",
    ]
    for gen in sorted({k[2] for k in ks}):
        for server in ("chorus", "nchan"):
            rs = runs.get(("crossnode", server, gen, 100))
            if rs:
                lines.append(
                    f"| {gen} | {server} | {len(rs)} | {med_range(pick(rs, 'latency.p50Ms'), '{:.3f}')} "
                    f"| {med_range(pick(rs, 'latency.p99Ms'), '{:.3f}')} | {sum(pick(rs, 'lost'))} "
                    f"| {med_range(pick(rs, 'serverCPUMicrosPerDelivery'), '{:.2f}')} |")
    lines += ["", "| generator | Chorus's p50 below Nchan's | Chorus's p99 below Nchan's |", "|---|---|---|"]
    for gen in sorted({k[2] for k in ks}):
        a = {r["_run"]: r for r in runs.get(("crossnode", "chorus", gen, 100), [])}
        b = {r["_run"]: r for r in runs.get(("crossnode", "nchan", gen, 100), [])}
        row = [gen]
        for p in ("latency.p50Ms", "latency.p99Ms"):
            pairs = [(x[0], y[0]) for run in sorted(a.keys() & b.keys()) for x, y in [(pick([a[run]], p), pick([b[run]], p))] if x and y]
            row.append(f"{sum(1 for x, y in pairs if x < y)} of {len(pairs)}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return lines


def main():
    results, stamp = sys.argv[1], sys.argv[2]
    runs = load(results, stamp)
    lines = []
    xs = sorted(k for k in runs if k[0] == "xcheck")
    if xs:
        lines += [
            f"### Cross-check (`{stamp}`): 1,000 subscribers, 100 msg/s, medians (range) over runs",
            "",
            "| server | generator | runs | p50 ms | p99 ms | max ms | deliveries/s | lost | server CPU µs/delivery | generator CPU % |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key in xs:
            rs = runs[key]
            lines.append(
                f"| {key[1]} | {key[2]} | {len(rs)} | {med_range(pick(rs, 'latency.p50Ms'), '{:.2f}')} "
                f"| {med_range(pick(rs, 'latency.p99Ms'), '{:.2f}')} | {med_range(pick(rs, 'latency.maxMs'), '{:.1f}')} "
                f"| {med_range(pick(rs, 'deliveredPerSecond'), '{:,.0f}')} | {sum(pick(rs, 'lost'))} "
                f"| {med_range(pick(rs, 'serverCPUMicrosPerDelivery'), '{:.2f}')} "
                f"| {med_range(pick(rs, 'benchCPUPercent'), '{:.0f}')} |")
        lines += ["", "| server | gogen / chorus-bench, p50 | p99 | p50 ranges overlap | p99 ranges overlap |", "|---|---|---|---|---|"]
        for server in ("chorus", "nchan", "nchan-http"):
            a = runs.get(("xcheck", server, "chorus-bench", 100))
            b = runs.get(("xcheck", server, "gogen", 100))
            if not a or not b:
                continue
            row = [server]
            for p in ("latency.p50Ms", "latency.p99Ms"):
                va, vb = pick(a, p), pick(b, p)
                row.append(f"{statistics.median(vb) / statistics.median(va):.2f}x" if va and vb and statistics.median(va) else "-")
            for p in ("latency.p50Ms", "latency.p99Ms"):
                row.append("yes" if overlap(pick(a, p), pick(b, p)) else "no")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += crossnode(runs, stamp)
    cs = sorted(k for k in runs if k[0] == "curve")
    if cs:
        for gen in sorted({k[2] for k in cs}):
            lines += curve(runs, [k for k in cs if k[2] == gen], stamp, gen)
    ls = sorted(k for k in runs if k[0].startswith("loops"))
    if ls:
        lines += [
            f"### One event loop against two (`{stamp}`, Chorus, chorus-bench): medians (range)",
            "",
            "| loops per node | msg/s offered | runs | deliveries/s | p50 ms | p99 ms | lost | server CPU µs/delivery |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key in sorted(ls, key=lambda k: (k[3], k[0])):
            rs = runs[key]
            lines.append(
                f"| {key[0][5:]} | {key[3]:,} | {len(rs)} | {med_range(pick(rs, 'deliveredPerSecond'), '{:,.0f}')} "
                f"| {med_range(pick(rs, 'latency.p50Ms'), '{:.2f}')} | {med_range(pick(rs, 'latency.p99Ms'), '{:.2f}')} "
                f"| {sum(pick(rs, 'lost')):,} | {med_range(pick(rs, 'serverCPUMicrosPerDelivery'), '{:.3f}')} |")
        lines.append("")
    csvs = sorted(glob.glob(os.path.join(results, f"{stamp}-redis-publish-*.csv")))
    if csvs:
        lines += [f"### Redis PUBLISH (`{stamp}`, redis-benchmark, 4 connections, 200-byte message)", "",
                  "| subscribers | pipeline | requests/s | p50 ms | Redis CPU µs per PUBLISH |", "|---|---|---|---|---|"]
        for path in sorted(csvs, key=lambda p: tuple(int(x) for x in re.search(r"subs(\d+)-P(\d+)\.csv$", p).groups())):
            m = re.search(r"subs(\d+)-P(\d+)\.csv$", path)
            rps, p50, cpu = "-", "-", "-"
            with open(path) as f:
                for row in f.read().splitlines():
                    cells = [c.strip('"') for c in row.split(",")]
                    if cells[0] == "redis_cpu_us_per_publish":
                        cpu = cells[1]
                    elif cells[0] not in ("test", "") and len(cells) > 4:
                        rps, p50 = f"{float(cells[1]):,.0f}", cells[4]
            lines.append(f"| {m[1]} | {m[2]} | {rps} | {p50} | {cpu} |")
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
