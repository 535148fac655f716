#!/usr/bin/env python3
"""pydensecrf's images/s for the three CRF presets (spec §7.3), the reference for `pcs-mpi bench crf`.

    python3 -m venv /tmp/crfvenv && /tmp/crfvenv/bin/pip install numpy pydensecrf2 [pillow]
    /tmp/crfvenv/bin/python scripts/bench/bench_crf_pydensecrf.py [--image PATH] [--images 6] [--processes 1 2]
                                                                  [--save-inputs DIR] [--json OUT.json]

Input: one 500×375 RGB image (the synthetic scene of make_densecrf_fixtures.py, or --image PATH resized with
Pillow), 21 labels, 10 iterations; psa-label gets a corrupted label map, psa-softmax and deeplab a noisy softmax
map. Each timed call is what upstream does per image: DenseCRF2D, the unary (unary_from_labels / unary_from_softmax),
addPairwiseGaussian, addPairwiseBilateral, inference(10), argmax. With P processes (multiprocessing, one per core
as deeplab-pytorch's joblib runs it) each process runs --images calls; images/s = P·images / wall time, after one
untimed warm-up call per process. pydensecrf has no threads, so its 2-core figure needs 2 processes.

--save-inputs DIR writes the inputs as raw little-endian arrays (image.u8 (H, W, 3), labels.u8 (H, W),
probs.f32 (21, H, W)) plus inputs.json, so that the Swift side can time the same data.
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels, unary_from_softmax

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from make_densecrf_fixtures import PRESETS, corrupt_labels, noisy_probabilities, synthetic_scene  # noqa: E402

WIDTH, HEIGHT, LABELS, ITERATIONS = 500, 375, 21, 10


def crf_once(preset, image, unary_input):
    p = PRESETS[preset]
    h, w = image.shape[:2]
    d = dcrf.DenseCRF2D(w, h, LABELS)
    if p["unary"] == "labels":
        d.setUnaryEnergy(unary_from_labels(unary_input, LABELS, gt_prob=p["gt_prob"], zero_unsure=False))
    else:
        d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(unary_input)))
    d.addPairwiseGaussian(sxy=p["gaussian"][0], compat=p["gaussian"][1])
    sxy, srgb, compat = p["bilateral"]
    d.addPairwiseBilateral(sxy=sxy, srgb=srgb, rgbim=np.ascontiguousarray(np.copy(image)), compat=compat)
    q = np.array(d.inference(ITERATIONS)).reshape((LABELS, h, w))
    return np.argmax(q, axis=0).astype(np.uint8)


def make_inputs(image_path):
    rng = np.random.default_rng(0)
    image, truth = synthetic_scene(rng, WIDTH, HEIGHT, LABELS, shapes=9)
    if image_path:
        from PIL import Image
        image = np.asarray(Image.open(image_path).convert("RGB").resize((WIDTH, HEIGHT), Image.BILINEAR), np.uint8)
    labels = corrupt_labels(rng, truth, LABELS)
    probs = noisy_probabilities(rng, truth, LABELS)
    return np.ascontiguousarray(image), labels, probs


def worker(args):
    preset, count, image, labels, probs = args
    unary_input = labels if PRESETS[preset]["unary"] == "labels" else probs
    crf_once(preset, image, unary_input)   # warm-up
    start = time.perf_counter()
    for _ in range(count):
        crf_once(preset, image, unary_input)
    return start, time.perf_counter()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", help="an RGB image to resize to 500×375 (default: the synthetic scene)")
    ap.add_argument("--images", type=int, default=4, help="timed calls per process and preset")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--save-inputs", type=Path)
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args()

    image, labels, probs = make_inputs(args.image)
    if args.save_inputs:
        args.save_inputs.mkdir(parents=True, exist_ok=True)
        (args.save_inputs / "image.u8").write_bytes(image.tobytes())
        (args.save_inputs / "labels.u8").write_bytes(labels.tobytes())
        (args.save_inputs / "probs.f32").write_bytes(probs.astype("<f4").tobytes())
        (args.save_inputs / "inputs.json").write_text(json.dumps(dict(
            width=WIDTH, height=HEIGHT, labels=LABELS, iterations=ITERATIONS, image=args.image or "synthetic",
            files=dict(image="image.u8", labels="labels.u8", probs="probs.f32"))) + "\n")

    print(f"pydensecrf: {WIDTH}x{HEIGHT} RGB, {LABELS} labels, {ITERATIONS} iterations, "
          f"image {args.image or 'synthetic'}, {os.cpu_count()} CPUs")
    results = []
    for preset in args.presets:
        for procs in args.processes:
            jobs = [(preset, args.images, image, labels, probs)] * procs
            if procs == 1:
                spans = [worker(jobs[0])]
            else:
                with mp.get_context("fork").Pool(procs) as pool:
                    spans = pool.map(worker, jobs)
            wall = max(e for _, e in spans) - min(s for s, _ in spans)
            ips = procs * args.images / wall
            results.append(dict(preset=preset, processes=procs, images_per_s=ips, s_per_image=procs / ips))
            print(f"  {preset:12s} {procs} process{'es' if procs > 1 else '  '}: {ips:6.2f} images/s "
                  f"({1000 * procs / ips:7.1f} ms per image per process)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
