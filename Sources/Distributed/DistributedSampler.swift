import Foundation
import NN

/// Which images each rank trains on, batch by batch.
///
/// Every epoch has one permutation of the dataset, the same on every rank (drawn from the run seed and the epoch
/// number, so no communication is needed). The permutation is cut into global batches, the last incomplete one
/// dropped; each global batch is cut into equal, contiguous rank slices. A position (epoch, batch) is all a
/// checkpoint needs to resume exactly where a run stopped.
public struct DistributedSampler: Codable, Equatable, Sendable {
    public let datasetSize: Int
    public let globalBatch: Int
    public let rank: Int
    public let worldSize: Int
    public let seed: UInt64

    /// Where a run stands: the next batch to train is `batch` of `epoch`.
    public struct Position: Codable, Equatable, Sendable {
        public var epoch: Int
        public var batch: Int
        public init(epoch: Int = 0, batch: Int = 0) {
            self.epoch = epoch
            self.batch = batch
        }
    }

    public struct ConfigurationError: Error, CustomStringConvertible, LocalizedError {
        public let description: String
        public var errorDescription: String? { description }
    }

    public init(datasetSize: Int, globalBatch: Int, rank: Int, worldSize: Int, seed: UInt64) throws {
        guard globalBatch >= 1, globalBatch % worldSize == 0 else {
            throw ConfigurationError(description: "global batch \(globalBatch) does not split evenly over \(worldSize) ranks; use a multiple of \(worldSize)")
        }
        guard datasetSize >= globalBatch else {
            throw ConfigurationError(description: "the dataset has \(datasetSize) images, fewer than one global batch of \(globalBatch)")
        }
        self.datasetSize = datasetSize
        self.globalBatch = globalBatch
        self.rank = rank
        self.worldSize = worldSize
        self.seed = seed
    }

    /// Images per rank per step.
    public var localBatch: Int { globalBatch / worldSize }

    /// Steps per epoch (drop-last on the global batch).
    public var batchesPerEpoch: Int { datasetSize / globalBatch }

    /// The epoch's order of the dataset (Fisher–Yates over a stream derived from the seed and the epoch).
    public func permutation(epoch: Int) -> [Int] {
        var rng = SeededRandom(seed: seed).derived(0xE90C_0000 &+ UInt64(epoch))
        var order = Array(0..<datasetSize)
        for i in stride(from: datasetSize - 1, to: 0, by: -1) {
            order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        return order
    }

    /// This rank's images (dataset indices) for global batch `index` of `epoch`.
    public func batch(epoch: Int, index: Int, permutation: [Int]? = nil) -> [Int] {
        precondition(index >= 0 && index < batchesPerEpoch, "batch \(index) outside 0..<\(batchesPerEpoch)")
        let order = permutation ?? self.permutation(epoch: epoch)
        let start = index * globalBatch + rank * localBatch
        return Array(order[start..<start + localBatch])
    }

    /// The position after `position`.
    public func advanced(_ position: Position) -> Position {
        position.batch + 1 < batchesPerEpoch ? Position(epoch: position.epoch, batch: position.batch + 1) : Position(epoch: position.epoch + 1, batch: 0)
    }

    /// This rank's own augmentation stream: derived from the run seed and the rank, so ranks never share draws.
    public func augmentationRandom() -> SeededRandom {
        SeededRandom(seed: seed).derived(0xA06_0000 &+ UInt64(rank))
    }
}
