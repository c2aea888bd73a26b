#!/usr/bin/env bash
#===- utils/test.sh - README command (b): build and run every test ---------===#
#
# Bootstraps (installs what is missing, configures, builds), then runs the lit
# suite (test/) and the runtime's unit tests, and ends with one line
#   N passed, N failed
# summing lit's results and the unit test cases. Exits non-zero if anything
# failed or nothing ran.
#
#===----------------------------------------------------------------------===#
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
LLVM_MAJOR="$(head -n1 "$ROOT/llvm_version.txt")"

if ! "$ROOT/utils/bootstrap.sh"; then
  echo "test.sh: bootstrap (install/configure/build) failed"
  echo "0 passed, 1 failed"
  exit 1
fi

LIT="/usr/lib/llvm-${LLVM_MAJOR}/bin/lit"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# lit runs on Debian's interpreter, which has numpy and torch.
/usr/bin/python3 "$LIT" -sv "$BUILD_DIR/test" 2>&1 | tee "$log"
lit_rc=${PIPESTATUS[0]}

count() { # count LABEL: the number after "  LABEL: " in lit's summary
  local n
  n=$(grep -E "^ +$1 *: +[0-9]+" "$log" | tail -n1 | sed -E 's/.*: +([0-9]+).*/\1/')
  echo "${n:-0}"
}
lit_passed=$(( $(count "Passed") + $(count "Expectedly Failed") ))
lit_failed=$(( $(count "Failed") + $(count "Unresolved") + $(count "Timed Out") + $(count "Unexpectedly Passed") ))
lit_skipped=$(( $(count "Unsupported") ))

unit_passed=0
unit_failed=0
if [ -x "$BUILD_DIR/bin/moert-unittests" ]; then
  unit_out="$("$BUILD_DIR/bin/moert-unittests" 2>&1)"
  unit_rc=$?
  echo "$unit_out"
  summary="$(echo "$unit_out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n1)"
  unit_passed=$(echo "$summary" | sed -E 's/^([0-9]+) passed.*/\1/')
  unit_failed=$(echo "$summary" | sed -E 's/.*, ([0-9]+) failed$/\1/')
  unit_passed=${unit_passed:-0}
  unit_failed=${unit_failed:-0}
  if [ "$unit_rc" -ne 0 ] && [ "$unit_failed" -eq 0 ]; then unit_failed=1; fi
fi

passed=$((lit_passed + unit_passed))
failed=$((lit_failed + unit_failed))
if [ "$lit_rc" -ne 0 ] && [ "$lit_failed" -eq 0 ]; then failed=$((failed + 1)); fi

echo
echo "lit: $lit_passed passed, $lit_failed failed, $lit_skipped unsupported; runtime unit tests: $unit_passed passed, $unit_failed failed"
echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi
