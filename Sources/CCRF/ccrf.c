// The dense CRF's inner loops; the contract is in include/ccrf.h.
//
// Each kernel is written once, as plain per-lane loops in an always-inline body, and instantiated twice: for the
// baseline target and for AVX2. The compiler vectorises the lane loops (SSE2 or AVX2); it may not fuse a multiply
// and an add (contraction off below, and the AVX2 copies do not enable FMA), so both copies round exactly as the
// scalar code reads and agree bit for bit. A row's width is turned into a compile-time constant where it is one of
// the common ones (`FOR_EACH_CHUNK`), which keeps the splat and slice accumulators in registers.
#include "ccrf.h"

#include <math.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)
// The vector helpers below are always inlined, so passing 8-float vectors in the baseline copy changes no ABI.
#pragma clang diagnostic ignored "-Wpsabi"

#define INLINE static inline __attribute__((always_inline))
#define AVX2 __attribute__((target("avx2")))

/// The widest chunk of a row a kernel keeps in registers; wider rows are processed in chunks of this many lanes.
enum { CHUNK = 32 };

static int portable_only = 0;

void ccrf_use_portable(int32_t on) { portable_only = on; }

int32_t ccrf_uses_avx2(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("avx2");
    return known && !portable_only;
}

// MARK: Splat, blur, slice — one chunk of W lanes starting at lane c0 of rows `width` wide.

INLINE void splat_chunk(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0, int64_t i1,
                        int64_t v0, int64_t v1, const float *input, int64_t inStride, const float *scale, float *rows,
                        int64_t width, int64_t c0, const int64_t W) {
    for (int64_t v = v0; v < v1; v++)
        for (int64_t k = 0; k < W; k++) rows[(v + 1) * width + c0 + k] = 0;
    // Rows v0 + 1 ..< v1 + 1 are this call's: an offset o is one of them when o − (v0 + 1) < v1 − v0, unsigned.
    const uint32_t first = (uint32_t)(v0 + 1), span = (uint32_t)(v1 - v0);
    for (int64_t i = i0; i < i1; i++) {
        const int32_t *off = offsets + i * vpp;
        int owned = 0;
        for (int32_t r = 0; r < vpp; r++) owned |= (uint32_t)off[r] - first < span;
        if (!owned) continue;
        const float *src = input + i * inStride + c0;
        float x[CHUNK];
        if (scale) {
            const float s = scale[i];
            for (int64_t k = 0; k < W; k++) x[k] = src[k] * s;
        } else {
            for (int64_t k = 0; k < W; k++) x[k] = src[k];
        }
        for (int32_t r = 0; r < vpp; r++) {
            if ((uint32_t)off[r] - first >= span) continue;
            const float w = weights[i * vpp + r];
            float *dst = rows + (int64_t)off[r] * width + c0;
            for (int64_t k = 0; k < W; k++) dst[k] += w * x[k];
        }
    }
}

INLINE void blur_chunk(const float *src, float *dst, const int32_t *neighbours, int64_t v0, int64_t v1,
                       int64_t width, int64_t c0, const int64_t W) {
    for (int64_t v = v0; v < v1; v++) {
        const float *o = src + (v + 1) * width + c0;
        const float *n1 = src + (int64_t)neighbours[2 * v] * width + c0;
        const float *n2 = src + (int64_t)neighbours[2 * v + 1] * width + c0;
        float *d = dst + (v + 1) * width + c0;
        for (int64_t k = 0; k < W; k++) d[k] = o[k] + 0.5f * (n1[k] + n2[k]);
    }
}

/// The sliced values of point i, lanes c0 ..< c0 + W, into acc.
INLINE void slice_point(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i, const float *rows,
                        int64_t width, float alpha, int32_t scalarOrder, int64_t c0, const int64_t W, float *acc) {
    for (int64_t k = 0; k < W; k++) acc[k] = 0;
    for (int32_t r = 0; r < vpp; r++) {
        const float w = weights[i * vpp + r];
        const float *src = rows + (int64_t)offsets[i * vpp + r] * width + c0;
        if (scalarOrder) {
            for (int64_t k = 0; k < W; k++) acc[k] += (w * src[k]) * alpha;
        } else {
            const float wa = w * alpha;
            for (int64_t k = 0; k < W; k++) acc[k] += wa * src[k];
        }
    }
}

