"""What `pcs-mpi bench infer` measures, in PyTorch on the same cores: upstream's 8-pass CAM inference
(PC_1/infer_voc.py + VOC12ClsDatasetMSF_origscale, spec §4) with the repo's reference Conformer-S (random weights,
eval mode) on the same 500x375 images, the CAMs saved as upstream's .npy dicts.

Run locally (never in CI), one after the other on the same machine:
    .build/release/pcs-mpi bench infer --dir /tmp/bench-infer --threads 2
    /tmp/torchvenv/bin/python scripts/bench/bench_infer_torch.py --images /tmp/bench-infer/synth/JPEGImages --threads 2
Prints images/s (end to end, the first image included, as the Swift side) and peak resident memory.
"""
import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import conformer  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def pyramid(img, scales=(0.25, 1, 1.5, 2)):
    w, h = img.size
    base = img.resize((round(w / h * 500), 500)) if w < h else img.resize((500, round(h / w * 500)))
    out = []
    for s in scales:
        size = (round(base.size[0] * s) // 16 * 16, round(base.size[1] * s) // 16 * 16)
        a = np.asarray(base.resize(size, resample=Image.BICUBIC))
        x = np.empty_like(a, np.float32)
        for c in range(3):
            x[..., c] = (a[..., c] / 255. - MEAN[c]) / STD[c]
        x = x.transpose(2, 0, 1)
        out += [x, np.flip(x, -1).copy()]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes-per-image", type=int, default=2)
    p.add_argument("--limit", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = conformer.Conformer(sub_classes=0).eval()
    label = torch.zeros(20)
    label[:a.classes_per_image] = 1
    names = sorted(f for f in os.listdir(a.images) if f.endswith(".jpg"))[:a.limit]
    out = tempfile.mkdtemp()
    start = time.perf_counter()
    for name in names:
        img = Image.open(os.path.join(a.images, name)).convert("RGB")
        h0, w0 = img.size[1], img.size[0]
        cams = []
        with torch.no_grad():
            for i, x in enumerate(pyramid(img)):
                _, _, cam = model(torch.from_numpy(x)[None], method="transcam")
                cam = F.interpolate(cam[:, 1:, :, :], (h0, w0), mode="bilinear", align_corners=False)[0]
                cam = cam.numpy() * label.view(20, 1, 1).numpy()
                if i % 2 == 1:
                    cam = np.flip(cam, axis=-1)
                cams.append(cam)
        s = np.sum(cams, axis=0)
        s[s < 0] = 0
        hi, lo = np.max(s, (1, 2), keepdims=True), np.min(s, (1, 2), keepdims=True)
        s[s < lo + 1e-5] = 0
        n = (s - lo - 1e-5) / (hi - lo + 1e-5)
        np.save(os.path.join(out, name[:-4] + ".npy"), {c: n[c] for c in range(20) if label[c] > 1e-5})
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("pytorch %s, %d threads: %d images in %.1f s, %.3f images/s, %.2f s/image, peak %.0f MiB"
          % (torch.__version__, a.threads, len(names), seconds, len(names) / seconds, seconds / len(names), peak))


if __name__ == "__main__":
    main()
