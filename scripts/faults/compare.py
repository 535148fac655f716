#!/usr/bin/env python3
"""Checks for scripts/faults/kill-loop.sh, with Debian's h5py.

    compare.py complete DIR          every *.h5 with a final name in DIR opens and has its groups; no .partial files
    compare.py finals DIR            the same, temporaries allowed (right after a kill)
    compare.py same-model A.h5 B.h5  the /model datasets of two checkpoints are bit-identical
    compare.py same-set DIR_A DIR_B NAME   two shard sets (NAME-index.json) hold the same ids with identical items
"""
import json
import os
import sys

import h5py
import numpy as np


def fail(message):
    print(f"kill-loop: {message}", file=sys.stderr)
    sys.exit(1)


def datasets(group, prefix=""):
    out = {}
    for key, item in group.items():
        if isinstance(item, h5py.Dataset):
            out[prefix + key] = item[()]
        else:
            out.update(datasets(item, prefix + key + "/"))
    return out


def complete(folder, temporaries_allowed=False):
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if ".partial-" in name:
            if temporaries_allowed:
                continue
            fail(f"{path}: a temporary file survived the rerun")
        if name.endswith(".h5"):
            try:
                with h5py.File(path, "r") as f:
                    if name.startswith("checkpoint-") and not ("model" in f and "optimizer" in f):
                        fail(f"{path}: a checkpoint without its model or optimiser")
                    if not name.startswith("checkpoint-") and "ids" not in f:
                        fail(f"{path}: a shard without its id index")
            except OSError as error:
                fail(f"{path}: carries a final name but does not open ({error})")


def same(a, b, what):
    if set(a) != set(b):
        fail(f"{what}: different datasets {sorted(set(a) ^ set(b))[:5]}")
    for key in a:
        if not np.array_equal(a[key], b[key]):
            fail(f"{what}: {key} differs")


def items(folder, name):
    with open(os.path.join(folder, f"{name}-index.json")) as f:
        index = json.load(f)
    out = {}
    for shard in index["shards"]:
        with h5py.File(os.path.join(folder, shard["file"]), "r") as f:
            for item_id in shard["ids"]:
                out[item_id] = datasets(f["items"][item_id])
    return out


def main():
    command = sys.argv[1]
    if command == "complete":
        complete(sys.argv[2])
    elif command == "finals":
        complete(sys.argv[2], temporaries_allowed=True)
    elif command == "same-model":
        with h5py.File(sys.argv[2], "r") as a, h5py.File(sys.argv[3], "r") as b:
            same(datasets(a["model"]), datasets(b["model"]), f"{sys.argv[2]} vs {sys.argv[3]}")
    elif command == "same-set":
        a, b = items(sys.argv[2], sys.argv[4]), items(sys.argv[3], sys.argv[4])
        if set(a) != set(b):
            fail(f"{sys.argv[3]}: ids differ from the uninterrupted set")
        for item_id in a:
            same(a[item_id], b[item_id], f"{sys.argv[3]} item {item_id}")
    else:
        fail(f"unknown check {command}")


main()
