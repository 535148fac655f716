import Foundation

/// The random walk of spec §8.6 on AffinityNet's affinities: with the symmetric affinity matrix A (A_ii = 1,
/// A_ij = A_ji = a_ij for each pair, 0 elsewhere), T = A^∘β with every column divided by its sum, and the class
/// scores V (C × n), the result is V · T^(2^logT).
///
/// Upstream squares the dense n × n matrix logT times (~2·logT·n³ flops, 360 GFLOP for a 500×375 image). Only
/// V · T^(2^logT) is needed, so this applies V ← V · T 2^logT times with T sparse (at most one entry per pair and
/// direction, plus the diagonal): the same result in exact arithmetic, ~3 orders of magnitude cheaper. Rounding
/// differs from upstream's float32 products; the argmax that follows is robust to it.
public struct RandomWalk: Sendable {
    /// Upstream's β (PCSformer and TransCAM: 14; PSA: 8).
    public var beta: Double
    /// log₂ of the walk's length (PCSformer: 7, i.e. 128 steps).
    public var logT: Int

    public init(beta: Double = 14, logT: Int = 7) {
        self.beta = beta
        self.logT = logT
    }

    /// An undirected edge i — j with affinity a (upstream lists each neighbour pair once).
    public struct Edge: Sendable {
        public var i: Int32, j: Int32, affinity: Float
        public init(_ i: Int32, _ j: Int32, _ affinity: Float) {
            self.i = i
            self.j = j
            self.affinity = affinity
        }
    }

    /// V · T^(2^logT) for scores `values` given pixel-major (n × channels: node k's scores at k·channels …).
    public func propagate(_ values: [Float], channels: Int, nodes n: Int, edges: [Edge]) -> [Float] {
        precondition(values.count == n * channels, "RandomWalk: \(values.count) scores for \(n) nodes × \(channels) channels")
        // Column j of T: the diagonal 1 and every edge touching j, each weighted a^β, divided by their sum.
        var rows = [[Int32]](repeating: [], count: n)
        var weights = [[Double]](repeating: [], count: n)
        for j in 0..<n {
            rows[j].append(Int32(j))
            weights[j].append(1)
        }
        for e in edges {
            precondition(e.i != e.j && Int(e.i) < n && Int(e.j) < n && e.i >= 0 && e.j >= 0, "RandomWalk: edge \(e.i)–\(e.j) outside 0..<\(n)")
            let w = pow(Double(e.affinity), beta)
            rows[Int(e.j)].append(e.i); weights[Int(e.j)].append(w)
            rows[Int(e.i)].append(e.j); weights[Int(e.i)].append(w)
        }
        var offsets = [Int](repeating: 0, count: n + 1)
        for j in 0..<n { offsets[j + 1] = offsets[j] + rows[j].count }
        var index = [Int32](), weight = [Float]()
        index.reserveCapacity(offsets[n])
        weight.reserveCapacity(offsets[n])
        for j in 0..<n {
            let total = weights[j].reduce(0, +)
            index += rows[j]
            weight += weights[j].map { Float($0 / total) }
        }
        var current = values, next = [Float](repeating: 0, count: values.count)
        for _ in 0..<(1 << logT) {
            current.withUnsafeBufferPointer { v in
                next.withUnsafeMutableBufferPointer { out in
                    for j in 0..<n {
                        let o = out.baseAddress! + j * channels
                        o.update(repeating: 0, count: channels)
                        for k in offsets[j]..<offsets[j + 1] {
                            let src = v.baseAddress! + Int(index[k]) * channels, w = weight[k]
                            for c in 0..<channels { o[c] += w * src[c] }
                        }
                    }
                }
            }
            swap(&current, &next)
        }
        return current
    }
}
