import Dispatch
import Foundation

/// Gaussian filtering in a d-dimensional feature space with the permutohedral lattice (Adams, Baek & Davis 2010),
/// computed as Krähenbühl's densecrf computes it (`permutohedral.cpp`, the SSE build pydensecrf gets on x86-64).
///
/// For N points with features f ∈ ℝᵈ and values v (N × C, pixel-major), `filter` returns an approximation of
/// `out_i = Σ_j exp(−½‖f_i − f_j‖²) v_j` (the point itself included), in three steps:
///
/// 1. **Splat.** Each feature is *elevated* onto the hyperplane H = {x ∈ ℝᵈ⁺¹ : Σx = 0} with
///    `E f`, whose diagonal scale factors are s_k = √(2/3)(d+1) / √((k+1)(k+2)), k = 0…d−1 (the √(2/3)(d+1)
///    makes the blur below a Gaussian of unit standard deviation). The enclosing simplex of the lattice
///    A*_d = {x ∈ H ∩ (d+1)ℤᵈ⁺¹ shifted by the canonical simplex} is found by rounding each coordinate to the
///    nearest multiple of d+1 (the remainder-0 point), ranking the residuals and correcting the ranks so that the
///    point lies on H; its d+1 vertices (keys: the first d integer coordinates) get the barycentric weights, and
///    `values[vertex] += weight · v_i`.
/// 2. **Blur.** Along each of the d+1 lattice axes j = 0…d in turn, `new[x] = old[x] + ½(old[x − u_j] + old[x + u_j])`,
///    where u_j moves coordinate j by ∓d and every other coordinate by ±1; vertices that were never created count as 0.
/// 3. **Slice.** `out_i = α Σ_vertices weight · values[vertex]`, α = 1/(1 + 2⁻ᵈ).
///
/// Vertices are numbered in first-insertion order (pixel order, then the d+1 vertices of each pixel in remainder
/// order), as densecrf's hash table numbers them. The order does not change the filter's mathematics, but it fixes
/// the order in which contributions are summed, and with it `filter` reproduces densecrf's sums term by term (see
/// `LatticeFilter.swift`). densecrf's SSE `init` also pads N to a multiple of 4 with all-zero features and inserts
/// their vertices after the real ones; they carry no value but take part in the blur, so `init` inserts them too.
///
/// **Memory.** Per point, d+1 vertex offsets (Int32) and weights (Float): 8(d+1) bytes; per vertex, 2(d+1)
/// neighbour indices (Int32) and an entry count. The hash table and keys exist only while building. A 1000 × 750
/// image's bilateral lattice (d = 5) takes 36 MB plus 52 bytes per vertex.
public struct PermutohedralLattice: Sendable {
    /// N, the number of points (pixels).
    public let pointCount: Int
    /// d, the feature dimension.
    public let dimension: Int
    /// M, the number of lattice vertices (including those of densecrf's zero-feature padding, see above).
    public let vertexCount: Int

    /// For point i and remainder r, `offsets[i(d+1) + r]` is its vertex + 1 (row index into the value buffers).
    let offsets: [Int32]
    /// The matching barycentric weights; the d+1 weights of a point sum to 1.
    let weights: [Float]
    /// Blur neighbours, +1-shifted (0 = no such vertex): for axis j and vertex v, `neighbours[2(jM + v)]` is
    /// x − u_j and `neighbours[2(jM + v) + 1]` is x + u_j.
    let neighbours: [Int32]
    /// `entriesBefore[v]`: how many (point, vertex) entries belong to vertices below v (M + 1 values), so that the
    /// splat can split the vertices into ranges of equal work.
    let entriesBefore: [Int32]

