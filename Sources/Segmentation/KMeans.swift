import Foundation
import NN

/// What `KMeans.fit` returns: the kept run (lowest inertia over the restarts).
public struct KMeansResult: Equatable, Sendable {
    /// The cluster of each sample, in `0 ..< k`, in sample order.
    public var labels: [Int]
    /// The centres, k × columns row-major, in the coordinates of the input data.
    public var centers: [Float]
    /// Σᵢ ‖xᵢ − c_{labelᵢ}‖² over the input data and the returned centres, each term computed exactly in Double.
    public var inertia: Double
    /// Lloyd iterations the kept run made (scikit-learn's `n_iter_`).
    public var iterations: Int
}

/// Lloyd's k-means with greedy k-means++ seeding, as scikit-learn 1.4's `KMeans(algorithm="lloyd")` does it
/// (spec §6.2: the SP stage clusters each class's features with k = 10).
///
/// One run, on data X (n × d, float32) first centred by its column means as scikit-learn does:
/// 1. **Seeding** (`_kmeans_plusplus`): c₁ = a uniformly drawn sample; then for each further centre, draw
///    L = 2 + ⌊ln k⌋ candidates with probability D(x)² / Σ D², where D(x) is the distance to the closest centre
///    so far (inverse-CDF search over the running sum), and keep the candidate minimising the potential
///    Σᵢ min(D(xᵢ)², ‖xᵢ − cand‖²).
/// 2. **Lloyd iterations** (`_kmeans_single_lloyd`): E-step lᵢ = argmin_j ‖xᵢ − c_j‖² (lowest j on ties);
///    M-step c_j = mean of {xᵢ : lᵢ = j}, after relocating every empty cluster to one of the samples farthest
///    from their own (old) centre; stop when the labels equal the previous iteration's (strict convergence) or
///    when the centre shift Σ_j ‖c_j⁽ⁿᵉʷ⁾ − c_j⁽ᵒˡᵈ⁾‖² ≤ tol_abs, where
///    tol_abs = `tolerance` · (1/d) Σ_f Var(X[:, f]) (scikit-learn's `_tolerance`), or after `maxIterations`.
///    Unless strictly converged, a final E-step makes the labels match the final centres.
///
/// With `restarts` > 1 the run with the lowest inertia is kept; as scikit-learn, a later run replaces the best
/// only if its inertia is lower *and* its partition differs (not a mere relabelling). Restart r draws from
/// `SeededRandom(seed: seed).derived(r)`, so each class's result depends only on its own seed, never on which
/// rank or thread computes it. Differences from scikit-learn: a different random stream (the draws follow the same
/// algorithm); exact (not float32 fast-form) distance comparisons, which make the labels the true argmin and
/// independent of BLAS blocking and thread count; centre sums in Double (scikit-learn: float32); with several empty
/// clusters, the farthest sample goes to the lowest empty id (scikit-learn's `argpartition` leaves that order open).
/// From the same initial centres the iterations match scikit-learn's (see KMeansTests).
public struct KMeans: Sendable {
    public var k: Int
    public var maxIterations: Int
    /// Relative tolerance, multiplied by the mean per-feature variance of the data (see `absoluteTolerance`).
    public var tolerance: Double
    /// Independent k-means++ initialisations (scikit-learn's `n_init`; its 1.4 default "auto" means 1).
    public var restarts: Int
    public var seed: UInt64

    public init(k: Int, maxIterations: Int = 300, tolerance: Double = 1e-4, restarts: Int = 1, seed: UInt64) {
        precondition(k >= 1, "KMeans: k must be at least 1, got \(k)")
        precondition(maxIterations >= 1, "KMeans: maxIterations must be at least 1, got \(maxIterations)")
        precondition(tolerance >= 0, "KMeans: tolerance must be non-negative, got \(tolerance)")
        precondition(restarts >= 1, "KMeans: restarts must be at least 1, got \(restarts)")
        (self.k, self.maxIterations, self.tolerance, self.restarts, self.seed) = (k, maxIterations, tolerance, restarts, seed)
    }

