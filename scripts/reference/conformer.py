#!/usr/bin/env python3
"""PyTorch REFERENCE of Conformer-S as PCSformer builds it, written from the project spec PIPELINE.md §2 (not from upstream code).

Used only to check the Swift model (fixtures, key lists); never run by the Swift build or in CI. Needs torch (CPU).

    /tmp/torchvenv/bin/python -c "import sys; sys.path.insert(0, 'scripts/reference'); \
        import conformer; m = conformer.Conformer(); print(len(m.state_dict()))"

Run as a script it builds the PC model and the SP model (sub_classes=200) and prints their entry and parameter counts.
It writes nothing. See check_keys.py for the assertions against the spec's TSV key lists.

What is here
------------
* `Conformer(base_channel=64, channel_ratio=4, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0, num_classes=21,
  sub_classes=0, drop_path_rate=0.1, stem_channels=64)`: module tree and parameter names exactly as §2.7
  (so `state_dict()` keys and order equal KEYS_conformer_s_pc_sm21.tsv / KEYS_conformer_s_sp_sub_k10.tsv).
  - `stem_channels` is an extra keyword: upstream hard-codes the stem (conv1/bn1, conv_1 input, trans_patch_conv input)
    to 64 channels regardless of `base_channel`; keep the default for Conformer-S. The Swift ConformerConfig ties the
    stem to baseChannel instead, so the tiny fixture (base_channel 16) passes stem_channels=16 explicitly; the two
    rules coincide for Conformer-S (base_channel 64).
  - Channel widths: stage 1 = base_channel·channel_ratio, stage 2 = ×2, stage 3 = ×4 (1024 for Conformer-S); the CNN
    heads read stage 3 (upstream writes `256·channel_ratio`, which equals stage 3 only when base_channel = 64).
  - `sub_classes > 0` adds `trans_cls_head_200` (Linear embed→sub_classes) and `conv_cls_head_200` (Conv3×3 pad 1,
    stage3→sub_classes). The names keep the upstream "_200" suffix whatever the width ((C−1)·k upstream).
* `forward(x, method='transcam')`:
  - sub_classes == 0: returns `(conv_logits (B,C), trans_logits (B,C), cam (B,C,h,w))`
  - sub_classes  > 0: returns `(conv_logits (B,C), trans_logits (B,C), cam (B,C,h,w), feature (B,stage3),
    conv_logits_sub (B,S), trans_logits_sub (B,S))`; feature = spatial mean of the final CNN map (input of the heads).
    (Upstream `Net_sm_sub` round ≥ 1 returns (conv, trans, feature, conv200, trans200) without a CAM; here the CAM is
    inserted at position 2 so the first three entries are the same for both variants.)
  - `method` in {'convcam', 'clsattn', 'transcam', 'attnagg'} (§2.5.7) or None (cam returned as None).
  - The CAM uses Ā = Σ_layers mean_heads(A_l), R = Ā[:,1:,1:], a_cls = Ā[:,0,1:]; X = conv_cls_head(x) flattened:
    convcam M = X; clsattn M = a_cls ⊙ X; transcam M = X·Rᵀ; attnagg M = X·R; all reshaped to (B,C,h,w).
    The CAM is never detached (as upstream); it is always from the 21-way (`num_classes`) CNN head.
* Drop path: per sample, independent draws for the attention and MLP branches, rates linspace(0, rate, 12) with
  trans_1 → dpr[0] = 0 and conv_trans_i → dpr[i−1]. Active only in train mode and while `model.drop_path_enabled`
  (set with `model.set_drop_path(False)`).
* Initialisation as §2.6 (`Conformer.__init__` ends with it).
* `load_imagenet_checkpoint(model, ckpt)`: the ImageNet checkpoint loading rules of §2.7.
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

CAM_METHODS = ("convcam", "clsattn", "transcam", "attnagg")
IMAGENET_HEAD_KEYS = ("trans_cls_head.weight", "trans_cls_head.bias", "conv_cls_head.weight", "conv_cls_head.bias")


class DropPath(nn.Module):
    """Per-sample stochastic depth: keep a sample with probability 1−p and scale kept samples by 1/(1−p)."""

    def __init__(self, p):
        super().__init__()
        self.p = float(p)
        self.enabled = True

    def forward(self, x):
        if self.p == 0.0 or not self.training or not self.enabled:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div(keep)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class Attention(nn.Module):
    """MHSA; qkv output laid out as (3, heads, head_dim). Returns (output, post-softmax attention (B, heads, N, N))."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(y), attn


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6). Returns (tokens, attention)."""

    def __init__(self, dim, num_heads, mlp_ratio, drop_path):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)  # no parameters; called twice → two independent draws

    def forward(self, x):
        y, attn = self.attn(self.norm1(x))
        x = x + self.drop_path(y)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, attn


def _bn(ch):
    return nn.BatchNorm2d(ch, eps=1e-6, momentum=0.1)


class ConvBlock(nn.Module):
    """Bottleneck of §2.3; m = cout/4; every BN eps 1e-6; convs bias-free. forward returns (output, x2)."""

    def __init__(self, cin, cout, stride=1, res_conv=False):
        super().__init__()
        m = cout // 4
        self.conv1 = nn.Conv2d(cin, m, 1, 1, 0, bias=False)
        self.bn1 = _bn(m)
        self.conv2 = nn.Conv2d(m, m, 3, stride, 1, bias=False)
        self.bn2 = _bn(m)
        self.conv3 = nn.Conv2d(m, cout, 1, 1, 0, bias=False)
        self.bn3 = _bn(cout)
        self.res_conv = res_conv
        if res_conv:
            self.residual_conv = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
            self.residual_bn = _bn(cout)

    def forward(self, x, inject=None):
        a = F.relu(self.bn1(self.conv1(x)))
        b = self.conv2(a if inject is None else a + inject)
        x2 = F.relu(self.bn2(b))
        c = self.bn3(self.conv3(x2))
        shortcut = self.residual_bn(self.residual_conv(x)) if self.res_conv else x
        return F.relu(c + shortcut), x2


class FCUDown(nn.Module):
    """CNN → tokens: Conv1×1 (bias), AvgPool dw, LayerNorm eps 1e-6, GELU; prepends the current class token."""

    def __init__(self, m, embed_dim, dw):
        super().__init__()
        self.dw = dw
        self.conv_project = nn.Conv2d(m, embed_dim, 1, 1, 0, bias=True)
        self.ln = nn.LayerNorm(embed_dim, eps=1e-6)

    def forward(self, x2, x_t):
        s = self.conv_project(x2)
        if self.dw > 1:
            s = F.avg_pool2d(s, self.dw, self.dw)
        s = F.gelu(self.ln(s.flatten(2).transpose(1, 2)))
        return torch.cat([x_t[:, :1], s], dim=1)


class FCUUp(nn.Module):
    """tokens → CNN: drop class token, Conv1×1 (bias), BN eps 1e-6, ReLU, nearest upsample ×dw."""

    def __init__(self, embed_dim, m, dw):
        super().__init__()
        self.dw = dw
        self.conv_project = nn.Conv2d(embed_dim, m, 1, 1, 0, bias=True)
        self.bn = _bn(m)

    def forward(self, x_t, h, w):
        b, _, c = x_t.shape
        r = x_t[:, 1:].transpose(1, 2).reshape(b, c, h, w)
        r = F.relu(self.bn(self.conv_project(r)))
        if self.dw > 1:
            r = F.interpolate(r, size=(h * self.dw, w * self.dw), mode="nearest")
        return r


class ConvTransBlock(nn.Module):
    """conv_trans_i of §2.5.4. Returns (x, x_t, attention)."""

    def __init__(self, cin, cout, res_conv, stride, dw, embed_dim, num_heads, mlp_ratio, drop_path, last_fusion=False):
        super().__init__()
        m = cout // 4
        self.dw = dw
        self.cnn_block = ConvBlock(cin, cout, stride=stride, res_conv=res_conv)
        self.fusion_block = ConvBlock(cout, cout, stride=1, res_conv=last_fusion)
        self.squeeze_block = FCUDown(m, embed_dim, dw)
        self.expand_block = FCUUp(embed_dim, m, dw)
        self.trans_block = Block(embed_dim, num_heads, mlp_ratio, drop_path)

    def forward(self, x, x_t):
        x, x2 = self.cnn_block(x)
        hh, ww = x2.shape[2], x2.shape[3]
        s = self.squeeze_block(x2, x_t)
        x_t, attn = self.trans_block(s + x_t)  # class token enters as twice its previous value (Conformer)
        up = self.expand_block(x_t, hh // self.dw, ww // self.dw)
        x, _ = self.fusion_block(x, inject=up)
        return x, x_t, attn


class Conformer(nn.Module):
    def __init__(self, base_channel=64, channel_ratio=4, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0,
                 num_classes=21, sub_classes=0, drop_path_rate=0.1, stem_channels=64):
        super().__init__()
        if depth != 12:
            raise ValueError("only depth 12 (the stage layout of §2.4) is supported")
        self.num_classes = num_classes
        self.sub_classes = sub_classes
        self.embed_dim = embed_dim
        c1 = int(base_channel * channel_ratio)
        c2, c3 = 2 * c1, 4 * c1
        dpr = [v.item() for v in torch.linspace(0, drop_path_rate, depth)]
        self.dpr = dpr

        # Registration order = state-dict order (§2.7 / TSV): cls_token, trans_norm, trans_cls_head, [trans_cls_head_200],
        # conv_cls_head, [conv_cls_head_200], conv1, bn1, conv_1, trans_patch_conv, trans_1, conv_trans_2..12.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.trans_norm = nn.LayerNorm(embed_dim)  # eps 1e-5 (library default)
        self.trans_cls_head = nn.Linear(embed_dim, num_classes)
        if sub_classes > 0:
            self.trans_cls_head_200 = nn.Linear(embed_dim, sub_classes)
        self.conv_cls_head = nn.Conv2d(c3, num_classes, 3, 1, 1, bias=True)
        if sub_classes > 0:
            self.conv_cls_head_200 = nn.Conv2d(c3, sub_classes, 3, 1, 1, bias=True)

        self.conv1 = nn.Conv2d(3, stem_channels, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels, eps=1e-5, momentum=0.1)

        self.conv_1 = ConvBlock(stem_channels, c1, stride=1, res_conv=True)
        self.trans_patch_conv = nn.Conv2d(stem_channels, embed_dim, 4, 4, 0, bias=True)
        self.trans_1 = Block(embed_dim, num_heads, mlp_ratio, dpr[0])

        for i in range(2, 13):
            if i <= 4:
                cin, cout, stride, res, dw = c1, c1, 1, False, 4
            elif i <= 8:
                cin, cout = (c1 if i == 5 else c2), c2
                stride, res, dw = (2, True, 2) if i == 5 else (1, False, 2)
            else:
                cin, cout = (c2 if i == 9 else c3), c3
                stride, res, dw = (2, True, 1) if i == 9 else (1, False, 1)
            self.add_module("conv_trans_%d" % i, ConvTransBlock(
                cin, cout, res, stride, dw, embed_dim, num_heads, mlp_ratio, dpr[i - 1], last_fusion=(i == 12)))

        self._init_weights_all()

    # ---- §2.6 -------------------------------------------------------------------------------------------------------
    def _init_weights_all(self):
        nn.init.trunc_normal_(self.cls_token, std=0.02, a=-2.0, b=2.0)
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.trunc_normal_(mod.weight, std=0.02, a=-2.0, b=2.0)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.LayerNorm):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")  # bias: framework default
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    # ---- drop path switch ---------------------------------------------------------------------------------------------
    @property
    def drop_path_enabled(self):
        return all(m.enabled for m in self.modules() if isinstance(m, DropPath))

    def set_drop_path(self, enabled):
        for m in self.modules():
            if isinstance(m, DropPath):
                m.enabled = bool(enabled)
        return self

    # ---- §2.5 ---------------------------------------------------------------------------------------------------------
    def blocks(self):
        return [getattr(self, "conv_trans_%d" % i) for i in range(2, 13)]

    def forward(self, x, method="transcam"):
        if method is not None and method not in CAM_METHODS:
            raise ValueError("unknown CAM method %r" % (method,))
        b = x.shape[0]
        x_base = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x, _ = self.conv_1(x_base)
        x_t = self.trans_patch_conv(x_base).flatten(2).transpose(1, 2)
        x_t = torch.cat([self.cls_token.expand(b, -1, -1), x_t], dim=1)
        x_t, attn = self.trans_1(x_t)
        attns = [attn]
        for blk in self.blocks():
            x, x_t, attn = blk(x, x_t)
            attns.append(attn)

        x_conv = self.conv_cls_head(x)                     # (B, C, h, w)
        conv_logits = x_conv.mean(dim=(2, 3))
        x_t = self.trans_norm(x_t)
        trans_logits = self.trans_cls_head(x_t[:, 0])

        cam = None
        if method is not None:
            h, w = x_conv.shape[2], x_conv.shape[3]
            a_bar = torch.stack(attns).mean(dim=2).sum(dim=0)  # (B, N, N): mean over heads, sum over 12 layers
            xf = x_conv.flatten(2)                           # (B, C, P)
            if method == "convcam":
                cam = x_conv
            elif method == "clsattn":
                cam = (a_bar[:, 0, 1:].unsqueeze(1) * xf).reshape(b, -1, h, w)
            elif method == "transcam":
                cam = torch.bmm(xf, a_bar[:, 1:, 1:].transpose(1, 2)).reshape(b, -1, h, w)
            else:  # attnagg
                cam = torch.bmm(xf, a_bar[:, 1:, 1:]).reshape(b, -1, h, w)

        if self.sub_classes == 0:
            return conv_logits, trans_logits, cam
        feature = x.mean(dim=(2, 3))
        conv_logits_sub = self.conv_cls_head_200(x).mean(dim=(2, 3))
        trans_logits_sub = self.trans_cls_head_200(x_t[:, 0])
        return conv_logits, trans_logits, cam, feature, conv_logits_sub, trans_logits_sub


# ---- §2.7 loading ---------------------------------------------------------------------------------------------------
def load_imagenet_checkpoint(model, ckpt):
    """Loads an ImageNet Conformer checkpoint (path or already-loaded object) into `model` by the rules of §2.7:
    1. use ckpt["model"] when the object is a dict holding a "model" entry, else the object itself;
    2. delete exactly the four 1000-way head entries (KeyError if one is missing, as upstream's `del`);
    3. keep the entries whose names exist in the model, overwrite the fresh state with them, load strictly.
    Returns (loaded_keys, kept_fresh_keys) in state-dict order."""
    if isinstance(ckpt, (str, os.PathLike)):
        ckpt = torch.load(ckpt, map_location="cpu", weights_only=False)
    sd = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    sd = dict(sd)
    for k in IMAGENET_HEAD_KEYS:
        del sd[k]
    target = model.state_dict()
    loaded = [k for k in target if k in sd]
    for k in loaded:
        target[k] = sd[k]
    model.load_state_dict(target, strict=True)
    fresh = [k for k in target if k not in sd]
    return loaded, fresh


def count(model):
    sd = model.state_dict()
    bn_buf = sum(1 for k in sd if k.endswith((".running_mean", ".running_var", ".num_batches_tracked")))
    params = sum(p.numel() for p in model.parameters())
    return len(sd), bn_buf, params


if __name__ == "__main__":
    for name, kw in (("PC", {}), ("SP", {"sub_classes": 200})):
        n, nb, p = count(Conformer(**kw))
        print("%s: %d entries, %d BN buffers, %s parameters" % (name, n, nb, format(p, ",")))
