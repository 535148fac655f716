#!/usr/bin/env python3
"""The PyTorch reference for `pcs-mpi bench deeplab`: deeplab-pytorch's own DeepLabV2_ResNet101_MSC
(kazuto1011/deeplab-pytorch, imported or executed from a checkout at run time; none of it is in this repo) on the
same cores.

    git --git-dir=MIRROR archive HEAD libs main.py configs | tar -x -C DEEPLAB    # a checkout of kazuto1011/deeplab-pytorch
    python3 -m pip install torch numpy pillow
    python3 bench_deeplab_torch.py train --upstream DEEPLAB [--layouts 1x2,2x1] [--batch 10] [--crop 321] [--steps 2] [--json T.json]
    python3 bench_deeplab_torch.py infer --upstream DEEPLAB [--threads 1,2] [--size 500x375] [--repeats 3] [--json I.json]

train: the training update of `main.py train` with `configs/voc12.yaml`'s solver: `libs.models.DeepLabV2_ResNet101_MSC`
(21 classes, PyTorch's default initialisation: upstream loads a caffemodel, which changes no work), `model.train()`
then `model.base.freeze_bn()` (every BatchNorm on its running statistics; BatchNorm parameters are in no optimiser
group), `optimizer.zero_grad()`, ITER_SIZE micro-batches each running the model (its 4 MSC outputs), the sum of
`nn.CrossEntropyLoss(ignore_index=255)` over the outputs with the labels resized to each output by main.py's own
`resize_labels` (Pillow nearest), divided by ITER_SIZE, `backward()`; then `optimizer.step()` (SGD, momentum 0.9,
main.py's own `get_params` groups 1× / 10× / 20×: lr --lr, wd 5e-4, no decay on the ASPP biases) and
`PolynomialLR.step` (libs/utils/lr_scheduler.py: power 0.9, every 10, 20,000 iterations). --lr defaults to 1e-9, as
`bench deeplab`'s: from random weights with frozen BatchNorm the voc12.yaml's 2.5e-4 drives the loss to NaN after one
update (pcs-mpi's loop stops there), and the rate changes no work. `nn.DataParallel` is left
out (on a CPU it only calls the model). A layout RxT runs R processes of T threads started together, each with
batch/R images per update as `pcs-mpi train-deeplab` splits them: ITER_SIZE 2 when that share is even, else 1 (the
global batch 10 is 5 × 2 in one process, 5 × 1 in each of two). Random N(0, 1) images (the Caffe-normalised inputs'
scale changes no work) and label maps of a centred box of class 1 in a ring of 255 on background. images/s = batch ·
steps / the slowest process's time, after one untimed update; R > 1 has no gradient all-reduce and no data loading,
which only favours PyTorch. Peak memory: each process's ru_maxrss.

infer: `main.py test`'s prediction of one image without the CRF: the model in eval mode (the MSC max),
`torch.set_grad_enabled(False)`, logits bilinearly upsampled to the image size, softmax, argmax; one random
(1, 3, H, W) image of --size, at each thread count in this process: images/s over --repeats calls after one untimed
call. Peak memory: this process's ru_maxrss after the last thread count.
"""
import argparse
import ast
import importlib.util
import json
import os
import resource
import sys
import time
import warnings

import numpy as np

from torch_layouts import run_layouts, timed_steps

CLASSES = 21
# configs/voc12.yaml's SOLVER
WEIGHT_DECAY, MOMENTUM, LR_DECAY, ITER_MAX, POLY_POWER = 5.0e-4, 0.9, 10, 20000, 0.9


def import_upstream(checkout):
    if not os.path.isfile(os.path.join(checkout, "libs", "models", "deeplabv2.py")):
        sys.exit(f"{checkout}: no libs/models/deeplabv2.py (a checkout of kazuto1011/deeplab-pytorch)")
    sys.path.insert(0, checkout)
    import torch
    return torch


def model(checkout):
    from libs.models import DeepLabV2_ResNet101_MSC  # upstream's
    return DeepLabV2_ResNet101_MSC(n_classes=CLASSES)


class _TorchShim:
    """torch for main.py's functions, but `torch.LongTensor(list of float32 arrays)` (resize_labels' last line,
    which torch ≥ 2 refuses) made through numpy: the same int64 tensor."""

    def __init__(self, torch):
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def LongTensor(self, arrays):
        return self._torch.from_numpy(np.asarray(arrays).astype(np.int64))


def upstream_functions(checkout, names):
    """The named top-level functions of the checkout's main.py (which imports more than this needs), compiled from
    its own source."""
    import torch
    import torch.nn as nn
    from PIL import Image
    path = os.path.join(checkout, "main.py")
    tree = ast.parse(open(path).read())
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert len(defs) == len(names), f"{path}: expected functions {names}"
    ns = {"torch": _TorchShim(torch), "nn": nn, "np": np, "Image": Image}
    exec(compile(ast.Module(body=defs, type_ignores=[]), path, "exec"), ns)
    return [ns[name] for name in names]


