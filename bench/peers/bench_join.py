#!/usr/bin/env python3
"""Joins the rounds of scripts/bench-vs-torch.sh into one Markdown table (standard library only).

    bench_join.py ops OUT_DIR      atelier.<r>.json (Google Benchmark's JSON of bench_ops) and torch.<r>.json
                                   (bench/peers/ops_torch.py) for rounds r = 1, 2, ...
    bench_join.py op_table OUT_DIR the same files from bench_op_table and bench/peers/op_table_torch.py: the
                                   same table in microseconds, atelier's rows without a PyTorch twin left out
    bench_join.py began OUT_DIR    <case>.<r>.atelier.json (bench_train's JSON, one case) and
                                   <case>.<r>.nchw.json, <case>.<r>.channels_last.json (began_step_torch.py --bench)

Each round gives one figure per side and row: ops, the median over the round's repetitions (a repetition is the
mean time per call over >= MIN_TIME seconds); --began, the median of the round's timed steps. The table shows,
per side, the minimum and the median of those figures over the rounds (for --began the minimum is the fastest
single step of any round), and ratio = PyTorch's median / atelier's median: above 1, atelier is faster. For
--began the ratio is against PyTorch's faster layout (by median), named beside it.
"""
import glob
import json
import os
import re
import statistics
import sys

UNIT_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def table(rows):
    """Markdown, the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        cells = [c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))]
        lines.append("| " + " | ".join(cells) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) if j == 0 else "-" * (w + 1) + ":" for j, w in
                                        enumerate(widths)) + "|")
    return "\n".join(lines)


def rounds_of(out_dir, pattern):
    """The round numbers r for which out_dir holds pattern % r, in order."""
    regex = re.compile("^" + re.escape(pattern).replace("%d", "([0-9]+)") + "$")
    found = sorted(int(m.group(1)) for m in (regex.match(os.path.basename(p)) for p in
                                             glob.glob(os.path.join(out_dir, "*"))) if m)
    if not found:
        sys.exit("bench_join.py: no %s in %s" % (pattern.replace("%d", "<round>"), out_dir))
    return found


def fmt(x, digits=3):
    return "-" if x is None else "%.*f" % (digits, x)


def base_name(name):
    """Google Benchmark's run name without the suffixes it appends (/real_time, /iterations:N, ...)."""
    return re.sub(r"(/(real_time|iterations:[0-9]+|min_time:[0-9.]+|repeats:[0-9]+))+$", "", name)


# ---------------------------------------------------------------- ops

def atelier_ops(path):
    """name -> (ms, rate text) of one bench_ops run; an op that skipped maps to (None, its message)."""
    with open(path) as f:
        data = json.load(f)
    result = {}
    for b in data["benchmarks"]:
        name = base_name(b.get("run_name", b["name"]))
        if b.get("error_occurred"):
            result[name] = (None, "skipped: " + b.get("error_message", ""))
            continue
        # With repetitions only the median aggregate counts; a single run (no aggregates) is taken as is.
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        ms = b["real_time"] * UNIT_TO_MS[b.get("time_unit", "ns")]
        rate = "%.1f GFLOP/s" % b["GFLOP"] if "GFLOP" in b else "%.1f GB/s" % b["GB"] if "GB" in b else ""
        if "us_per_node" in b:
            rate = "%.2f us per node, %d nodes" % (b["us_per_node"], b["nodes"])
        result[name] = (ms, rate)
    return result, data.get("context", {})