    /// The random stream of restart `r`: `SeededRandom(seed: seed).derived(r)`.
    public func randomStream(restart r: Int) -> SeededRandom { SeededRandom(seed: seed).derived(UInt64(r)) }

    /// tol_abs = `tolerance` · (1/d) Σ_f (1/n) Σᵢ (X[i, f] − μ_f)², the population variance (numpy's `np.var`)
    /// computed in Double with two passes; 0 when `tolerance` is 0, as scikit-learn.
    public func absoluteTolerance(data: [Float], rows: Int, columns: Int) -> Double {
        precondition(data.count == rows * columns && rows >= 1 && columns >= 1,
                     "KMeans.absoluteTolerance: \(data.count) values for shape \(rows) × \(columns)")
        if tolerance == 0 { return 0 }
        let mean = Self.columnMeans(data, rows: rows, columns: columns)
        var variance = [Double](repeating: 0, count: columns)
        for i in 0..<rows {
            for f in 0..<columns { let t = Double(data[i * columns + f]) - mean[f]; variance[f] += t * t }
        }
        return tolerance * variance.reduce(0, +) / Double(rows) / Double(columns)
    }

    /// Clusters the rows of `data` (rows × columns, row-major). Deterministic for a given `seed`.
    ///
    /// With `initialCenters` (k × columns) Lloyd starts from them, once, instead of from k-means++ restarts
    /// (scikit-learn's `init=ndarray`, for which it also sets `n_init = 1`).
    public func fit(_ data: [Float], rows: Int, columns: Int, initialCenters: [Float]? = nil) -> KMeansResult {
        precondition(rows >= 1 && columns >= 1 && data.count == rows * columns,
                     "KMeans.fit: \(data.count) values for shape \(rows) × \(columns)")
        precondition(rows >= k, "KMeans.fit: \(rows) samples (shape \(rows) × \(columns)) for k = \(k) clusters")
        precondition(initialCenters == nil || initialCenters!.count == k * columns,
                     "KMeans.fit: initial centres hold \(initialCenters!.count) values, expected \(k) × \(columns)")
        let tolAbs = absoluteTolerance(data: data, rows: rows, columns: columns)
        // Centring (as scikit-learn's `X -= X_mean`) shrinks ‖x‖ and ‖c‖, hence the fast form's rounding.
        let mean = Self.columnMeans(data, rows: rows, columns: columns).map { Float($0) }
        var centred = data
        for i in 0..<rows { for f in 0..<columns { centred[i * columns + f] -= mean[f] } }
        let points = KMeansPoints(centred, rows: rows, columns: columns)

        var best: KMeansResult?
        for r in 0..<(initialCenters == nil ? restarts : 1) {
            let initial: [Float]
            if let given = initialCenters {
                initial = given.enumerated().map { $0.element - mean[$0.offset % columns] }
            } else {
                var rng = randomStream(restart: r)
                initial = Self.plusPlusIndices(points, k: k, rng: &rng).flatMap { points.row($0) }
            }
            var run = lloyd(points, initial: initial, tolAbs: tolAbs)
            run.centers = run.centers.enumerated().map { $0.element + mean[$0.offset % columns] }
            run.inertia = Self.inertia(data, rows: rows, columns: columns, centers: run.centers, labels: run.labels)
            if best == nil || (run.inertia < best!.inertia && !Self.sameClustering(run.labels, best!.labels, k: k)) {
                best = run
            }
        }
        return best!
    }

    // MARK: - Seeding

