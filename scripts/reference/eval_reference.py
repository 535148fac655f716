"""Independent reference for Sources/Segmentation/ConfusionMatrix.swift, written from spec §5 with numpy only.

    python3 scripts/reference/eval_reference.py DIR CLASSES
reads DIR/gt.u8 and DIR/pred.u8 (uint8 label maps, concatenated) and prints JSON with both conventions: upstream's
(IoU = TP/(T+P-TP+1e-10) over all classes, predictions outside the classes count against recall only) and
deeplab-pytorch's `scores` (bincount over pixels with 0 <= gt < n and an in-range prediction; nanmean).
The test suite runs it (Debian's python3 with numpy).
"""
import json
import sys

import numpy as np

d, n = sys.argv[1], int(sys.argv[2])
gt = np.fromfile(d + "/gt.u8", dtype=np.uint8).astype(np.int64)
pred = np.fromfile(d + "/pred.u8", dtype=np.uint8).astype(np.int64)

valid = gt < n
T = np.array([np.sum(valid & (gt == i)) for i in range(n)], dtype=np.float64)
P = np.array([np.sum(valid & (pred == i)) for i in range(n)], dtype=np.float64)
TP = np.array([np.sum(valid & (gt == i) & (pred == i)) for i in range(n)], dtype=np.float64)
iou = TP / (T + P - TP + 1e-10)

mask = valid & (pred < n)
hist = np.bincount(n * gt[mask] + pred[mask], minlength=n * n).reshape(n, n).astype(np.float64)
with np.errstate(divide="ignore", invalid="ignore"):
    iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
    acc_cls = np.nanmean(np.diag(hist) / hist.sum(axis=1))
freq = hist.sum(axis=1) / hist.sum()
print(json.dumps({
    "upstream_iou": iou.tolist(), "upstream_miou": float(iou.mean()),
    "precision": (TP / (P + 1e-10)).tolist(), "recall": (TP / (T + 1e-10)).tolist(),
    "deeplab_iou": [None if np.isnan(v) else float(v) for v in iu], "deeplab_miou": float(np.nanmean(iu)),
    "pixel_accuracy": float(np.diag(hist).sum() / hist.sum()), "mean_accuracy": float(acc_cls),
    "fw_iou": float((freq[freq > 0] * np.nan_to_num(iu[freq > 0])).sum()),
}))
