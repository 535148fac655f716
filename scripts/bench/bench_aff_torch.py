#!/usr/bin/env python3
"""The PyTorch reference for `pcs-mpi bench aff`: upstream PSA's own code (jiwoon-ahn/psa, imported or executed from
a checkout at run time; none of it is in this repo) on the same cores.

    git --git-dir=MIRROR archive HEAD | tar -x -C PSA          # a checkout of jiwoon-ahn/psa
    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy h5py pillow scipy
    python bench_aff_torch.py train --upstream PSA [--layouts 1x2,2x1] [--batch 8] [--crop 448] [--steps 2] [--json T.json]
    python bench_aff_torch.py walk --upstream PSA --save-inputs DIR [--threads 1,2] [--json W.json]
    python bench_aff_torch.py fixture --upstream PSA --out Tests/PCSformerTests/Fixtures/random_walk_500x375.h5

train: one training step of upstream's `network.resnet38_aff.Net` as `train_aff.py` runs it: `net.train()` (upstream's
override: conv1a and b2* frozen, every BatchNorm on running statistics and frozen), the pair labels of
`voc12.data.ExtractAffinityLabelInRadius` (radius 5) on a 56×56 label map per image (a centred box of class 1 in a
ring of 255 on background, like `bench aff`'s la/ha maps), the loss bg/4 + fg/4 + neg/2 of spec §8.5, zero_grad,
backward and `tool.torchutils.PolyOptimizer.step` (its groups as `train_aff.py`: lr 0.01, heads 10×, wd 5e-4). Random
N(0, 1) images (B, 3, crop, crop). A layout RxT runs R processes of T threads with batch/R images each, started
together; images/s = batch · steps / the slowest process's time, after one untimed step. (R > 1 has no gradient
all-reduce, which only favours PyTorch.) Peak memory: each process's ru_maxrss.

walk: upstream's dense random walk, executed from the checkout's own lines: the `to_dense` block of
`resnet38_aff.Net.forward` (the n × n matrix A from the pair affinities, A_ii = 1) and the `with torch.no_grad():`
block of `infer_aff.py`'s loop (A^β, column normalisation, logt squarings, V · T, avg-pool 8, bilinear upsampling,
max), with PCSformer's settings (β 14, logt 7, background 0.46 inside the image, spec §8.6; `--beta 8 --logt 8` for
PSA's). Only the affinities and CAMs are given instead of the network's: per size (500×375, 640×480) a synthetic
scene of background and two class ellipses; affinities exp(−mean_c |f_i − f_j|) of a 16-channel embedding (a random
vector per region plus N(0, 0.15²) noise per feature cell) over upstream's pair layout (`tool.pyutils.
get_indices_of_pairs`), quantised to q/65535; CAMs smooth blobs inside the ellipses, quantised to q/255. So both
sides read the same float32 values. `--save-inputs DIR` writes DIR/walk-WxH.h5 (gzip): affinity_q int32 (34, P),
cams_q uint8 (K, H, W), classes int32 (K), argmax uint8 (H, W) = upstream's `res`, attributes beta, logt,
background. images/s per size and thread count: timed calls after one untimed call at 128×96.

fixture: the 500×375 inputs with their dense argmax, written to --out (what RandomWalkFixtureTests reads).
"""
import argparse
import ast
import json
import os
import resource
import sys
import time

import h5py
import numpy as np

from torch_layouts import run_layouts, timed_steps

SIZES = [(500, 375), (640, 480)]
LABELS = 21


def import_upstream(checkout):
    if not os.path.isfile(os.path.join(checkout, "network", "resnet38_aff.py")):
        sys.exit(f"{checkout}: no network/resnet38_aff.py (a checkout of jiwoon-ahn/psa)")
    sys.path.insert(0, checkout)
    import torch
    # Upstream moves tensors with .cuda(non_blocking=True); on a CPU build that is the identity here.
    torch.Tensor.cuda = lambda self, *a, **k: self
    return torch


# ---------------------------------------------------------------- train