    /// Builds the lattice for `features` (N × d, point-major: point i's features are `features[i*d ..< (i+1)*d]`).
    /// The hash insertion is sequential (vertex numbers are first-insertion order); elevation and neighbour lookup
    /// run on `threads` threads. Needs 1 ≤ d ≤ 16.
    public init(features: [Float], dimension d: Int, threads: Int = 1) {
        precondition(d >= 1 && d <= 16, "PermutohedralLattice: feature dimension must be in 1...16, got \(d)")
        precondition(features.count % d == 0,
                     "PermutohedralLattice: \(features.count) feature values are not a multiple of d = \(d)")
        let n = features.count / d
        precondition(n < Int(Int32.max) / (d + 1), "PermutohedralLattice: \(n) points × \(d + 1) vertices overflow Int32")
        let vertsPerPoint = d + 1
        let geometry = Geometry(dimension: d)

        var offsets = [Int32](repeating: 0, count: n * vertsPerPoint)
        var weights = [Float](repeating: 0, count: n * vertsPerPoint)
        let table = VertexTable(keySize: d, expected: max(16, n))

        // Elevation, rounding and ranking are independent per point: compute keys and weights for a block of
        // points in parallel, then insert the block's keys sequentially (first-insertion order). Blocks bound the
        // scratch memory to blockSize × (d+1) × d Int32.
        let blockSize = 1 << 15
        var blockKeys = [Int32](repeating: 0, count: blockSize * vertsPerPoint * d)
        var blockHashes = [UInt64](repeating: 0, count: blockSize * vertsPerPoint)
        features.withUnsafeBufferPointer { feat in
            weights.withUnsafeMutableBufferPointer { wts in
                offsets.withUnsafeMutableBufferPointer { offs in
                    blockKeys.withUnsafeMutableBufferPointer { keys in
                        blockHashes.withUnsafeMutableBufferPointer { hashes in
                            var start = 0
                            while start < n {
                                let count = min(blockSize, n - start)
                                let s = start
                                parallelRanges(count, threads: threads, minimum: 2048) { range in
                                    let scratch = geometry.makeScratch()
                                    defer { scratch.deallocate() }
                                    for b in range {
                                        let i = s + b
                                        geometry.locate(feature: feat.baseAddress! + i * d, scratch: scratch,
                                                        keys: keys.baseAddress! + b * vertsPerPoint * d,
                                                        weights: wts.baseAddress! + i * vertsPerPoint)
                                        for r in 0..<vertsPerPoint {
                                            hashes[b * vertsPerPoint + r] =
                                                VertexTable.hash(keys.baseAddress! + (b * vertsPerPoint + r) * d, d)
                                        }
                                    }
                                }
                                for e in 0..<(count * vertsPerPoint) {
                                    offs[start * vertsPerPoint + e] =
                                        table.findOrInsert(keys.baseAddress! + e * d, hash: hashes[e]) + 1
                                }
                                start += count
                            }
                        }
                    }
                }
            }
        }
        // densecrf's SSE init processes points in groups of four and fills the last group with zero features,
        // whose vertices it inserts (after all real ones) without splatting anything into them.
        if n % 4 != 0 {
            let scratch = geometry.makeScratch()
            defer { scratch.deallocate() }
            var key = [Int32](repeating: 0, count: vertsPerPoint * d)
            var unusedWeights = [Float](repeating: 0, count: vertsPerPoint)
            let zero = [Float](repeating: 0, count: d)
            zero.withUnsafeBufferPointer { z in
                key.withUnsafeMutableBufferPointer { k in
                    unusedWeights.withUnsafeMutableBufferPointer { w in
                        geometry.locate(feature: z.baseAddress!, scratch: scratch, keys: k.baseAddress!, weights: w.baseAddress!)
                        for r in 0..<vertsPerPoint {
                            let p = k.baseAddress! + r * d
                            _ = table.findOrInsert(p, hash: VertexTable.hash(p, d))
                        }
                    }
                }
            }
        }
        let m = table.count
        self.pointCount = n
        self.dimension = d
        self.vertexCount = m
        self.neighbours = PermutohedralLattice.findNeighbours(table: table, vertexCount: m, dimension: d, threads: threads)
        entriesBefore = PermutohedralLattice.countEntries(offsets: offsets, vertexCount: m)
        self.offsets = offsets
        self.weights = weights
    }

    /// Prefix sums of the number of points each vertex takes part in.
    private static func countEntries(offsets: [Int32], vertexCount m: Int) -> [Int32] {
        var counts = [Int32](repeating: 0, count: m + 1)
        counts.withUnsafeMutableBufferPointer { c in
            offsets.withUnsafeBufferPointer { o in
                // offsets are vertex + 1: count into c[v + 1]; the prefix sums make c[v] the entries below v.
                for e in 0..<o.count { c[Int(o[e])] += 1 }
                for v in 0..<m { c[v + 1] += c[v] }
            }
        }
        return counts
    }

    /// For each axis j and vertex x, the vertices x ∓ u_j: coordinate j moves by ±d and every other of the d stored
    /// coordinates by ∓1 (the (d+1)-th coordinate is implied by Σx = 0). Lookups only, so the vertices split over threads.
    private static func findNeighbours(table: VertexTable, vertexCount m: Int, dimension d: Int, threads: Int) -> [Int32] {
        var result = [Int32](repeating: 0, count: 2 * (d + 1) * m)
        result.withUnsafeMutableBufferPointer { out in
          table.withKeys { allKeys in
            parallelRanges(m, threads: threads, minimum: 4096) { range in
                var n1 = [Int32](repeating: 0, count: d)
                var n2 = [Int32](repeating: 0, count: d)
                n1.withUnsafeMutableBufferPointer { a in
                    n2.withUnsafeMutableBufferPointer { b in
                        for v in range {
                            let key = allKeys + v * d
                            for j in 0...d {
                                for k in 0..<d {
                                    a[k] = key[k] - 1
                                    b[k] = key[k] + 1
                                }
                                if j < d {
                                    a[j] = key[j] + Int32(d)
                                    b[j] = key[j] - Int32(d)
                                }
                                let e = 2 * (j * m + v)
                                out[e] = table.find(a.baseAddress!, hash: VertexTable.hash(a.baseAddress!, d)) + 1
                                out[e + 1] = table.find(b.baseAddress!, hash: VertexTable.hash(b.baseAddress!, d)) + 1
                            }
                        }
                    }
                }
            }
          }
        }
        return result
    }
}

/// Elevation, rounding, ranking and barycentric weights of one feature vector (densecrf's SSE `init`, one lane).
struct Geometry: Sendable {
    let d: Int
    /// s_k = √(2/3)(d+1) / √((k+1)(k+2)), rounded to Float as densecrf does (computed in double).
    let scale: [Float]
    /// canonical[r(d+1) + i]: the i-th coordinate of the remainder-r vertex of the canonical simplex.
    let canonical: [Int32]

    init(dimension d: Int) {
        self.d = d
        let invStdDev = Float(sqrt(2.0 / 3.0) * Double(d + 1))
        scale = (0..<d).map { i in Float(1.0 / sqrt(Double((i + 2) * (i + 1))) * Double(invStdDev)) }
        var c = [Int32](repeating: 0, count: (d + 1) * (d + 1))
        for r in 0...d {
            for j in 0...d { c[r * (d + 1) + j] = j <= d - r ? Int32(r) : Int32(r - (d + 1)) }
        }
        canonical = c
    }

    /// Per-thread working memory of `locate` (raw pointers: array accesses in this loop cost bounds and uniqueness
    /// checks that dominated the build). Call `deallocate()` when done.
    struct Scratch {
        let elevated: UnsafeMutablePointer<Float>
        let rem0: UnsafeMutablePointer<Float>
        let bary: UnsafeMutablePointer<Float>
        let rank: UnsafeMutablePointer<Int32>
        let scale: UnsafeMutablePointer<Float>
        let canonical: UnsafeMutablePointer<Int32>
        init(dimension d: Int) {
            elevated = .allocate(capacity: d + 1); rem0 = .allocate(capacity: d + 1); bary = .allocate(capacity: d + 2)
            rank = .allocate(capacity: d + 1)
            scale = .allocate(capacity: d); canonical = .allocate(capacity: (d + 1) * (d + 1))
        }
        func deallocate() {
            elevated.deallocate(); rem0.deallocate(); bary.deallocate(); rank.deallocate(); scale.deallocate()
            canonical.deallocate()
        }
    }

    func makeScratch() -> Scratch {
        let s = Scratch(dimension: d)
        for i in 0..<d { s.scale[i] = scale[i] }
        for i in 0..<canonical.count { s.canonical[i] = canonical[i] }
        return s
    }

