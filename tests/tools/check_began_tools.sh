#!/usr/bin/env bash
# The checkpoint tools of bin/began on real checkpoints (ctest entry began_tools): a `began train --smoke` run
# (synthetic data) feeds sample, reconstruct and interpolate; a run on a folder of sampled PNGs feeds reconstruct;
# a 2-step Fashion-MNIST smoke run feeds eval (when the data set is installed). Each must exit 0 and write its
# PNGs with the expected sizes; eval must print its numbers. Run from another folder, so that eval finds the
# classifier beside the executable.
#
#   tests/tools/check_began_tools.sh build/cpu/bin/began
set -uo pipefail

began="$(realpath "$1")"
# shellcheck source=tests/tools/check_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/check_lib.sh"
cd "$tmp" || exit 1
# png_size FILE: "WIDTHxHEIGHT" from the PNG header.
png_size() { printf '%dx%d' "0x$(xxd -s 16 -l 4 -p "$1")" "0x$(xxd -s 20 -l 4 -p "$1")"; }
# ok WHAT COMMAND...: exit 0 expected; the output is kept in $tmp/log.
ok() {
  local what="$1"
  shift
  "$@" >"$tmp/log" 2>&1 || fail "$what: exit $? ($(tail -c 400 "$tmp/log"))"
}

ok "train --smoke" "$began" train --smoke --out run
checkpoint="$(ls run/checkpoints/*.safetensors | tail -1)"
[[ -f "$checkpoint" ]] || fail "no checkpoint from the smoke run"

# 32x32 images in a grid with a 2-pixel border: k images a row make k * 34 + 2 pixels.
ok "sample --grid" "$began" sample --checkpoint "$checkpoint" --count 16 --grid --out grid.png
[[ "$(png_size grid.png)" == "138x138" ]] || fail "sample --grid: grid.png is $(png_size grid.png), expected 138x138"
ok "sample" "$began" sample --checkpoint "$checkpoint" --count 3 --out samples --seed 5
[[ "$(ls samples | tr '\n' ' ')" == "sample_00000.png sample_00001.png sample_00002.png " ]] ||
  fail "sample: samples/ holds $(ls samples)"
# The same seed gives the same images.
ok "sample 16" "$began" sample --checkpoint "$checkpoint" --count 16 --out samples16
ok "sample again" "$began" sample --checkpoint "$checkpoint" --count 3 --out again --seed 5
cmp -s samples/sample_00002.png again/sample_00002.png || fail "sample --seed 5 twice gave different images"
ok "sample 1" "$began" sample --checkpoint "$checkpoint" --count 1 --out one
grep -q "^1 sample written to one/sample_NNNNN.png$" "$tmp/log" || fail "sample --count 1: $(cat "$tmp/log")"

# The tools replace their own PNGs (marked by a tEXt chunk, began/image_io.h) but no other file unless --overwrite:
# a slip in --out must not destroy a person's picture. Refused before any work (exit 2), the file left as it was.
ok "sample --grid over its own grid" "$began" sample --checkpoint "$checkpoint" --count 4 --grid --out grid.png
[[ "$(png_size grid.png)" == "70x70" ]] || fail "sample --grid did not replace its own grid.png"
printf 'a photo' >photo.png
mkdir -p theirs
printf 'a photo' >theirs/sample_00001.png
# refused FILE COMMAND...: exit 2 naming FILE (the first file in the way), which keeps its bytes.
refused() {
  local file="$1"
  shift
  "$began" "$@" --checkpoint "$checkpoint" >"$tmp/log" 2>&1
  local rc=$?
  [[ $rc -eq 2 ]] &&
    grep -q "^began $1: error: --out $file exists and is not a PNG atelier wrote: pass --overwrite" "$tmp/log" ||
    fail "$* over a file atelier did not write: exit $rc, $(cat "$tmp/log")"
  [[ "$(cat "$file")" == "a photo" ]] || fail "$* changed $file, which atelier did not write"
}
refused photo.png sample --grid --count 2 --out photo.png
refused theirs/sample_00001.png sample --count 2 --out theirs
refused photo.png reconstruct --count 2 --out photo.png
refused photo.png interpolate --out photo.png
ok "sample --overwrite" "$began" sample --checkpoint "$checkpoint" --count 2 --out theirs --overwrite
[[ "$(png_size theirs/sample_00001.png)" == "36x36" ]] || fail "sample --overwrite did not replace the file"
ok "reconstruct --overwrite" "$began" reconstruct --checkpoint "$checkpoint" --count 2 --out photo.png --overwrite
[[ "$(png_size photo.png)" == "138x36" ]] || fail "reconstruct --overwrite: photo.png is $(png_size photo.png)"
# Every chunk's CRC-32 checked by another implementation (Python's zlib), the mark's included.
python3 - grid.png photo.png theirs/sample_00001.png <<'PY' || fail "a PNG's chunk has a wrong CRC"
import struct, sys, zlib
for path in sys.argv[1:]:
    data, at, kinds = open(path, "rb").read(), 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert zlib.crc32(data[at + 4:at + 8 + length]) == crc, (path, data[at + 4:at + 8])
        kinds.append(data[at + 4:at + 8])
        at += 12 + length
    assert kinds[:2] == [b"IHDR", b"tEXt"] and kinds[-1] == b"IEND", (path, kinds)
