#!/usr/bin/env python3
"""Where PyTorch's PC training step spends its time, per aten op, beside `pcs-mpi bench conformer --profile`.

Run locally (never in CI), with the same thread count as the Swift run:
    python3 scripts/bench/profile_conformer_torch.py --threads 2

The step is bench_conformer_torch.py's (upstream's Conformer-S via scripts/reference, 512 + 224 crops, batch 2,
AdamW): one warm-up step, then one step under torch.profiler. Printed: the whole step, then each aten op's self CPU
time (forward and backward together; the autograd engine runs backward ops as their own aten calls), calls and
share, most time first.
"""
import argparse
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(__file__))
from bench_conformer_torch import training_step  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rows", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    _, step = training_step(a.batch)
    step()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    total = time.perf_counter() - start
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    profiled = sum(e.self_cpu_time_total for e in events) / 1e3
    print(f"profile of one PyTorch training step: {total * 1e3:.0f} ms wall under the profiler "
          f"({profiled:.0f} ms of self CPU time in ops)")
    print(f"{'aten op':48s} {'calls':>6s} {'self ms':>9s} {'share':>7s}")
    for e in events[:a.rows]:
        ms = e.self_cpu_time_total / 1e3
        print(f"{e.key[:48]:48s} {e.count:6d} {ms:9.1f} {100 * ms / profiled:6.1f}%")


if __name__ == "__main__":
    main()
