#!/usr/bin/env bash
# The main job on the generated synthetic dataset under `mpirun -n 2`: installs what is missing, builds in
# release mode and runs the pipeline of configs/demo.yaml: synth → ingest → train-pc (tiny network, random
# weights) → … → cse → train-deeplab → infer-deeplab → eval-final, ending with the table of every score. A second run skips the
# stages that are complete (runs/demo/manifest.json); `--from STAGE` as an argument redoes from there.
# Outputs go to ${RUN_DIR:-runs/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
source scripts/mpi-env.sh
swift build -c release --product pcs-mpi
config=configs/demo.yaml
if [ -n "${RUN_DIR:-}" ]; then
  config=$(mktemp --suffix=.yaml)
  sed "s|^run: .*|run: $RUN_DIR|" configs/demo.yaml > "$config"
fi
mpirun -n 2 --oversubscribe --bind-to none .build/release/pcs-mpi pipeline --config "$config" "$@" </dev/null
run=${RUN_DIR:-runs/demo}
echo "demo: results table above; contact sheets $run/eval-pc/contact-sheet.png, $run/eval-sp/contact-sheet.png, $run/eval-final/contact-sheet.png (val: image, ground truth, DeepLab, DeepLab + CRF)"