    /// Sample indices of the k seeds, as `_kmeans_plusplus` picks them (`n_local_trials` = 2 + ⌊ln k⌋).
    static func plusPlusIndices(_ points: KMeansPoints, k: Int, rng: inout SeededRandom) -> [Int] {
        let n = points.rows
        let trials = 2 + Int(log(Double(k)))
        var indices = [min(Int(rng.nextDouble() * Double(n)), n - 1)]
        var closest = points.squaredDistances(toRows: indices)[0]
        var potential = closest.reduce(0, +)
        for _ in 1..<k {
            // Inverse CDF: the first i with cumsum[i] ≥ u·Σ (numpy's searchsorted, side "left"), clipped to n − 1.
            var cumulative = closest
            for i in 1..<n { cumulative[i] += cumulative[i - 1] }
            let targets = (0..<trials).map { _ in rng.nextDouble() * potential }
            let candidates = targets.map { v -> Int in
                var lo = 0, hi = n
                while lo < hi { let mid = (lo + hi) / 2; if cumulative[mid] < v { lo = mid + 1 } else { hi = mid } }
                return min(lo, n - 1)
            }
            var bestTrial: (index: Int, potential: Double, distances: [Double])?
            for (candidate, var distances) in zip(candidates, points.squaredDistances(toRows: candidates)) {
                for i in 0..<n { distances[i] = min(distances[i], closest[i]) }
                let p = distances.reduce(0, +)
                if bestTrial == nil || p < bestTrial!.potential { bestTrial = (candidate, p, distances) }
            }
            indices.append(bestTrial!.index)
            closest = bestTrial!.distances
            potential = bestTrial!.potential
        }
        return indices
    }

    // MARK: - Lloyd

    /// One Lloyd run from `initial` (k × d, centred coordinates); inertia is filled in by the caller.
    func lloyd(_ points: KMeansPoints, initial: [Float], tolAbs: Double) -> KMeansResult {
        let (n, d) = (points.rows, points.columns)
        var centers = initial
        var labels = [Int](repeating: -1, count: n)
        var previous = labels
        var strict = false
        var iterations = 0
        for i in 0..<maxIterations {
            iterations = i + 1
            points.assign(centers: centers, k: k, labels: &labels)
            let updated = Self.updateCenters(points, labels: labels, old: centers, k: k)
            var shift = 0.0
            for t in 0..<(k * d) { let s = Double(updated[t]) - Double(centers[t]); shift += s * s }
            centers = updated
            if labels == previous { strict = true; break }
            if shift <= tolAbs { break }
            previous = labels
        }
        if !strict { points.assign(centers: centers, k: k, labels: &labels) }
        return KMeansResult(labels: labels, centers: centers, inertia: 0, iterations: iterations)
    }

    /// The M-step: per-cluster means (sums in Double), with scikit-learn's empty-cluster relocation
    /// (`_relocate_empty_clusters_dense`): the e empty clusters take the e samples farthest from their old centre
    /// (farthest first, ties by lower index; empty clusters in ascending order); each such sample leaves its own
    /// cluster's sum but keeps its label. A cluster left with no samples keeps its sum (the zero vector when it
    /// had that one sample) rather than a mean, as scikit-learn's `_average_centers` skips zero weights.
    static func updateCenters(_ points: KMeansPoints, labels: [Int], old: [Float], k: Int) -> [Float] {
        let (n, d) = (points.rows, points.columns)
        var sums = [Double](repeating: 0, count: k * d)
        var counts = [Int](repeating: 0, count: k)
        for j in labels { counts[j] += 1 }
        // Threads take disjoint column ranges and each adds the samples in order: the sums do not depend on them.
        points.data.withUnsafeBufferPointer { x in
            sums.withUnsafeMutableBufferPointer { s in
                labels.withUnsafeBufferPointer { l in
                    KMeansPoints.forEachChunk(d) { range in
                        for i in 0..<n {
                            let row = x.baseAddress! + i * d, sum = s.baseAddress! + l[i] * d
                            for f in range { sum[f] += Double(row[f]) }
                        }
                    }
                }
            }
        }
        let empty = (0..<k).filter { counts[$0] == 0 }
        if !empty.isEmpty {
            let distances = (0..<n).map { i in
                old.withUnsafeBufferPointer { points.squaredDistance(row: i, to: $0.baseAddress! + labels[i] * d) }
            }
            let farthest = (0..<n).sorted { distances[$0] != distances[$1] ? distances[$0] > distances[$1] : $0 < $1 }
            for (target, sample) in zip(empty, farthest) {
                let source = labels[sample]
                for f in 0..<d {
                    let v = Double(points.data[sample * d + f])
                    sums[source * d + f] -= v
                    sums[target * d + f] = v
                }
                counts[target] = 1
                counts[source] -= 1
            }
        }
        var centers = [Float](repeating: 0, count: k * d)
        for j in 0..<k {
            let scale = counts[j] > 0 ? 1 / Double(counts[j]) : 1
            for f in 0..<d { centers[j * d + f] = Float(sums[j * d + f] * scale) }
        }
        return centers
    }

