#!/usr/bin/env bash
# The kill test: trains BEGAN (`began train --data synthetic`, a tiny model, a checkpoint every 3 steps), kills it
# with SIGKILL at a random moment N times (default 50), resuming with --resume after each kill, and checks after
# every kill that nothing was lost or corrupted:
#   - every file in checkpoints/ loads with the library and is the checkpoint its name says (check_checkpoints);
#     a killed save may leave a temporary file, never a half-written checkpoint;
#   - metrics.csv's complete rows are steps 1, 2, 3, ... with no gap and no duplicate;
#   - the resumed run starts from the newest checkpoint: its log says "resuming <newest> at step S" and its first
#     metrics row is step S + 1.
# At the end the run is resumed to 3 steps past its newest checkpoint and compared with one uninterrupted run of as
# many steps: metrics.csv (time_s aside) and every tensor of the final checkpoint must be equal, byte for byte.
# A kill before the first checkpoint starts the run afresh (there is nothing to resume). Prints a summary line.
#
#   scripts/kill-test.sh [N]     (needs build/cpu: bin/began and bin/check_checkpoints)
#
# Environment: ATELIER_BUILD_DIR (default build/cpu); ATELIER_KILL_SEED seeds the kill times (default: random).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
kills="${1:-50}"
if ! [[ "$kills" =~ ^[0-9]+$ ]] || [[ "$kills" -lt 1 ]]; then
  echo "kill-test.sh: N must be a positive whole number, got '$kills'" >&2
  exit 2
fi
build="${ATELIER_BUILD_DIR:-build/cpu}"
began="$build/bin/began"
checker="$build/bin/check_checkpoints"
for program in "$began" "$checker"; do
  [[ -x "$program" ]] || { echo "kill-test.sh: $program not found (build $build first)" >&2; exit 2; }
done
RANDOM="${ATELIER_KILL_SEED:-$$}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
run="$tmp/run"
settings=(--data synthetic --synthetic-size 64 --n 4 --h 4 --batch 4 --checkpoint-every 3 --sample-every 1000000
  --progress-seconds 100000 --threads 1)  # and --steps: 1000000 while killed, as many as the final resume to compare

failures=0
fail() {
  echo "FAIL (kill $k): $*"
  failures=$((failures + 1))
}

fresh=0 resumed=0 verified=0 temporaries=0 max_step=0
for ((k = 1; k <= kills; ++k)); do
  newest="$("$checker" "$run" 2>/dev/null | awk '$1 == "newest" { print $2 }')"
  if [[ -z "$newest" || "$newest" -eq 0 ]]; then
    rm -rf "$run"
    "$began" train "${settings[@]}" --steps 1000000 --out "$run" >"$tmp/log" 2>&1 &
    fresh=$((fresh + 1))
    expected_start=1
  else
    "$began" train --resume "$run" >"$tmp/log" 2>&1 &
    resumed=$((resumed + 1))
    expected_start=$((newest + 1))
  fi
  pid=$!
  # A random moment from 0.2 to 3 s in: before, during or after a checkpoint write, mid-step, mid-row.
  sleep "$(printf '%d.%03d' $((RANDOM % 3)) $((200 + RANDOM % 800)))"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
  if [[ $rc -ne 137 ]]; then
    fail "the run ended by itself (exit $rc) before the kill: $(tail -n 3 "$tmp/log")"
    continue
  fi

  # Every checkpoint file loads and is what its name says.
  if ! "$checker" "$run" >"$tmp/check" 2>"$tmp/check_err"; then
    fail "a checkpoint does not load: $(cat "$tmp/check_err")"
    continue
  fi
  temporaries=$(( $(awk '$1 == "temporary" { print $2 }' "$tmp/check") > temporaries ? \
    $(awk '$1 == "temporary" { print $2 }' "$tmp/check") : temporaries ))
  # metrics.csv: complete rows 1..R in order (a kill may cut the last row short; resume truncates it).
  if [[ -f "$run/metrics.csv" ]]; then
    if ! python3 - "$run/metrics.csv" "$expected_start" >"$tmp/rows" 2>"$tmp/rows_err" <<'PY'; then
import sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
lines = text.split("\n")
complete = lines[1:-1]  # the header, then rows ending with "\n"; the last piece is empty or a cut-off row
steps = [int(row.split(",")[1]) for row in complete]
if steps != list(range(1, len(steps) + 1)):
    bad = next(i for i, s in enumerate(steps) if s != i + 1)
    sys.exit(f"metrics.csv: row {bad + 1} holds step {steps[bad]}, expected {bad + 1} (rows not consecutive)")
start = int(sys.argv[2])
if len(steps) > 0 and len(steps) < start - 1:
    sys.exit(f"metrics.csv: {len(steps)} rows, but the run resumed at step {start}")
print(len(steps))
PY
      fail "$(cat "$tmp/rows_err")"
      continue
    fi
    rows="$(cat "$tmp/rows")"
    max_step=$((rows > max_step ? rows : max_step))
  fi
  # A resumed run says where it resumed from, and that is the newest checkpoint before the kill.
  if [[ $expected_start -gt 1 ]] && grep -q "resuming" "$tmp/log"; then
    if grep -q "resuming .*step_$(printf '%07d' "$newest").safetensors at step $newest " "$tmp/log"; then
      verified=$((verified + 1))
    else
      fail "resumed elsewhere than the newest checkpoint (step $newest): $(grep resuming "$tmp/log")"
    fi
  fi
done

# Exact: the killed and resumed run, finished 3 steps past its newest checkpoint, has the metrics (time_s aside) and
# the final tensors of one uninterrupted run of as many steps.
k=final
exact="not checked (no checkpoint)"
newest="$("$checker" "$run" 2>/dev/null | awk '$1 == "newest" { print $2 }')"
if [[ -n "$newest" && "$newest" -gt 0 ]]; then
  end=$((newest + 3))
  exact="NOT exact (above)"
  if ! "$began" train --resume "$run" --steps "$end" >"$tmp/log" 2>&1; then
    fail "the last resume, to step $end: $(tail -n 3 "$tmp/log")"
  elif ! "$began" train "${settings[@]}" --steps "$end" --out "$tmp/straight" >"$tmp/log" 2>&1; then
    fail "the uninterrupted run of $end steps: $(tail -n 3 "$tmp/log")"
  elif ! python3 - "$run" "$tmp/straight" "$end" >"$tmp/exact" 2>&1 <<'PY'; then
import json, struct, sys
killed, straight, end = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rows(run):  # metrics.csv without its last column, time_s
    return [line.rsplit(",", 1)[0] for line in open(f"{run}/metrics.csv", encoding="utf-8").read().splitlines()]
def tensors(run):  # every tensor's name, dtype, shape and bytes in the final checkpoint; the metadata aside
    data = open(f"{run}/checkpoints/step_{end:07d}.safetensors", "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}
a, b = rows(killed), rows(straight)
if len(a) != end + 1 or a != b:
    bad = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    sys.exit(f"metrics.csv: {len(a) - 1} rows after the kills, {len(b) - 1} straight; first difference at line {bad + 1}")
ta, tb = tensors(killed), tensors(straight)
differ = sorted(k for k in ta.keys() | tb.keys() if ta.get(k) != tb.get(k))
if differ:
    sys.exit(f"step {end}'s checkpoint: {len(differ)} tensors differ from the uninterrupted run's, e.g. {differ[0]}")
PY
    fail "not exact: $(cat "$tmp/exact")"
  else
    exact="exact (metrics.csv and every tensor at step $end equal an uninterrupted run's)"
  fi
fi

echo "kill-test: $kills SIGKILLs ($fresh fresh starts, $resumed resumes, $verified seen resuming from the newest" \
  "checkpoint), $failures failures; the run reached step" \
  "$max_step; at most $temporaries temporary file(s) of killed saves seen at once (removed by the next save);" \
  "resumes $exact"
[[ $failures -eq 0 ]]
