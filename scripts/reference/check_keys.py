#!/usr/bin/env python3
"""Checks the PyTorch reference Conformer (conformer.py) against the spec's state-dict key lists (PIPELINE.md §2.7).

Run from the repository root (CPU torch, no data needed; ~40 s):

    /tmp/torchvenv/bin/python scripts/reference/check_keys.py [--spec-dir /work/shared/spec]

Writes nothing. Exits non-zero on the first failed assertion. It checks:
  1. PC model (defaults, 21 classes) vs KEYS_conformer_s_pc_sm21.tsv and SP model (sub_classes=200) vs
     KEYS_conformer_s_sp_sub_k10.tsv: same keys, same order, same shapes, same kind (param / buffer).
  2. Counts of §2.7: 718 entries / 255 BN buffers / 36,465,066 parameters (PC); 722 / 255 / 38,385,466 (SP); and
     the published ImageNet Conformer-S count 37,673,424 derived by swapping the heads.
  3. Module hyper-parameters: eps of stem BN (1e-5), block BNs (1e-6), block LNs (1e-6), trans_norm (1e-5);
     drop-path rates linspace(0, 0.1, 12).
  4. The ImageNet loader (§2.7) on a synthetic {"model": ...} checkpoint with 1000-way heads: every non-head entry
     is taken from the checkpoint, the heads stay fresh.
  5. A forward pass on a small input: output shapes, rows of Σ_l mean_h A_l summing to 12, and the four CAM formulas
     recomputed from the captured attention maps; the drop-path switch.
  6. The modules against an independent functional forward (state dict + torch.nn.functional only, written from
     §2.3–2.5) on the tiny configuration and on Conformer-S: logits and the transcam CAM.
"""
import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conformer as C  # noqa: E402