INLINE void slice_chunk(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0, int64_t i1,
                        const float *rows, int64_t width, float alpha, int32_t scalarOrder, const float *base,
                        const float *norm, float termWeight, float *out, int64_t outStride, int64_t c0, const int64_t W) {
    for (int64_t i = i0; i < i1; i++) {
        float acc[CHUNK];
        slice_point(offsets, weights, vpp, i, rows, width, alpha, scalarOrder, c0, W, acc);
        float *o = out + i * outStride + c0;
        if (norm) {
            const float s = norm[i];
            const float *b = base + i * outStride + c0;
            for (int64_t k = 0; k < W; k++) o[k] = b[k] + termWeight * (acc[k] * s);
        } else {
            for (int64_t k = 0; k < W; k++) o[k] = acc[k];
        }
    }
}

/// Calls CHUNK_CALL(c0, W) over the chunks of a row `width` wide, W a literal for the common widths.
#define FOR_EACH_CHUNK(width, CHUNK_CALL)                                                                             \
    switch (width) {                                                                                                  \
    case 4: CHUNK_CALL(0, 4); break;                                                                                  \
    case 8: CHUNK_CALL(0, 8); break;                                                                                  \
    case 12: CHUNK_CALL(0, 12); break;                                                                                \
    case 16: CHUNK_CALL(0, 16); break;                                                                                \
    case 20: CHUNK_CALL(0, 20); break;                                                                                \
    case 24: CHUNK_CALL(0, 24); break;                                                                                \
    case 28: CHUNK_CALL(0, 28); break;                                                                                \
    case 32: CHUNK_CALL(0, 32); break;                                                                                \
    default:                                                                                                          \
        for (int64_t c0_ = 0; c0_ < (width); c0_ += CHUNK) {                                                          \
            int64_t w_ = (width) - c0_ < CHUNK ? (width) - c0_ : CHUNK;                                               \
            CHUNK_CALL(c0_, w_);                                                                                      \
        }                                                                                                             \
    }

INLINE void splat_body(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0, int64_t i1, int64_t v0,
                       int64_t v1, const float *input, int64_t inStride, const float *scale, float *rows, int64_t width) {
#define SPLAT(c0, W) splat_chunk(offsets, weights, vpp, i0, i1, v0, v1, input, inStride, scale, rows, width, c0, W)
    FOR_EACH_CHUNK(width, SPLAT)
#undef SPLAT
}

INLINE void blur_body(const float *src, float *dst, const int32_t *neighbours, int64_t v0, int64_t v1, int64_t width) {
#define BLUR(c0, W) blur_chunk(src, dst, neighbours, v0, v1, width, c0, W)
    FOR_EACH_CHUNK(width, BLUR)
#undef BLUR
}

INLINE void slice_body(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0, int64_t i1,
                       const float *rows, int64_t width, float alpha, int32_t scalarOrder, const float *base,
                       const float *norm, float termWeight, float *out, int64_t outStride) {
#define SLICE(c0, W) \
    slice_chunk(offsets, weights, vpp, i0, i1, rows, width, alpha, scalarOrder, base, norm, termWeight, out, outStride, c0, W)
    FOR_EACH_CHUNK(width, SLICE)
#undef SLICE
}

// MARK: Softmax
//
// densecrf's `expAndNormalize` for one pixel, with the float operations Eigen 3.3.9 (bundled with pydensecrf)
// performs on an x86-64 SSE2 build, so that Q matches pydensecrf to the last bit where the lattice does:
//
//     b = x − max(x);  b = exp(b);  out = b / Σ b
//
// * exp: Eigen vectorises the first 4⌊L/4⌋ entries with its Cephes-style `pexp<Packet4f>` (`packet_exp` below, no
//   FMA on SSE2) and computes the remaining L mod 4 with `std::exp` (glibc `expf`).
// * Σ: Eigen's linear vectorised reduction: packet accumulators r₀ = b[0..3], r₁ = b[4..7], then alternately
//   r₀ += b[8k..8k+3], r₁ += b[8k+4..8k+7]; r₀ += r₁; an odd last packet is added to r₀; the horizontal sum is
//   (r₀[0] + r₀[2]) + (r₀[1] + r₀[3]); the scalar tail is added last, in order. With fewer than 4 labels the sum is
//   the plain left-to-right one.
// * the division is elementwise (not a multiplication by the reciprocal).