def polynomial_lr(checkout):
    """libs/utils/lr_scheduler.py's PolynomialLR (libs.utils itself imports pydensecrf)."""
    spec = importlib.util.spec_from_file_location("lr_scheduler", os.path.join(checkout, "libs", "utils", "lr_scheduler.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PolynomialLR


# ---------------------------------------------------------------- train

def box_labels(crop, count):
    import torch
    label = np.zeros((crop, crop), np.int64)
    ring = max(crop // 32, 1)
    label[crop // 4 - ring:3 * crop // 4 + ring, crop // 4 - ring:3 * crop // 4 + ring] = 255
    label[crop // 4:3 * crop // 4, crop // 4:3 * crop // 4] = 1
    return torch.from_numpy(np.stack([label] * count))


def train_worker(args, threads, share, start, queue):
    torch = import_upstream(args.upstream)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    import torch.nn as nn
    get_params, resize_labels = upstream_functions(args.upstream, ["get_params", "resize_labels"])
    net = model(args.upstream)
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    optimizer = torch.optim.SGD(params=[
        {"params": get_params(net, key="1x"), "lr": args.lr, "weight_decay": WEIGHT_DECAY},
        {"params": get_params(net, key="10x"), "lr": 10 * args.lr, "weight_decay": WEIGHT_DECAY},
        {"params": get_params(net, key="20x"), "lr": 20 * args.lr, "weight_decay": 0.0},
    ], momentum=MOMENTUM)
    scheduler = polynomial_lr(args.upstream)(optimizer=optimizer, step_size=LR_DECAY, iter_max=ITER_MAX, power=POLY_POWER)
    net.train()
    net.base.freeze_bn()
    iter_size = 2 if share % 2 == 0 else 1
    micro = share // iter_size
    images = torch.randn(micro, 3, args.crop, args.crop)
    labels = box_labels(args.crop, micro)

    # What the row reports besides the speed; the update's loss shows it stayed finite.
    extra = {"micro_batch": micro, "iter_size": iter_size}

    def update(iteration):
        optimizer.zero_grad()
        loss = 0
        for _ in range(iter_size):
            logits = net(images)
            iter_loss = 0
            for logit in logits:
                _, _, H, W = logit.shape
                labels_ = resize_labels(labels, size=(H, W))
                iter_loss += criterion(logit, labels_)
            iter_loss /= iter_size
            iter_loss.backward()
            loss += iter_loss.item()
        extra["loss"] = loss
        optimizer.step()
        scheduler.step(epoch=iteration)

    # main.py's `scheduler.step(epoch=iteration)`, which torch now warns about at every call.
    warnings.filterwarnings("ignore", message="The epoch parameter")
    update(1)
    timed_steps(update, args.steps, start, queue, extra)


def train(args):
    rows = []
    for row in run_layouts(args, train_worker):
        print(f"PyTorch {torch_version()} DeepLabV2_ResNet101_MSC train update, batch {args.batch} ({row['micro_batch']} × "
              f"{row['iter_size']} per process), crop {args.crop}, {row['ranks']} process(es) × {row['threads']} thread(s): "
              f"{row['images_per_s']:.3f} images/s ({row['step_s']:.1f} s/update), peak {row['peak_mib']:.0f} MiB per process "
              f"(last loss {row['loss']:.4g})",
              flush=True)
        rows.append(row)
    return rows


def torch_version():
    import torch
    return torch.__version__


# ---------------------------------------------------------------- infer

def infer(args):
    torch = import_upstream(args.upstream)
    import torch.nn.functional as F
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    width, height = (int(v) for v in args.size.split("x"))
    net = model(args.upstream)
    net.eval()
    images = torch.randn(1, 3, height, width)

    def predict():
        logits = net(images)
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        probs = F.softmax(logits, dim=1)
        return torch.argmax(probs, dim=1)

    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        predict()
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            predict()
        seconds = (time.perf_counter() - t0) / args.repeats
        rows.append({"what": f"infer {width}x{height}", "threads": threads, "images_per_s": 1 / seconds})
        print(f"PyTorch {torch.__version__} DeepLabV2_ResNet101_MSC inference {width}x{height} (MSC max, bilinear, softmax, "
              f"argmax), {threads} thread(s): {1 / seconds:.3f} images/s ({seconds:.2f} s)", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for row in rows:
        row["peak_mib"] = peak
    print(f"peak memory {peak:.0f} MiB")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["train", "infer"])
    parser.add_argument("--upstream", required=True, help="a checkout of kazuto1011/deeplab-pytorch")
    parser.add_argument("--layouts", default="1x2,2x1", help="train: PROCESSESxTHREADS, comma-separated")
    parser.add_argument("--batch", type=int, default=10, help="train: images per update over all processes")
    parser.add_argument("--crop", type=int, default=321)
    parser.add_argument("--steps", type=int, default=2, help="train: timed updates after one untimed")
    parser.add_argument("--lr", type=float, default=1e-9, help="train: backbone learning rate (voc12.yaml: 2.5e-4)")
    parser.add_argument("--threads", default="1,2", help="infer: thread counts")
    parser.add_argument("--size", default="500x375", help="infer: image WxH")
    parser.add_argument("--repeats", type=int, default=3, help="infer: timed predictions per thread count")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    rows = {"train": train, "infer": infer}[args.what](args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
