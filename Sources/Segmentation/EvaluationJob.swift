import Distributed
import Foundation
import Storage

/// `pcs-mpi eval` over the ranks: each rank scores its share of the images (`Communicator.share`) with
/// `SegmentationEvaluation`, and one allreduce of the integer counts combines them, so the numbers are the same
/// for any rank count. Collective: every rank calls the same method with the same arguments.
public struct EvaluationJob {
    public let evaluation: SegmentationEvaluation
    public let world: Communicator

    public init(_ evaluation: SegmentationEvaluation, world: Communicator) {
        self.evaluation = evaluation
        self.world = world
    }

    /// The confusion matrix of the PNG predictions `<folder>/<id>.png` over the whole dataset.
    public func countPNGPredictions(in folder: URL) throws -> ConfusionMatrix {
        var matrix = ConfusionMatrix(classes: evaluation.labelNames.count)
        for i in world.share(evaluation.dataset.count) {
            try evaluation.countPNGPrediction(i, in: folder, into: &matrix)
        }
        world.allreduce(&matrix.counts)
        return matrix
    }

    /// The confusion matrix of a label set's map `map` over its non-ignored pixels, and the share of all pixels
    /// it ignores (255).
    public func countLabelMaps(_ set: ShardedDataset, map: String) throws -> (matrix: ConfusionMatrix, ignoredShare: Double) {
        var matrix = ConfusionMatrix(classes: evaluation.labelNames.count)
        var pixels: Int64 = 0, ignored: Int64 = 0
        for i in world.share(evaluation.dataset.count) {
            try evaluation.countLabelMap(i, set: set, map: map, into: &matrix, pixels: &pixels, ignored: &ignored)
        }
        world.allreduce(&matrix.counts)
        var totals = [pixels, ignored]
        world.allreduce(&totals)
        return (matrix, Double(totals[1]) / Double(max(totals[0], 1)))
    }

    /// One confusion matrix per threshold of the seeds made from `cams` over the whole dataset; with `seeds`, every
    /// image's label map at `seedThreshold` is also written there (each rank writes its own share).
    public func countCAMSeeds(_ cams: ShardedDataset, thresholds: [Double], seeds: URL? = nil,
                              seedThreshold: Double = 0.46) throws -> [ConfusionMatrix] {
        var matrices = [ConfusionMatrix](repeating: ConfusionMatrix(classes: evaluation.labelNames.count), count: thresholds.count)
        if let seeds { try FileManager.default.createDirectory(at: seeds, withIntermediateDirectories: true) }
        for i in world.share(evaluation.dataset.count) {
            try evaluation.countCAMSeeds(i, cams: cams, thresholds: thresholds, into: &matrices,
                                         seeds: seeds, seedThreshold: seedThreshold)
        }
        for t in matrices.indices { world.allreduce(&matrices[t].counts) }
        return matrices
    }
}