    // MARK: - Helpers

    static func columnMeans(_ data: [Float], rows: Int, columns: Int) -> [Double] {
        var mean = [Double](repeating: 0, count: columns)
        for i in 0..<rows { for f in 0..<columns { mean[f] += Double(data[i * columns + f]) } }
        return mean.map { $0 / Double(rows) }
    }

    /// Σᵢ ‖xᵢ − c_{lᵢ}‖², each term exact in Double, summed in sample order.
    static func inertia(_ data: [Float], rows: Int, columns: Int, centers: [Float], labels: [Int]) -> Double {
        data.withUnsafeBufferPointer { x in
            centers.withUnsafeBufferPointer { c in
                (0..<rows).reduce(0.0) { sum, i in
                    sum + exactSquaredDistance(x.baseAddress! + i * columns, c.baseAddress! + labels[i] * columns, columns)
                }
            }
        }
    }

    /// scikit-learn's `_is_same_clustering`: whether `b` is `a` with its label ids renamed.
    static func sameClustering(_ a: [Int], _ b: [Int], k: Int) -> Bool {
        var mapping = [Int](repeating: -1, count: k)
        for (x, y) in zip(a, b) {
            if mapping[x] == -1 { mapping[x] = y } else if mapping[x] != y { return false }
        }
        return true
    }
}

/// ‖a − b‖² over `count` floats, each difference and square in Double (exact up to the Double sum's rounding).
@inline(__always)
func exactSquaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Double {
    var acc0 = SIMD8<Double>(), acc1 = SIMD8<Double>()
    var f = 0
    while f + 16 <= count {
        let d0 = SIMD8<Double>(UnsafeRawPointer(a + f).loadUnaligned(as: SIMD8<Float>.self))
            - SIMD8<Double>(UnsafeRawPointer(b + f).loadUnaligned(as: SIMD8<Float>.self))
        let d1 = SIMD8<Double>(UnsafeRawPointer(a + f + 8).loadUnaligned(as: SIMD8<Float>.self))
            - SIMD8<Double>(UnsafeRawPointer(b + f + 8).loadUnaligned(as: SIMD8<Float>.self))
        acc0 += d0 * d0
        acc1 += d1 * d1
        f += 16
    }
    var sum = (acc0 + acc1).sum()
    while f < count { let t = Double(a[f]) - Double(b[f]); sum += t * t; f += 1 }
    return sum
}

/// The (centred) samples of one fit, with the per-row work split over the compute threads. Every per-row value
/// is computed by one thread and every reduction runs in row order, so results do not depend on the thread count.
final class KMeansPoints {
    /// n × d row-major.
    var data: [Float]
    let rows: Int, columns: Int
    /// ‖xᵢ‖, for the fast form's error bound.
    let norms: [Double]
    private var dots: [Float]

    init(_ data: [Float], rows: Int, columns: Int) {
        self.data = data
        (self.rows, self.columns) = (rows, columns)
        norms = (0..<rows).map { i in
            data.withUnsafeBufferPointer { x in
                var s = 0.0
                for f in 0..<columns { let v = Double(x[i * columns + f]); s += v * v }
                return s.squareRoot()
            }
        }
        dots = []
    }

    func row(_ i: Int) -> ArraySlice<Float> { data[(i * columns)..<((i + 1) * columns)] }

    func squaredDistance(row i: Int, to c: UnsafePointer<Float>) -> Double {
        data.withUnsafeBufferPointer { exactSquaredDistance($0.baseAddress! + i * columns, c, columns) }
    }

