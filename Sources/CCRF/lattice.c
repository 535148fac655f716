// Building the permutohedral lattice (Segmentation/DenseCRF/PermutohedralLattice.swift describes the geometry):
// locating each point in its simplex, numbering the vertices in a hash table, finding each vertex's blur
// neighbours. The contract is in include/ccrf.h. Plain C (no vector copies): the rank and rounding steps are
// branch-free scalar code, and the table probes are memory-bound.
#include "ccrf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

// MARK: Locating points

/// x rounded to the nearest integer, ties to even, as SSE's cvtps2dq in the default mode: through the 1.5·2²³ magic
/// number (exact for |x| < 2²²; the baseline target has no rounding instruction, and nearbyintf is a library call).
static inline float round_even(float x) {
    const float magic = 12582912.0f;
    return fabsf(x) < 4194304.0f ? (x + magic) - magic : nearbyintf(x);
}

void ccrf_locate(const float *features, int32_t d, const float *scale, int64_t i0, int64_t i1, int32_t *keys,
                 float *weights, uint64_t *hashes) {
    enum { MAXD = 16 };
    float elevated[MAXD + 1], rem0[MAXD + 1], bary[MAXD + 2];
    int32_t rank[MAXD + 1];
    const float dp1 = (float)(d + 1), down = 1.0f / dp1;
    for (int64_t i = i0; i < i1; i++) {
        const float *f = features + i * d;
        // Elevate: y = E f, accumulated from the last coordinate down (sm = Σ_{k ≥ j} s_k f_k).
        float sm = 0;
        for (int32_t j = d; j > 0; j--) {
            const float cf = f[j - 1] * scale[j - 1];
            elevated[j] = sm - (float)j * cf;
            sm += cf;
        }
        elevated[0] = sm;
        // Nearest remainder-0 point: y/(d+1) rounded to the nearest integer, ties to even (SSE cvtps2dq).
        float sum = 0;
        for (int32_t k = 0; k <= d; k++) {
            const float v = round_even(down * elevated[k]);
            rem0[k] = v * dp1;
            sum += v;
        }
        // Rank of each residual in decreasing order (ties: the later coordinate ranks lower).
        for (int32_t k = 0; k <= d; k++) rank[k] = 0;
        for (int32_t a = 0; a < d; a++) {
            const float da = elevated[a] - rem0[a];
            for (int32_t b = a + 1; b <= d; b++) {
                const int32_t less = da < elevated[b] - rem0[b];
                rank[a] += less;
                rank[b] += 1 - less;
            }
        }
        // Bring the point back onto the plane if the rounded coordinates do not sum to 0.
        const int32_t shift = (int32_t)sum;
        for (int32_t k = 0; k <= d; k++) {
            rank[k] += shift;
            if (rank[k] < 0) {
                rank[k] += d + 1;
                rem0[k] += dp1;
            } else if (rank[k] >= d + 1) {
                rank[k] -= d + 1;
                rem0[k] -= dp1;
            }
        }
        // Barycentric coordinates (Adams et al. p. 10).
        for (int32_t k = 0; k <= d + 1; k++) bary[k] = 0;
        for (int32_t k = 0; k <= d; k++) {
            const float v = (elevated[k] - rem0[k]) * down;
            const int32_t p = d - rank[k];
            bary[p] += v;
            bary[p + 1] -= v;
        }
        bary[0] += 1.0f + bary[d + 1];
        // Vertex r's key: the remainder-0 point plus the canonical simplex's remainder-r vertex, permuted by rank
        // (its coordinate for rank q is r where q ≤ d − r, else r − (d+1)).
        for (int32_t r = 0; r <= d; r++) {
            int32_t *key = keys + ((i - i0) * (d + 1) + r) * d;
            for (int32_t k = 0; k < d; k++) key[k] = (int32_t)rem0[k] + (rank[k] <= d - r ? r : r - (d + 1));
            weights[i * (d + 1) + r] = bary[r];
            hashes[(i - i0) * (d + 1) + r] = ccrf_key_hash(key, d);
        }
    }
}

uint64_t ccrf_key_hash(const int32_t *key, int32_t d) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int32_t k = 0; k < d; k++) {
        h = (h ^ (uint32_t)key[k]) * 0x100000001B3ull;
        h ^= h >> 29;
    }
    return h * 0xBF58476D1CE4E5B9ull;
}

// MARK: The vertex table

/// A slot: the upper half of the key's hash (so that a probe rarely reads a key it does not want) and the vertex,
/// −1 when empty.
typedef struct {
    uint32_t tag;
    int32_t vertex;
} slot;

struct ccrf_table {
    int32_t d;
    int64_t count, keyCapacity, capacity;
    int32_t *keys;       // count × d, vertex order
    uint64_t *hashes;    // per vertex, to grow without rehashing
    slot *slots;         // capacity a power of two, kept at most half full
};

static inline int64_t home(uint64_t hash, int64_t capacity) { return (int64_t)(hash >> 8) & (capacity - 1); }
static inline uint32_t tag_of(uint64_t hash) { return (uint32_t)(hash >> 32); }

static slot *empty_slots(int64_t capacity) {
    slot *s = malloc(capacity * sizeof *s);
    if (s) for (int64_t i = 0; i < capacity; i++) s[i] = (slot){0, -1};
    return s;
}

