#!/usr/bin/env bash
# What every tests/tools/check_*.sh script shares, sourced at its top: a scratch folder removed on exit ($tmp),
# fail() that counts a failed check and says what failed, and finish() that ends the script: exit 1 with the
# count when any check failed, else exit 0 with one line saying what passed.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/check_lib.sh"
#   ...checks calling fail "what went wrong"...
#   finish "began_tools"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# finish NAME: the script's last line.
finish() {
  if ((failures)); then
    echo "$1: $failures check(s) failed"
    exit 1
  fi
  echo "$1: all checks passed"
  exit 0
}