    /// out[t][i] = ‖xᵢ − x_{r_t}‖², in one pass over the data (it is read once for all the rows r_t).
    func squaredDistances(toRows targets: [Int]) -> [[Double]] {
        var out = [Double](repeating: 0, count: targets.count * rows)
        let d = columns, n = rows
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                let origin = x.baseAddress!
                Self.forEachChunk(rows) { range in
                    for i in range {
                        for (t, r) in targets.enumerated() { o[t * n + i] = exactSquaredDistance(origin + i * d, origin + r * d, d) }
                    }
                }
            }
        }
        return targets.indices.map { Array(out[($0 * n)..<(($0 + 1) * n)]) }
    }

    /// The E-step: labels[i] = argmin_j ‖xᵢ − c_j‖², the lowest j among exact ties.
    ///
    /// The products xᵢ·c_j come from one sgemm; the fast score s_j = ‖c_j‖² − 2 fl(xᵢ·c_j) (‖xᵢ‖² is common to all
    /// j) is off from the exact one by at most e_j = 2γ_d‖xᵢ‖‖c_j‖, γ_d = d·u/(1 − d·u), u = 2⁻²⁴ (the float32
    /// dot-product bound, whatever the summation order). Every j with s_j − e_j ≤ s_best + e_best may be the true
    /// minimum, so when there is more than one such j their distances are recomputed exactly. This makes the
    /// labels the exact argmin, stable under near-ties and independent of the sgemm's blocking and threads.
    func assign(centers: [Float], k: Int, labels: inout [Int]) {
        let (n, d) = (rows, columns)
        precondition(centers.count == k * d, "KMeans.assign: centres hold \(centers.count) values, expected \(k) × \(d)")
        if dots.count != n * k { dots = [Float](repeating: 0, count: n * k) }
        var centersCopy = centers
        data.withUnsafeMutableBufferPointer { x in
            centersCopy.withUnsafeMutableBufferPointer { c in
                dots.withUnsafeMutableBufferPointer { p in
                    Kernels.matmulRowMajor(x.baseAddress!, c.baseAddress!, p.baseAddress!, m: n, k: d, n: k, transposeB: true)
                }
            }
        }
        let centerSquares = (0..<k).map { j in
            centers[(j * d)..<((j + 1) * d)].reduce(0.0) { $0 + Double($1) * Double($1) }
        }
        let centerNorms = centerSquares.map { $0.squareRoot() }
        let u = Double(Float.ulpOfOne) / 2
        let gamma = Double(d) * u / (1 - Double(d) * u)
        let bound = 2 * gamma * 1.01  // 1 % slack for the rounding of the bound itself
        let norms = self.norms
        data.withUnsafeBufferPointer { x in
            centers.withUnsafeBufferPointer { c in
                dots.withUnsafeBufferPointer { p in
                    labels.withUnsafeMutableBufferPointer { out in
                        Self.forEachChunk(n) { range in
                            var score = [Double](repeating: 0, count: k), slack = [Double](repeating: 0, count: k)
                            for i in range {
                                var best = 0
                                for j in 0..<k {
                                    score[j] = centerSquares[j] - 2 * Double(p[i * k + j])
                                    slack[j] = bound * norms[i] * centerNorms[j] + Double.leastNormalMagnitude
                                    if score[j] < score[best] { best = j }
                                }
                                let limit = score[best] + slack[best]
                                var contenders = 0
                                for j in 0..<k where score[j] - slack[j] <= limit { contenders += 1 }
                                if contenders > 1 {
                                    var bestDistance = Double.infinity
                                    for j in 0..<k where score[j] - slack[j] <= limit {
                                        let e = exactSquaredDistance(x.baseAddress! + i * d, c.baseAddress! + j * d, d)
                                        if e < bestDistance { bestDistance = e; best = j }
                                    }
                                }
                                out[i] = best
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs `body` on contiguous row ranges, one per compute thread (at least 64 rows each).
    static func forEachChunk(_ count: Int, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(ComputeThreads.current, count / 64))
        if parts == 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: parts) { t in body((t * count / parts)..<((t + 1) * count / parts)) }
    }
}
