// The FMA-loop peak; the contract is in include/cfma.h. Twelve chains keep both FMA ports busy through the
// instruction's latency (4 cycles × 2 ports needs at least 8 independent chains).
#include "cfma.h"

#include <immintrin.h>

enum { CHAINS = 12 };

#define CHAIN_LOOP(VEC, SET1, FMA, ADD, LANES)                                                                        \
    VEC a[CHAINS];                                                                                                    \
    for (int c = 0; c < CHAINS; c++) a[c] = SET1(1.0f + 0.001f * c);                                                 \
    const VEC x = SET1(0.9999f), y = SET1(1e-6f);                                                                     \
    for (int64_t i = 0; i < iterations; i++)                                                                          \
        for (int c = 0; c < CHAINS; c++) a[c] = FMA(a[c], x, y);                                                      \
    VEC s = a[0];                                                                                                     \
    for (int c = 1; c < CHAINS; c++) s = ADD(s, a[c]);                                                                \
    float lanes[LANES];                                                                                               \
    __builtin_memcpy(lanes, &s, sizeof lanes);                                                                        \
    float total = 0;                                                                                                  \
    for (int l = 0; l < LANES; l++) total += lanes[l];                                                                \
    *sink = total;                                                                                                    \
    return 2.0 * CHAINS * LANES * (double)iterations;

__attribute__((target("avx512f"))) static double loop_avx512(int64_t iterations, float *sink) {
    CHAIN_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, 16)
}

__attribute__((target("avx2,fma"))) static double loop_avx2(int64_t iterations, float *sink) {
    CHAIN_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, 8)
}

/// Without FMA a multiply and an add do the work of one FMA (2 operations per lane), on separate ports.
static inline __m128 mul_add(__m128 a, __m128 x, __m128 y) { return _mm_add_ps(_mm_mul_ps(a, x), y); }

static double loop_sse2(int64_t iterations, float *sink) {
    CHAIN_LOOP(__m128, _mm_set1_ps, mul_add, _mm_add_ps, 4)
}

static int level(void) {
    static int known = -1;
    if (known < 0)
        known = __builtin_cpu_supports("avx512f") ? 2 : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    return known;
}

double cfma_loop(int64_t iterations, float *sink) {
    switch (level()) {
    case 2: return loop_avx512(iterations, sink);
    case 1: return loop_avx2(iterations, sink);
    default: return loop_sse2(iterations, sink);
    }
}

const char *cfma_isa(void) {
    static const char *names[] = {"sse2 (mul+add)", "avx2+fma", "avx512f"};
    return names[level()];
}
