import Foundation
import NN

/// Times `KMeans` on a matrix the size of the SP stage's largest class (VOC "person": 4,155 features of 1,024
/// values, k = 10), with 1 and 10 restarts. `scripts/bench/bench_kmeans_sklearn.py` times scikit-learn on the
/// same matrix, written by `writeMatrix`.
public enum KMeansBenchmark {
    /// A deterministic mixture of `components` isotropic Gaussians (float32, rows × columns row-major).
    ///
    /// Component c has mixing weight ∝ w_c ~ U(0.5, 1.5), mean μ_c ~ N(0, 0.15²·I) and standard deviation
    /// σ_c ~ U(0.75, 1.25); a row draws c from the weights and is μ_c + σ_c·z, z ~ N(0, I) (Box–Muller).
    /// Means 0.15·√(2d) ≈ 6.8σ apart on 1,024 dimensions: 20 clumps that k = 10 must merge in pairs, so the
    /// seeding matters and Lloyd takes more than a couple of iterations.
    public static func syntheticMatrix(rows: Int = 4155, columns: Int = 1024, components: Int = 20, seed: UInt64 = 0) -> [Float] {
        precondition(rows >= 1 && columns >= 1 && components >= 1,
                     "KMeansBenchmark.syntheticMatrix: shape \(rows) × \(columns), \(components) components")
        var rng = SeededRandom(seed: seed).derived(0x4B4D_4541_4E53)  // "KMEANS"
        func gaussian() -> Double {
            let u1 = 1 - rng.nextDouble(), u2 = rng.nextDouble()  // u1 in (0, 1]: log stays finite
            return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        }
        let weights = (0..<components).map { _ in 0.5 + rng.nextDouble() }
        let total = weights.reduce(0, +)
        let means = (0..<(components * columns)).map { _ in 0.15 * gaussian() }
        let sigmas = (0..<components).map { _ in 0.75 + 0.5 * rng.nextDouble() }
        var data = [Float](repeating: 0, count: rows * columns)
        for i in 0..<rows {
            var pick = rng.nextDouble() * total, c = 0
            while c < components - 1 && pick >= weights[c] { pick -= weights[c]; c += 1 }
            for f in 0..<columns { data[i * columns + f] = Float(means[c * columns + f] + sigmas[c] * gaussian()) }
        }
        return data
    }

    /// Writes `syntheticMatrix` as dataset `features` (rows × columns, float32) of a new HDF5 file.
    public static func writeMatrix(_ path: String, rows: Int = 4155, columns: Int = 1024, components: Int = 20, seed: UInt64 = 0) throws {
        let file = try HDF5File.create(path)
        defer { file.close() }
        try file.write("features", syntheticMatrix(rows: rows, columns: columns, components: components, seed: seed),
                       shape: [rows, columns])
        try file.setAttribute("generator", "KMeansBenchmark.syntheticMatrix(components: \(components), seed: \(seed))")
    }

    /// Fits k-means with 1 and with 10 restarts and reports wall-clock seconds, Lloyd iterations (of the kept
    /// run) and inertia, one line each.
    public static func run(rows: Int = 4155, columns: Int = 1024, k: Int = 10, seed: UInt64 = 0) -> String {
        let data = syntheticMatrix(rows: rows, columns: columns, seed: seed)
        var lines = ["k-means on a \(rows) × \(columns) float32 mixture of 20 Gaussians, k = \(k), "
            + "\(ComputeThreads.current) compute threads"]
        for restarts in [1, 10] {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = KMeans(k: k, restarts: restarts, seed: seed).fit(data, rows: rows, columns: columns)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            lines.append(String(format: "restarts %2d: %.3f s, %d iterations, inertia %.6e",
                                restarts, seconds, result.iterations, result.inertia))
        }
        return lines.joined(separator: "\n")
    }
}
