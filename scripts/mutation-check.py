#!/usr/bin/env python3
"""Do the tests bite? Breaks the code on purpose, one mutation at a time, and checks that some test fails.

  scripts/mutation-check.py [--build-dir build/cpu] tests/mutations/cpu.json
  scripts/mutation-check.py --emulation tests/mutations/cuda.json     # CUDA kernels, under scripts/cuda-emulate.sh

Each mutation names a file, a piece of its text that occurs exactly once and what to put in its place (a flipped
bound, a dropped term, a check left out: the kind of slip a test exists to catch). For each one the script writes
the change, rebuilds, runs the suite (ctest -LE long, without the `format` test, which a mutation's text may fail,
and `mutation_lists`, which fails whenever a listed text is replaced; or, with --emulation, the CUDA test program
under the emulation), puts the file back and says KILLED (some test failed, as it should) or SURVIVED (every test
passed with the code broken: a gap in the tests). A mutation marked "known_survivor" says why no test here can catch
it; it is reported but not counted. The exit status is 1 when an unmarked mutation survives or a mutation no longer
applies (the code moved: update the list). It first runs the suite unmutated and stops if that fails: a suite that
fails anyway would "kill" every mutation. A mutated suite still running after four times the unmutated one's time
(at least 10 minutes) is stopped with every process it started, and counts as killed: a mutation that corrupts
the heap can leave the test program deadlocked in doctest's signal handler.

It edits the working tree, so it refuses to start when a mutated file has uncommitted changes, and it restores
every file it touched even when interrupted. One CPU mutation takes 25-50 s on 2 cores (an incremental build and
the suite), one emulated one 2-3 minutes: the lists take about 30 and 25 minutes. It is a tool for a person
changing the tests, not a CI step; the ctest `mutation_lists` runs only `--validate` (every listed text still
occurs exactly once), so an edit that moves a mutated line says so at once. Python's standard library only.
"""
import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)


def run_limited(cmd, limit):
    """run(), but a command still running after `limit` seconds is killed with everything it started (its own
    process group): returncode None. A mutation that corrupts the heap can make the test program deadlock in
    doctest's signal handler (malloc's lock is held when abort() raises the signal), which would otherwise stall
    the whole check."""
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=limit)
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return subprocess.CompletedProcess(cmd, None, out, err)


def failing_lines(output, emulation):
    if emulation:
        return [line for line in output.splitlines() if "ERROR:" in line][:3]
    return [line.strip() for line in output.splitlines() if "***Failed" in line or "***Exception" in line][:3]


def build(args):
    return run(["cmake", "--build", args.build_dir, f"-j{args.jobs}"])


def run_suite(args, limit=None):
    """The suite a mutation must fail: the CUDA test program under the emulation, or the CPU ctest suite without
    `format` (a mutation's text may break it) and `mutation_lists` (it fails whenever a listed text is replaced, so
    with it every mutation would count as killed). Past `limit` seconds it is stopped: returncode None."""
    if args.emulation:
        return run_limited(["scripts/cuda-emulate.sh"], limit)
    return run_limited(["ctest", "--test-dir", args.build_dir, "-LE", "long", "-E", "^(format|mutation_lists)$",
                        f"-j{args.jobs}"], limit)


def check_one(m, args):
    path = os.path.join(ROOT, m["file"])
    with open(path) as f:
        original = f.read()
    count = original.count(m["old"])
    if count != 1:
        return "STALE", [f"the text to replace occurs {count} times in {m['file']}"]
    try:
        with open(path, "w") as f:
            f.write(original.replace(m["old"], m["new"]))
        if not args.emulation:
            if build(args).returncode != 0:
                return "NO BUILD", ["the mutation does not compile: not a test of the tests"]
        r = run_suite(args, args.limit)
        if r.returncode is None:  # a hang fails the suite as surely as a failing test
            return "KILLED", [f"the suite did not finish in {args.limit:.0f} s (stopped: a hang counts as failing)"]
        return ("KILLED" if r.returncode != 0 else "SURVIVED"), failing_lines(r.stdout + r.stderr, args.emulation)
    finally:
        with open(path, "w") as f:
            f.write(original)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lists", nargs="+", help="JSON lists of mutations (tests/mutations/*.json)")
    p.add_argument("--build-dir", default="build/cpu", help="a configured CPU build (default build/cpu)")
    p.add_argument("--emulation", action="store_true", help="run the CUDA test program under scripts/cuda-emulate.sh")
    p.add_argument("--only", default="", help="comma-separated ids to run (default: all)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--validate", action="store_true",
                   help="only check that every mutation still applies (its text occurs once); edits nothing")
    args = p.parse_args()
    mutations = []
    for name in args.lists:
        with open(name) as f:
            mutations += json.load(f)
    # An id names one mutation across every list given (--only and the results files go by it).
    counts = collections.Counter(m["id"] for m in mutations)
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        sys.exit(f"mutation-check: ids used twice across {', '.join(args.lists)}: {', '.join(repeated)}")
    if args.only:
        wanted = set(args.only.split(","))
        mutations = [m for m in mutations if m["id"] in wanted]
    if args.validate:
        stale = []
        for m in mutations:
            with open(os.path.join(ROOT, m["file"])) as f:
                count = f.read().count(m["old"])
            if count != 1:
                stale.append(f"{m['id']}: the text to replace occurs {count} times in {m['file']}")
        print("\n".join(stale) or f"mutation-check: all {len(mutations)} mutations apply")
        return 1 if stale else 0
    files = sorted({m["file"] for m in mutations})
    dirty = run(["git", "status", "--porcelain", "--"] + files).stdout.strip()
    if dirty:
        sys.exit(f"mutation-check: uncommitted changes in files it would edit; commit or stash them first:\n{dirty}")
    if not args.emulation and not os.path.isdir(os.path.join(ROOT, args.build_dir)):
        sys.exit(f"mutation-check: no build folder {args.build_dir} (configure a CPU build first)")
    os.environ.setdefault("ATELIER_EMULATION_JOBS", str(args.jobs))

    # The suite must pass unmutated, or every mutation would count as killed.
    if not args.emulation and build(args).returncode != 0:
        sys.exit(f"mutation-check: {args.build_dir} does not build unmutated")
    start = time.time()
    baseline = run_suite(args)
    # A mutated suite gets four times the unmutated one's time (at least 10 minutes) before it counts as hung.
    args.limit = max(600.0, 4 * (time.time() - start))
    if baseline.returncode != 0:
        failing = "\n".join(failing_lines(baseline.stdout + baseline.stderr, args.emulation))
        sys.exit(f"mutation-check: the suite fails with no mutation applied, so it cannot tell one:\n{failing}")

    gaps = 0
    for m in mutations:
        start = time.time()
        verdict, lines = check_one(m, args)
        known = m.get("known_survivor")
        note = f"  (known: {known})" if known and verdict == "SURVIVED" else ""
        print(f"{m['id']:6} {verdict:9} {time.time() - start:4.0f} s  {m['file']}: {m['what']}{note}", flush=True)
        for line in lines:
            print(f"         {line}")
        if verdict == "STALE" or (verdict == "SURVIVED" and not known):
            gaps += 1
    if not args.emulation:
        build(args)  # back to the unmutated programs
    print(f"mutation-check: {len(mutations)} mutations, {gaps} needing attention")
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main())
