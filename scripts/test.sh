#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (debug, with tests), runs every test (XCTest).
# Multi-rank tests launch `mpirun -n 2` themselves. Extra arguments go to `swift test` (e.g. --filter CLITests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
source scripts/mpi-env.sh
# The tests run many tiny oneDNN calls, sometimes beside `mpirun` children: GNU OpenMP's default spin-waiting
# then fights for the cores (measured: one gradient check 1.4 s alone, 150 s with another busy process).
export OMP_WAIT_POLICY=passive
swift build --build-tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
swift test --skip-build --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?
# One plain closing line with the totals of the whole run (XCTest's last "Executed" line is the grand total;
# skipped tests, if any, are counted apart and never as passed).
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" "$log" | tail -n 1 || true)
executed=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
skipped=$(echo "$summary" | grep -oE "[0-9]+ tests? skipped" | grep -oE "^[0-9]+" || echo 0)
if [ -z "$summary" ] || [ "$executed" -eq 0 ]; then
  echo "tests: no test was executed" >&2
  exit 1
fi
if [ "$skipped" -gt 0 ]; then
  echo "tests: $((executed - failed - skipped)) passed, $failed failed, $skipped skipped"
else
  echo "tests: $((executed - failed)) passed, $failed failed"
fi
# Then each fuzz target but shard (see scripts/fuzz.sh) for 30 s (its own sanitizer build, ~1 min): a crash, a trap or an error that is not one line
# naming the file fails CI (scripts/fuzz.sh; the long runs are by hand). PCS_MPI_FUZZ_SECONDS=0 skips it.
fuzz_seconds=${PCS_MPI_FUZZ_SECONDS:-30}
if [ "$status" -eq 0 ] && [ "$fuzz_seconds" -gt 0 ] && [ $# -eq 0 ]; then
  bash scripts/fuzz.sh ci "$fuzz_seconds" || status=$?
fi
exit $status