typedef float v8f __attribute__((ext_vector_type(8), aligned(4)));
typedef float v4f __attribute__((ext_vector_type(4), aligned(4)));
typedef uint32_t v8u __attribute__((ext_vector_type(8), aligned(4)));
#define V8(c) ((v8f)(c))

/// Eigen's `pexp<Packet4f>` (SSE2 branch) on 8 lanes: clamp to ±88.376…, n = ⌊x·log₂e + ½⌋, r = x − n·C₁ − n·C₂,
/// y = ((((p₀r + p₁)r + p₂)r + p₃)r + p₄)r + p₅, y = y·r² + r + 1, result max(y·2ⁿ, x), every step rounded to float.
/// ⌊·⌋ rounds to nearest through the 1.5·2²³ magic number and steps down where that rounded up; 2ⁿ moves n + 127,
/// read from the bits of fx + 1.5·2²³, into the exponent field.
INLINE v8f packet_exp(v8f input) {
    const v8f magic = V8(12582912.0f);
    v8f x = input > V8(88.3762626647950f) ? V8(88.3762626647950f) : input;
    x = x < V8(-88.3762626647949f) ? V8(-88.3762626647949f) : x;
    v8f fx = x * V8(1.44269504088896341f) + V8(0.5f);
    const v8f nearest = (fx + magic) - magic;
    fx = nearest > fx ? nearest - V8(1.0f) : nearest;
    const v8f tmp = fx * V8(0.693359375f);
    v8f z = fx * V8(-2.12194440e-4f);
    x = x - tmp;
    x = x - z;
    z = x * x;
    v8f y = V8(1.9875691500e-4f);
    y = y * x + V8(1.3981999507e-3f);
    y = y * x + V8(8.3334519073e-3f);
    y = y * x + V8(4.1665795894e-2f);
    y = y * x + V8(1.6666665459e-1f);
    y = y * x + V8(5.0000001201e-1f);
    y = y * z + x;
    y = y + V8(1.0f);
    const v8u n = __builtin_bit_cast(v8u, fx + magic) - (v8u)(0x4B400000u - 127u);
    const v8f r = y * __builtin_bit_cast(v8f, n << 23);
    return r < input ? input : r;
}

/// One pixel: `e` (scratch of W8 ≥ L floats, W8 a multiple of 8) becomes q = softmax(x[0 ..< L]).
INLINE void softmax_pixel(const float *x, float *e, const int32_t L, const int32_t W8) {
    const int32_t packets = L / 4;
    for (int32_t k = 0; k < L; k++) e[k] = x[k];
    for (int32_t k = L; k < W8; k++) e[k] = x[0];          // lanes past L must not change the maximum
    v8f mv = *(const v8f *)e;
    for (int32_t c = 8; c < W8; c += 8) { const v8f v = *(const v8f *)(e + c); mv = v > mv ? v : mv; }
    float m = mv[0];
    for (int l = 1; l < 8; l++) m = mv[l] > m ? mv[l] : m;
    for (int32_t c = 0; c < W8; c += 8) *(v8f *)(e + c) = packet_exp(*(const v8f *)(e + c) - V8(m));
    for (int32_t k = 4 * packets; k < L; k++) e[k] = expf(x[k] - m);
    float sum;
    if (packets == 0) {
        sum = e[0];
        for (int32_t k = 1; k < L; k++) sum += e[k];
    } else {
        // Eigen's two packet accumulators: r0 takes the even packets, r1 the odd ones, of the first 2⌊P/2⌋.
        v4f r0 = 0, r1 = 0;
        const int32_t paired = 2 * (packets / 2);
        for (int32_t p = 0; p < paired; p += 2) {
            const v4f even = *(const v4f *)(e + 4 * p), odd = *(const v4f *)(e + 4 * p + 4);
            r0 = p == 0 ? even : r0 + even;
            r1 = p == 0 ? odd : r1 + odd;
        }
        if (packets > 1) r0 += r1;
        if (packets % 2 == 1) {
            const v4f last = *(const v4f *)(e + 4 * (packets - 1));
            r0 = packets == 1 ? last : r0 + last;
        }
        sum = (r0[0] + r0[2]) + (r0[1] + r0[3]);
        for (int32_t k = 4 * packets; k < L; k++) sum += e[k];
    }
    for (int32_t c = 0; c < W8; c += 8) *(v8f *)(e + c) = *(const v8f *)(e + c) / V8(sum);
}

