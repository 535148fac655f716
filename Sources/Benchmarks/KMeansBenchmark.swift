import Foundation
import NN
import Segmentation
import SyntheticData
import Formats

/// Times `KMeans` on a matrix the size of the SP stage's largest class (VOC "person": 4,155 features of 1,024
/// values, k = 10), with 1 and 10 restarts. `scripts/bench/bench_kmeans_sklearn.py` times scikit-learn on the
/// same matrix, written by `writeMatrix`.
public enum KMeansBenchmark {
    /// Writes `SyntheticFeatures.gaussianMixture` as dataset `features` (rows × columns, float32) of a new HDF5 file.
    public static func writeMatrix(_ path: String, rows: Int = 4155, columns: Int = 1024, components: Int = 20, seed: UInt64 = 0) throws {
        let file = try HDF5File.create(path)
        defer { file.close() }
        try file.write("features", SyntheticFeatures.gaussianMixture(rows: rows, columns: columns, components: components, seed: seed),
                       shape: [rows, columns])
        try file.setAttribute("generator", "SyntheticFeatures.gaussianMixture(components: \(components), seed: \(seed))")
    }

    /// Fits k-means with 1 and with 10 restarts and reports wall-clock seconds, Lloyd iterations (of the kept
    /// run) and inertia, one line each.
    public static func run(rows: Int = 4155, columns: Int = 1024, k: Int = 10, seed: UInt64 = 0) -> String {
        let data = SyntheticFeatures.gaussianMixture(rows: rows, columns: columns, seed: seed)
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
