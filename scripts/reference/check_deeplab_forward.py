#!/usr/bin/env python3
"""Full-size fidelity check of `pcs-mpi forward --model deeplab` against deeplab-pytorch's own
DeepLabV2_ResNet101_MSC (random init; imported at run time from a checkout, none of its code is in this repo).

    python check_deeplab_forward.py --upstream DIR --pcs-mpi .build/release/pcs-mpi [--out /tmp/deeplab-check]

DIR holds deeplab-pytorch's libs/ (e.g. `git --git-dir=MIRROR archive HEAD libs | tar -x -C DIR`). Local only (the
weights are ~170 MB). Steps: DeepLabV2_ResNet101_MSC(21) with random BatchNorm statistics and affine parameters
and nonzero ASPP biases, saved with torch.save; an odd-sized input (1, 3, 65, 81) N(0, 1) and a label map (255 on a
fifth of the pixels); the float64 reference with BatchNorm frozen: the four training outputs, the loss (Σ of the
four cross-entropies, labels resized by PIL nearest with (w, h)), every gradient, and the eval output. Then runs
pcs-mpi forward --train and prints max |ours − ref| / max |ref| per tensor; exits 1 past 1e-4 (outputs) or 1e-3
(loss, gradients).
"""
import argparse
import os
import subprocess
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
from PIL import Image


def resize(labels, h, w):
    return torch.from_numpy(np.stack([np.asarray(Image.fromarray(l.astype(np.float32)).resize((w, h), resample=Image.NEAREST))
                                      for l in labels.numpy()])).long()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--pcs-mpi", required=True)
    p.add_argument("--out", default="/tmp/deeplab-check")
    args = p.parse_args()
    torch.manual_seed(0)
    sys.path.insert(0, args.upstream)
    from libs.models import DeepLabV2_ResNet101_MSC  # noqa: E402  (upstream's file)
    model = DeepLabV2_ResNet101_MSC(n_classes=21)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.1)
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.normal_(0, 0.1)
    os.makedirs(args.out, exist_ok=True)
    pth = os.path.join(args.out, "deeplab.pth")
    torch.save(model.state_dict(), pth)
    x = torch.randn(1, 3, 65, 81)
    labels = torch.randint(0, 21, (1, 65, 81))
    labels[torch.rand(1, 65, 81) < 0.2] = 255
    with h5py.File(os.path.join(args.out, "in.h5"), "w") as f:
        f["input"] = x.numpy()
        f["label"] = labels.numpy().astype(np.int32)

    model = model.double()
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval(); m.weight.requires_grad_(False); m.bias.requires_grad_(False)
    outputs = model(x.double())
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    loss = sum(criterion(o, resize(labels, o.shape[2], o.shape[3])) for o in outputs)
    loss.backward()
    model.eval()
    with torch.no_grad():
        logits = model(x.double())

    ours_path = os.path.join(args.out, "ours.h5")
    subprocess.run([args.pcs_mpi, "forward", "--model", "deeplab", "--weights", pth, "--input", os.path.join(args.out, "in.h5"),
                    "--out", ours_path, "--train"], check=True)
    worst = {"outputs": 0.0, "grads": 0.0}
    failed = False
    with h5py.File(ours_path) as f:
        refs = {"logits": logits} | {f"train/{n}": o for n, o in zip(["scale_1", "scale_0.5", "scale_0.75", "max"], outputs)}
        for name, ref in refs.items():
            err = np.abs(f[name][()] - ref.detach().numpy()).max() / np.abs(ref.detach().numpy()).max()
            print(f"{name:22s} {err:.2e}")
            worst["outputs"] = max(worst["outputs"], err); failed |= err > 1e-4
        err = abs(f["loss"][0] - loss.item()) / abs(loss.item())
        print(f"{'loss':22s} {err:.2e}"); failed |= err > 1e-3
        count = 0
        for key, param in model.named_parameters():
            if param.grad is None:
                continue
            g = param.grad.numpy()
            err = np.abs(f[f"grad/{key}"][()] - g).max() / max(np.abs(g).max(), 1e-30)
            worst["grads"] = max(worst["grads"], err); failed |= err > 1e-3; count += 1
        print(f"{count} gradients, worst {worst['grads']:.2e}; outputs worst {worst['outputs']:.2e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