    /// Writes the d+1 vertex keys (each d Int32, remainder order) and barycentric weights of `feature`.
    @inline(__always)
    func locate(feature f: UnsafePointer<Float>, scratch s: Scratch, keys: UnsafeMutablePointer<Int32>,
                weights: UnsafeMutablePointer<Float>) {
        let dp1 = Float(d + 1)
        let down: Float = 1 / dp1
        // Elevate: y = E f, accumulated from the last coordinate down (sm = Σ_{k ≥ j} s_k f_k).
        var sm: Float = 0
        var j = d
        while j > 0 {
            let cf = f[j - 1] * s.scale[j - 1]
            s.elevated[j] = sm - Float(j) * cf
            sm += cf
            j -= 1
        }
        s.elevated[0] = sm
        // Nearest remainder-0 point: round y/(d+1) to the nearest integer, ties to even (SSE cvtps2dq).
        var sum: Float = 0
        for i in 0...d {
            let v = (down * s.elevated[i]).rounded(.toNearestOrEven)
            s.rem0[i] = v * dp1
            sum += v
        }
        // Rank of each residual in decreasing order (ties: the later coordinate ranks lower).
        for i in 0...d { s.rank[i] = 0 }
        for i in 0..<d {
            let di = s.elevated[i] - s.rem0[i]
            for k in (i + 1)...d {
                if di < s.elevated[k] - s.rem0[k] { s.rank[i] += 1 } else { s.rank[k] += 1 }
            }
        }
        // Bring the point back onto the plane if the rounded coordinates do not sum to 0.
        let shift = Int32(sum)
        for i in 0...d {
            s.rank[i] += shift
            if s.rank[i] < 0 {
                s.rank[i] += Int32(d + 1); s.rem0[i] += dp1
            } else if s.rank[i] >= Int32(d + 1) {
                s.rank[i] -= Int32(d + 1); s.rem0[i] -= dp1
            }
        }
        // Barycentric coordinates (Adams et al. p. 10).
        for i in 0...(d + 1) { s.bary[i] = 0 }
        for i in 0...d {
            let v = (s.elevated[i] - s.rem0[i]) * down
            let p = d - Int(s.rank[i])
            s.bary[p] += v
            s.bary[p + 1] -= v
        }
        s.bary[0] += 1 + s.bary[d + 1]
        for r in 0...d {
            let key = keys + r * d
            for i in 0..<d { key[i] = Int32(s.rem0[i]) + s.canonical[r * (d + 1) + Int(s.rank[i])] }
            weights[r] = s.bary[r]
        }
    }
}

/// An open-addressing hash table of lattice keys (d Int32 coordinates) numbering them in insertion order. Raw storage
/// (a class, so the neighbour search can share it read-only across threads).
final class VertexTable: @unchecked Sendable {
    let keySize: Int
    private(set) var count = 0
    private var keys: UnsafeMutablePointer<Int32>
    private var keyCapacity: Int
    private var slots: UnsafeMutablePointer<Int32>      // vertex index or −1
    private var capacity: Int

    init(keySize: Int, expected: Int) {
        self.keySize = keySize
        capacity = 16
        while capacity < 2 * expected { capacity <<= 1 }
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: -1, count: capacity)
        keyCapacity = max(16, expected)
        keys = .allocate(capacity: keyCapacity * keySize)
    }

    deinit {
        slots.deallocate()
        keys.deallocate()
    }

    @inline(__always)
    static func hash(_ k: UnsafePointer<Int32>, _ n: Int) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<n {
            h = (h ^ UInt64(UInt32(bitPattern: k[i]))) &* 0x100_0000_01B3
            h ^= h >> 29
        }
        return h &* 0xBF58_476D_1CE4_E5B9
    }

    /// Calls `body` with the flat key array (vertex v's key at `v * keySize`).
    func withKeys<R>(_ body: (UnsafePointer<Int32>) -> R) -> R { body(keys) }

    @inline(__always)
    private func matches(_ v: Int, _ k: UnsafePointer<Int32>) -> Bool {
        let base = keys + v * keySize
        for i in 0..<keySize where base[i] != k[i] { return false }
        return true
    }

    /// The vertex with key `k`, or −1.
    func find(_ k: UnsafePointer<Int32>, hash: UInt64) -> Int32 {
        let mask = capacity - 1
        var h = Int(truncatingIfNeeded: hash >> 16) & mask
        while true {
            let e = slots[h]
            if e < 0 { return -1 }
            if matches(Int(e), k) { return e }
            h = (h + 1) & mask
        }
    }

    /// The vertex with key `k`, inserting it (as number `count`) if new.
    func findOrInsert(_ k: UnsafePointer<Int32>, hash: UInt64) -> Int32 {
        if 2 * (count + 1) > capacity { grow() }
        let mask = capacity - 1
        var h = Int(truncatingIfNeeded: hash >> 16) & mask
        while true {
            let e = slots[h]
            if e < 0 {
                if count == keyCapacity {
                    let bigger = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * keyCapacity * keySize)
                    bigger.update(from: keys, count: count * keySize)
                    keys.deallocate()
                    keys = bigger
                    keyCapacity *= 2
                }
                let v = Int32(count)
                slots[h] = v
                (keys + count * keySize).update(from: k, count: keySize)
                count += 1
                return v
            }
            if matches(Int(e), k) { return e }
            h = (h + 1) & mask
        }
    }

    private func grow() {
        slots.deallocate()
        capacity *= 2
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: -1, count: capacity)
        let mask = capacity - 1
        for v in 0..<count {
            var h = Int(truncatingIfNeeded: VertexTable.hash(keys + v * keySize, keySize) >> 16) & mask
            while slots[h] >= 0 { h = (h + 1) & mask }
            slots[h] = Int32(v)
        }
    }
}
