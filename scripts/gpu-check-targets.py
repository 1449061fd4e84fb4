#!/usr/bin/env python3
"""The targets table of `bash .gpu/run.sh targets` (scripts/gpu-check-run.sh): the BEGAN step timed by atelier and
by PyTorch on the same GPU in the same run, each row against the CUDA speed issue's targets, and the epoch line.

    python3 scripts/gpu-check-targets.py LOGS [--epoch-steps 824] [--epoch-images 13184] [--epoch-result PASS]

reads, in LOGS (what run.sh's targets plan writes; any file may be missing, its rows are then missing):
    atelier_*.json       bench_train --benchmark_out files: each names its precision, step mode and convolution
                         workspace in its context (atelier_precision, atelier_cuda_graph,
                         atelier_conv_workspace_mib: a limit other than the default 256 shows in the layout
                         column, "NCHW ws=24MiB"), one benchmark per case
    torch_targets.jsonl  began_step_torch.py --bench JSON lines (one per case, layout and step mode)
    epoch/metrics.csv    the epoch's began train metrics (epoch,step,...,time_s: seconds since the trainer started)
    epoch.wall_s         the epoch's process, start to exit, by the wall clock (missing when it did not end itself)
and prints one row per side, case, precision, layout and step mode, then the targets one by one, then the epoch.
Python's standard library only (the GPU machine's python3 runs it; so do the tests, on sample files).
"""
import argparse
import csv
import json
import os
import sys

# The CUDA speed issue's targets for the BEGAN step (batch 16), ms per step, by (case, precision). None: beat
# PyTorch's best at that case and precision measured in the same run (the figure beside it is PyTorch's best
# when the issue was written, used when this run has no PyTorch row).
STEP_TARGETS = [
    # case, precision, target ms, PyTorch's best on the H200 when the issue was written (ms)
    ("64x64/C3/n64", "fp32", 10.0, 16.1),
    ("64x64/C3/n64", "tf32", 4.0, 7.3),
    ("64x64/C3/n128", "tf32", 8.0, 12.4),
    ("32x32/C1/n32", "tf32", None, 3.7),
]
EPOCH_TARGET_S = 8.0  # one epoch of 824 steps at n = 128 (tf32, 64x64x3), end to end
CASE_ORDER = [t[0] for t in STEP_TARGETS]
PRECISION_ORDER = ["fp32", "tf32", "bf16"]
MODE_ORDER = ["cuda_graph", "eager"]
DEFAULT_WORKSPACE_MIB = 256  # backends/conv_algo.h, kDefaultConvWorkspaceLimit


def atelier_rows(logs):
    """The rows of every atelier_*.json in logs; a case that reported an error gets a row with its message."""
    rows = []
    for name in sorted(os.listdir(logs)):
        if not (name.startswith("atelier_") and name.endswith(".json")):
            continue
        try:
            with open(os.path.join(logs, name)) as f:
                data = json.load(f)
            context = data["context"]
            precision = context.get("atelier_precision", "?")
            mode = "cuda_graph" if context.get("atelier_cuda_graph") == "on" else "eager"
            workspace = context.get("atelier_conv_workspace_mib", str(DEFAULT_WORKSPACE_MIB))
            algo = context.get("atelier_conv_algo", "auto")
            layout = "NCHW" + ("" if workspace == str(DEFAULT_WORKSPACE_MIB) else " ws=%sMiB" % workspace) + \
                ("" if algo == "auto" else " conv=%s" % algo)
            benchmarks = data["benchmarks"]
        except (OSError, ValueError, KeyError) as e:
            rows.append(dict(side="atelier", case="?", precision="?", layout="NCHW", mode="?", ms=None, peak=None,
                             error=f"{name}: unreadable ({e})"))
            continue
        for b in benchmarks:
            if b.get("run_type", "iteration") != "iteration":
                continue
            case = "/".join(b["name"].split("/")[1:4])  # began_step/64x64/C3/n64/iterations:30/real_time
            row = dict(side="atelier", case=case, precision=precision, layout=layout, mode=mode, ms=None, peak=None,
                       error=None)
            if b.get("error_occurred"):
                row["error"] = b.get("error_message", "error")
            else:
                row["ms"] = b["step_s_median"] * 1e3
                row["peak"] = b.get("peak_MiB")
            rows.append(row)
    return rows


