"""The layers `pcs-mpi bench kernels` times, in PyTorch on the same cores, for the ratio column.

Run locally (never in CI), with the same thread count as the Swift run:
    /tmp/torchvenv/bin/python scripts/bench/bench_kernels_torch.py --threads 2 --out /tmp/torch_kernels.json
    .build/release/pcs-mpi bench kernels --threads 2 --torch /tmp/torch_kernels.json
Layer names must match Sources/Benchmarks/KernelBenchmark.swift.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def cases(n):
    def conv(name, c, o, k, stride, hw):
        conv = torch.nn.Conv2d(c, o, k, stride=stride, padding=k // 2, bias=False)
        x = (torch.rand(n, c, hw, hw) - 0.5).requires_grad_(c >= 16)
        out = (hw + 2 * (k // 2) - k) // stride + 1
        return name, 2.0 * n * o * out * out * c * k * k, 0, (lambda: conv(x)), [conv.weight]

    def fc(name, k, o, tokens):
        lin = torch.nn.Linear(k, o)
        x = (torch.rand(n, tokens, k) - 0.5).requires_grad_()
        return name, 2.0 * n * tokens * k * o, 0, (lambda: lin(x)), list(lin.parameters())

    tokens = 1025
    qkv = (torch.rand(n, tokens, 3 * 384) - 0.5).requires_grad_()

    def attention():
        q, k, v = qkv.reshape(n, tokens, 3, 6, 64).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1) * 0.125).softmax(dim=-1)
        return (a @ v).transpose(1, 2).reshape(n, tokens, 384)

    ln = torch.nn.LayerNorm(384, eps=1e-6)
    x_ln = (torch.rand(n, tokens, 384) - 0.5).requires_grad_()
    bn = torch.nn.BatchNorm2d(64, eps=1e-6)
    x_bn = (torch.rand(n, 64, 128, 128) - 0.5).requires_grad_()
    x_gelu = (torch.rand(n, tokens, 1536) - 0.5).requires_grad_()
    x_relu = (torch.rand(n, 64, 128, 128) - 0.5).requires_grad_()
    return [
        conv("conv 7x7 s2 3→64 @512", 3, 64, 7, 2, 512),
        conv("conv 1x1 64→256 @128", 64, 256, 1, 1, 128),
        conv("conv 1x1 256→64 @128", 256, 64, 1, 1, 128),
        conv("conv 3x3 64→64 @128", 64, 64, 3, 1, 128),
        conv("conv 3x3 256→256 @32", 256, 256, 3, 1, 32),
        fc("linear 384→1152 (qkv) ×2050", 384, 1152, tokens),
        fc("linear 384→1536 (fc1) ×2050", 384, 1536, tokens),
        fc("linear 1536→384 (fc2) ×2050", 1536, 384, tokens),
        ("attention 6 heads × 1025 tokens", 4.0 * n * 6 * tokens * tokens * 64, 0, attention, []),
        ("LayerNorm 2050×384", 0, 2 * n * tokens * 384 * 4, (lambda: ln(x_ln)), list(ln.parameters())),
        ("BatchNorm 64ch @128 (blocked)", 0, 2 * n * 64 * 128 * 128 * 4, (lambda: bn(x_bn)), list(bn.parameters())),
        ("GELU 2050×1536", 0, 2 * n * tokens * 1536 * 4, (lambda: F.gelu(x_gelu)), []),
        ("ReLU 64ch @128 (blocked)", 0, 2 * n * 64 * 128 * 128 * 4, (lambda: F.relu(x_relu)), []),
    ]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    results = []
    for name, flops, nbytes, forward, params in cases(a.batch):
        best_f = best_b = float("inf")
        for i in range(a.repeats + 1):
            for q in params:
                q.grad = None
            t0 = time.perf_counter()
            y = forward()
            forward_end = time.perf_counter()
            seed = torch.zeros_like(y)  # the upstream gradient is an input, made outside the timing (as in Swift)
            t1 = time.perf_counter()
            y.backward(seed)
            t2 = time.perf_counter()
            if i:
                best_f, best_b = min(best_f, forward_end - t0), min(best_b, t2 - t1)
        # What torch.utils.flop_counter counts for one forward and one backward (convolutions and matrix products,
        # 2 per multiply-add): `bench kernels --torch` compares its own counts with these.
        with FlopCounterMode(display=False) as counter:
            y = forward()
        counted_forward = float(counter.get_total_flops())
        seed = torch.zeros_like(y)
        with FlopCounterMode(display=False) as counter:
            y.backward(seed)
        counted_backward = float(counter.get_total_flops())
        work = flops if flops else nbytes
        results.append({"layer": name, "forwardMs": best_f * 1e3, "backwardMs": best_b * 1e3,
                        "forwardRate": work / best_f / 1e9,
                        "backwardRate": (2 * work if flops else 1.5 * work) / best_b / 1e9,
                        "unit": "GFLOP/s" if flops else "GB/s", "reorders": 0, "primitiveShare": 0,
                        "forwardFlops": counted_forward if flops else None,
                        "backwardFlops": counted_backward if flops else None})
        print(f"{name:33s} fwd {best_f*1e3:8.2f} ms  bwd {best_b*1e3:8.2f} ms  {results[-1]['forwardRate']:7.1f} {results[-1]['unit']}")
    json.dump(results, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