ccrf_table *ccrf_table_create(int32_t d, int64_t expected) {
    ccrf_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->d = d;
    t->capacity = 16;
    while (t->capacity < 2 * expected) t->capacity <<= 1;
    t->keyCapacity = expected > 16 ? expected : 16;
    t->slots = empty_slots(t->capacity);
    t->keys = malloc(t->keyCapacity * d * sizeof *t->keys);
    t->hashes = malloc(t->keyCapacity * sizeof *t->hashes);
    if (!t->slots || !t->keys || !t->hashes) { ccrf_table_destroy(t); return NULL; }
    return t;
}

void ccrf_table_destroy(ccrf_table *t) {
    if (!t) return;
    free(t->slots);
    free(t->keys);
    free(t->hashes);
    free(t);
}

int64_t ccrf_table_count(const ccrf_table *t) { return t->count; }

static inline int keys_equal(const int32_t *a, const int32_t *b, int32_t d) {
    for (int32_t k = 0; k < d; k++) if (a[k] != b[k]) return 0;
    return 1;
}

static int grow(ccrf_table *t) {
    const int64_t capacity = t->capacity * 2;
    slot *slots = empty_slots(capacity);
    if (!slots) return 0;
    for (int64_t v = 0; v < t->count; v++) {
        int64_t h = home(t->hashes[v], capacity);
        while (slots[h].vertex >= 0) h = (h + 1) & (capacity - 1);
        slots[h] = (slot){tag_of(t->hashes[v]), (int32_t)v};
    }
    free(t->slots);
    t->slots = slots;
    t->capacity = capacity;
    return 1;
}

int32_t ccrf_table_insert(ccrf_table *t, const int32_t *keys, const uint64_t *hashes, int64_t count,
                          int32_t *offsets) {
    const int32_t d = t->d;
    for (int64_t e = 0; e < count; e++) {
        const int32_t *key = keys + e * d;
        if (2 * (t->count + 1) > t->capacity && !grow(t)) return 0;
        const int64_t mask = t->capacity - 1;
        const uint32_t tag = tag_of(hashes[e]);
        int64_t h = home(hashes[e], t->capacity);
        int32_t v;
        for (;;) {
            const slot s = t->slots[h];
            v = s.vertex;
            if (v < 0) {
                if (t->count == t->keyCapacity) {
                    const int64_t capacity = t->keyCapacity * 2;
                    int32_t *k = realloc(t->keys, capacity * d * sizeof *k);
                    if (!k) return 0;
                    t->keys = k;
                    uint64_t *hs = realloc(t->hashes, capacity * sizeof *hs);
                    if (!hs) return 0;
                    t->hashes = hs;
                    t->keyCapacity = capacity;
                }
                v = (int32_t)t->count++;
                t->slots[h] = (slot){tag, v};
                memcpy(t->keys + (int64_t)v * d, key, d * sizeof *key);
                t->hashes[v] = hashes[e];
                break;
            }
            if (s.tag == tag && keys_equal(t->keys + (int64_t)v * d, key, d)) break;
            h = (h + 1) & mask;
        }
        if (offsets) offsets[e] = v + 1;
    }
    return 1;
}

static int32_t find(const ccrf_table *t, const int32_t *key, uint64_t hash) {
    const int64_t mask = t->capacity - 1;
    const uint32_t tag = tag_of(hash);
    int64_t h = home(hash, t->capacity);
    for (;;) {
        const slot s = t->slots[h];
        if (s.vertex < 0) return -1;
        if (s.tag == tag && keys_equal(t->keys + (int64_t)s.vertex * t->d, key, t->d)) return s.vertex;
        h = (h + 1) & mask;
    }
}

void ccrf_table_neighbours(const ccrf_table *t, int64_t v0, int64_t v1, int32_t *neighbours) {
    enum { MAXD = 16 };
    const int32_t d = t->d;
    const int64_t m = t->count;
    // A vertex's 2(d+1) neighbour keys are hashed and their slots requested first, then looked up, so that the
    // lookups' cache misses overlap instead of following one another.
    int32_t keys[2 * (MAXD + 1)][MAXD];
    uint64_t hashes[2 * (MAXD + 1)];
    for (int64_t v = v0; v < v1; v++) {
        const int32_t *key = t->keys + v * d;
        for (int32_t j = 0; j <= d; j++) {
            // x ∓ u_j: coordinate j moves by ±d, every other stored coordinate by ∓1.
            int32_t *below = keys[2 * j], *above = keys[2 * j + 1];
            for (int32_t k = 0; k < d; k++) {
                below[k] = key[k] - 1;
                above[k] = key[k] + 1;
            }
            if (j < d) {
                below[j] = key[j] + d;
                above[j] = key[j] - d;
            }
            hashes[2 * j] = ccrf_key_hash(below, d);
            hashes[2 * j + 1] = ccrf_key_hash(above, d);
            __builtin_prefetch(t->slots + home(hashes[2 * j], t->capacity));
            __builtin_prefetch(t->slots + home(hashes[2 * j + 1], t->capacity));
        }
        for (int32_t j = 0; j <= d; j++) {
            int32_t *out = neighbours + 2 * (j * m + v);
            out[0] = find(t, keys[2 * j], hashes[2 * j]) + 1;
            out[1] = find(t, keys[2 * j + 1], hashes[2 * j + 1]) + 1;
        }
    }
}

const int32_t *ccrf_table_keys(const ccrf_table *t) { return t->keys; }

const uint64_t *ccrf_table_hashes(const ccrf_table *t) { return t->hashes; }
