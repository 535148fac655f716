#!/usr/bin/env bash
# Fuzzes one reader with libFuzzer for SECONDS (seed corpus Fuzz/corpus/TARGET, committed; what the run adds goes to
# .build-fuzz-san/corpus/TARGET, never into the repository). Crashes are written to .build-fuzz-san/crashes/TARGET/.
#   bash scripts/fuzz.sh TARGET SECONDS [libFuzzer flags…]     targets: jpeg png pth mxnet coco voc yaml shard
#   bash scripts/fuzz.sh all SECONDS                          each target in turn, one at a time (ci: all but shard)
# Builds Fuzz/Targets (debug, AddressSanitizer, coverage) in its own scratch folder; exits 1 on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET SECONDS}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
shift 2
scratch=.build-fuzz-san
runtime=$(dirname "$(dirname "$(command -v swiftc)")")/lib/clang
runtime=$(ls -d "$runtime"/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a | head -n 1)
# -sanitize=fuzzer's own runtime brings a `main`, which clashes with SwiftPM's executable entry point: instrument
# with coverage and link libFuzzer's no-main runtime; FuzzMain.swift calls its driver.
PCS_MPI_FUZZ=1 swift build --scratch-path "$scratch" --product pcs-fuzz \
  -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
  -Xlinker "$runtime" -Xlinker -lstdc++ 2>&1 | grep -v "Cannot export local symbol" | tail -n 3
binary=$scratch/debug/pcs-fuzz
targets=("$target")
if [ "$target" = all ]; then targets=(jpeg png pth mxnet coco voc yaml shard); fi
# CI leaves out `shard`: libhdf5 1.10.8 itself can loop for ever reading a corrupt variable-length string attribute
# (H5Aread → H5HG_read; Fuzz/regressions/shard/hdf5-vlen-attribute-hang.h5), which fuzzing finds in seconds.
# CI also fixes the random seed: the same binary then explores the same inputs on every run, so a CI result is
# reproducible (`bash scripts/fuzz.sh TARGET SECONDS -seed=1` replays it) and new findings come from the long runs by
# hand, not from a red CI drawn by chance.
if [ "$target" = ci ]; then targets=(jpeg png pth mxnet coco voc yaml); set -- -seed=1 "$@"; fi
status=0
for t in "${targets[@]}"; do
  [ -d "Fuzz/corpus/$t" ] || { echo "fuzz: no target '$t' (Fuzz/corpus/$t missing)" >&2; exit 2; }
  mkdir -p "$scratch/corpus/$t" "$scratch/crashes/$t"
  log=$scratch/fuzz-$t.log
  # Inputs grow to 4× the largest seed; 4 GB of resident memory (ASan keeps freed memory), 2 GB in one allocation, 10 s per input: beyond that is a finding too.
  largest=$(find "Fuzz/corpus/$t" -type f -printf '%s\n' | sort -n | tail -n 1)
  echo "fuzz: $t for ${seconds} s"
  if ! PCS_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=0 nice -n 10 "$binary" -max_total_time="$seconds" -print_final_stats=1 \
      -max_len=$((largest * 4)) -rss_limit_mb=4096 -malloc_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$scratch/crashes/$t/" "$@" "$scratch/corpus/$t" "Fuzz/corpus/$t" > "$log" 2>&1; then
    echo "fuzz: $t FOUND A CRASH; input in $scratch/crashes/$t/, log $log" >&2
    grep -E "ERROR|Fatal error|SUMMARY|deadly" "$log" | head -n 5 >&2 || true
    status=1
  fi
  # The closing statistics: executions, coverage (cov: edges, ft: features), corpus (fork mode, which `shard` needs
  # for libhdf5's hangs, prints no stat:: lines: not a failure).
  stats=$(grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec" "$log" | tr '\n' ' ' || true)
  last=$(grep -E "^#[0-9]+" "$log" | tail -n 1 || true)
  echo "fuzz: $t: $last | $stats"
done
exit $status
