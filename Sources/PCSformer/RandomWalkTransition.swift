import Foundation

/// T of `RandomWalk` by columns (compressed sparse columns): column j holds the diagonal 1 and a^β for every
/// edge touching j, each divided by the column's sum, so that (v · T)_j = Σ_k weight_k · v_{row_k}.
struct RandomWalkTransition {
    var offsets: [Int]
    var rows: [Int32]
    var weights: [Float]

    init(nodes n: Int, edges: [RandomWalk.Edge], beta: Double) {
        var degree = [Int](repeating: 1, count: n)
        for e in edges {
            precondition(e.i != e.j && Int(e.i) < n && Int(e.j) < n && e.i >= 0 && e.j >= 0, "RandomWalk: edge \(e.i)–\(e.j) outside 0..<\(n)")
            degree[Int(e.i)] += 1
            degree[Int(e.j)] += 1
        }
        offsets = [Int](repeating: 0, count: n + 1)
        for j in 0..<n { offsets[j + 1] = offsets[j] + degree[j] }
        rows = [Int32](repeating: 0, count: offsets[n])
        var raw = [Double](repeating: 0, count: offsets[n])
        var fill = Array(offsets.dropLast())
        for j in 0..<n {
            rows[fill[j]] = Int32(j)
            raw[fill[j]] = 1
            fill[j] += 1
        }
        for e in edges {
            // Double, as the sums of up to 69 terms and a^14 of small affinities need the range and precision.
            let w = pow(Double(e.affinity), beta)
            let (i, j) = (Int(e.i), Int(e.j))
            rows[fill[j]] = e.i; raw[fill[j]] = w; fill[j] += 1
            rows[fill[i]] = e.j; raw[fill[i]] = w; fill[i] += 1
        }
        weights = [Float](repeating: 0, count: offsets[n])
        for j in 0..<n {
            let total = raw[offsets[j]..<offsets[j + 1]].reduce(0, +)
            for k in offsets[j]..<offsets[j + 1] { weights[k] = Float(raw[k] / total) }
        }
    }

    /// out_j = Σ_k weight_k · v_{row_k} for the columns j in `columns`, four channels at a time.
    func multiply(_ v: UnsafePointer<SIMD4<Float>>, into out: UnsafeMutablePointer<SIMD4<Float>>, columns: Range<Int>) {
        offsets.withUnsafeBufferPointer { offsets in
            rows.withUnsafeBufferPointer { rows in
                weights.withUnsafeBufferPointer { weights in
                    for j in columns {
                        var sum = SIMD4<Float>.zero
                        for k in offsets[j]..<offsets[j + 1] { sum += weights[k] * v[Int(rows[k])] }
                        out[j] = sum
                    }
                }
            }
        }
    }
}
