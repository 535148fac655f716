"""Shared set-up of the conformance scripts (scripts/fixtures/make_conformer_fixture.py and
scripts/reference/compare_full_size.py): BatchNorm statistics calibrated from data, then every parameter that the
spec's §2.6 initialises to a constant perturbed, so a swapped weight/bias or a skipped affine shows up, and the
qkv weights scaled so the attention is far from uniform. Draws from torch's global generator, in this order.
"""
import torch
import torch.nn as nn

import conformer as C


def calibrate_and_perturb(model, calib_shape, qkv_gain, batches=4):
    """Cumulative-average BN statistics over `batches` train-mode forwards of N(0,1) inputs of `calib_shape` (drop
    path off), then running_mean += 0.1·sqrt(var)·N(0,1), running_var *= U(0.8, 1.2), BN/LayerNorm weight 1 + 0.1·N,
    bias 0.1·N, Linear bias 0.02·N, and every attn.qkv.weight multiplied by `qkv_gain`."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.train()
    model.set_drop_path(False)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(*calib_shape), method=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
                std = m.running_var.sqrt()
                m.running_mean.add_(0.1 * std * torch.randn_like(std))
                m.running_var.mul_(0.8 + 0.4 * torch.rand_like(std))
                m.num_batches_tracked.zero_()
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
            elif isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.copy_(0.02 * torch.randn_like(m.bias))
        for m in model.modules():
            if isinstance(m, C.Attention):  # sharpen attention (std 0.02 leaves it almost uniform)
                m.qkv.weight.mul_(qkv_gain)


def set_modes(model):
    """Training mode with drop path off and every BatchNorm on its running statistics."""
    model.train()
    model.set_drop_path(False)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return model
