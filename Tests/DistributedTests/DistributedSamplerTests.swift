import XCTest
@testable import Distributed

final class DistributedSamplerTests: XCTestCase {
    func samplers(size: Int = 23, batch: Int = 6, ranks: Int = 3, seed: UInt64 = 7) throws -> [DistributedSampler] {
        try (0..<ranks).map { try DistributedSampler(datasetSize: size, globalBatch: batch, rank: $0, worldSize: ranks, seed: seed) }
    }

    func testRankSlicesAreDisjointCompleteAndEqual() throws {
        let ranks = try samplers()
        XCTAssertEqual(ranks[0].batchesPerEpoch, 3, "23 images, global batch 6: the incomplete fourth batch is dropped")
        for epoch in 0..<3 {
            var seen: [Int] = []
            for index in 0..<ranks[0].batchesPerEpoch {
                let slices = ranks.map { $0.batch(epoch: epoch, index: index) }
                XCTAssertTrue(slices.allSatisfy { $0.count == 2 })
                seen += slices.flatMap { $0 }
            }
            XCTAssertEqual(Set(seen).count, 18, "no image twice in an epoch")
            XCTAssertEqual(Array(ranks[0].permutation(epoch: epoch).prefix(18)), seen, "rank slices tile the permutation in order")
        }
    }

    func testPermutationIsSharedPerEpochAndChangesBetweenEpochs() throws {
        let ranks = try samplers()
        XCTAssertEqual(ranks[0].permutation(epoch: 4), ranks[2].permutation(epoch: 4))
        XCTAssertNotEqual(ranks[0].permutation(epoch: 4), ranks[0].permutation(epoch: 5))
        XCTAssertEqual(ranks[0].permutation(epoch: 4).sorted(), Array(0..<23))
        XCTAssertNotEqual(try samplers(seed: 8)[0].permutation(epoch: 4), ranks[0].permutation(epoch: 4))
        var a = ranks[0].augmentationRandom(), b = ranks[1].augmentationRandom()
        XCTAssertNotEqual(a.next(), b.next(), "every rank has its own augmentation stream")
    }

    func testResumeFromAnyPositionGivesTheSameBatches() throws {
        let sampler = try samplers()[1]
        var position = DistributedSampler.Position()
        var straight: [[Int]] = []
        for _ in 0..<8 {
            straight.append(sampler.batch(epoch: position.epoch, index: position.batch))
            position = sampler.advanced(position)
        }
        XCTAssertEqual(position, DistributedSampler.Position(epoch: 2, batch: 2))
        // A checkpoint at step 5 stores its position; a new sampler (after a restart) continues identically.
        let saved = try JSONEncoder().encode(DistributedSampler.Position(epoch: 1, batch: 2))
        var resumed = try JSONDecoder().decode(DistributedSampler.Position.self, from: saved)
        let restarted = try DistributedSampler(datasetSize: 23, globalBatch: 6, rank: 1, worldSize: 3, seed: 7)
        for step in 5..<8 {
            XCTAssertEqual(restarted.batch(epoch: resumed.epoch, index: resumed.batch), straight[step])
            resumed = restarted.advanced(resumed)
        }
    }

    func testBadConfigurationsAreOneLineErrors() {
        XCTAssertThrowsError(try DistributedSampler(datasetSize: 100, globalBatch: 5, rank: 0, worldSize: 2, seed: 0)) {
            XCTAssertTrue("\($0)".contains("5") && "\($0)".contains("2 ranks"), "\($0)")
        }
        XCTAssertThrowsError(try DistributedSampler(datasetSize: 3, globalBatch: 4, rank: 0, worldSize: 2, seed: 0))
    }
}
