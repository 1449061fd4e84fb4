#!/usr/bin/env bash
# The GPU check's plans without a GPU (ctest entry gpu_check_plans):
#   - scripts/gpu-check-run.sh and scripts/gpu-check.sh parse (bash -n; shellcheck too when it is installed), and
#     run.sh refuses an unknown plan with exit 2;
#   - scripts/gpu-check-targets.py on tests/fixtures/gpu_check/ (bench_train JSON and began_step_torch.py JSON lines
#     shaped like a GPU run's, figures chosen so that every branch shows) and on generated epoch metrics: the rows,
#     which targets are met, the error row, the peaks over PyTorch's, the epoch line finished and timed out;
#   - the three plans run with GPU_CHECK_DRY_RUN=1 against this build's programs (a .gpu/ of links in a scratch
#     tree): every part has its row, the missing atelier_cuda_tests is a FAIL with its log's tail, the tables print;
#     and the sanitize plan without compute-sanitizer reports its parts NOT RUN.
# PyTorch's part uses $GPU_CHECK_PYTHON, else /usr/bin/python3 when it imports torch; without torch that part must
# fail and be listed, nothing else changes.
#
#   tests/tools/check_gpu_check.sh SOURCE_DIR BIN_DIR     (BIN_DIR holds began, bench_train, bench_ops,
#                                                          bench_op_table, gradcheck)
set -uo pipefail

src="$(cd "$1" && pwd)"
bin="$(cd "$2" && pwd)"
# shellcheck source=tests/tools/check_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/check_lib.sh"
# expect FILE PATTERN WHAT: FILE has a line matching the extended regular expression PATTERN.
expect() { grep -Eq -- "$2" "$1" || fail "$3 (no line matches '$2' in $(basename "$1"))"; }

# ---- the scripts parse; an unknown plan is refused ----
for s in scripts/gpu-check-run.sh scripts/gpu-check.sh tests/tools/check_gpu_check.sh; do
  bash -n "$src/$s" || fail "bash -n $s"
  if command -v shellcheck >/dev/null; then
    (cd "$src" && shellcheck -x "$s") || fail "shellcheck $s"
  fi
done
bash "$src/scripts/gpu-check-run.sh" nonsense >/dev/null 2>"$tmp/usage.txt"
rc=$?
[[ $rc -eq 2 ]] || fail "run.sh nonsense exited $rc, not 2"
expect "$tmp/usage.txt" '^usage: bash \.gpu/run\.sh \[check\|targets\|sanitize\]' "run.sh nonsense prints its usage"