PY

ok "reconstruct" "$began" reconstruct --checkpoint "$checkpoint" --count 10 --out recon.png
[[ "$(png_size recon.png)" == "546x70" ]] || fail "reconstruct: recon.png is $(png_size recon.png), expected 546x70"
grep -q "mean |x - D(x)|" "$tmp/log" || fail "reconstruct: no reconstruction error in its output"

ok "interpolate" "$began" interpolate --checkpoint "$checkpoint" --pairs 2 --points 6 --out paths.png
[[ "$(png_size paths.png)" == "206x138" ]] || fail "interpolate: paths.png is $(png_size paths.png), expected 206x138"
ok "interpolate --real" "$began" interpolate --checkpoint "$checkpoint" --real 0 3 --points 5 --fit-steps 50 \
  --out real.png
[[ "$(png_size real.png)" == "240x70" ]] || fail "interpolate --real: real.png is $(png_size real.png), expected 240x70"
grep -q "z fitted to images 0 and 3 in 50 Adam steps" "$tmp/log" || fail "interpolate --real: $(cat "$tmp/log")"
"$began" interpolate --checkpoint "$checkpoint" --real 0 999 --out beyond.png >"$tmp/log" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "^began interpolate: error: --real 0 999: image 999 is not among the run's images (the run's \
synthetic set has 100 images, fewer than 1000)$" "$tmp/log" || fail "interpolate --real 0 999: exit $rc, $(cat "$tmp/log")"

# A run on an image folder (the PNGs `sample` just wrote) gives its own images to reconstruct and interpolate.
ok "train --smoke --data folder" "$began" train --smoke --data folder --data-dir samples16 --channels 1 --steps 2 \
  --out folder-run --cache folder-cache
ok "reconstruct (folder)" "$began" reconstruct --checkpoint "$(ls folder-run/checkpoints/*.safetensors | tail -1)" \
  --count 4 --out folder-recon.png
[[ "$(png_size folder-recon.png)" == "274x36" ]] ||
  fail "reconstruct (folder): folder-recon.png is $(png_size folder-recon.png), expected 274x36"
grep -q "4 real images (folder)" "$tmp/log" || fail "reconstruct (folder): $(cat "$tmp/log")"
# The tools read the run's cache but never write it: with the cache folder gone (a file in its place, under which
# no cache can be written) reconstruct decodes the images itself, rather than fail blaming a --cache it lacks.
[[ -n "$(ls folder-cache)" ]] || fail "train --cache folder-cache: the folder is empty"
mv folder-cache folder-cache.old && echo "in the way" >folder-cache
ok "reconstruct (cache gone)" "$began" reconstruct --checkpoint "$(ls folder-run/checkpoints/*.safetensors | tail -1)" \
  --count 4 --out no-cache.png
