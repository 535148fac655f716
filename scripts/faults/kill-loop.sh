#!/usr/bin/env bash
# N kill -9s at random moments of train-pc (1 and 2 ranks), ingest and infer-cam on the tiny network, each followed
# by a resume or rerun. After every round: no file with a final name is incomplete, no temporary survives the rerun,
# and the result is bit-identical to an uninterrupted run (scripts/faults/compare.py, Debian's h5py).
#   bash scripts/faults/kill-loop.sh N [PCS_MPI_BINARY]      (default binary: .build/debug/pcs-mpi)
# Prints one line per kill and a summary; exits 1 at the first broken promise.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-8}
bin=$(realpath "${2:-.build/debug/pcs-mpi}")
source scripts/mpi-env.sh
export OMP_WAIT_POLICY=passive
check() { /usr/bin/python3 scripts/faults/compare.py "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quiet=(--log-level warning)

"$bin" synth --out "$work/synth" --images 24 --size 96x96 --classes 3 "${quiet[@]}"
list="$work/synth/ImageSets/Segmentation/train.txt"
"$bin" ingest voc --root "$work/synth" --split "$list" --out "$work/shards" --shards 4 "${quiet[@]}"
train=(train-pc --data "$work/shards" --model tiny-pc --epochs 3 --batch 4 --crop 64 --pair 32 --resize-long 64:96 --lr 1e-3
       --checkpoint-every 1 --keep 2 "${quiet[@]}")
mpi=(mpirun -n 2 --oversubscribe --bind-to none)
"$bin" "${train[@]}" --out "$work/reference-1"
"${mpi[@]}" "$bin" "${train[@]}" --out "$work/reference-2"   # 2 ranks train otherwise (per-rank BatchNorm and streams)
reference=$(ls "$work/reference-1"/checkpoint-*.h5 | tail -n 1)
infer=(infer-cam --data "$work/shards" --model tiny-pc --weights "$reference" --long-side 64 --scales 1 --chunk 1 "${quiet[@]}")
"$bin" "${infer[@]}" --out "$work/cams-reference"

# Runs "$@" in its own process group, kills the group with SIGKILL after a random 0.2–2.5 s (if it is still running).
kill_randomly() {
    setsid "$@" > "$work/killed.log" 2>&1 &
    local pid=$!
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + 2.3 * r / 32767 }')"
    if kill -0 "$pid" 2> /dev/null; then kill -9 -- "-$pid" 2> /dev/null || true; echo killed; else echo finished; fi
    wait "$pid" 2> /dev/null || true
    # Ranks that mpirun started may sit outside its process group and outlive it by a moment (until their next MPI
    # call fails): make sure none is still writing before the rerun starts. Every job here names its own --out.
    local out="${*: -1}"
    for _ in $(seq 100); do
        pgrep -f -- "--out $out( |$)" > /dev/null || break
        pkill -9 -f -- "--out $out( |$)" 2> /dev/null || true
        sleep 0.1
    done
}

kills=0
for ((round = 0; round < rounds; round++)); do
    case $((round % 4)) in
    0 | 1)
        ranks=$((round % 4 + 1)); out="$work/train-$round"
        launch=("$bin")
        if [ "$ranks" -gt 1 ]; then launch=("${mpi[@]}" "$bin"); fi
        what=$(kill_randomly "${launch[@]}" "${train[@]}" --out "$out")
        if [ -d "$out" ]; then check finals "$out"; fi   # right after the kill: temporaries allowed, incomplete finals not
        "${launch[@]}" "${train[@]}" --out "$out" --resume auto
        check complete "$out"
        check same-model "$(ls "$work/reference-$ranks"/checkpoint-*.h5 | tail -n 1)" "$(ls "$out"/checkpoint-*.h5 | tail -n 1)"
        label="train-pc ($ranks rank(s))" ;;
    2)
        out="$work/shards-$round"
        what=$(kill_randomly "$bin" ingest voc --root "$work/synth" --split "$list" --shards 4 "${quiet[@]}" --out "$out")
        if [ -d "$out" ]; then check finals "$out"; fi
        "$bin" ingest voc --root "$work/synth" --split "$list" --out "$out" --shards 4 "${quiet[@]}"
        check complete "$out"
        check same-set "$work/shards" "$out" train
        label="ingest" ;;
    3)
        out="$work/cams-$round"
        what=$(kill_randomly "$bin" "${infer[@]}" --out "$out")
        if [ -d "$out" ]; then check finals "$out"; fi
        "$bin" "${infer[@]}" --out "$out"
        check complete "$out"
        check same-set "$work/cams-reference" "$out" cams
        label="infer-cam" ;;
    esac
    if [ "$what" = killed ]; then kills=$((kills + 1)); fi
    echo "kill-loop: round $((round + 1))/$rounds, $label $what, then resumed: complete, no temporaries, identical"
done
echo "kill-loop: $rounds rounds, $kills killed mid-run; every result identical to the uninterrupted run, 0 temporaries left"
