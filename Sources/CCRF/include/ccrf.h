// The dense CRF's inner loops (Segmentation/DenseCRF): the permutohedral lattice's splat, blur and slice and the
// mean-field update with its softmax (ccrf.c), and building the lattice (lattice.c). In C because Swift cannot
// compile one function for AVX2: each kernel entry point checks the CPU once and runs a copy compiled for AVX2 (8
// floats per instruction) where there is one, else the same code for the baseline (SSE2). Both copies perform, per
// float lane, the same IEEE operations in the same order, with no fused multiply-add (the files are compiled with
// contraction off), so their results are identical bit for bit and equal to densecrf's (the order is described in
// LatticeFilter.swift and, for the softmax, in ccrf.c).
//
// Rows: a lattice vertex's or a pixel's values are `width` consecutive floats, width a multiple of 4. Row 0 of a
// vertex buffer is the absent vertex (all zeros); vertex v is row v + 1.
#pragma once
#include <stdint.h>

/// Splat of points [i0, i1) into the rows of vertices [v0, v1) only (a thread's share: disjoint vertex ranges can
/// run at once): those rows are set to Σ w · x over the points' entries (offsets[i·vpp + r] = vertex + 1, weight
/// weights[i·vpp + r]) in increasing point order, summed from 0 — densecrf's scatter order. x is
/// input[i·inStride + k], or with `scale` the product input[i·inStride + k] · scale[i] (the CRF's Q·D^{−½}, rounded to
/// float before the weight multiplies it, as densecrf stores it).
void ccrf_splat(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0, int64_t i1, int64_t v0,
                int64_t v1, const float *input, int64_t inStride, const float *scale, float *rows, int64_t width);

/// One blur axis, vertices [v0, v1): dst[v+1] = src[v+1] + ½ (src[neighbours[2v]] + src[neighbours[2v+1]]).
void ccrf_blur(const float *src, float *dst, const int32_t *neighbours, int64_t v0, int64_t v1, int64_t width);

/// Slice, points [i0, i1): s = Σ_r (w_r·α)·rows[offsets[i·vpp + r]] summed from 0 over r in order, or with
/// `scalarOrder` Σ_r (w_r·rows[…])·α (densecrf's path for ≤ 2 channels). With `norm` NULL out[i·outStride + k] = s_k;
/// else out[i·outStride + k] = base[i·outStride + k] + termWeight·(s_k·norm[i]) (out may equal base).
void ccrf_slice(const int32_t *offsets, const float *weights, int32_t vpp, int64_t i0, int64_t i1,
                const float *rows, int64_t width, float alpha, int32_t scalarOrder,
                const float *base, const float *norm, float termWeight, float *out, int64_t outStride);

/// Softmax, points [i0, i1): out[i·outStride + k·labelStride] = softmax(x[i·stride ..< i·stride + labels])_k with
/// Eigen's SSE2 exp and summation order (see ccrf.c). (outStride, labelStride) = (W, 1) writes rows, (1, N) planes.
void ccrf_softmax(const float *x, int64_t stride, int32_t labels, int64_t i0, int64_t i1, float *out,
                  int64_t outStride, int64_t labelStride);

/// One pairwise term of `ccrf_update`: its lattice's slice (`offsets`, `weights`, vpp = d + 1, α) of the blurred
/// vertex rows `rows` (row 0 the absent vertex), D^{−½} per point and the Potts weight.
typedef struct {
    const int32_t *offsets;
    const float *weights;
    int32_t vpp;
    const float *rows;
    float alpha;
    const float *norm;
    float weight;
} ccrf_term;

/// The mean-field update with every term's slice fused, points [i0, i1): a = −U[i] + Σ_t w_t·(slice_t(i)·norm_t[i])
/// added term by term in order, then out[i·outStride + k·labelStride] = softmax(a)_k for k < labels. −U has rows of `width`
/// floats, as the terms' vertex rows. The slices multiply as `ccrf_slice` does ((w·v)·α for ≤ 2 labels).
void ccrf_update(const ccrf_term *terms, int32_t count, const float *negU, int64_t width, int32_t labels, int64_t i0,
                 int64_t i1, float *out, int64_t outStride, int64_t labelStride);

/// Tests only: 1 forces the baseline copies (what a CPU without AVX2 runs), 0 lets the CPU decide.
void ccrf_use_portable(int32_t on);
/// 1 when the AVX2 copies run.
int32_t ccrf_uses_avx2(void);

// MARK: Building the lattice (lattice.c)

/// Locates points [i0, i1) of `features` (N × d, 1 ≤ d ≤ 16) in the permutohedral lattice, as densecrf's SSE `init`
/// computes each lane, with the elevation scale factors `scale` (d floats): writes for each point its d+1 vertex keys
/// (d Int32 each, remainder order) at keys[((i − i0)(d+1) + r)·d], their hashes at hashes[(i − i0)(d+1) + r] and
/// their barycentric weights at weights[i(d+1) + r].
void ccrf_locate(const float *features, int32_t d, const float *scale, int64_t i0, int64_t i1, int32_t *keys,
                 float *weights, uint64_t *hashes);

/// The hash of a d-coordinate key (any function would do: vertices are numbered by first insertion).
uint64_t ccrf_key_hash(const int32_t *key, int32_t d);

/// A hash table numbering lattice keys in first-insertion order.
typedef struct ccrf_table ccrf_table;

/// A table for keys of d Int32, sized for `expected` keys (it grows). NULL when out of memory.
ccrf_table *ccrf_table_create(int32_t d, int64_t expected);
void ccrf_table_destroy(ccrf_table *table);
/// The number of keys inserted so far.
int64_t ccrf_table_count(const ccrf_table *table);
/// Inserts `count` keys (d Int32 each, with their `ccrf_key_hash`) in order; for each, writes its vertex number + 1
/// to offsets[e] (when `offsets` is not NULL). Returns 0 when out of memory.
int32_t ccrf_table_insert(ccrf_table *table, const int32_t *keys, const uint64_t *hashes, int64_t count,
                          int32_t *offsets);
/// The keys in vertex order (count × d Int32) and their hashes; valid until the next insertion.
const int32_t *ccrf_table_keys(const ccrf_table *table);
const uint64_t *ccrf_table_hashes(const ccrf_table *table);
/// For vertices [v0, v1) and each axis j = 0…d, the vertices x − u_j and x + u_j (+1-shifted, 0 = absent) at
/// neighbours[2(j·M + v)] and neighbours[2(j·M + v) + 1], M the table's count. Lookups only: ranges may run at once.
void ccrf_table_neighbours(const ccrf_table *table, int64_t v0, int64_t v1, int32_t *neighbours);