cmp -s folder-recon.png no-cache.png || fail "reconstruct (cache gone): another grid than with the cache"
rm folder-cache && mv folder-cache.old folder-cache
# The folder moved (the checkpoint records the path the run was given, here a relative one): the tools say so and
# --data-dir points them at the new place, as it does for --resume and eval.
mv samples16 moved16
folder_checkpoint="$(ls folder-run/checkpoints/*.safetensors | tail -1)"
"$began" reconstruct --checkpoint "$folder_checkpoint" --count 4 --out moved.png >"$tmp/log" 2>&1
rc=$?
[[ $rc -eq 1 ]] || fail "reconstruct (folder moved): exit $rc, expected 1"
grep -q "the run's image folder samples16 (recorded in the checkpoint) is not a folder here; point --data-dir at" \
  "$tmp/log" || fail "reconstruct (folder moved): $(cat "$tmp/log")"
# interpolate --real names the folder too, not "image 1 is not among the run's images" (a count error's wording).
"$began" interpolate --checkpoint "$folder_checkpoint" --real 0 1 --fit-steps 2 --out moved-real.png >"$tmp/log" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "^began interpolate: error: the run's image folder samples16 (recorded in the checkpoint)" \
  "$tmp/log" || fail "interpolate --real (folder moved): exit $rc, $(cat "$tmp/log")"
# Nor is a folder that gives no image an index error.
mkdir -p broken16 && echo "not a picture" >broken16/a.png
"$began" interpolate --checkpoint "$folder_checkpoint" --real 0 1 --fit-steps 2 --out moved-real.png \
  --data-dir broken16 >"$tmp/log" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "^began interpolate: error: --data-dir broken16: its one image file could not be used" \
  "$tmp/log" || fail "interpolate --real (no usable image): exit $rc, $(cat "$tmp/log")"
ok "reconstruct --data-dir" "$began" reconstruct --checkpoint "$folder_checkpoint" --count 4 --out moved.png \
  --data-dir moved16
cmp -s folder-recon.png moved.png || fail "reconstruct --data-dir: not the images of the folder before it moved"
ok "interpolate --real --data-dir" "$began" interpolate --checkpoint "$folder_checkpoint" --real 0 1 --fit-steps 2 \
  --out moved-real.png --data-dir moved16
"$began" reconstruct --checkpoint "$checkpoint" --count 4 --out x.png --data-dir moved16 >"$tmp/log" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "the run's data is synthetic: it reads no folder" "$tmp/log" ||
  fail "reconstruct --data-dir of a synthetic run: exit $rc, $(cat "$tmp/log")"

# A subfolder that cannot be listed stops the load, named (the walk used to end there without a word, dropping it
# and every file listed after it). Root reads any folder, so as root this runs as nobody when setpriv is there.
as_user=()
if [[ $(id -u) -eq 0 ]]; then
  if command -v setpriv >/dev/null; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  else
    as_user=(skip)
  fi
fi
if [[ ${as_user[0]:-} != skip ]]; then
  mkdir -p locked/open locked/shut writable
  cp moved16/sample_00000.png moved16/sample_00001.png locked/open/
  cp moved16/sample_00002.png moved16/sample_00003.png locked/shut/
  chmod 000 locked/shut
  chmod 755 "$tmp"
  chmod 777 writable
  "${as_user[@]}" "$began" train --smoke --data folder --data-dir locked --channels 1 --batch 2 --out writable/run \
    >"$tmp/log" 2>&1
  rc=$?
  [[ $rc -eq 2 ]] && grep -q "^began train: error: --data-dir locked: cannot list locked/shut: Permission denied" \
    "$tmp/log" || fail "an unreadable subfolder: exit $rc, $(cat "$tmp/log")"
  # Paths under a folder nobody may search are said to be out of reach, not missing (nor a raw filesystem error).
  denied="cannot look at it: Permission denied"
  for line in "train --data folder --data-dir locked/shut/x --out writable/run2|--data-dir locked/shut/x: $denied" \
    "train --data-dir locked/shut/x --out writable/run2|--data-dir locked/shut/x: $denied" \
    "train --smoke --out locked/shut/run|--out locked/shut/run: cannot write into locked/shut" \
    "train --resume locked/shut/run|--resume locked/shut/run: $denied" \
    "sample --checkpoint $checkpoint --out locked/shut/s|--out locked/shut/s: cannot write into locked/shut"; do
    # shellcheck disable=SC2086  # the command's words, split on purpose
    "${as_user[@]}" "$began" ${line%%|*} >"$tmp/log" 2>&1
    rc=$?
    [[ $rc -eq 2 ]] && grep -qF "began ${line%% *}: error: ${line#*|}" "$tmp/log" ||
      fail "${line%%|*}: exit $rc, $(cat "$tmp/log")"
  done
  chmod 700 locked/shut "$tmp"
