// The machine's real floating-point limit for the benchmarks (Benchmarks/FMAPeak.swift): a loop of independent
// fused multiply-adds on the widest vectors the CPU has. In C because Swift cannot compile one function for AVX-512
// or AVX2+FMA; the entry point checks the CPU once and runs the widest copy it supports.
#pragma once
#include <stdint.h>

/// Runs `iterations` rounds of 12 independent FMA chains (a ← a·x + y on whole vectors) on the calling thread and
/// returns the floating-point operations done (2 per lane per FMA). `sink` receives a sum of the accumulators, so
/// that the loop cannot be optimised away.
double cfma_loop(int64_t iterations, float *sink);

/// The instruction set `cfma_loop` uses here: "avx512f", "avx2+fma" or "sse2 (mul+add)".
const char *cfma_isa(void);