def join_ops(out_dir, unit="ms", twins_only=False):
    """unit: "ms", or "us" (the op table's rows); twins_only: only the rows both sides ran."""
    scale = 1.0 if unit == "ms" else 1e3
    numbers = rounds_of(out_dir, "atelier.%d.json")
    ours, theirs, order, rates = {}, {}, [], {}
    context_ours, context_theirs = {}, {}
    for r in numbers:
        run, context_ours = atelier_ops(os.path.join(out_dir, "atelier.%d.json" % r))
        for name, (ms, rate) in run.items():
            if name not in order:
                order.append(name)
            ours.setdefault(name, [])
            if ms is not None:
                ours[name].append(ms)
            rates.setdefault(name, []).append(rate)
        with open(os.path.join(out_dir, "torch.%d.json" % r)) as f:
            data = json.load(f)
        context_theirs = data["context"]
        for b in data["benchmarks"]:
            if b["name"] not in order:
                order.append(b["name"])
            theirs.setdefault(b["name"], []).append(b["ms"])
    rows = [("op", "atelier min " + unit, "atelier median " + unit, "PyTorch min " + unit,
             "PyTorch median " + unit, "ratio", "atelier rate (median round)")]
    for name in order:
        a, t = [x * scale for x in ours.get(name, [])], [x * scale for x in theirs.get(name, [])]
        if twins_only and not (a and t):
            continue
        a_med = statistics.median(a) if a else None
        t_med = statistics.median(t) if t else None
        if a:  # the rate of the round whose time is the median (the upper one for an even count)
            rate = rates[name][sorted(range(len(a)), key=lambda i: a[i])[len(a) // 2]]
        else:
            rate = rates.get(name, ["missing"])[-1]
        ratio = "%.2f" % (t_med / a_med) if a_med and t_med else "-"
        rows.append((name, fmt(min(a) if a else None), fmt(a_med), fmt(min(t) if t else None), fmt(t_med), ratio,
                     rate))
    threads_ours = context_ours.get("atelier_threads", "?")
    threads_theirs = str(context_theirs.get("threads", "?"))
    print("rounds: %d; ratio = PyTorch median / atelier median (> 1: atelier faster)" % len(numbers))
    if threads_ours != threads_theirs:
        print("WARNING: atelier ran %s threads, PyTorch %s" % (threads_ours, threads_theirs))
    print()
    print(table(rows))


# ---------------------------------------------------------------- began

def atelier_step(path):
    with open(path) as f:
        data = json.load(f)
    runs = [b for b in data["benchmarks"] if b.get("run_type") != "aggregate"]
    if len(runs) != 1:
        sys.exit("bench_join.py: %s holds %d runs, one expected" % (path, len(runs)))
    b = runs[0]
    if b.get("error_occurred"):
        sys.exit("bench_join.py: %s: %s" % (path, b.get("error_message", "error")))
    return dict(name=base_name(b["name"]), median=b["step_s_median"], min=b["step_s_min"], rss=b["max_rss_MiB"],
                base=b["rss_base_MiB"], alloc_peak=b["peak_MiB"], threads=data["context"].get("atelier_threads"))


def torch_step(path):
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if len(lines) != 1:
        sys.exit("bench_join.py: %s holds %d JSON lines, one expected" % (path, len(lines)))
    d = lines[0]
    return dict(name=d["name"], median=d["seconds_per_step"], min=d["seconds_min"], rss=d["max_rss_mib"],
                base=d["rss_base_mib"], threads=str(d["torch_threads"]), torch=d["torch"])


SIDES = ("atelier", "nchw", "channels_last")


def join_began(out_dir):
    pattern = re.compile(r"^(?P<case>.+)\.(?P<round>[0-9]+)\.(?P<side>atelier|nchw|channels_last)\.json$")
    runs = {}  # case -> side -> [run, ...]
    order = []
    for path in sorted(glob.glob(os.path.join(out_dir, "*.json"))):
        m = pattern.match(os.path.basename(path))
        if not m:
            continue
        run = atelier_step(path) if m.group("side") == "atelier" else torch_step(path)
        if run["name"] not in order:
            order.append(run["name"])
        runs.setdefault(run["name"], {}).setdefault(m.group("side"), []).append(run)
    if not runs:
        sys.exit("bench_join.py: no <case>.<round>.<side>.json in %s" % out_dir)

    def cell(rs, key="median"):
        return "%s / %s" % (fmt(min(r["min"] for r in rs)), fmt(statistics.median(r[key] for r in rs))) if rs else "-"

    def memory(runs_by_side, above_base):
        cells = []
        for side in SIDES:
            rs = runs_by_side.get(side, [])
            cells.append("%.0f" % max(r["rss"] - (r["base"] if above_base else 0) for r in rs) if rs else "-")
        return " / ".join(cells)

    rows = [("step", "atelier min / median s", "PyTorch NCHW min / median s", "PyTorch CL min / median s",
             "ratio (best PyTorch)", "max RSS MiB: atelier / NCHW / CL", "above base MiB: atelier / NCHW / CL",
             "atelier allocator peak MiB")]
    threads, versions, counts = set(), set(), set()
    for name in sorted(order, key=lambda n: [int(x) for x in re.findall(r"[0-9]+", n)]):
        sides = runs[name]
        for side in SIDES:
            for r in sides.get(side, []):
                threads.add(str(r["threads"]))
                if "torch" in r:
                    versions.add(r["torch"])
            counts.add(len(sides.get(side, [])))
        a = sides.get("atelier", [])
        a_med = statistics.median(r["median"] for r in a) if a else None
        best = None
        for side in ("nchw", "channels_last"):
            rs = sides.get(side, [])
            if rs:
                med = statistics.median(r["median"] for r in rs)
                if best is None or med < best[1]:
                    best = (side, med)
        ratio = "%.2f (%s)" % (best[1] / a_med, "CL" if best[0] == "channels_last" else "NCHW") \
            if a_med and best else "-"
        peak = "%.0f" % max(r["alloc_peak"] for r in a) if a else "-"
        rows.append((name, cell(a), cell(sides.get("nchw", [])), cell(sides.get("channels_last", [])), ratio,
                     memory(sides, False), memory(sides, True), peak))
    print("rounds per side: %s; PyTorch %s; min = the fastest step of any round, median = the median of the "
          "rounds' median steps" % ("/".join(str(c) for c in sorted(counts)), ", ".join(sorted(versions)) or "?"))
    print("ratio = PyTorch's faster layout's median / atelier's median (> 1: atelier faster); max RSS = the "
          "process's peak resident set (the largest of the rounds); above base = that minus the resident set "
          "before the model was built (the program, Python and the libraries)")
    if len(threads) > 1:
        print("WARNING: the runs used different thread counts: %s" % ", ".join(sorted(threads)))
    print()
    print(table(rows))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("ops", "op_table", "began"):
        sys.exit(__doc__)
    if sys.argv[1] == "ops":
        join_ops(sys.argv[2])
    elif sys.argv[1] == "op_table":
        join_ops(sys.argv[2], unit="us", twins_only=True)
    else:
        join_began(sys.argv[2])


if __name__ == "__main__":
    main()
