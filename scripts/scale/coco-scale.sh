#!/usr/bin/env bash
# COCO at scale on this machine: a generated COCO-format set of N small images (`synth --format coco`), ingested under
# `mpirun -n 2`, then seeds from `infer-cam` with the tiny network (upstream's pyramid at long side 128), killed once
# half-way and rerun to completion. Prints images/s per stage, the peak resident memory of each rank (flat in N:
# everything streams), and the sizes on disk.
#   bash scripts/scale/coco-scale.sh N [PCS_MPI_BINARY] [--no-infer]   (default: 20000 images, .build/release/pcs-mpi)
# --no-infer stops after ingest (the memory figures at several N without the hour of CAMs).
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20000}
bin=$(realpath "${2:-.build/release/pcs-mpi}")
infer_too=1
[ "${3:-}" = --no-infer ] && infer_too=0
work=${PCS_SCALE_DIR:-/tmp/pcs-coco-scale-$n}
source scripts/mpi-env.sh
export OMP_WAIT_POLICY=passive
rm -rf "$work"
mkdir -p "$work"
quiet=(--log-level warning)
mpi=(mpirun -n 2 --oversubscribe --bind-to none)
# Runs "$@" on 2 ranks, each under /usr/bin/time: $work/NAME.<rank> holds "peak-KiB seconds".
timed() {
  local name=$1
  shift
  "${mpi[@]}" sh -c 'exec /usr/bin/time -f "%M %e" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$work/$name" "$bin" "$@"
}
report() {
  local name=$1 images=$2
  read -r rss0 s0 < "$work/$name.0"
  read -r rss1 s1 < "$work/$name.1"
  awk -v n="$name" -v i="$images" -v a="$rss0" -v b="$rss1" -v s0="$s0" -v s1="$s1" 'BEGIN {
    s = (s0 > s1) ? s0 : s1; printf "scale: %-10s %6d images in %7.1f s: %7.1f images/s; peak RSS rank 0 %6.0f MiB, rank 1 %6.0f MiB\n", n, i, s, i / s, a / 1024, b / 1024 }'
}

timed synth synth --out "$work/coco" --images "$n" --size 64x48 --classes 20 --format coco --val-fraction 0.01 "${quiet[@]}"
report synth "$n"
train=$(python3 -c "import json; print(len(json.load(open('$work/coco/annotations/instances_train.json'))['images']))")
timed ingest ingest coco --images "$work/coco/images" --annotations "$work/coco/annotations/instances_train.json" --name train \
  --out "$work/shards" --shards 16 "${quiet[@]}"
report ingest "$train"
if [ "$infer_too" -eq 0 ]; then
  echo "scale: sizes: $(du -sh "$work/coco/images" | cut -f1) images, $(du -sh "$work/coco/annotations" | cut -f1) annotations, $(du -sh "$work/shards" | cut -f1) shards"
  exit 0
fi
"$bin" train-pc --data "$work/shards" --out "$work/pc" --model tiny-pc --max-steps 1 --batch 2 --crop 64 --pair 32 --resize-long 64:96 "${quiet[@]}"
weights=$(ls "$work"/pc/checkpoint-*.h5 | tail -n 1)
infer=(infer-cam --data "$work/shards" --split train --out "$work/cams" --model tiny-pc --weights "$weights" --long-side 128 --part-seconds 10 "${quiet[@]}")
# The first run is killed (SIGKILL to the whole job) when about half the images have CAMs; the rerun keeps the
# complete parts and computes the rest.
start=$(date +%s.%N)
setsid "${mpi[@]}" "$bin" "${infer[@]}" > "$work/killed.log" 2>&1 &
job=$!
while kill -0 "$job" 2> /dev/null; do
  done_images=$(/usr/bin/python3 - "$work/cams" << 'PY' 2> /dev/null || echo 0
import glob, sys, h5py
total = 0
for path in glob.glob(sys.argv[1] + "/cams-*.h5"):
    try:
        with h5py.File(path, "r") as f:
            total += len(f["ids"])
    except Exception:
        pass
print(total)
PY
)
  if [ "${done_images:-0}" -ge $((train / 2)) ]; then kill -9 -- "-$job" 2> /dev/null || true; break; fi
  sleep 2
done
wait "$job" 2> /dev/null || true
for _ in $(seq 50); do pgrep -f -- "--out $work/cams( |$)" > /dev/null || break; sleep 0.2; done
killed_after=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
timed infer-cam "${infer[@]}"
# The rerun computes only what the killed run had not committed: its own count and time are in the stats file.
rerun=$(/usr/bin/python3 -c "import json; s = json.load(open('$work/cams/infer-cam-stats.json')); print(s['images'])")
report infer-cam "$rerun"
echo "scale: infer-cam killed after ${killed_after} s with ${done_images:-?} images done; the rerun above computed the rest"
/usr/bin/python3 - "$work/cams" "$train" << 'PY'
import json, sys
index = json.load(open(sys.argv[1] + "/cams-index.json"))
count = sum(len(shard["ids"]) for shard in index["shards"])
print(f"scale: cams-index.json lists {count} images of {sys.argv[2]}")
PY
echo "scale: sizes: $(du -sh "$work/coco/images" | cut -f1) images, $(du -sh "$work/coco/annotations" | cut -f1) annotations, $(du -sh "$work/shards" | cut -f1) shards, $(du -sh "$work/cams" | cut -f1) CAMs"