def torch_rows(logs):
    rows = []
    try:
        with open(os.path.join(logs, "torch_targets.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                rows.append(dict(side="PyTorch " + r["torch"], case="/".join(r["name"].split("/")[1:4]),
                                 precision=r["precision"], layout=r["layout"], mode=r["mode"],
                                 ms=r["seconds_per_step"] * 1e3, peak=r.get("gpu_peak_mib"), error=None))
    except (OSError, ValueError, KeyError):
        pass
    return rows


def order(values, value):
    return values.index(value) if value in values else len(values)


def step_target(case, precision, torch_best):
    """(target ms, how it was set) for a case and precision, or (None, None) when the issue sets none."""
    for t_case, t_precision, ms, earlier in STEP_TARGETS:
        if (t_case, t_precision) == (case, precision):
            if ms is not None:
                return ms, "issue"
            if torch_best is not None:
                return torch_best, "PyTorch's best in this run"
            return earlier, "PyTorch's best when the issue was written"
    return None, None


def fmt(value, spec, missing="-"):
    return missing if value is None else spec % value


def print_rows(rows):
    torch = [r for r in rows if not r["side"].startswith("atelier") and r["ms"] is not None]

    def torch_best(case, precision):
        times = [r["ms"] for r in torch if (r["case"], r["precision"]) == (case, precision)]
        return min(times) if times else None

    def torch_peak(case, precision, mode):
        # The smallest PyTorch peak at the same case, precision and step mode (the strictest comparison).
        peaks = [r["peak"] for r in torch if (r["case"], r["precision"], r["mode"]) == (case, precision, mode)
                 and r["peak"] is not None]
        return min(peaks) if peaks else None

    rows.sort(key=lambda r: (order(CASE_ORDER, r["case"]), r["case"], order(PRECISION_ORDER, r["precision"]),
                             not r["side"].startswith("atelier"), order(MODE_ORDER, r["mode"]), r["layout"]))
    header = ("case", "precision", "side", "layout", "mode", "median ms", "peak MiB", "target ms", "met",
              "x torch best", "peak x torch")
    line = "  %-14s %-9s %-20s %-13s %-10s %9s %9s %9s %-4s %12s %12s"
    print(line % header)
    notes = []
    for r in rows:
        target = met = vs_time = vs_peak = None
        if r["side"] == "atelier":
            best = torch_best(r["case"], r["precision"])
            target, _ = step_target(r["case"], r["precision"], best)
            if r["ms"] is not None:
                met = None if target is None else ("yes" if r["ms"] <= target else "NO")
                vs_time = None if best is None else r["ms"] / best
            peak = torch_peak(r["case"], r["precision"], r["mode"])
            if r["peak"] is not None and peak:
                vs_peak = "%.2f %s" % (r["peak"] / peak, "ok" if r["peak"] <= peak else "OVER")
            if r["error"]:
                notes.append("%s %s %s: %s" % (r["case"], r["precision"], r["mode"], r["error"]))
        ms = fmt(r["ms"], "%.2f", "ERROR" if r["error"] else "-")
        print(line % (r["case"], r["precision"], r["side"], r["layout"], r["mode"], ms, fmt(r["peak"], "%.0f"),
                      fmt(target, "%.2f"), met or "-", fmt(vs_time, "%.2f"), vs_peak or "-"))
    for note in notes:
        print("  error: " + note)
    return torch_best, torch_peak


