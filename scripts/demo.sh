#!/usr/bin/env bash
# The main job on the generated synthetic dataset under `mpirun -n 2`: installs what is missing, builds in
# release mode, generates the dataset, packs it into HDF5 shards and trains the PC network (tiny configuration)
# from random weights. Later stages (CAM inference, evaluation, SP, ...) join as they are built.
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
"${mpi[@]}" "$bin" train-pc --data "$run/shards" --split train --out "$run/train-pc" --model tiny-pc \
  --epochs ${EPOCHS:-30} --batch 8 --crop 128 --pair 64 --resize-long 128:192 --lr 2e-3 --resume auto </dev/null
echo "demo: dataset in $run/synth, shards in $run/shards, PC checkpoints and metrics in $run/train-pc"