# ---- the targets table on sample files ----
table="$src/scripts/gpu-check-targets.py"
logs="$tmp/logs"
mkdir -p "$logs/epoch"
cp "$src"/tests/fixtures/gpu_check/* "$logs/"
# An epoch of 824 steps: step s read at 0.5 + 0.008 s per step; 7.61 s by the wall clock.
awk 'BEGIN {print "epoch,step,loss_real,loss_fake_d,loss_fake_g,loss_d,loss_g,k_t,m_global,lr,time_s";
  for (s = 1; s <= 824; ++s) printf "1,%d,0.5,0.1,0.1,0.5,0.1,0,0.6,1e-04,%.3f\n", s, 0.5 + 0.008 * s}' \
  >"$logs/epoch/metrics.csv"
echo 7.61 >"$logs/epoch.wall_s"
python3 "$table" "$logs" --epoch-result PASS >"$tmp/targets.txt" 2>&1 || fail "gpu-check-targets.py exited $?"
cat "$tmp/targets.txt"
t="$tmp/targets.txt"
row='^  64x64/C3/n64 +fp32 +atelier +NCHW +cuda_graph +11\.20 +540 +10\.00 NO +0\.70 +0\.83 ok$'
expect "$t" "$row" "the fp32 n64 graph row: 11.2 ms against 10, 0.70 of PyTorch's 16.1, peak 540/650"
expect "$t" '^  64x64/C3/n64 +tf32 +atelier +NCHW +cuda_graph +3\.90 +520 +4\.00 yes ' "tf32 n64 graphed meets 4 ms"
expect "$t" '^  64x64/C3/n128 +tf32 +atelier .* 7\.50 +2100 +8\.00 yes +0\.60 +1\.08 OVER$' "n128's peak is over"
expect "$t" '^  32x32/C1/n32 +tf32 +atelier .*cuda_graph +3\.10 +80 +3\.70 yes ' "32x32's target is PyTorch's best here"
expect "$t" '^  64x64/C3/n64 +bf16 +atelier .*cuda_graph +ERROR ' "the failed capture is an ERROR row"
expect "$t" '^  error: 64x64/C3/n64 bf16 cuda_graph: --cuda-graph: the capture failed' "the capture's message"
expect "$t" '^  64x64/C3/n64 +fp32 +PyTorch 2\.11\.0\+cu130 +nchw +eager +16\.70 +610 ' "PyTorch's fp32 eager row"
expect "$t" 'fp32 +<= +10\.00 ms \(issue\): atelier 11\.20 ms \(cuda_graph\) NOT MET; PyTorch best 16\.10' "fp32 missed"
expect "$t" "32x32/C1/n32 +tf32 +<= +3\.70 ms \(PyTorch's best in this run\): atelier 3\.10 ms" "32x32's target line"
expect "$t" '^  step times: 3 of 4 targets met$' "3 of 4 step targets"
expect "$t" \
  "^  peak memory <= PyTorch's: 5 of 7 atelier rows .*; over: 64x64/C3/n128 tf32 cuda_graph \(2100 > 1950 MiB\)" \
  "the memory line"
expect "$t" '^  7\.61 s end to end \(target < 8 s: MET\)$' "the epoch's wall clock"
expect "$t" '^  steady 125\.0 steps/s \(8\.00 ms/step, steps 3-824\): 6\.59 s per 824 steps$' "the epoch's steady rate"
grep -q 'fp32 .*atelier .*eager' "$t" && fail "a row for atelier_fp32_eager, whose file is missing"

# An epoch cut short: no wall clock, 500 steps.
head -501 "$logs/epoch/metrics.csv" >"$logs/epoch/short.csv" && mv "$logs/epoch/short.csv" "$logs/epoch/metrics.csv"
rm "$logs/epoch.wall_s"
python3 "$table" "$logs" --epoch-result 'TIMEOUT(40s)' >"$t" 2>&1 || fail "gpu-check-targets.py (timeout) exited $?"
expect "$t" '^  TIMEOUT\(40s\), 500 of 824 steps done \(target < 8 s: not measured\)$' "the timed-out epoch"
expect "$t" '^  steady 125\.0 steps/s .*steps 3-500\): 6\.59 s per 824 steps$' "the timed-out epoch's projection"
# Nothing at all: the headers and the targets without figures, no traceback.
python3 "$table" "$tmp/usage.txt" >/dev/null 2>&1 && fail "gpu-check-targets.py accepted a file for its folder"
mkdir "$tmp/empty"
python3 "$table" "$tmp/empty" >"$t" 2>&1 || fail "gpu-check-targets.py on an empty folder exited $?"
expect "$t" '^  64x64/C3/n64 +fp32 +<= +10\.00 ms \(issue\): no atelier figure' "an empty folder's target lines"
grep -q Traceback "$t" && fail "gpu-check-targets.py raised on an empty folder"

# ---- both plans, dry, against this build's programs ----
tree="$tmp/tree"
mkdir -p "$tree/.gpu/bin"
for p in began bench_train bench_ops bench_op_table gradcheck; do ln -s "$bin/$p" "$tree/.gpu/bin/$p"; done
ln -s "$src/bench" "$tree/bench"
ln -s "$src/scripts" "$tree/scripts"
cp "$src/scripts/gpu-check-run.sh" "$tree/.gpu/run.sh"
python="${GPU_CHECK_PYTHON:-python3}"
if [[ -z "${GPU_CHECK_PYTHON:-}" ]] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then python=/usr/bin/python3; fi
has_torch=0
"$python" -c 'import torch' 2>/dev/null && has_torch=1
echo "PyTorch's part with $python (torch importable: $has_torch)"
# torch_part FILE PART ROW WHAT: with torch, PART passed and a line matches ROW; without, PART failed.
torch_part() {
  if ((has_torch)); then
    expect "$1" "^$2 +PASS " "$4: PyTorch's part"
    expect "$1" "$3" "$4: PyTorch's row"
  else
    expect "$1" "^$2 +FAIL" "$4: PyTorch's part fails without torch"
  fi
}

GPU_CHECK_DRY_RUN=1 GPU_CHECK_PYTHON="$python" OUT="$tmp/out-check" bash "$tree/.gpu/run.sh" >"$tmp/check.txt" 2>&1
rc=$?
cat "$tmp/check.txt"
c="$tmp/check.txt"
[[ $rc -eq 1 ]] || fail "the dry check plan exited $rc, not 1 (atelier_cuda_tests is missing)"
expect "$c" '^atelier GPU check, ' "the check plan's title"
expect "$c" '^DRY RUN \(GPU_CHECK_DRY_RUN=1\)' "the dry run says so"
expect "$c" '^cuda_tests +FAIL\(rc=127\) ' "the missing test program fails"
expect "$c" '^---- cuda_tests: FAIL\(rc=127\), last lines of its log ----$' "its log's tail"
for p in gradcheck began_cuda began_cpu atelier_fp32 atelier_tf32 atelier_bf16 atelier_cuda_graph bench_ops; do
  expect "$c" "^$p +PASS " "the check plan's $p part"
done
expect "$c" '^op_table +PASS +[0-9]+ +[0-9]+ rows; forward min / median / max [0-9.]+ / [0-9.]+ / [0-9.]+ us, forward \+ backward [0-9.]+ / ' \
  "the check plan's op_table part and its summary"
expect "$c" '^  atelier +tf32 +NCHW +cuda_graph +[0-9]+\.[0-9]{2} +[0-9]+$' "the check plan's atelier graph row"
torch_part "$c" torch_step '^  PyTorch .* bf16 +channels_last +eager +[0-9]+\.[0-9]{2} ' "the check plan"
# in_archive ARCHIVE FILE...: each FILE is in the tar.gz ARCHIVE.
in_archive() {
  local archive="$1" f listing
  shift
  listing="$(tar -tzf "$archive" 2>/dev/null)"  # (grep -q on a pipe would end tar early: pipefail)
  for f in "$@"; do
    grep -qx "\./$f" <<<"$listing" || fail "$(basename "$archive") lacks $f"
  done
}
[[ -f "$tmp/out-check/gpu-check.txt" ]] || fail "the check plan's table in OUT"
in_archive "$tmp/out-check/check-logs.tar.gz" gradcheck.log bench_ops.log op_table.log began-cuda/metrics.csv
[[ $(find "$tmp/out-check" -type f | wc -l) -le 8 ]] || fail "the check plan left more than 8 files in OUT"

GPU_CHECK_DRY_RUN=1 GPU_CHECK_PYTHON="$python" OUT="$tmp/out-targets" bash "$tree/.gpu/run.sh" targets \
  >"$tmp/dry-targets.txt" 2>&1
rc=$?
cat "$tmp/dry-targets.txt"
d="$tmp/dry-targets.txt"
[[ $rc -eq $((1 - has_torch)) ]] || fail "the dry targets plan exited $rc"
expect "$d" '^atelier GPU targets, ' "the targets plan's title"
for p in atelier_tf32_graph atelier_fp32_graph atelier_tf32_eager atelier_fp32_eager atelier_bf16_graph; do
  expect "$d" "^$p +PASS .*: 1 of 1 rows$" "the targets plan's $p part"
done
expect "$d" '^epoch +PASS .*: 4 of 4 steps$' "the targets plan's epoch part"
for precision in fp32 tf32; do
  for mode in cuda_graph eager; do
    expect "$d" "^  32x32/C1/n16 +$precision +atelier +NCHW +$mode +[0-9]+\.[0-9]{2} +[0-9]+ " \
      "atelier $precision $mode"
  done
done
expect "$d" '^  32x32/C1/n16 +bf16 +atelier +NCHW +cuda_graph +[0-9]+\.[0-9]{2} ' "atelier bf16 cuda_graph"
expect "$d" '^atelier_fp32_graph_im2col +PASS .*: 1 of 1 rows$' "the targets plan's im2col part"
expect "$d" '^  32x32/C1/n16 +fp32 +atelier +NCHW conv=im2col +cuda_graph +[0-9]+\.[0-9]{2} ' "atelier fp32 by im2col"
expect "$d" '^  [0-9]+\.[0-9]{2} s end to end \(target < 8 s: ' "the dry epoch's wall clock"
torch_part "$d" torch_targets '^  32x32/C1/n8 +fp32 +PyTorch .* channels_last +eager +[0-9]+\.[0-9]{2} ' "the targets plan"
((has_torch)) && expect "$d" '^torch_targets +PASS .*: 3 of 3 rows$' "the targets plan: PyTorch's three rows"
expect "$d" '^profile_n64 +PASS ' "the targets plan's profile part"
for algo in im2col wino4; do
  expect "$d" "^atelier_tf32_graph_$algo +PASS .*: 1 of 1 rows$" "the targets plan's tf32 $algo part"
  expect "$d" "^  32x32/C1/n16 +tf32 +atelier +NCHW conv=$algo +cuda_graph +[0-9]+\\.[0-9]{2} " \
    "the tf32 row by $algo"
done
expect "$d" '^profile_n64_fp32 +PASS ' "the targets plan's fp32 profile part"
expect "$d" '^conv_algo +PASS .*: 4 rows$' "the targets plan's conv_algo part"
expect "$d" '^conv_algo_tf32 +PASS .*: 4 rows$' "the targets plan's conv_algo part at tf32"
[[ $(grep -c '^conv_algo/16x16x32x32->1/all3/wino4/real_time ' "$d") -eq 2 ]] ||
  fail "the conv_algo rows under the table, at fp32 and at tf32"
expect "$d" '^profile: began_step/32x32/C1/n16 on cpu, fp32, per step over 5 eager steps' "the fp32 profile's title"
expect "$d" '^profile: began_step/32x32/C1/n16 on cpu, tf32, per step over 5 eager steps' "the profile's title"
expect "$d" '^  conv2d +conv2d +[0-9]+ +- +[0-9]+\.[0-9]{3} ' "the profile's conv2d row"
expect "$d" '^  span +[0-9]+\.[0-9]{3} +100\.0%$' "the profile's span"
[[ -f "$tmp/out-targets/gpu-targets.txt" ]] || fail "the targets plan's table in OUT"
in_archive "$tmp/out-targets/targets-logs.tar.gz" atelier_tf32_graph.json atelier_tf32_graph.log epoch.log \
  epoch/metrics.csv epoch.wall_s profile_n64.log
[[ $(find "$tmp/out-targets" -type f | wc -l) -le 8 ]] || fail "the targets plan left more than 8 files in OUT"

# The sanitize plan, dry: the commands without compute-sanitizer; the missing test program's parts fail.
GPU_CHECK_DRY_RUN=1 OUT="$tmp/out-sanitize" bash "$tree/.gpu/run.sh" sanitize >"$tmp/sanitize.txt" 2>&1
rc=$?
cat "$tmp/sanitize.txt"
z="$tmp/sanitize.txt"
[[ $rc -eq 1 ]] || fail "the dry sanitize plan exited $rc, not 1 (atelier_cuda_tests is missing)"
expect "$z" '^atelier GPU sanitize, ' "the sanitize plan's title"
expect "$z" '^compute-sanitizer: none \(dry run: the commands alone\)$' "the dry sanitize plan says it runs no tool"
for p in memcheck_kernels racecheck_reduce synccheck_reduce; do
  expect "$z" "^$p +FAIL\(rc=127\) " "the sanitize plan's $p part, without the test program"
done
for p in memcheck_began initcheck_began; do
  expect "$z" "^$p +PASS " "the sanitize plan's $p part"
done
[[ -f "$tmp/out-sanitize/gpu-sanitize.txt" ]] || fail "the sanitize plan's table in OUT"
in_archive "$tmp/out-sanitize/sanitize-logs.tar.gz" memcheck_began.log initcheck_began.log memcheck-began/metrics.csv
# Not dry and no compute-sanitizer anywhere: every part is NOT RUN and says why (no GPU needed to see it).
GPU_CHECK_SANITIZER=/nonexistent PATH=/usr/bin:/bin CUDA_HOME=/nonexistent bash "$tree/.gpu/run.sh" sanitize \
  >"$tmp/sanitize-none.txt" 2>&1
if [[ ! -x /usr/local/cuda/bin/compute-sanitizer ]] && ! compgen -G '/usr/local/cuda-*/bin/compute-sanitizer' >/dev/null; then
  expect "$tmp/sanitize-none.txt" '^compute-sanitizer: NOT FOUND$' "the sanitize plan without the tool"
  expect "$tmp/sanitize-none.txt" '^memcheck_began +NOT RUN\(no compute-sanitizer\)' "a part without the tool"
fi

finish "gpu-check plans"
