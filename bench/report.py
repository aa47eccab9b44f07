#!/usr/bin/env python3
"""Reads the JSON objects bench/run.sh collected (one per workload, store and run) and
prints one table: the median of every figure over the runs, each run's value, and the
target from issue 5 (issue 11 for W11) where there is one."""

import argparse
import json
import os
import re
import statistics
import sys

# (workload, field, unit, target) where target is (op, bound), {store: (op, bound)},
# a function of the machine's cores returning either, or None. A field is a key of the run's JSON object or a function of it.
ROWS = [
    ("W1", "accepted_per_s", "/s", {"memory": (">=", 50000), "sqlite": (">=", 20000)}),
    ("W1", "latency_p50_ms", "ms", None),
    ("W1", "latency_p99_ms", "ms", None),
    ("W1", "non_202", "", None),
    ("W2", "finished_per_s", "jobs/s", (">=", 20000)),
    ("W2", "submit_per_s", "/s", None),
    ("W2", "failed", "", None),
    ("W2", "lost", "", None),
    ("W3", "latency_p50_ms", "ms", None),
    ("W3", "latency_p90_ms", "ms", None),
    ("W3", "latency_p99_ms", "ms", ("<", 5)),
    ("W3", "latency_max_ms", "ms", None),
    ("W3", "non_200", "", None),
    ("W4", "total_s", "s", None),
    ("W4", "gap_mean_ms", "ms", ("<", 1)),
    ("W4", "gap_max_ms", "ms", None),
    ("W4", "overhead_per_job_ms", "ms", None),
    ("W4", lambda o: o.get("overlaps", 0) + o.get("out_of_order", 0), "overlaps+out_of_order", None),
    ("W5", "latency_p50_ms", "ms", ("<", 1)),
    ("W5", "latency_p99_ms", "ms", None),
    ("W5", "status_200", "", None),
    ("W6", lambda o: o["rss_kib"] / 1024, "rss MiB", ("<", 1024)),
    ("W6", lambda o: o["rss_before_kib"] / 1024, "rss before MiB", None),
    ("W6", lambda o: (o["rss_kib"] - o["rss_before_kib"]) * 1024 / o["queued"], "bytes/job", None),
    ("W7", "accepted_per_s", "/s", None),
    ("W7", "latency_p50_ms", "ms", None),
    ("W7", "latency_p99_ms", "ms", None),
    ("W8a", "t1_s", "s, cpu = 1", None),
    ("W8a", "tn_s", "s, cpu = cores", None),
    # Issue: 1.9x on 2 cores, 0.9x the cores above; one core has nothing to gain.
    ("W8a", "speedup", "x", lambda cores: (">=", max(1.9, 0.9 * cores)) if cores >= 2 else None),
    ("W8b", "elements_per_s", "/s", (">=", 200000)),
    ("W8b", "server_elements_per_s", "/s", None),
    ("W8b", "wall_s", "s", None),
    ("W9", "finished_per_s", "jobs/s", (">=", 5000)),
    ("W9", "submit_per_s", "/s", None),
    ("W9", "failed", "", None),
    ("W9", "lost", "", None),
    ("W10", "finished_per_s", "jobs/s", (">=", 500)),
    ("W10", "submit_per_s", "/s", None),
    ("W10", "failed", "", None),
    ("W10", "lost", "", None),
    # Issue 11: offload's Client.map over ProcessPoolExecutor's map, same run, same inputs.
    ("W11", lambda o: o["cases"]["square"]["offload_median_s"], "square_300k offload_s", None),
    ("W11", lambda o: o["cases"]["square"]["ppe_median_s"], "square_300k ppe_s", None),
    ("W11", lambda o: o["cases"]["square"]["ratio"], "square_300k ratio (x)", ("<=", 1.5)),
    ("W11", lambda o: o["cases"]["busy"]["offload_median_s"], "busy_20k offload_s", None),
    ("W11", lambda o: o["cases"]["busy"]["ppe_median_s"], "busy_20k ppe_s", None),
    ("W11", lambda o: o["cases"]["busy"]["ratio"], "busy_20k ratio (x)", ("<=", 1.2)),
    ("W11", "busy_call_us", "us", None),
    # Issue 12: offload on PostgreSQL against pgbench -N on the same server, same run.
    ("W12", "pgbench_tps", "tps", None),
    ("W12", lambda o: o["one_node"]["finished_per_s"], "1 node finished_per_s", None),
    ("W12", lambda o: o["ratio_one_node"], "1 node / pgbench tps (x)", None),
    ("W12", lambda o: o["one_node"]["lost"], "1 node lost", None),
    ("W12", lambda o: o["two_nodes"]["finished_per_s"], "2 nodes finished_per_s", (">=", 5000)),
    ("W12", lambda o: o["ratio_two_nodes"], "2 nodes / pgbench tps (x)", (">=", 1.0)),
    ("W12", lambda o: o["two_nodes"]["lost"], "2 nodes lost", None),
    ("W12m", lambda o: o["one_node"]["elements_per_s"], "1 node elements/s", None),
    ("W12m", lambda o: o["two_nodes"]["elements_per_s"], "2 nodes elements/s", None),
    ("W12m", lambda o: o["ratio"], "2 nodes / 1 node (x)", (">=", 1.6)),
    ("W12s", "jobs", "jobs", None),
    ("W12s", lambda o: o["start"]["p50_ms"], "claim p50 at the start (ms)", None),
    ("W12s", lambda o: o["start"]["p99_ms"], "claim p99 at the start (ms)", None),
    ("W12s", lambda o: o["end"]["p50_ms"], "claim p50 at the end (ms)", None),
    ("W12s", lambda o: o["end"]["p99_ms"], "claim p99 at the end (ms)", None),
    ("W12s", lambda o: o["end"]["p50_ms"] / o["start"]["p50_ms"], "end / start p50 (x)", ("<=", 1.5)),
    # Issue 16: a 1 GiB upload through sha256sum against cat | sha256sum, same run.
    ("W13", lambda o: statistics.median(o["pipe_s"]), "pipe_s", None),
    ("W13", lambda o: statistics.median(o["modes"]["full"]["offload_s"]), "offload_s (full)", None),
    ("W13", lambda o: o["modes"]["full"]["ratio"], "ratio (x, full)", ("<=", 1.3)),
    ("W13", lambda o: o["modes"]["normal"]["ratio"], "ratio (x, normal)", ("<=", 1.3)),
    ("W13", lambda o: max(o["modes"]["full"]["rss_growth_kib"]) / 1024, "upload RSS growth (MiB)", ("<", 64)),
    ("W13", lambda o: o["downloads"]["rss_growth_kib"] / 1024, "10 downloads RSS growth (MiB)", ("<", 64)),
]

