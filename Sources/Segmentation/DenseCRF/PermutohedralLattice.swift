import CCRF
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
    /// Vertex numbers are first-insertion order (densecrf's); locating the points, numbering them (see `insert`) and
    /// finding the neighbours run on `threads` threads (the loops are `ccrf_locate`, `ccrf_table_*`). Needs 1 ≤ d ≤ 16.
    public init(features: [Float], dimension d: Int, threads: Int = 1) {
        precondition(d >= 1 && d <= 16, "PermutohedralLattice: feature dimension must be in 1...16, got \(d)")
        precondition(features.count % d == 0,
                     "PermutohedralLattice: \(features.count) feature values are not a multiple of d = \(d)")
        let n = features.count / d, vpp = d + 1
        precondition(n < Int(Int32.max) / vpp, "PermutohedralLattice: \(n) points × \(vpp) vertices overflow Int32")
        let scale = PermutohedralLattice.elevationScale(dimension: d)
        guard let table = ccrf_table_create(Int32(d), Int64(max(16, n))) else {
            preconditionFailure("PermutohedralLattice: out of memory for the vertex table of \(n) points")
        }
        defer { ccrf_table_destroy(table) }
        // Written in full below (weights by ccrf_locate, offsets by ccrf_table_insert), so not cleared first.
        var offsets: [Int32] = parallelArray(count: n * vpp, repeating: nil, threads: threads)
        var weights: [Float] = parallelArray(count: n * vpp, repeating: nil, threads: threads)
        // Points are located in blocks (in parallel), then the block's keys are inserted in order; blocks bound the
        // scratch memory to blockSize × (d+1) keys. Several threads take bigger blocks: each block's distinct keys
        // go through the sequential merge of `insert`.
        let blockSize = max(1, min(n, threads > 1 ? min(1 << 18, (1 << 16) * threads) : 1 << 15))
        var keys: [Int32] = parallelArray(count: blockSize * vpp * d, repeating: nil, threads: threads)
        var hashes: [UInt64] = parallelArray(count: blockSize * vpp, repeating: nil, threads: threads)
        features.withUnsafeBufferPointer { feat in
            scale.withUnsafeBufferPointer { sc in
                weights.withUnsafeMutableBufferPointer { wts in
                    offsets.withUnsafeMutableBufferPointer { offs in
                        keys.withUnsafeMutableBufferPointer { k in
                            hashes.withUnsafeMutableBufferPointer { h in
                                var start = 0
                                while start < n {
                                    let count = min(blockSize, n - start), s = start
                                    parallelRanges(count, threads: threads, minimum: 2048) { r in
                                        ccrf_locate(feat.baseAddress!, Int32(d), sc.baseAddress!, Int64(s + r.lowerBound),
                                                    Int64(s + r.upperBound), k.baseAddress! + r.lowerBound * vpp * d,
                                                    wts.baseAddress!, h.baseAddress! + r.lowerBound * vpp)
                                    }
                                    PermutohedralLattice.insert(count: count, keys: k.baseAddress!, hashes: h.baseAddress!,
                                                                dimension: d, into: table,
                                                                offsets: offs.baseAddress! + start * vpp, threads: threads)
                                    start += count
                                }
                                // densecrf's SSE init processes points in groups of four and fills the last group with
                                // zero features, whose vertices it inserts (after all real ones) without splatting
                                // anything into them.
                                if n % 4 != 0 {
                                    let zero = [Float](repeating: 0, count: d)
                                    var unused = [Float](repeating: 0, count: vpp)
                                    zero.withUnsafeBufferPointer { z in
                                        unused.withUnsafeMutableBufferPointer { w in
                                            ccrf_locate(z.baseAddress!, Int32(d), sc.baseAddress!, 0, 1, k.baseAddress!,
                                                        w.baseAddress!, h.baseAddress!)
                                        }
                                    }
                                    let inserted = ccrf_table_insert(table, k.baseAddress!, h.baseAddress!, Int64(vpp), nil)
                                    precondition(inserted != 0, "PermutohedralLattice: out of memory for the vertex table")
                                }
                            }
                        }
                    }
                }
            }
        }
        let m = Int(ccrf_table_count(table))
        var neighbours: [Int32] = parallelArray(count: 2 * vpp * m, repeating: nil, threads: threads)
        neighbours.withUnsafeMutableBufferPointer { nb in
            parallelRanges(m, threads: threads, minimum: 4096) { r in
                ccrf_table_neighbours(table, Int64(r.lowerBound), Int64(r.upperBound), nb.baseAddress!)
            }
        }
        self.pointCount = n
        self.dimension = d
        self.vertexCount = m
        self.neighbours = neighbours
        entriesBefore = PermutohedralLattice.countEntries(offsets: offsets, vertexCount: m)
        self.offsets = offsets
        self.weights = weights
    }

    /// Inserts the d+1 keys of `count` points into `table` in point order, writing their vertex + 1 to `offsets`.
    ///
    /// With several threads the points split into one range per thread, each numbered in a table of its own; the
    /// ranges' tables are then merged into `table` in range order, each in its own first-insertion order, and the
    /// offsets renumbered. A key's first occurrence overall lies in the first range holding it, at that range's
    /// first occurrence, so the numbers are those of inserting every key in order (densecrf's), while only the
    /// ranges' distinct keys go through the sequential merge.
    private static func insert(count: Int, keys: UnsafePointer<Int32>, hashes: UnsafePointer<UInt64>, dimension d: Int,
                               into table: OpaquePointer, offsets: UnsafeMutablePointer<Int32>, threads: Int) {
        let vpp = d + 1
        let parts = max(1, min(threads, count / 4096))
        if parts == 1 {
            precondition(ccrf_table_insert(table, keys, hashes, Int64(count * vpp), offsets) != 0,
                         "PermutohedralLattice: out of memory for the vertex table")
            return
        }
        let ranges = (0..<parts).map { ($0 * count / parts)..<(($0 + 1) * count / parts) }
        let locals = ranges.map { r -> OpaquePointer in
            guard let local = ccrf_table_create(Int32(d), Int64(r.count)) else {
                preconditionFailure("PermutohedralLattice: out of memory for the vertex table")
            }
            return local
        }
        defer { locals.forEach { ccrf_table_destroy($0) } }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let r = ranges[p]
            precondition(ccrf_table_insert(locals[p], keys + r.lowerBound * vpp * d, hashes + r.lowerBound * vpp,
                                           Int64(r.count * vpp), offsets + r.lowerBound * vpp) != 0,
                         "PermutohedralLattice: out of memory for the vertex table")
        }
        // global[p][local vertex] = global vertex + 1.
        let global = locals.map { local in
            let distinct = Int(ccrf_table_count(local))
            return [Int32](unsafeUninitializedCapacity: distinct) { buffer, initialized in
                precondition(ccrf_table_insert(table, ccrf_table_keys(local), ccrf_table_hashes(local), Int64(distinct),
                                               buffer.baseAddress!) != 0,
                             "PermutohedralLattice: out of memory for the vertex table")
                initialized = distinct
            }
        }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            global[p].withUnsafeBufferPointer { map in
                for e in (ranges[p].lowerBound * vpp)..<(ranges[p].upperBound * vpp) {
                    offsets[e] = map[Int(offsets[e]) - 1]
                }
            }
        }
    }

    /// The elevation's scale factors s_k = √(2/3)(d+1) / √((k+1)(k+2)), k = 0…d−1, computed in double and rounded
    /// to Float as densecrf does.
    static func elevationScale(dimension d: Int) -> [Float] {
        let invStdDev = Float(sqrt(2.0 / 3.0) * Double(d + 1))
        return (0..<d).map { i in Float(1.0 / sqrt(Double((i + 2) * (i + 1))) * Double(invStdDev)) }
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
}