def print_targets(rows, torch_best, torch_peak):
    """Each step target with the best atelier row beside PyTorch's best, then the memory target."""
    print()
    print("targets (the best atelier row of each; peak memory: atelier's caching allocator against PyTorch's")
    print("torch.cuda.max_memory_allocated at the same case, precision and step mode):")
    atelier = [r for r in rows if r["side"] == "atelier" and r["ms"] is not None]
    met_count = 0
    for case, precision, _, earlier in STEP_TARGETS:
        best_torch = torch_best(case, precision)
        target, source = step_target(case, precision, best_torch)
        mine = [r for r in atelier if (r["case"], r["precision"]) == (case, precision)]
        torch_text = "PyTorch best %s ms (%s ms when the issue was written)" % (fmt(best_torch, "%.2f"), earlier)
        if not mine:
            print("  %-14s %-5s <= %6.2f ms (%s): no atelier figure; %s" % (case, precision, target, source,
                                                                             torch_text))
            continue
        best = min(mine, key=lambda r: r["ms"])
        met = best["ms"] <= target
        met_count += met
        how = best["mode"] if best["layout"] == "NCHW" else "%s, %s" % (best["mode"], best["layout"])
        print("  %-14s %-5s <= %6.2f ms (%s): atelier %.2f ms (%s) %s; %s" % (
            case, precision, target, source, best["ms"], how, "MET" if met else "NOT MET", torch_text))
    compared = [(r, torch_peak(r["case"], r["precision"], r["mode"])) for r in atelier if r["peak"] is not None]
    compared = [(r, p) for r, p in compared if p]
    over = ["%s %s %s (%.0f > %.0f MiB)" % (r["case"], r["precision"], r["mode"], r["peak"], p)
            for r, p in compared if r["peak"] > p]
    print("  step times: %d of %d targets met" % (met_count, len(STEP_TARGETS)))
    print("  peak memory <= PyTorch's: %d of %d atelier rows with a PyTorch row beside them%s" % (
        len(compared) - len(over), len(compared), "; over: " + ", ".join(over) if over else ""))


def print_epoch(logs, steps, images, result):
    """The epoch line: the wall clock end to end against the target, the trainer's own clock, the steady rate."""
    print()
    title = "epoch: %s steps of batch 16 over %s synthetic images, n = 128, tf32, cuda graph" % (
        format(steps, ","), format(images, ","))
    try:
        with open(os.path.join(logs, "epoch", "metrics.csv")) as f:
            metrics = [(int(r["step"]), float(r["time_s"])) for r in csv.DictReader(f)]
    except (OSError, ValueError, KeyError):
        metrics = []
    try:
        with open(os.path.join(logs, "epoch.wall_s")) as f:
            wall = float(f.read())
    except (OSError, ValueError):
        wall = None
    parts = []
    if wall is not None and metrics and metrics[-1][0] == steps:
        parts.append("%.2f s end to end (target < %.0f s: %s)" % (wall, EPOCH_TARGET_S,
                                                                   "MET" if wall < EPOCH_TARGET_S else "NOT MET"))
    else:
        parts.append("%s, %d of %d steps done%s (target < %.0f s: not measured)" % (
            result, metrics[-1][0] if metrics else 0, steps, "" if wall is None else " in %.2f s" % wall,
            EPOCH_TARGET_S))
    if metrics:
        parts.append("the trainer's clock %.2f s at step %d" % (metrics[-1][1], metrics[-1][0]))
    # The steady rate from step 3 on (steps 1 and 2 run eagerly, step 3 is the capture).
    steady = [m for m in metrics if m[0] >= 3]
    if len(steady) >= 2 and steady[-1][1] > steady[0][1]:
        rate = (steady[-1][0] - steady[0][0]) / (steady[-1][1] - steady[0][1])
        parts.append("steady %.1f steps/s (%.2f ms/step, steps %d-%d): %.2f s per %d steps" % (
            rate, 1e3 / rate, steady[0][0], steady[-1][0], steps / rate, steps))
    print(title + ":")
    for p in parts:
        print("  " + p)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logs", help="the folder run.sh's targets plan wrote")
    p.add_argument("--epoch-steps", type=int, default=824, help="the epoch's steps (images // 16)")
    p.add_argument("--epoch-images", type=int, default=13184, help="the synthetic images of the epoch")
    p.add_argument("--epoch-result", default="-", help="the epoch part's result in run.sh (PASS, TIMEOUT(40s) ...)")
    args = p.parse_args()
    if not os.path.isdir(args.logs):
        sys.exit("gpu-check-targets.py: %s is not a folder" % args.logs)
    print("BEGAN step, batch 16, on this GPU (median of the timed steps; x torch best: atelier's time over")
    print("PyTorch's best at the same case and precision; peak x torch: over PyTorch's peak in the same step mode):")
    rows = atelier_rows(args.logs) + torch_rows(args.logs)
    torch_best, torch_peak = print_rows(rows)
    print_targets(rows, torch_best, torch_peak)
    print_epoch(args.logs, args.epoch_steps, args.epoch_images, args.epoch_result)


if __name__ == "__main__":
    main()