def pair_labels(crop, batch):
    import voc12.data  # upstream's
    label = np.zeros((crop // 8, crop // 8), np.float32)
    s = crop // 8
    label[s // 4 - 2:3 * s // 4 + 2, s // 4 - 2:3 * s // 4 + 2] = 255
    label[s // 4:3 * s // 4, s // 4:3 * s // 4] = 1
    bg, fg, neg = voc12.data.ExtractAffinityLabelInRadius(cropsize=s, radius=5)(label)
    import torch
    return [torch.from_numpy(np.stack([m] * batch)) for m in (bg, fg, neg)]


def train_worker(args, threads, batch, start, queue):
    torch = import_upstream(args.upstream)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    import network.resnet38_aff as resnet38_aff  # upstream's
    import tool.torchutils as torchutils  # upstream's
    net = resnet38_aff.Net()
    net.train()
    groups = net.get_parameter_groups()
    lr, wd = 0.01, 5e-4
    optimizer = torchutils.PolyOptimizer([
        {"params": groups[0], "lr": lr, "weight_decay": wd}, {"params": groups[1], "lr": 2 * lr, "weight_decay": 0},
        {"params": groups[2], "lr": 10 * lr, "weight_decay": wd}, {"params": groups[3], "lr": 20 * lr, "weight_decay": 0},
    ], lr=lr, weight_decay=wd, max_step=100000)
    x = torch.randn(batch, 3, args.crop, args.crop)
    bg_label, fg_label, neg_label = pair_labels(args.crop, batch)

    def step():
        aff = net(x)
        bg_count, fg_count, neg_count = (torch.sum(m) + 1e-5 for m in (bg_label, fg_label, neg_label))
        bg_loss = torch.sum(-bg_label * torch.log(aff + 1e-5)) / bg_count
        fg_loss = torch.sum(-fg_label * torch.log(aff + 1e-5)) / fg_count
        neg_loss = torch.sum(-neg_label * torch.log(1. + 1e-5 - aff)) / neg_count
        loss = bg_loss / 4 + fg_loss / 4 + neg_loss / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    step()
    timed_steps(lambda _: step(), args.steps, start, queue)


def train(args):
    rows = []
    for row in run_layouts(args, train_worker):
        print(f"PyTorch {torch_version()} resnet38_aff.Net train step, batch {args.batch}, crop {args.crop}, {row['ranks']} process(es) × "
              f"{row['threads']} thread(s): {row['images_per_s']:.3f} images/s ({row['step_s']:.1f} s/step), peak {row['peak_mib']:.0f} MiB per process",
              flush=True)
        rows.append(row)
    return rows


def torch_version():
    import torch
    return torch.__version__


# ---------------------------------------------------------------- walk

def make_walk_inputs(width, height, seed):
    """A scene of background and two class ellipses: quantised affinities (34, P), CAMs (2, H, W), classes."""
    from tool import pyutils  # upstream's pair layout
    rng = np.random.default_rng(seed)
    hf, wf = (height + 7) // 8, (width + 7) // 8
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    classes = np.array([4, 11], np.int32)
    ellipses = [(0.33 * width, 0.45 * height, 0.22 * width, 0.3 * height), (0.7 * width, 0.6 * height, 0.18 * width, 0.28 * height)]
    cams = []
    for cx, cy, rx, ry in ellipses:
        # A CAM peaked off the centre and covering only part of the object, as CAMs do.
        d = ((xx - cx - 0.2 * rx) / (0.8 * rx)) ** 2 + ((yy - cy + 0.1 * ry) / (0.8 * ry)) ** 2
        cams.append(np.round(255 * np.exp(-0.7 * d)).astype(np.uint8))
    # Regions at the feature cells' centres (later ellipses on top).
    fy, fx = np.mgrid[0:hf, 0:wf].astype(np.float64) * 8 + 3.5
    region = np.zeros((hf, wf), np.int64)
    for k, (cx, cy, rx, ry) in enumerate(ellipses):
        region[((fx - cx) / rx) ** 2 + ((fy - cy) / ry) ** 2 < 1] = k + 1
    centres = rng.normal(0, 1, (3, 16))
    f = centres[region.reshape(-1)] + rng.normal(0, 0.15, (hf * wf, 16))
    ind_from, ind_to = pyutils.get_indices_of_pairs(5, (hf, wf))
    directions = ind_to.size // ind_from.size
    ff = f[ind_from][None, :, :]
    ft = f[ind_to].reshape(directions, ind_from.size, 16)
    affinity = np.exp(-np.mean(np.abs(ft - ff), axis=2))
    q = np.round(affinity * 65535).astype(np.int32)
    return {"affinity_q": q, "cams_q": np.stack(cams), "classes": classes}


def dequantised(inputs):
    return (inputs["affinity_q"].astype(np.float32) / np.float32(65535),
            inputs["cams_q"].astype(np.float32) / np.float32(255))


class _Sized:
    """Stands for a tensor of which upstream's lines read only .size(i)."""

    def __init__(self, *shape):
        self.shape = shape

    def size(self, i):
        return self.shape[i]


def upstream_walk_code(checkout):
    """The two blocks of upstream's own source that make up the dense walk, compiled from the checkout."""
    def block(path, pick, keep):
        tree = ast.parse(open(os.path.join(checkout, path)).read())
        node = next(n for n in ast.walk(tree) if pick(n))
        return compile(ast.Module(body=[s for s in node.body if keep(s)], type_ignores=[]), path, "exec")

    dense = block("network/resnet38_aff.py", lambda n: isinstance(n, ast.If) and ast.unparse(n.test) == "to_dense",
                  lambda s: not isinstance(s, ast.Return))
    walk = block("infer_aff.py", lambda n: isinstance(n, ast.With) and "no_grad" in ast.unparse(n.items[0]),
                 lambda s: "imsave" not in ast.unparse(s))
    return dense, walk


def dense_walk(code, inputs, width, height, beta, logt, background):
    """Upstream's labels `res` (H, W) for these inputs, by its own lines."""
    import torch
    import torch.nn.functional as F
    from tool import pyutils
    dense, walk = code
    hf, wf = (height + 7) // 8, (width + 7) // 8
    affinity, cams = dequantised(inputs)
    ind_from, ind_to = (torch.from_numpy(i) for i in pyutils.get_indices_of_pairs(5, (hf, wf)))

    class Model:
        def forward(self, img, to_dense):
            ns = {"torch": torch, "sparse": torch.sparse, "aff": torch.from_numpy(affinity)[None], "ind_from": ind_from,
                  "ind_to": ind_to, "ft": _Sized(1, 448, affinity.shape[0], affinity.shape[1]), "x": _Sized(1, 448, hf * wf)}
            exec(dense, ns)
            return ns["aff_mat"]

    # infer_aff.py's CAM volume, with PCSformer's constant background inside the image (spec §8.6).
    cam_full_arr = np.zeros((LABELS, height, width), np.float32)
    for k, c in enumerate(inputs["classes"]):
        cam_full_arr[c + 1] = cams[k]
    cam_full_arr[0] = background
    cam_full_arr = np.pad(cam_full_arr, ((0, 0), (0, hf * 8 - height), (0, wf * 8 - width)), mode="constant")
    ns = {"torch": torch, "F": F, "np": np, "model": Model(), "img": torch.zeros(1, 3, hf * 8, wf * 8),
          "args": argparse.Namespace(beta=int(beta) if float(beta).is_integer() else beta, logt=logt), "cam_full_arr": cam_full_arr, "dheight": hf, "dwidth": wf,
          "orig_shape": (1, 3, height, width)}
    exec(walk, ns)
    return ns["res"]


def write_inputs(path, inputs, argmax, beta, logt, background):
    with h5py.File(path, "w") as f:
        for key in ("affinity_q", "cams_q", "classes"):
            f.create_dataset(key, data=inputs[key], compression="gzip", compression_opts=9, shuffle=True)
        f.create_dataset("argmax", data=argmax.astype(np.uint8), compression="gzip", compression_opts=9)
        f.attrs["beta"], f.attrs["logt"], f.attrs["background"] = float(beta), int(logt), float(background)


def walk(args):
    torch = import_upstream(args.upstream)
    code = upstream_walk_code(args.upstream)
    rows = []
    for width, height in SIZES:
        inputs = make_walk_inputs(width, height, seed=width)
        argmax = None
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            dense_walk(code, make_walk_inputs(128, 96, 1), 128, 96, args.beta, args.logt, args.background)  # warm-up (radius 5 needs 9 × 12 cells)
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                argmax = dense_walk(code, inputs, width, height, args.beta, args.logt, args.background)
            seconds = (time.perf_counter() - t0) / args.repeats
            row = {"what": f"walk {width}x{height}", "threads": threads, "images_per_s": 1 / seconds}
            print(f"PyTorch {torch.__version__} upstream dense walk {width}x{height} (n = {((width + 7) // 8) * ((height + 7) // 8)}, "
                  f"beta {args.beta}, logt {args.logt}), {threads} thread(s): {1 / seconds:.3f} images/s ({seconds:.2f} s)", flush=True)
            rows.append(row)
        if args.save_inputs:
            os.makedirs(args.save_inputs, exist_ok=True)
            write_inputs(os.path.join(args.save_inputs, f"walk-{width}x{height}.h5"), inputs, argmax, args.beta, args.logt, args.background)
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return rows


def fixture(args):
    torch = import_upstream(args.upstream)
    torch.set_num_threads(2)
    width, height = SIZES[0]
    inputs = make_walk_inputs(width, height, seed=width)
    argmax = dense_walk(upstream_walk_code(args.upstream), inputs, width, height, args.beta, args.logt, args.background)
    write_inputs(args.out, inputs, argmax, args.beta, args.logt, args.background)
    print(f"{args.out}: {os.path.getsize(args.out)} bytes; labels {np.unique(argmax).tolist()}")
    return []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["train", "walk", "fixture"])
    parser.add_argument("--upstream", required=True, help="a checkout of jiwoon-ahn/psa")
    parser.add_argument("--layouts", default="1x2,2x1", help="train: PROCESSESxTHREADS, comma-separated")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=448)
    parser.add_argument("--steps", type=int, default=2, help="train: timed steps after one untimed")
    parser.add_argument("--threads", default="1,2", help="walk: thread counts")
    parser.add_argument("--repeats", type=int, default=1, help="walk: timed calls per size and thread count")
    parser.add_argument("--beta", type=float, default=14)
    parser.add_argument("--logt", type=int, default=7)
    parser.add_argument("--background", type=float, default=0.46)
    parser.add_argument("--save-inputs", help="walk: write the inputs and upstream's labels here")
    parser.add_argument("--out", help="fixture: the file to write")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    rows = {"train": train, "walk": walk, "fixture": fixture}[args.what](args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
