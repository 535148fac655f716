// Half-precision conversion for the gradient reducer's `--grad-compression fp16` (Distributed/HalfPrecisionAllreduce).
// In C because Swift cannot compile one function for the F16C instructions: each entry point checks the CPU once
// and runs the F16C loop (8 values per instruction) where there is one, else a portable loop.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// dst[i] = half(src[i] * scale), rounded to nearest even.
void chalf_encode(const float *src, uint16_t *dst, size_t n, float scale);
/// dst[i] = float(src[i]).
void chalf_decode(const uint16_t *src, float *dst, size_t n);
/// accumulated[i] = half(float(input[i]) + float(accumulated[i])): one rounding per sum.
void chalf_sum(const uint16_t *input, uint16_t *accumulated, size_t n);
/// Tests only: 1 forces the portable loops (what a CPU without F16C runs), 0 lets the CPU decide.
void chalf_use_portable(int on);
