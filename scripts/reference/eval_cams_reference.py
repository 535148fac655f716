"""Independent reference for `pcs-mpi eval --type cam`, written from spec §5.1-5.3 (upstream's `npy` mode) with
numpy, h5py and Pillow only.

    python3 scripts/reference/eval_cams_reference.py CAMDIR MASKDIR IDS CLASSES T1,T2,...

CAMDIR is infer-cam's output (cams-index.json and its parts), MASKDIR holds <id>.png ground truth (palette
indices, 255 = ignore), IDS a file of ids. Per threshold t, per image: a (CLASSES, H, W) float32 tensor of zeros,
channel 0 = t, channel c + 1 = the CAM of class c; prediction = argmax (ties to the lower index). Prints JSON: for
each threshold upstream's IoU list and mIoU (mean over all classes, 1e-10 guard) and deeplab-pytorch's mIoU
(nanmean over classes with a non-empty row or column). The test suite runs it (Debian's python3).
"""
import json
import os
import sys

import h5py
import numpy as np
from PIL import Image

cam_dir, mask_dir, ids_file, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
thresholds = [float(t) for t in sys.argv[5].split(",")]
index = json.load(open(os.path.join(cam_dir, "cams-index.json")))
where = {i: s["file"] for s in index["shards"] for i in s["ids"]}
ids = [line.strip() for line in open(ids_file) if line.strip()]

T = np.zeros((len(thresholds), n)); P = np.zeros_like(T); TP = np.zeros_like(T)
hist = np.zeros((len(thresholds), n, n))
for name in ids:
    with h5py.File(os.path.join(cam_dir, where[name]), "r") as f:
        cams = f["items/%s/cams" % name][()]
        classes = f["items/%s/classes" % name][()]
    gt = np.array(Image.open(os.path.join(mask_dir, name + ".png"))).astype(np.int64)
    cal = gt < 255
    for k, t in enumerate(thresholds):
        tensor = np.zeros((n,) + cams.shape[1:], np.float32)
        for c, cam in zip(classes, cams):
            tensor[c + 1] = cam
        tensor[0] = t
        predict = np.argmax(tensor, axis=0).astype(np.int64)
        for i in range(n):
            P[k, i] += np.sum((predict == i) * cal)
            T[k, i] += np.sum((gt == i) * cal)
            TP[k, i] += np.sum((gt == i) * (predict == gt) * cal)
        valid = gt < n
        hist[k] += np.bincount(n * gt[valid] + predict[valid], minlength=n * n).reshape(n, n)

out = []
for k, t in enumerate(thresholds):
    iou = TP[k] / (T[k] + P[k] - TP[k] + 1e-10)
    h = hist[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        iu = np.diag(h) / (h.sum(axis=1) + h.sum(axis=0) - np.diag(h))
    out.append({"threshold": t, "iou": iou.tolist(), "miou": float(iou.mean()), "deeplab_miou": float(np.nanmean(iu))})
print(json.dumps(out))
