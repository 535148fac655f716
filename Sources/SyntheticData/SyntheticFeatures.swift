import Foundation
import NN

/// Feature matrices with a known cluster structure, for k-means tests and the k-means benchmark.
public enum SyntheticFeatures {
    /// A deterministic mixture of `components` isotropic Gaussians (float32, rows × columns row-major).
    ///
    /// Component c has mixing weight ∝ w_c ~ U(0.5, 1.5), mean μ_c ~ N(0, 0.15²·I) and standard deviation
    /// σ_c ~ U(0.75, 1.25); a row draws c from the weights and is μ_c + σ_c·z, z ~ N(0, I) (Box–Muller).
    /// Means 0.15·√(2d) ≈ 6.8σ apart on 1,024 dimensions: 20 clumps that k = 10 must merge in pairs, so the
    /// seeding matters and Lloyd takes more than a couple of iterations.
    public static func gaussianMixture(rows: Int = 4155, columns: Int = 1024, components: Int = 20, seed: UInt64 = 0) -> [Float] {
        precondition(rows >= 1 && columns >= 1 && components >= 1,
                     "SyntheticFeatures.gaussianMixture: shape \(rows) × \(columns), \(components) components")
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
}
