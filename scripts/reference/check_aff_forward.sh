#!/usr/bin/env bash
# Manual fidelity check of `pcs-mpi forward --model aff` against upstream's own resnet38_aff.Net (issue 15,
# "Fidelity"): float32 Swift vs a float64 PyTorch run of the same random-init weights. Not CI: the weights are
# ~430 MB and the float64 reference ~850 MB, all under $WORK (default /tmp/aff-fixture), nothing in the repo.
#
#   UPSTREAM=/tmp/upstream scripts/reference/check_aff_forward.sh [PCS_MPI binary]
#
# UPSTREAM: a checkout holding SP_2/ (ChunmengLiu1/PCSformer), e.g.
#   git --git-dir=MIRROR archive HEAD SP_2 | tar -x -C /tmp/upstream
# PYTHON: a Python with torch (CPU), numpy and h5py (default /tmp/torchvenv/bin/python).
# Passes (exit 0) when outputs are within 1e-4 and loss and gradients within 1e-3, max |Δ| / max |ref| per tensor.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
PCS_MPI=${1:-$here/.build/debug/pcs-mpi}
PYTHON=${PYTHON:-/tmp/torchvenv/bin/python}
WORK=${WORK:-/tmp/aff-fixture}
: "${UPSTREAM:?set UPSTREAM to a checkout holding SP_2/}"
[ -f "$here/scripts/mpi-env.sh" ] && source "$here/scripts/mpi-env.sh"
export OMP_WAIT_POLICY=passive

"$PYTHON" "$here/scripts/fixtures/make_aff_fixture.py" make --upstream "$UPSTREAM" --out "$WORK"
"$PCS_MPI" forward --model aff --weights "$WORK/aff.pth" --input "$WORK/in.h5" --out "$WORK/out_eval.h5"
"$PCS_MPI" forward --model aff --weights "$WORK/aff.pth" --input "$WORK/in.h5" --out "$WORK/out_train.h5" --train
"$PYTHON" "$here/scripts/fixtures/make_aff_fixture.py" compare --ref "$WORK/ref.h5" --eval "$WORK/out_eval.h5" --train "$WORK/out_train.h5"
