import Foundation

/// Rank 0's record of a training run: every step's figures to `metrics.jsonl` and to TensorBoard scalars
/// (`train/loss`, `train/lr`, `train/images_per_second`, `train/exposed_communication_s`). With several parameter
/// groups, every group's rate is logged too, as `lr_<group>` (TensorBoard `train/lr_<group>`); `lr` is the first's.
public final class TrainReporter {
    let metrics: MetricsLog
    let tensorBoard: TensorBoardWriter

    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        metrics = try MetricsLog(directory: directory)
        tensorBoard = try TensorBoardWriter(directory: directory)
    }

    public func record(_ r: StepReport) {
        var scalars = ["loss": r.loss, "lr": r.learningRate, "images_per_second": r.imagesPerSecond,
                       "exposed_communication_s": r.exposedCommunication, "epoch": Double(r.epoch)]
        if r.learningRates.count > 1 {
            for (group, rate) in r.learningRates { scalars["lr_\(group)"] = rate }
        }
        metrics.append(step: r.step, scalars)
        for (tag, value) in scalars where tag != "epoch" { tensorBoard.addScalar("train/\(tag)", value, step: r.step) }
        tensorBoard.flush()
    }

    public func close() {
        metrics.close()
        tensorBoard.close()
    }
}