INLINE void softmax_range(const float *x, int64_t stride, const int32_t L, int64_t i0, int64_t i1, float *out,
                          int64_t outStride, int64_t labelStride) {
    const int32_t W8 = (L + 7) & ~7;
    float q[W8];
    for (int64_t i = i0; i < i1; i++) {
        softmax_pixel(x + i * stride, q, L, W8);
        for (int32_t k = 0; k < L; k++) out[i * outStride + k * labelStride] = q[k];
    }
}

INLINE void softmax_body(const float *x, int64_t stride, int32_t labels, int64_t i0, int64_t i1, float *out,
                         int64_t outStride, int64_t labelStride) {
    switch (labels) {
    case 21: softmax_range(x, stride, 21, i0, i1, out, outStride, labelStride); break;
    case 2: softmax_range(x, stride, 2, i0, i1, out, outStride, labelStride); break;
    default: softmax_range(x, stride, labels, i0, i1, out, outStride, labelStride);
    }
}

// MARK: The fused mean-field update

/// Point i's message −U + Σ_t w_t·(slice_t · norm_t[i]), lanes c0 ..< c0 + W, into a.
INLINE void message_chunk(const ccrf_term *terms, int32_t count, const float *negU, int64_t width,
                          int32_t scalarOrder, int64_t i, int64_t c0, const int64_t W, float *a) {
    const float *u = negU + i * width + c0;
    for (int64_t k = 0; k < W; k++) a[k] = u[k];
    for (int32_t t = 0; t < count; t++) {
        const ccrf_term *term = terms + t;
        float s[CHUNK];
        slice_point(term->offsets, term->weights, term->vpp, i, term->rows, width, term->alpha, scalarOrder, c0, W, s);
        const float n = term->norm[i], w = term->weight;
        for (int64_t k = 0; k < W; k++) a[k] = a[k] + w * (s[k] * n);
    }
}

INLINE void update_body(const ccrf_term *terms, int32_t count, const float *negU, int64_t width, int32_t labels,
                        int64_t i0, int64_t i1, float *out, int64_t outStride, int64_t labelStride) {
    const int32_t W8 = (labels + 7) & ~7;
    const int32_t scalarOrder = labels <= 2;
    float a[width], q[W8];
    for (int64_t i = i0; i < i1; i++) {
#define MESSAGE(c0, W) message_chunk(terms, count, negU, width, scalarOrder, i, c0, W, a + (c0))
        FOR_EACH_CHUNK(width, MESSAGE)
#undef MESSAGE
        softmax_pixel(a, q, labels, W8);
        for (int32_t k = 0; k < labels; k++) out[i * outStride + k * labelStride] = q[k];
    }
}

// MARK: The two copies and the entry points