DESCRIPTIONS = {
    "W1": "submit noop",
    "W2": "e2e noop",
    "W3": "GET job, cpu saturated",
    "W4": "exclusive gpu = 1",
    "W5": "Prefer: wait, sequential",
    "W6": "RSS, queued jobs",
    "W7": "nginx fixed 202",
    "W8a": "map of 2 x cores cpu elements",
    "W8b": "map of noop elements",
    "W9": "e2e Python worker, null result",
    "W10": "e2e command /bin/true",
    "W11": "Python map, offload vs ProcessPoolExecutor",
    "W12": "e2e noop on PostgreSQL vs pgbench",
    "W12m": "map of 10 ms sleeps, 1 vs 2 nodes of 2 slots",
    "W12s": "claim soak, 256 jobs a claim",
    "W13": "1 GiB upload through sha256sum",
    "W1/W7": "",
}


def load(results):
    """{(workload, store): [run objects in run order]}"""
    data = {}
    pattern = re.compile(r"^(W\d+[a-z]?)-([^-]+(?:-auth)?)-(\d+)\.json$")
    for name in sorted(os.listdir(results)):
        m = pattern.match(name)
        if not m:
            continue
        with open(os.path.join(results, name)) as f:
            try:
                obj = json.loads(f.read())
            except json.JSONDecodeError:
                continue
        data.setdefault((m.group(1), m.group(2)), []).append((int(m.group(3)), obj))
    return {k: [o for _, o in sorted(v, key=lambda x: x[0])] for k, v in data.items()}


