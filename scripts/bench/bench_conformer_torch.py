"""The steps `pcs-mpi bench conformer` times, in PyTorch on the same cores, with the repo's reference model.

Run locally (never in CI), with the same thread count as the Swift run, one after the other on the same machine:
    /tmp/torchvenv/bin/python scripts/bench/bench_conformer_torch.py --threads 2 --out /tmp/torch_conformer.json
    .build/release/pcs-mpi bench conformer --threads 2 --torch /tmp/torch_conformer.json
Step names must match Sources/Benchmarks/ConformerBenchmark.swift.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import conformer  # noqa: E402


def best(repeats, body):
    body()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        body()
        times.append(time.perf_counter() - t0)
    return min(times)


def counted(body):
    """FLOPs of one untimed call as torch.utils.flop_counter counts them (convolutions and matrix products, forward
    and backward, 2 per multiply-add): the reference for the FLOP counts behind `pcs-mpi bench`'s GFLOP/s."""
    with FlopCounterMode(display=False) as counter:
        body()
    return float(counter.get_total_flops())


def training_step(batch, stage="pc"):
    """Upstream's Conformer-S (scripts/reference), AdamW and fixed random inputs; returns (model, step), step() one
    training step as `pcs-mpi bench conformer` times it (PC: 512 and 224 crops, the pair loss; SP: spec §6.3)."""
    torch.manual_seed(1)
    model = conformer.Conformer(sub_classes=200 if stage == "sp" else 0)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=5e-4, eps=1e-8)
    image = torch.rand(batch, 3, 512, 512) * 2 - 1
    pair = F.interpolate(image, size=(224, 224), mode="bilinear", align_corners=False)
    labels = (torch.rand(batch, 20) < 0.1).float()
    sub_labels = (torch.rand(batch, 200) < 0.01).float()

    def sp_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        c, t, _, _, cs, ts = model(image, method=None)
        loss = F.multilabel_soft_margin_loss((c + t)[:, 1:], labels) + F.multilabel_soft_margin_loss(cs + ts, sub_labels)
        loss.backward()
        opt.step()

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        c1, t1, _ = model(image, method=None)
        c2, t2, _ = model(pair, method=None)
        loss = (F.multilabel_soft_margin_loss((c1 + t1)[:, 1:], labels)
                + F.multilabel_soft_margin_loss((c2 + t2)[:, 1:], labels)) / 2
        loss.backward()
        opt.step()

    return model, sp_step if stage == "sp" else step


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--stage", choices=["pc", "sp"], default="pc",
                   help="sp: the SP step of spec §6.3 (one 512 pass, 21-way and 200-way losses, no pair)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, step = training_step(a.batch, a.stage)
    train = best(a.steps, step)
    train_flops = counted(step) / a.batch
    model.eval()
    x = torch.rand(1, 3, 368, 496) * 2 - 1

    def infer():
        with torch.no_grad():
            model(x, method="transcam")[:3]

    inference = best(max(a.steps, 2), infer)
    infer_flops = counted(infer)
    square = torch.rand(1, 3, 512, 512) * 2 - 1

    def features():
        with torch.no_grad():
            model(square, method=None)

    extraction = best(max(a.steps, 2), features)
    feature_flops = counted(features)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1048576
    rows = [
        {"what": f"SP training step 512, batch {a.batch}" if a.stage == "sp" else f"PC training step 512+224, batch {a.batch}",
         "seconds": train, "imagesPerSecond": a.batch / train, "gflops": 0, "flopsPerImage": train_flops},
        {"what": "inference 496x368 + transcam", "seconds": inference, "imagesPerSecond": 1 / inference, "gflops": 0,
         "flopsPerImage": infer_flops},
        {"what": "feature extraction forward 512x512", "seconds": extraction, "imagesPerSecond": 1 / extraction, "gflops": 0,
         "flopsPerImage": feature_flops},
    ]
    for r in rows:
        print(f"{r['what']:38s} {r['seconds']:7.2f} s {r['imagesPerSecond']:7.2f} images/s "
              f"{r['flopsPerImage'] / 1e9:8.1f} GFLOP per image (torch.utils.flop_counter)")
    print(f"peak resident memory {peak:.2f} GiB")
    json.dump(rows, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
