#!/usr/bin/env bash
# The kill test: trains BEGAN (`began train --data synthetic`, a tiny model, a checkpoint every 3 steps), kills it
# with SIGKILL at a random moment N times (default 50), resuming with --resume after each kill, and checks after
# every kill that nothing was lost or corrupted:
#   - every file in checkpoints/ loads with the library and is the checkpoint its name says (check_checkpoints);
#     a killed save may leave a temporary file, never a half-written checkpoint;
#   - metrics.csv's complete rows are steps 1, 2, 3, ... with no gap and no duplicate;
#   - the resumed run starts from the newest checkpoint: its log says "resuming <newest> at step S" and its first
#     metrics row is step S + 1.
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
  --progress-seconds 100000 --steps 1000000 --threads 1)

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
    "$began" train "${settings[@]}" --out "$run" >"$tmp/log" 2>&1 &
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

echo "kill-test: $kills SIGKILLs ($fresh fresh starts, $resumed resumes, $verified seen resuming from the newest" \
  "checkpoint), $failures failures; the run reached step" \
  "$max_step; at most $temporaries temporary file(s) of killed saves seen at once (removed by the next save)"
[[ $failures -eq 0 ]]