#define INSTANTIATE(SUFFIX, ATTR)                                                                                     \
    ATTR static void splat_##SUFFIX(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0,           \
                                    int64_t i1, int64_t v0, int64_t v1, const float *input, int64_t inStride,         \
                                    const float *scale, float *rows, int64_t width) {                                 \
        splat_body(offsets, weights, vpp, i0, i1, v0, v1, input, inStride, scale, rows, width);                       \
    }                                                                                                                 \
    ATTR static void blur_##SUFFIX(const float *src, float *dst, const int32_t *neighbours, int64_t v0, int64_t v1,  \
                                   int64_t width) {                                                                   \
        blur_body(src, dst, neighbours, v0, v1, width);                                                               \
    }                                                                                                                 \
    ATTR static void slice_##SUFFIX(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0,           \
                                    int64_t i1, const float *rows, int64_t width, float alpha, int32_t scalarOrder,   \
                                    const float *base, const float *norm, float termWeight, float *out,               \
                                    int64_t outStride) {                                                              \
        slice_body(offsets, weights, vpp, i0, i1, rows, width, alpha, scalarOrder, base, norm, termWeight, out,       \
                   outStride);                                                                                        \
    }                                                                                                                 \
    ATTR static void softmax_##SUFFIX(const float *x, int64_t stride, int32_t labels, int64_t i0, int64_t i1,        \
                                      float *out, int64_t outStride, int64_t labelStride) {                           \
        softmax_body(x, stride, labels, i0, i1, out, outStride, labelStride);                                         \
    }                                                                                                                 \
    ATTR static void update_##SUFFIX(const ccrf_term *terms, int32_t count, const float *negU, int64_t width,         \
                                     int32_t labels, int64_t i0, int64_t i1, float *out, int64_t outStride,           \
                                     int64_t labelStride) {                                                           \
        if (width == 24 && labels == 21)                                                                              \
            update_body(terms, count, negU, 24, 21, i0, i1, out, outStride, labelStride);                             \
        else if (width == 4 && labels == 2)                                                                           \
            update_body(terms, count, negU, 4, 2, i0, i1, out, outStride, labelStride);                               \
        else                                                                                                          \
            update_body(terms, count, negU, width, labels, i0, i1, out, outStride, labelStride);                      \
    }

INSTANTIATE(portable, )
INSTANTIATE(avx2, AVX2)

void ccrf_splat(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0, int64_t i1, int64_t v0,
                int64_t v1, const float *input, int64_t inStride, const float *scale, float *rows, int64_t width) {
    if (ccrf_uses_avx2()) splat_avx2(offsets, weights, vpp, i0, i1, v0, v1, input, inStride, scale, rows, width);
    else splat_portable(offsets, weights, vpp, i0, i1, v0, v1, input, inStride, scale, rows, width);
}

void ccrf_blur(const float *src, float *dst, const int32_t *neighbours, int64_t v0, int64_t v1, int64_t width) {
    if (ccrf_uses_avx2()) blur_avx2(src, dst, neighbours, v0, v1, width);
    else blur_portable(src, dst, neighbours, v0, v1, width);
}

void ccrf_slice(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0, int64_t i1,
                const float *rows, int64_t width, float alpha, int32_t scalarOrder,
                const float *base, const float *norm, float termWeight, float *out, int64_t outStride) {
    if (ccrf_uses_avx2())
        slice_avx2(offsets, weights, vpp, i0, i1, rows, width, alpha, scalarOrder, base, norm, termWeight, out, outStride);
    else
        slice_portable(offsets, weights, vpp, i0, i1, rows, width, alpha, scalarOrder, base, norm, termWeight, out,
                       outStride);
}

void ccrf_softmax(const float *x, int64_t stride, int32_t labels, int64_t i0, int64_t i1, float *out,
                  int64_t outStride, int64_t labelStride) {
    if (ccrf_uses_avx2()) softmax_avx2(x, stride, labels, i0, i1, out, outStride, labelStride);
    else softmax_portable(x, stride, labels, i0, i1, out, outStride, labelStride);
}

void ccrf_update(const ccrf_term *terms, int32_t count, const float *negU, int64_t width, int32_t labels, int64_t i0,
                 int64_t i1, float *out, int64_t outStride, int64_t labelStride) {
    if (ccrf_uses_avx2()) update_avx2(terms, count, negU, width, labels, i0, i1, out, outStride, labelStride);
    else update_portable(terms, count, negU, width, labels, i0, i1, out, outStride, labelStride);
}

