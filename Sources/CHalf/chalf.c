#include "chalf.h"

#include <immintrin.h>

static int portable_only = 0;

void chalf_use_portable(int on) { portable_only = on; }

static int has_f16c(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
    return known && !portable_only;
}

__attribute__((target("avx,f16c"))) static void encode_f16c(const float *src, uint16_t *dst, size_t n, float scale) {
    size_t i = 0;
    __m256 s = _mm256_set1_ps(scale);
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(src + i), s), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i] * scale, _MM_FROUND_TO_NEAREST_INT);
}

__attribute__((target("avx,f16c"))) static void decode_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

__attribute__((target("avx,f16c"))) static void sum_f16c(const uint16_t *input, uint16_t *accumulated, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(input + i)));
        __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(accumulated + i)));
        _mm_storeu_si128((__m128i *)(accumulated + i), _mm256_cvtps_ph(_mm256_add_ps(a, b), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) accumulated[i] = _cvtss_sh(_cvtsh_ss(input[i]) + _cvtsh_ss(accumulated[i]), _MM_FROUND_TO_NEAREST_INT);
}

// The portable forms: the compiler's _Float16 (IEEE binary16, round to nearest even).
static uint16_t to_bits(_Float16 h) { union { _Float16 h; uint16_t u; } v = {.h = h}; return v.u; }
static _Float16 from_bits(uint16_t u) { union { uint16_t u; _Float16 h; } v = {.u = u}; return v.h; }

void chalf_encode(const float *src, uint16_t *dst, size_t n, float scale) {
    if (has_f16c()) { encode_f16c(src, dst, n, scale); return; }
    for (size_t i = 0; i < n; i++) dst[i] = to_bits((_Float16)(src[i] * scale));
}

void chalf_decode(const uint16_t *src, float *dst, size_t n) {
    if (has_f16c()) { decode_f16c(src, dst, n); return; }
    for (size_t i = 0; i < n; i++) dst[i] = (float)from_bits(src[i]);
}

void chalf_sum(const uint16_t *input, uint16_t *accumulated, size_t n) {
    if (has_f16c()) { sum_f16c(input, accumulated, n); return; }
    for (size_t i = 0; i < n; i++) accumulated[i] = to_bits((_Float16)((float)from_bits(input[i]) + (float)from_bits(accumulated[i])));
}
