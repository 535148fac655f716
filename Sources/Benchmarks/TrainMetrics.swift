import Distributed
import Formats
import Foundation
import NN

/// What a `train-*` run's metrics.jsonl says about its speed: images/s averaged over the steps after the first (which
/// pays for warm-up), the step time at the global batch, and the share of it spent waiting for gradient
/// communication that backward did not hide.
public struct TrainMetrics {
    public var imagesPerSecond: Double
    public var stepSeconds: Double
    /// Exposed communication over step time.
    public var communicationShare: Double

    public static func read(run: URL, batch: Int) throws -> TrainMetrics {
        let metrics = run.appendingPathComponent("metrics.jsonl")
        let rows = try String(contentsOf: metrics, encoding: .utf8)
            .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let timed = rows.dropFirst()
        let rates = timed.compactMap { $0["images_per_second"] as? Double }
        let exposed = timed.compactMap { $0["exposed_communication_s"] as? Double }
        guard !rates.isEmpty else { throw FileError(path: metrics.path, what: "no timed steps") }
        let rate = rates.reduce(0, +) / Double(rates.count)
        let stepSeconds = Double(batch) / rate
        return TrainMetrics(imagesPerSecond: rate, stepSeconds: stepSeconds,
                            communicationShare: exposed.reduce(0, +) / Double(max(exposed.count, 1)) / stepSeconds)
    }
}

/// One layout's `train-*` run under `mpirun` (`bench aff`, `bench deeplab`): its metrics and the largest rank's
/// peak resident memory.
public struct LayoutTrainRow {
    public var ranks: Int, threads: Int
    public var metrics: TrainMetrics
    /// The largest rank's peak resident memory, in MiB.
    public var peakMiBPerRank: Double

    /// Runs `command` (a `train-*` command line without --out and --threads) under `mpirun -n ranks` with
    /// `threads` threads per rank into SCRATCH/run-RxT, reads its metrics and removes the run; the peak memory is
    /// this job's own (`MPILauncher.run`).
    public static func measure(_ command: [String], ranks: Int, threads: Int, batch: Int, in scratch: URL) throws -> LayoutTrainRow {
        let run = scratch.appendingPathComponent("run-\(ranks)x\(threads)")
        let peak = try MPILauncher.run(MPILauncher.currentExecutable, ranks: ranks, arguments: command + [
            "--out", run.path, "--threads", "\(threads)", "--conv-algorithm", ConvAlgorithm.preferred.rawValue, "--log-level", "warning"])
        let row = LayoutTrainRow(ranks: ranks, threads: threads, metrics: try TrainMetrics.read(run: run, batch: batch),
                                 peakMiBPerRank: peak)
        try? FileManager.default.removeItem(at: run)
        return row
    }
}