def read_tsv(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, kind = line.split("\t")
        shape = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        rows.append((key, shape, kind))
    return rows


def model_rows(model):
    params = {n for n, _ in model.named_parameters()}
    return [(k, tuple(v.shape), "param" if k in params else "buffer") for k, v in model.state_dict().items()]


def check_against(model, tsv, entries, params_expected, label):
    want = read_tsv(tsv)
    got = model_rows(model)
    assert len(got) == len(want), "%s: %d entries, TSV has %d" % (label, len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, "%s: entry %d differs: model %r, TSV %r" % (label, i, g, w)
    n, nb, p = C.count(model)
    assert n == entries, "%s: %d entries, expected %d" % (label, n, entries)
    assert nb == 255, "%s: %d BN buffers, expected 255" % (label, nb)
    assert p == params_expected, "%s: %d parameters, expected %d" % (label, p, params_expected)
    nbn = sum(1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert nbn == 85, "%s: %d BatchNorms, expected 85" % (label, nbn)
    print("%s: OK (%d entries in TSV order, %d BN buffers, %s parameters)" % (label, n, nb, format(p, ",")))


def check_hparams(model):
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            want = 1e-5 if name == "bn1" else 1e-6
            assert m.eps == want and m.momentum == 0.1, (name, m.eps, m.momentum)
        elif isinstance(m, torch.nn.LayerNorm):
            want = 1e-5 if name == "trans_norm" else 1e-6
            assert m.eps == want, (name, m.eps)
    rates = [model.trans_1.drop_path.p] + [b.trans_block.drop_path.p for b in model.blocks()]
    for i, r in enumerate(rates):
        assert abs(r - 0.1 * i / 11) < 1e-7, (i, r)
    assert model.trans_1.attn.scale == 0.125
    print("hyper-parameters: OK (eps, momentum, drop-path rates %s, ...)" % ", ".join("%.5f" % r for r in rates[:3]))


def check_loader():
    torch.manual_seed(1)
    src = C.Conformer()
    sd = {k: v.clone() + (0.5 if v.is_floating_point() else 3) for k, v in src.state_dict().items()}
    sd["trans_cls_head.weight"] = torch.randn(1000, 384)
    sd["trans_cls_head.bias"] = torch.randn(1000)
    sd["conv_cls_head.weight"] = torch.randn(1000, 1024)  # the ImageNet conv head is a Linear
    sd["conv_cls_head.bias"] = torch.randn(1000)
    imagenet_params = sum(v.numel() for k, v in sd.items()
                          if not k.endswith((".running_mean", ".running_var", ".num_batches_tracked")))
    assert imagenet_params == 37673424, imagenet_params
    for variant, kw in (("PC", {}), ("SP", {"sub_classes": 200})):
        torch.manual_seed(2)
        dst = C.Conformer(**kw)
        fresh_before = {k: v.clone() for k, v in dst.state_dict().items()}
        loaded, fresh = C.load_imagenet_checkpoint(dst, {"model": dict(sd), "epoch": 299})
        heads = [k for k in fresh_before if "cls_head" in k]
        assert fresh == heads, fresh
        after = dst.state_dict()
        for k in loaded:
            assert torch.equal(after[k], sd[k]), k
        for k in fresh:
            assert torch.equal(after[k], fresh_before[k]), k
        # a bare state dict works the same
        dst2 = C.Conformer(**kw)
        C.load_imagenet_checkpoint(dst2, dict(sd))
        assert torch.equal(dst2.state_dict()["conv_trans_12.trans_block.mlp.fc2.bias"],
                           sd["conv_trans_12.trans_block.mlp.fc2.bias"])
        print("ImageNet loader (%s): OK (%d entries loaded, fresh: %s)" % (variant, len(loaded), ", ".join(fresh)))
    print("ImageNet Conformer-S parameter count: OK (37,673,424)")


def check_forward():
    torch.manual_seed(3)
    for kw in ({}, {"sub_classes": 200}):
        model = C.Conformer(**kw).eval()
        attns = []
        hooks = [m.register_forward_hook(lambda mod, inp, out: attns.append(out[1]))
                 for m in model.modules() if isinstance(m, C.Attention)]
        x = torch.randn(2, 3, 64, 96)
        outs = {}
        with torch.no_grad():
            for method in C.CAM_METHODS:
                attns.clear()
                outs[method] = model(x, method=method)
        for h in hooks:
            h.remove()
        assert len(attns) == 12
        h, w, p = 4, 6, 24
        a_bar = torch.stack(attns).mean(2).sum(0)
        assert a_bar.shape == (2, p + 1, p + 1)
        assert torch.allclose(a_bar.sum(-1), torch.full((2, p + 1), 12.0), atol=1e-4)
        o = outs["transcam"]
        assert o[0].shape == (2, 21) and o[1].shape == (2, 21) and o[2].shape == (2, 21, h, w)
        if kw:
            assert len(o) == 6 and o[3].shape == (2, 1024) and o[4].shape == (2, 200) and o[5].shape == (2, 200)
        else:
            assert len(o) == 3
        X = outs["convcam"][2].flatten(2)
        assert torch.allclose(X.mean(-1), o[0], atol=1e-5)
        R, a = a_bar[:, 1:, 1:], a_bar[:, 0, 1:]
        ref = {"convcam": X, "clsattn": a[:, None, :] * X,
               "transcam": torch.einsum("bpq,bcq->bcp", R, X), "attnagg": torch.einsum("bqp,bcq->bcp", R, X)}
        for method in C.CAM_METHODS:
            got = outs[method][2].flatten(2)
            assert torch.allclose(got, ref[method], rtol=1e-4, atol=1e-4), method
            assert torch.equal(outs[method][0], o[0])
        print("forward %s: OK (shapes, attention rows sum to 12, four CAM formulas)" % ("SP" if kw else "PC"))
    # drop path: active in train mode, off when disabled or in eval
    model = C.Conformer(drop_path_rate=0.9)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x, None)[1], model(x, None)[1]
        assert not torch.equal(a, b), "drop path had no effect in train mode"
        model.set_drop_path(False)
        assert not model.drop_path_enabled
        a, b = model(x, None)[1], model(x, None)[1]
        assert torch.equal(a, b)
        model.set_drop_path(True).eval()
        c = model(x, None)[1]
        assert torch.equal(a, c)
    print("drop path switch: OK")


# ---- an independent, purely functional forward written from §2.3–2.5 (state dict + F ops only) -------------------
def functional_forward(sd, x, heads, method="transcam"):
    F = torch.nn.functional

    def bn(p, t, eps=1e-6):
        return F.batch_norm(t, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"],
                            False, 0.0, eps)

    def conv_block(p, t, stride, inject=None):
        a = F.relu(bn(p + ".bn1", F.conv2d(t, sd[p + ".conv1.weight"])))
        if inject is not None:
            a = a + inject
        x2 = F.relu(bn(p + ".bn2", F.conv2d(a, sd[p + ".conv2.weight"], stride=stride, padding=1)))
        c = bn(p + ".bn3", F.conv2d(x2, sd[p + ".conv3.weight"]))
        sc = t
        if p + ".residual_conv.weight" in sd:
            sc = bn(p + ".residual_bn", F.conv2d(t, sd[p + ".residual_conv.weight"], stride=stride))
        return F.relu(c + sc), x2

    def block(p, t):
        e = t.shape[-1]
        ln = lambda q, u: F.layer_norm(u, (e,), sd[q + ".weight"], sd[q + ".bias"], 1e-6)
        u = ln(p + ".norm1", t)
        B, N, _ = u.shape
        qkv = F.linear(u, sd[p + ".attn.qkv.weight"], sd[p + ".attn.qkv.bias"]).reshape(B, N, 3, heads, e // heads)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(e // heads), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, N, e)
        t = t + F.linear(y, sd[p + ".attn.proj.weight"], sd[p + ".attn.proj.bias"])
        u = ln(p + ".norm2", t)
        u = F.linear(F.gelu(F.linear(u, sd[p + ".mlp.fc1.weight"], sd[p + ".mlp.fc1.bias"])),
                     sd[p + ".mlp.fc2.weight"], sd[p + ".mlp.fc2.bias"])
        return t + u, att.mean(1)

    B = x.shape[0]
    base = F.max_pool2d(F.relu(bn("bn1", F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), 1e-5)), 3, 2, 1)
    xc, _ = conv_block("conv_1", base, 1)
    tok = F.conv2d(base, sd["trans_patch_conv.weight"], sd["trans_patch_conv.bias"], stride=4)
    h, w = tok.shape[2:]
    tok = torch.cat([sd["cls_token"].expand(B, 1, -1), tok.flatten(2).transpose(1, 2)], 1)
    tok, a = block("trans_1", tok)
    a_sum = a
    for i in range(2, 13):
        p = "conv_trans_%d" % i
        stride = 2 if i in (5, 9) else 1
        dw = 4 if i <= 4 else (2 if i <= 8 else 1)
        xc, x2 = conv_block(p + ".cnn_block", xc, stride)
        s = F.conv2d(x2, sd[p + ".squeeze_block.conv_project.weight"], sd[p + ".squeeze_block.conv_project.bias"])
        s = F.avg_pool2d(s, dw) if dw > 1 else s
        s = F.gelu(F.layer_norm(s.flatten(2).transpose(1, 2), (s.shape[1],), sd[p + ".squeeze_block.ln.weight"],
                                sd[p + ".squeeze_block.ln.bias"], 1e-6))
        tok, a = block(p + ".trans_block", tok + torch.cat([tok[:, :1], s], 1))  # class token doubled
        a_sum = a_sum + a
        r = tok[:, 1:].transpose(1, 2).reshape(B, -1, h, w)
        r = F.relu(bn(p + ".expand_block.bn", F.conv2d(r, sd[p + ".expand_block.conv_project.weight"],
                                                       sd[p + ".expand_block.conv_project.bias"])))
        r = F.interpolate(r, scale_factor=dw, mode="nearest") if dw > 1 else r
        xc, _ = conv_block(p + ".fusion_block", xc, 1, inject=r)
    xconv = F.conv2d(xc, sd["conv_cls_head.weight"], sd["conv_cls_head.bias"], padding=1)
    t0 = F.layer_norm(tok, (tok.shape[-1],), sd["trans_norm.weight"], sd["trans_norm.bias"], 1e-5)[:, 0]
    cam = torch.einsum("bpq,bcq->bcp", a_sum[:, 1:, 1:], xconv.flatten(2)).reshape(xconv.shape)
    return xconv.mean((2, 3)), F.linear(t0, sd["trans_cls_head.weight"], sd["trans_cls_head.bias"]), cam


def check_functional():
    """The module implementation against functional_forward, eval mode, calibrated-ish BN statistics."""
    for label, kw, heads in (("tiny (stem 16)", dict(base_channel=16, channel_ratio=1, embed_dim=32, num_heads=2,
                                                     stem_channels=16), 2),
                             ("Conformer-S", {}, 6)):
        torch.manual_seed(4)
        model = C.Conformer(**kw)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_var.uniform_(0.5, 1.5).mul_(m.num_features * 2.0)  # tame the eval-mode growth
                    m.running_mean.normal_(0, 0.1)
                    m.weight.normal_(1, 0.1)
                    m.bias.normal_(0, 0.1)
                elif isinstance(m, C.Attention):
                    m.qkv.weight.mul_(10)
        model.eval()
        x = torch.randn(2, 3, 64, 96)
        with torch.no_grad():
            got = model(x, "transcam")
            ref = functional_forward(model.state_dict(), x, heads)
        for name, g, r in zip(("conv_logits", "trans_logits", "transcam"), got, ref):
            err = (g - r).abs().max().item() / max(1.0, r.abs().max().item())
            assert err < 1e-5, (label, name, err)
        print("functional re-derivation (%s): OK (logits and transcam agree)" % label)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec-dir", default="/work/shared/spec")
    args = ap.parse_args()
    spec = Path(args.spec_dir)
    torch.manual_seed(0)
    pc = C.Conformer()
    check_against(pc, spec / "KEYS_conformer_s_pc_sm21.tsv", 718, 36465066, "PC (num_classes=21)")
    check_hparams(pc)
    sp = C.Conformer(sub_classes=200)
    check_against(sp, spec / "KEYS_conformer_s_sp_sub_k10.tsv", 722, 38385466, "SP (sub_classes=200)")
    check_loader()
    check_forward()
    check_functional()
    print("ALL CHECKS PASSED")


if __name__ == "__main__":
    main()
