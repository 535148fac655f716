#!/usr/bin/env python3
"""Full-size conformance check: the Swift Conformer-S (`pcs-mpi forward`) against the PyTorch reference.

Local only (never in CI, nothing here is committed but this script). Needs torch (CPU), numpy, h5py and a release
build of pcs-mpi:

    swift build -c release --product pcs-mpi          # or with --scratch-path, then pass --binary
    /tmp/torchvenv/bin/python scripts/reference/compare_full_size.py [--binary .build/release/pcs-mpi]
        [--workdir DIR] [--keep] [--qkv-gain match|<float>] [--no-f64] [--no-large] [--threads N]
        [--grad-tol 1e-3] [--no-kinks] [--match-kinks 1e-5]

What it does
------------
1. Builds the FULL Conformer-S reference of scripts/reference/conformer.py with default arguments (21 classes,
   embed 384, 12 blocks, 6 heads, stage widths 256/512/1024, 64-wide stem) and prepares it like the tiny fixture of
   scripts/fixtures/make_conformer_fixture.py: BN running statistics calibrated (cumulative average over 4 train-mode
   forwards of N(0,1) batches of the test size, drop path off), then perturbed (running_mean += 0.1·std·N,
   running_var *= U(0.8, 1.2)), BN/LN affine = 1 + 0.1·N / 0.1·N, Linear bias = 0.02·N, every attn.qkv.weight
   multiplied by a gain; modes: train(), every BatchNorm2d eval, drop path off.
   The gain: the tiny fixture uses 12 with embed_dim 32. The pre-softmax logits' spread grows like
   embed_dim·(0.02·gain)², so 12 at embed_dim 384 gives logits of std ≈ 22 (one-hot attention). `match` (default)
   uses 12·sqrt(32/384) ≈ 3.46, the tiny fixture's sharpness (std ≈ 1.8); pass `--qkv-gain 12` for the stress case.
2. torch.save(state_dict) to a temporary folder (~146 MB; removed at the end unless --keep).
3. Inputs: (2, 3, 96, 128) N(0,1) with a 20-d multi-hot label (train: loss and every gradient) and, forward only,
   (1, 3, 368, 496) (CAM 23×31, 713 patch tokens).
4. Runs `pcs-mpi forward --model pc --weights W --input I --out O [--train] --method M` for the four CAM methods
   (the --train pass uses transcam), and compares:
     outputs   (conv_logits, trans_logits, loss, cam per method): max|swift − ref| / max(1, max|ref|) ≤ 1e-4
     gradients (every parameter):                              max|swift − ref| / max(1, max|ref|) ≤ 1e-3
   against the float32 reference (the pass/fail criterion). Unless --no-f64, the reference is also run in float64
   and both float32 results (Swift and PyTorch) are measured against it: if Swift's error against float64 is of the
   order of PyTorch-float32's own error, a disagreement is float32 rounding / accumulation order, not a bug.
   For gradients the table also gives the error relative to the tensor's own scale (max|ref|), which is what
   exposes a wrong small gradient that the max(1, ·) criterion would hide.
   The logits of the forward-only runs are also checked against the --train run's (1e-4).
5. When a gradient fails (and float64 is on), a ReLU-kink diagnosis: the reference is rerun recording every ReLU's
   input, counting the units whose sign differs between float32 and float64, and measuring PyTorch-float32 against a
   float64 pass that replays float32's ReLU masks (see `kink_diagnosis`).
6. With --match-kinks 1e-5: searches which of the ~75 units with |x| < 1e-5·std (float32 reference) Swift decided
   the other way, flips them in the float32 reference, and judges the gradients against that instead.
Exit code 1 if any tolerance fails (or an output/gradient is missing), 0 otherwise.

What to expect (torch 2.13 CPU, Swift release build, default options; Nov 2026): outputs agree to ~1e-5
(tolerance 1e-4); gradients do NOT meet 1e-3 everywhere (worst ~7e-3, median ~1e-3), and neither does PyTorch's
own float32 against float64 (worst ~2e-2) nor PyTorch float32 with 1 thread against 2 threads (~2e-2). Among
~8.4 M ReLU units a handful sit within ~1e-6 of zero, float32 rounding decides them differently from run to run,
and each decision changes all upstream gradients by up to ~1e-2 of their scale (the maps at stage 3 are only 6x8,
so one unit is a sizeable share of a weight gradient). Replaying float32's masks in float64 brings PyTorch's own
error to ~1e-5. --match-kinks 1e-5 finds 6 such units that Swift decided the other way (|x| ≤ 9e-6·std); with
them flipped in the float32 reference every one of the 463 gradients agrees to ≤ 1e-5 (median ~1.6e-6). So a
gradient failure at this size is a float32 effect unless it survives that explanation (e.g. the downstream blocks,
which no flipped unit feeds, disagree too, the median error grows, or --match-kinks leaves errors > 1e-4).
--qkv-gain 12 (one-hot attention) is ill-conditioned on top: outputs still within 1e-4 (worst ~8e-5), PyTorch's own
float32 gradients miss float64 by ~3e-4 even with float32's masks replayed.
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "reference"))
import conformer as C  # noqa: E402
from perturb import calibrate_and_perturb, set_modes  # noqa: E402

SEED = 0
OUTPUT_TOL, GRAD_TOL = 1e-4, 1e-3
TRAIN_SHAPE, LARGE_SHAPE = (2, 3, 96, 128), (1, 3, 368, 496)
CALIB_BATCHES = 4


def multi_hot(b):
    label = (torch.rand(b, 20) < 0.25).float()
    for i in range(b):
        if label[i].sum() == 0:
            label[i, int(torch.randint(0, 20, (1,)))] = 1.0
    return label


def reference(model, x, label, train, dtype):
    """Outputs of the reference in `dtype` (float64 numpy arrays): logits, the four CAMs, and with `train` the loss
    (transcam pass) and every parameter gradient."""
    model = model.to(dtype)
    x = x.to(dtype)
    res, grads = {}, {}
    with torch.no_grad():
        for method in C.CAM_METHODS:
            conv, trans, cam = model(x, method=method)
            res["cam_" + method] = cam
            if method == "transcam":
                res["conv_logits"], res["trans_logits"] = conv, trans
    if train:
        model.zero_grad(set_to_none=True)
        conv, trans, _ = model(x, method="transcam")
        loss = F.multilabel_soft_margin_loss((conv + trans)[:, 1:], label.to(dtype), reduction="mean")
        loss.backward()
        res["loss"] = loss.reshape(1)
        grads = {k: p.grad.detach().double().numpy().copy() for k, p in model.named_parameters()
                 if p.grad is not None}
        model.zero_grad(set_to_none=True)
    res = {k: v.detach().double().numpy().copy() for k, v in res.items()}
    model.float()
    return res, grads


def run_swift(binary, weights, inp, out, method, train, threads):
    cmd = [str(binary), "forward", "--model", "pc", "--weights", str(weights), "--input", str(inp), "--out", str(out),
           "--method", method, "--log-level", "warning"]
    if train:
        cmd.append("--train")
    if threads:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.time() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit("pcs-mpi forward failed (rc %d): %s" % (proc.returncode, " ".join(cmd)))
    with h5py.File(out, "r") as f:
        res = {k: f[k][()].astype(np.float64) for k in ("conv_logits", "trans_logits", "cam", "loss") if k in f}
        grads = {k: f["grad"][k][()].astype(np.float64) for k in f["grad"]} if "grad" in f else {}
    return res, grads, dt


class ReLURecorder:
    """Replaces F.relu (and F.max_pool2d) inside the reference while active. mode 'record' keeps every ReLU's input
    and the pool's argmax; mode 'replay' applies the recorded masks/argmax instead of deciding again, so a float64
    pass can take exactly the float32 pass's discrete decisions."""

    def __init__(self):
        self.mode, self.masks, self.inputs, self.pool, self.i = None, [], [], None, 0
        self.relu, self.max_pool2d = F.relu, F.max_pool2d

    def __enter__(self):
        outer = self

        def relu(t, inplace=False):
            if outer.mode == "record":
                outer.masks.append((t > 0).contiguous())
                outer.inputs.append(t.detach().double().contiguous())
            elif outer.mode == "replay":
                m = outer.masks[outer.i]
                outer.i += 1
                return t * m.to(t.dtype)
            return outer.relu(t)

        def max_pool2d(t, k, s, p):
            if outer.mode == "record":
                y, idx = outer.max_pool2d(t, k, s, p, return_indices=True)
                outer.pool = idx
                return y
            if outer.mode == "replay":
                return t.flatten(2).gather(2, outer.pool.flatten(2)).reshape(outer.pool.shape)
            return outer.max_pool2d(t, k, s, p)

        C.F.relu, C.F.max_pool2d = relu, max_pool2d  # C.F is torch.nn.functional: restored in __exit__
        return self

    def __exit__(self, *exc):
        C.F.relu, C.F.max_pool2d = self.relu, self.max_pool2d

    def grads(self, model, x, label, dtype, mode):
        self.mode, self.i = mode, 0
        if mode == "record":
            self.masks, self.inputs, self.pool = [], [], None
        model = model.to(dtype)
        model.zero_grad(set_to_none=True)
        conv, trans, _ = model(x.to(dtype), method="transcam")
        F.multilabel_soft_margin_loss((conv + trans)[:, 1:], label.to(dtype), reduction="mean").backward()
        g = {k: p.grad.detach().double().numpy().copy() for k, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
        model.float()
        self.mode = None
        return g


def kink_diagnosis(model, x, label, g32):
    """Is the gradient disagreement float32 rounding at ReLU kinks? Counts the ReLU units whose sign differs between
    the float32 and float64 reference passes, and measures PyTorch-float32 against float64 (a) as is and (b) with the
    float64 pass replaying the float32 pass's ReLU masks and max-pool argmax. If (b) is ~1e-6 while (a) is as large
    as Swift's error, float32 itself decides a few near-zero ReLUs differently, and each such unit changes every
    upstream gradient by O(1e-3..1e-2): Swift's float32 (other kernels, other summation order) picks its own few."""
    print("\nReLU-kink diagnosis (train input):")
    with ReLURecorder() as rec:
        rec.grads(model, x, label, torch.float32, "record")
        masks32, inputs32, pool32 = rec.masks, rec.inputs, rec.pool
        g64 = rec.grads(model, x, label, torch.float64, "record")
        masks64, inputs64, pool64 = rec.masks, rec.inputs, rec.pool
        rec.masks, rec.pool = masks32, pool32
        g64r = rec.grads(model, x, label, torch.float64, "replay")
    units = sum(m.numel() for m in masks32)
    flips = [(i, float(inputs64[i][a != b].abs().max()), float(inputs64[i].std()))
             for i, (a, b) in enumerate(zip(masks32, masks64)) if (a != b).any()]
    print("  %d ReLU calls, %s units; sign differs between float32 and float64 at %d units%s; max-pool argmax "
          "differs at %d" % (len(masks32), format(units, ","), len(flips),
                             (" (|x| in float64: %s)" % ", ".join("call %d: %.1e (std %.2g)" % f for f in flips))
                             if flips else "", int((pool32 != pool64).sum())))
    worst = lambda a, b: max(err(a[k], b[k])[0] for k in b)  # noqa: E731
    print("  PyTorch float32 vs float64:                             worst gradient err %.3e" % worst(g32, g64))
    print("  PyTorch float32 vs float64 replaying float32's masks:   worst gradient err %.3e" % worst(g32, g64r))


def match_kinks(model, x, label, swift_grads, rel):
    """Greedy search for the ReLU units that Swift's float32 pass decided differently from PyTorch's: candidates are
    the units with |x| < rel·std(layer input) in the float32 reference, closest first; a flip is kept when it lowers
    Σ_params err(swift, reference) by more than 10 % (repeated passes over the candidates). Returns the float32 reference gradients with the kept flips."""
    score = lambda g: sum(err(swift_grads[k], g[k])[0] for k in g)  # noqa: E731
    with ReLURecorder() as rec:
        rec.grads(model, x, label, torch.float32, "record")
        masks, inputs, pool = rec.masks, rec.inputs, rec.pool
        candidates = []
        for i, t in enumerate(inputs):
            r = (t.abs() / t.std()).flatten()
            for j in torch.nonzero(r < rel).flatten().tolist():
                candidates.append((float(r[j]), i, j))
        candidates.sort()

        def replay(flips):
            ms = [m.clone() for m in masks]
            for i, j in flips:
                ms[i].view(-1)[j] = ~ms[i].view(-1)[j]
            rec.masks, rec.pool = ms, pool
            return rec.grads(model, x, label, torch.float32, "replay")

        kept = []
        best = replay(kept)
        current = score(best)
        print("\nKink matching: %d candidate units (|x| < %.0e std); start: summed err %.3e" % (len(candidates), rel, current))
        # Passes until nothing is added: a shallow unit's effect is hidden while a deeper unmatched one dominates.
        for _ in range(6):
            added = False
            for closeness, i, j in candidates:
                if (i, j) in kept:
                    continue
                g = replay(kept + [(i, j)])
                s = score(g)
                if s < 0.9 * current:
                    kept.append((i, j))
                    best, current, added = g, s, True
                    print("  flip ReLU call %d unit %d (|x| = %.1e std): summed err -> %.3e" % (i, j, closeness, s))
            if not added:
                break
    return best


def err(a, ref):
    """(max|a − ref| / max(1, max|ref|), max|a − ref| / max|ref|, max|ref|)."""
    if a.shape != ref.shape:
        return math.inf, math.inf, float(np.abs(ref).max())
    d = float(np.abs(a - ref).max())
    m = float(np.abs(ref).max())
    return d / max(1.0, m), (d / m if m > 0 else (0.0 if d == 0 else math.inf)), m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=str(ROOT / ".build" / "release" / "pcs-mpi"))
    ap.add_argument("--workdir", help="folder for the weights and HDF5 files (default: a new temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (~150 MB)")
    ap.add_argument("--qkv-gain", default="match", help="'match' (12·sqrt(32/384)) or a number (12 = the tiny fixture's)")
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 reference")
    ap.add_argument("--no-large", action="store_true", help="skip the (1, 3, 368, 496) forward")
    ap.add_argument("--threads", type=int, default=0, help="--threads for pcs-mpi (default: its own)")
    ap.add_argument("--grad-tol", type=float, default=GRAD_TOL, help="gradient tolerance (default %(default)s)")
    ap.add_argument("--no-kinks", action="store_true",
                    help="skip the ReLU-kink diagnosis that runs (with the float64 reference) when a gradient fails")
    ap.add_argument("--match-kinks", type=float, default=0, metavar="REL",
                    help="also search which near-zero ReLU units (|x| < REL * std of the layer, float32 reference; "
                         "1e-5 is a good value, ~75 units, ~3 min) Swift decided the other way, and judge the "
                         "gradients against the float32 reference with those units flipped")
    args = ap.parse_args()

    binary = Path(args.binary)
    if not binary.exists():
        raise SystemExit("no binary at %s (build it: swift build -c release --product pcs-mpi)" % binary)
    gain = 12.0 * math.sqrt(32.0 / 384.0) if args.qkv_gain == "match" else float(args.qkv_gain)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="conformer_full_"))
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    try:
        t0 = time.time()
        torch.manual_seed(SEED)
        model = C.Conformer()  # Conformer-S, 21 classes, drop_path_rate 0.1 (disabled below)
        calibrate_and_perturb(model, TRAIN_SHAPE, gain, batches=CALIB_BATCHES)
        set_modes(model)
        x = torch.randn(*TRAIN_SHAPE)
        label = multi_hot(TRAIN_SHAPE[0])
        x_large = torch.randn(*LARGE_SHAPE)
        label_large = multi_hot(LARGE_SHAPE[0])
        weights = work / "conformer_s_full.pth"
        torch.save(model.state_dict(), weights)
        n_params = sum(p.numel() for p in model.parameters())
        print("Conformer-S reference: %d state-dict entries, %s parameters, qkv gain %.3f; weights %s (%.1f MB); "
              "prepared in %.1f s" % (len(model.state_dict()), format(n_params, ","), gain, weights,
                                      weights.stat().st_size / 1e6, time.time() - t0))
        cases = [("train", x, label, True)] + ([] if args.no_large else [("large", x_large, label_large, False)])
        for name, xi, li, _ in cases:
            with h5py.File(work / ("input_%s.h5" % name), "w") as f:
                f.create_dataset("input", data=xi.numpy().astype(np.float32))
                f.create_dataset("label", data=li.numpy().astype(np.float32))

        rows, grad_rows, failures, logit_spread = [], [], [], {}
        for name, xi, li, train in cases:
            t1 = time.time()
            ref32, g32 = reference(model, xi, li, train, torch.float32)
            t32 = time.time() - t1
            ref64, g64 = (None, None)
            if not args.no_f64:
                t1 = time.time()
                ref64, g64 = reference(model, xi, li, train, torch.float64)
                t64 = time.time() - t1
            print("[%s %s] reference float32 %.1f s%s" % (name, tuple(xi.shape), t32,
                                                         "" if args.no_f64 else ", float64 %.1f s" % t64))
            swift, swift_grads, logits_seen = {}, {}, []
            for method in C.CAM_METHODS:
                tr = train and method == "transcam"
                out = work / ("out_%s_%s.h5" % (name, method))
                res, grads, dt = run_swift(binary, weights, work / ("input_%s.h5" % name), out, method, tr, args.threads)
                print("[%s] pcs-mpi forward --method %s%s: %.1f s" % (name, method, " --train" if tr else "", dt))
                if "cam" not in res:
                    failures.append("%s: no cam for %s" % (name, method))
                else:
                    swift["cam_" + method] = res["cam"]
                logits_seen.append((method, res.get("conv_logits"), res.get("trans_logits")))
                if method == "transcam":
                    swift["conv_logits"], swift["trans_logits"] = res["conv_logits"], res["trans_logits"]
                    if tr:
                        if "loss" not in res:
                            failures.append("%s: no loss" % name)
                        else:
                            swift["loss"] = res["loss"]
                        swift_grads = grads
            for method, cl, tl in logits_seen:  # the method changes only the CAM; --train may change the kernels
                if method == "transcam":
                    continue
                if cl is None or tl is None:
                    failures.append("%s: no logits from the %s run" % (name, method))
                    continue
                d = max(err(cl, swift["conv_logits"])[0], err(tl, swift["trans_logits"])[0])
                logit_spread[(name, method)] = d
                if not d <= OUTPUT_TOL:
                    failures.append("%s: logits of the %s run differ from the transcam run's by %.3e" % (name, method, d))

            for key in ref32:
                if key not in swift:
                    failures.append("%s/%s missing from Swift output" % (name, key))
                    continue
                e, rel, m = err(swift[key], ref32[key])
                row = dict(case=name, output=key, shape=tuple(ref32[key].shape), maxref=m, err=e, rel=rel)
                if ref64 is not None:
                    row["swift64"] = err(swift[key], ref64[key])[0]
                    row["torch64"] = err(ref32[key], ref64[key])[0]
                rows.append(row)
                if not e <= OUTPUT_TOL:
                    failures.append("%s/%s: %.3e > %.0e" % (name, key, e, OUTPUT_TOL))
            if train:
                g32_train, swift_train_grads = g32, swift_grads
                missing = sorted(set(g32) - set(swift_grads))
                extra = sorted(set(swift_grads) - set(g32))
                if missing:
                    failures.append("%d gradients missing from Swift output, e.g. %s" % (len(missing), missing[:3]))
                if extra:
                    failures.append("%d Swift gradients with no reference, e.g. %s" % (len(extra), extra[:3]))
                for key in g32:
                    if key not in swift_grads:
                        continue
                    e, rel, m = err(swift_grads[key], g32[key])
                    row = dict(key=key, shape=tuple(g32[key].shape), maxref=m, err=e, rel=rel)
                    if g64 is not None:
                        row["swift64"], row["swift64rel"] = err(swift_grads[key], g64[key])[:2]
                        row["torch64"], row["torch64rel"] = err(g32[key], g64[key])[:2]
                    grad_rows.append(row)
                    if not e <= args.grad_tol:
                        failures.append("grad %s: %.3e > %.0e" % (key, e, args.grad_tol))

        f64 = not args.no_f64
        print("\nOutputs: err = max|swift - ref32| / max(1, max|ref32|) (tolerance %.0e)%s" % (
            OUTPUT_TOL, "; swift/64 and torch32/64 = the same against the float64 reference" if f64 else ""))
        hdr = "%-6s %-14s %-18s %11s %11s %11s" % ("case", "output", "shape", "max|ref|", "err", "err/max|r|")
        print(hdr + ("  %11s %11s" % ("swift/64", "torch32/64") if f64 else ""))
        for r in rows:
            line = "%-6s %-14s %-18s %11.4g %11.3e %11.3e" % (r["case"], r["output"], "x".join(map(str, r["shape"])),
                                                              r["maxref"], r["err"], r["rel"])
            if f64:
                line += "  %11.3e %11.3e" % (r["swift64"], r["torch64"])
            print(line + ("" if r["err"] <= OUTPUT_TOL else "  FAIL"))

        if logit_spread:
            print("Swift logits of the forward-only runs vs the transcam run (same input; %s): %s" % (
                "the transcam run of 'train' is the --train pass, whose oneDNN primitives are the training kind",
                ", ".join("%s/%s %.1e" % (k[0], k[1], v) for k, v in sorted(logit_spread.items()))))

        if grad_rows:
            n = len(grad_rows)
            worst = max(r["err"] for r in grad_rows)
            print("\nGradients: %d parameters; worst err = max|swift - ref32| / max(1, max|ref32|) = %.3e (tolerance "
                  "%.0e); worst err relative to the tensor's own max|ref| = %.3e; median err %.3e; %d over tolerance"
                  % (n, worst, args.grad_tol, max(r["rel"] for r in grad_rows),
                     float(np.median([r["err"] for r in grad_rows])),
                     sum(1 for r in grad_rows if not r["err"] <= args.grad_tol)))
            if f64:
                print("  against float64: swift worst %.3e (own-scale %.3e), torch float32 worst %.3e (own-scale %.3e)"
                      % (max(r["swift64"] for r in grad_rows), max(r["swift64rel"] for r in grad_rows),
                         max(r["torch64"] for r in grad_rows), max(r["torch64rel"] for r in grad_rows)))
            for title, sort_key in (("by err (the criterion)", "err"), ("by error relative to own scale", "rel")):
                print("\n10 worst gradients %s:" % title)
                h = "%-52s %-16s %10s %10s %10s" % ("key", "shape", "max|ref|", "err", "own-scale")
                print(h + ("  %10s %10s %10s %10s" % ("swift/64", "own", "torch32/64", "own") if f64 else ""))
                for r in sorted(grad_rows, key=lambda r: -r[sort_key])[:10]:
                    line = "%-52s %-16s %10.3e %10.3e %10.3e" % (r["key"], "x".join(map(str, r["shape"])), r["maxref"],
                                                                r["err"], r["rel"])
                    if f64:
                        line += "  %10.3e %10.3e %10.3e %10.3e" % (r["swift64"], r["swift64rel"], r["torch64"],
                                                                    r["torch64rel"])
                    print(line)

        grads_failed = any(not r["err"] <= args.grad_tol for r in grad_rows)
        if grad_rows and not args.no_f64 and not args.no_kinks and grads_failed:
            kink_diagnosis(model, x, label, g32_train)
        if grad_rows and args.match_kinks > 0:
            matched = match_kinks(model, x, label, swift_train_grads, args.match_kinks)
            still = sorted(((err(swift_train_grads[k], matched[k])[0], k) for k in matched), reverse=True)
            failures = [f for f in failures if not f.startswith("grad ")]
            failures += ["grad %s: %.3e > %.0e after matching kinks" % (k, e, args.grad_tol)
                         for e, k in still if not e <= args.grad_tol]
            print("  judged against the kink-matched reference: worst %.3e (%s), median %.3e; %d over %.0e"
                  % (still[0][0], still[0][1], float(np.median([e for e, _ in still])),
                     sum(1 for e, _ in still if not e <= args.grad_tol), args.grad_tol))

        print()
        if failures:
            print("FAILED (%d):" % len(failures))
            for f in failures[:40]:
                print("  " + f)
            return 1
        print("OK: every output within %.0e and every gradient within %.0e" % (OUTPUT_TOL, GRAD_TOL))
        return 0
    finally:
        if args.keep:
            print("kept %s" % work)
        elif not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
