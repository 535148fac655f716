#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (debug, with tests), runs every test.
# Multi-rank tests launch `mpirun -n 2` themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
source scripts/mpi-env.sh
swift build --build-tests
swift test --skip-build "$@"
