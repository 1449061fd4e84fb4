#!/usr/bin/env bash
# Renders a BEGAN run's report.html in headless Chromium to a PNG screenshot, to check by eye what a person opening
# the page from disk sees (no server: the page is loaded as a file:// URL, as a person would open it).
#
#   scripts/check-report.sh RUN_DIR [OUT_PNG]      # OUT_PNG defaults to RUN_DIR/report.png
#
# Installs Debian's `chromium` package with apt-get when no Chromium is on PATH (through sudo when not root).
# Exits 2 on a bad command line (OUT_PNG must be a .png name, since the file there is replaced: a slip such as
# RUN_DIR/report.html would lose the report; the sizes must be whole numbers), and 1 when RUN_DIR/report.html is
# missing or the screenshot was not produced.
#
# Environment: CHECK_REPORT_WIDTH / CHECK_REPORT_HEIGHT (default 1280 x 2000, tall enough for the curves and the
# first rows of the samples table); CHROMIUM (the browser program, default chromium).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 RUN_DIR [OUT_PNG]" >&2
  exit 2
fi
run_dir="$1"
html="$run_dir/report.html"
out="${2:-$run_dir/report.png}"
width="${CHECK_REPORT_WIDTH:-1280}"
height="${CHECK_REPORT_HEIGHT:-2000}"
browser="${CHROMIUM:-chromium}"
shopt -s nocasematch
if [[ "$out" != *.png || -d "$out" ]]; then
  echo "check-report: OUT_PNG '$out' is not a .png file name (the file there is replaced by the screenshot)" >&2
  exit 2
fi
shopt -u nocasematch
for size in "CHECK_REPORT_WIDTH=$width" "CHECK_REPORT_HEIGHT=$height"; do
  if [[ ! "${size#*=}" =~ ^[1-9][0-9]{0,4}$ ]]; then
    echo "check-report: $size is not a whole number of pixels from 1 to 99999" >&2
    exit 2
  fi
done
if [[ ! -f "$html" ]]; then
  echo "check-report: no report at '$html' (run \`began train\` or write_report first)" >&2
  exit 1
fi

if ! command -v "$browser" >/dev/null; then
  echo "check-report: '$browser' not found, installing Debian's chromium package"
  sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
      echo "check-report: chromium is missing, and not root, and sudo is not installed" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends chromium
  browser=chromium
fi

# Absolute paths: Chromium resolves a relative --screenshot path against its own working directory, and the page
# must be a file:// URL.
out_abs="$(realpath -m "$out")"
html_abs="$(realpath "$html")"
mkdir -p "$(dirname "$out_abs")"
rm -f "$out_abs"

# A throwaway profile, so that no lock or state of another Chromium session interferes. --no-sandbox: the
# sandbox needs user namespaces that containers (and root) often lack. --hide-scrollbars: a clean picture.
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
  --no-first-run --no-default-browser-check --user-data-dir="$profile" \
  --window-size="$width,$height" --screenshot="$out_abs" "file://$html_abs" >"$profile/chromium.log" 2>&1 ||
  {
    echo "check-report: chromium failed (exit $?); its log:" >&2
    cat "$profile/chromium.log" >&2
  }

if [[ ! -s "$out_abs" ]]; then
  echo "check-report: no screenshot was produced at '$out_abs'" >&2
  exit 1
fi
echo "check-report: $out_abs (${width}x${height})"