else
  echo "note: root without setpriv: the unreadable-subfolder check not run"
fi

# A file of another model is named with what it holds: the classifier's weights, beside the executable.
classifier="$(dirname "$began")/../share/atelier/fmnist_classifier.safetensors"
[[ -f "$classifier" ]] || fail "no classifier weights at $classifier"
"$began" sample --checkpoint "$classifier" --grid --out other.png >"$tmp/log" 2>&1
rc=$?
[[ $rc -eq 1 ]] || fail "sample on the classifier's weights: exit $rc, expected 1"
grep -q "holds another model, not a \`began train\` checkpoint (its metadata: .*model FmnistClassifier" "$tmp/log" ||
  fail "sample on the classifier's weights: $(cat "$tmp/log")"
# A here-string, not a pipe: under pipefail, grep -q's early exit could fail a writer still writing (SIGPIPE).
grep -q "not comparable to Inception FID" <<<"$("$began" eval --help)" || fail "eval --help does not say it is not FID"

# classify-train --out replaces only classifier weights (an earlier output of its own) unless --overwrite says so:
# a checkpoint or any other file there is refused before any work, and left as it was. A folder without the IDX
# files stands in for the data, so that a line that passes the check stops at once when the data is read, with
# the checks (exit 2, nothing written).
mkdir -p no-idx
cp "$checkpoint" ck.safetensors
printf 'not safetensors' >other.safetensors
cp "$classifier" own.safetensors
for file in ck.safetensors other.safetensors; do
  what="holds a checkpoint of began train"
  [[ $file == other.safetensors ]] && what="is not a safetensors file"
  cp "$file" before
  "$began" classify-train --out "$file" --data-dir no-idx >"$tmp/log" 2>&1
  rc=$?
  [[ $rc -eq 2 ]] && grep -q "^began classify-train: error: --out $file $what, not classifier weights: pass --overwrite" \
    "$tmp/log" || fail "classify-train --out $file: exit $rc, $(cat "$tmp/log")"
  cmp -s before "$file" || fail "classify-train --out $file: the file changed"
  "$began" classify-train --out "$file" --data-dir no-idx --overwrite >"$tmp/log" 2>&1
  rc=$?
  [[ $rc -eq 2 ]] && grep -q "load_fashion_mnist: 'no-idx/" "$tmp/log" ||
    fail "classify-train --out $file --overwrite: exit $rc, $(cat "$tmp/log")"
done
"$began" classify-train --out own.safetensors --data-dir no-idx >"$tmp/log" 2>&1
rc=$?
[[ $rc -eq 2 ]] && grep -q "load_fashion_mnist: 'no-idx/" "$tmp/log" ||
  fail "classify-train --out (classifier weights): exit $rc, $(cat "$tmp/log")"

# eval refuses a synthetic run, naming its settings (exit 1: found while working).
"$began" eval --checkpoint "$checkpoint" >"$tmp/log" 2>&1
rc=$?
[[ $rc -eq 1 ]] || fail "eval on a synthetic run: exit $rc, expected 1"
grep -q "not of a Fashion-MNIST run (data synthetic, image_size 32" "$tmp/log" || fail "eval: $(cat "$tmp/log")"

if [[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]]; then
  ok "train --smoke --data fashion-mnist" "$began" train --smoke --data fashion-mnist --steps 2 --out frun
  ok "eval" "$began" eval --checkpoint "$(ls frun/checkpoints/*.safetensors | tail -1)" --count 300
  for row in "this generator" "baseline: real training images" "baseline: untrained generator"; do
    grep -qE "$row.* [0-9]+\.[0-9]+$" "$tmp/log" || fail "eval: no '$row' number in: $(cat "$tmp/log")"
  done
  grep -qE "^classes of the generated images .*T-shirt/top [0-9.]+%, .*ankle boot [0-9.]+%$" "$tmp/log" ||
    fail "eval: no class shares in: $(cat "$tmp/log")"
else
  echo "note: Fashion-MNIST is not installed; eval on a Fashion-MNIST checkpoint not run"
fi

finish "began_tools"
