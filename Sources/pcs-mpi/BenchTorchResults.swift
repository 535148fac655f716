import ArgumentParser
import Benchmarks
import Foundation

/// One row of the JSON that a `scripts/bench/bench_*_torch.py --json` reference writes (`bench aff`, `bench deeplab`):
/// what was measured (`train RxT`, `walk WxH`, `infer WxH`), the layout or thread count, images/s and the peak
/// resident memory per process.
struct TorchRow: Codable {
    var what: String
    var ranks: Int?
    var threads: Int
    var images_per_s: Double
    var peak_mib: Double?

    /// The rows of `path` (none without a path); a file that is not such a list is a usage error naming `script`.
    static func load(_ path: String?, script: String) throws -> [TorchRow] {
        guard let path else { return [] }
        guard let data = FileManager.default.contents(atPath: path), let rows = try? JSONDecoder().decode([TorchRow].self, from: data) else {
            throw ValidationError("\(path): not a results file from scripts/bench/\(script) --json")
        }
        return rows
    }

    /// "1.80x (0.123 images/s, peak 4321 MiB per process: ours 0.91x)": our rate over PyTorch's and, when both
    /// are known, our peak memory over PyTorch's.
    func comparison(imagesPerSecond: Double, peakMiB: Double?) -> String {
        var text = String(format: "%.2fx (%.3f images/s", imagesPerSecond / images_per_s, images_per_s)
        if let theirs = peak_mib {
            text += String(format: ", peak %.0f MiB per process", theirs)
            if let peakMiB, theirs > 0 { text += String(format: ": ours %.2fx", peakMiB / theirs) }
        }
        return text + ")"
    }
}

/// The training table `bench aff` and `bench deeplab` print: one line per layout (in `layouts` order) with
/// images/s, the update's seconds, exposed communication, GFLOP/s and its share of the sgemm `peak` measured in the
/// same run, the peak memory per rank, and PyTorch's row of the same layout when given.
func printTrainLayoutTable(_ rows: [LayoutTrainRow], layouts: [(ranks: Int, threads: Int)], flopsPerImage: Double, peak: Double,
                           torch: [TorchRow]) {
    print("layout          images/s   step s   exposed comm   GFLOP/s   % FMA   % sgemm   peak/rank MiB"
          + (torch.isEmpty ? "" : "   vs PyTorch (same layout)"))
    for (ranks, threads) in layouts {
        guard let row = rows.first(where: { $0.ranks == ranks && $0.threads == threads }) else { continue }
        let gflops = row.metrics.imagesPerSecond * flopsPerImage / 1e9
        var line = String(format: "%2d rank × %d thr %9.3f %8.1f %13.1f%% %9.0f %6.0f%% %8.0f%% %15.0f", ranks, threads,
                          row.metrics.imagesPerSecond, row.metrics.stepSeconds, 100 * row.metrics.communicationShare, gflops,
                          100 * gflops / FMAPeak.atThreads(ranks * threads), 100 * gflops / peak, row.peakMiBPerRank)
        if let t = torch.first(where: { $0.what.hasPrefix("train") && $0.ranks == ranks && $0.threads == threads }) {
            line += "   " + t.comparison(imagesPerSecond: row.metrics.imagesPerSecond, peakMiB: row.peakMiBPerRank)
        }
        print(line)
    }
}