def value(obj, field):
    try:
        return float(field(obj)) if callable(field) else float(obj[field])
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000 or v == int(v):
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def verdict(v, target, quick):
    if target is None:
        return "", ""
    op, bound = target
    text = f"{op} {fmt(bound)}"
    if quick or v is None:
        return text, ""
    met = v >= bound if op == ">=" else v <= bound if op == "<=" else v < bound
    if met:
        return text, "met"
    if op == ">=":
        return text, f"MISSED: reaches {100 * v / bound:.0f}% of it"
    if v < 2 * bound:
        return text, f"MISSED: {100 * (v / bound - 1):.0f}% over"
    return text, f"MISSED: {v / bound:.1f}x the bound"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--cores", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    data = load(args.results)
    stores = sorted({s for (_, s) in data if s != "http"})

    table = []  # (workload, store, figure, median, runs, target, verdict)
    workloads = []
    for row in ROWS:
        if row[0] not in workloads:
            workloads.append(row[0])
    for wl in workloads:
        for store in (["http"] if wl == "W7" else stores):
            objs = data.get((wl, store))
            if not objs:
                continue
            for _, field, unit, target in (r for r in ROWS if r[0] == wl):
                vals = [value(o, field) for o in objs]
                present = [v for v in vals if v is not None]
                if not present:
                    continue
                med = statistics.median(present)
                name = field if isinstance(field, str) else unit
                if isinstance(field, str) and unit and unit not in name:
                    name = f"{field} ({unit})"
                if callable(target):
                    target = target(args.cores)
                if isinstance(target, dict):
                    target = target.get(store)
                t = verdict(med, target, args.quick)
                table.append((wl, "-" if store == "http" else store, name, fmt(med),
                              " ".join(fmt(v) for v in vals), t[0], t[1]))
    # W1 as a share of W7, from the medians.
    w7 = [value(o, "accepted_per_s") for o in data.get(("W7", "http"), [])]
    w7 = [v for v in w7 if v]
    for store in stores:
        w1 = [value(o, "accepted_per_s") for o in data.get(("W1", store), [])]
        w1 = [v for v in w1 if v is not None]
        if w1 and w7:
            share = 100 * statistics.median(w1) / statistics.median(w7)
            # Issue 5 quotes the memory store against the ceiling.
            t = verdict(share, (">=", 50) if store == "memory" else None, args.quick)
            table.append(("W1/W7", store, "W1 as % of W7", f"{share:.0f}%", "", t[0] + "%" if t[0] else "", t[1]))

    header = ("workload", "store", "figure", "median", "each run", "target", "")
    if not table:
        print("offload bench: no results", file=sys.stderr)
        return 1
    if args.markdown:
        print("| " + " | ".join(header[:-1]) + " | verdict |")
        print("|" + "---|" * len(header))
        for row in table:
            wl = row[0]
            print("| " + " | ".join([f"{wl} {DESCRIPTIONS.get(wl, '')}".strip()] + list(row[1:])) + " |")
    else:
        shown, last = [], None
        for row in table:
            first = "" if row[0] == last else f"{row[0]} {DESCRIPTIONS.get(row[0], '')}".strip()
            last = row[0]
            shown.append([first] + list(row[1:]))
        widths = [max(len(str(r[i])) for r in shown + [list(header)]) for i in range(len(header))]
        line = lambda r: "  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip()
        print(line(header))
        print(line(["-" * w for w in widths]))
        for row in shown:
            print(line(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
