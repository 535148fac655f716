#!/usr/bin/env bash
# The main job on the generated synthetic dataset under `mpirun -n 2`: installs what is missing, builds in
# release mode, generates the dataset and packs it into HDF5 shards. Later stages join as they are built.
# Outputs go to ${RUN_DIR:-runs/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
source scripts/mpi-env.sh
swift build -c release --product pcs-mpi
bin=.build/release/pcs-mpi
run=${RUN_DIR:-runs/demo}
mpi=(mpirun -n 2 --oversubscribe --bind-to none)
"${mpi[@]}" "$bin" synth --out "$run/synth" --images 400 --size 160x120 --classes 5 --seed 1 </dev/null
for split in train val; do
  "${mpi[@]}" "$bin" ingest voc --root "$run/synth" --split "$run/synth/ImageSets/Segmentation/$split.txt" \
    --out "$run/shards" --shards 4 </dev/null
done
echo "demo: dataset in $run/synth, shards in $run/shards"
