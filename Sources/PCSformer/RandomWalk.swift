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

    /// V · T^(2^logT) for scores `values` given pixel-major (n × channels: node k's scores at k·channels …), the
    /// nodes split over `threads` threads in each step.
    ///
    /// A channel that is zero at every node stays exactly zero (each step only sums products with it), so only the
    /// other channels are walked: upstream's V has 21 rows, of which an image's absent classes are all zero.
    public func propagate(_ values: [Float], channels: Int, nodes n: Int, edges: [Edge], threads: Int = 1) -> [Float] {
        precondition(values.count == n * channels, "RandomWalk: \(values.count) scores for \(n) nodes × \(channels) channels")
        let active = (0..<channels).filter { c in (0..<n).contains { values[$0 * channels + c] != 0 } }
        let matrix = RandomWalkTransition(nodes: n, edges: edges, beta: beta)
        // The active channels in lanes of 4, group-major: lane block g of node k at (g·n + k).
        let groups = (active.count + 3) / 4
        var current = [SIMD4<Float>](repeating: .zero, count: groups * n)
        for (a, c) in active.enumerated() { for k in 0..<n { current[(a / 4) * n + k][a % 4] = values[k * channels + c] } }
        var next = current
        let parts = max(1, min(threads, n / 256))
        for _ in 0..<(1 << logT) where groups > 0 {
            current.withUnsafeBufferPointer { v in
                next.withUnsafeMutableBufferPointer { out in
                    let (v, out) = (v.baseAddress!, out.baseAddress!)
                    let body = { (part: Int) in
                        for g in 0..<groups { matrix.multiply(v + g * n, into: out + g * n, columns: (part * n / parts)..<((part + 1) * n / parts)) }
                    }
                    if parts == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: body) }
                }
            }
            swap(&current, &next)
        }
        var result = [Float](repeating: 0, count: values.count)
        for (a, c) in active.enumerated() { for k in 0..<n { result[k * channels + c] = current[(a / 4) * n + k][a % 4] } }
        return result
    }
}
