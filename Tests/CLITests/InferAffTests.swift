import Formats
import Foundation
import Imaging
import PCSformer
import Storage
import TestSupport
import XCTest

/// `pcs-mpi infer-aff` with a tiny AffinityNet: the same random-walk labels on 1 and 2 ranks, only background and
/// the listed classes in them, readable by `cse --rw`; weights of another network are a one-line error.
final class InferAffTests: XCTestCase {
    func testRandomWalkLabelsOnOneAndTwoRanksFeedCSE() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 6, size: "64x48", classes: 3, shards: 2)
        let dataset = try ShardedDataset(directory: shards, name: "train")
        let cams = dir.appendingPathComponent("cams")
        try CRFCommandTests.writeCAMs(from: dataset, into: cams)
        let weights = dir.appendingPathComponent("aff.h5")
        try AffinityNet(.tiny, seed: 3).stateDict().save(to: weights.path)

        func inferAff(_ ranks: Int, _ out: URL, weights: URL = weights) throws -> TestSupport.Result {
            let arguments = ["infer-aff", "--data", shards.path, "--cams", cams.path, "--weights", weights.path, "--model", "tiny-aff",
                             "--out", out.path, "--png", out.appendingPathComponent("png").path]
            return ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments)
        }
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        let first = try inferAff(1, one)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(try inferAff(2, two).status, 0)
        let a = try ShardedDataset(directory: one, name: "rw"), b = try ShardedDataset(directory: two, name: "rw")
        for id in dataset.ids {
            let map = try a.labelMap(id, name: "labels")
            XCTAssertEqual(try b.labelMap(id, name: "labels").pixels, map.pixels, id)
            let listed = try dataset.record(id).label.enumerated().filter { $0.element == 1 }.map { UInt8($0.offset + 1) }
            XCTAssertTrue(map.pixels.allSatisfy { $0 == 0 || listed.contains($0) }, id)
            let png = try PNGCodec.decodeIndices(try ImageFile.readBytes(one.appendingPathComponent("png/\(id).png").path), name: id)
            XCTAssertEqual(png.pixels, map.pixels)
        }
        let cse = try TestSupport.pcsMPI(["cse", "--data", shards.path, "--attention", cams.path, "--rw", one.path,
                                          "--out", dir.appendingPathComponent("pseudo").path])
        XCTAssertEqual(cse.status, 0, cse.stderr)

        // CAMs missing an image's classes are refused, naming the image.
        let partial = dir.appendingPathComponent("partial-cams")
        try CRFCommandTests.writeCAMs(from: dataset, into: partial, dropClassesOf: dataset.ids[1])
        let missing = try TestSupport.pcsMPI(["infer-aff", "--data", shards.path, "--cams", partial.path, "--weights", weights.path,
                                              "--model", "tiny-aff", "--out", dir.appendingPathComponent("y").path])
        XCTAssertEqual(missing.status, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.contains(dataset.ids[1]), missing.stderr)

        let wrong = dir.appendingPathComponent("wrong.h5")
        try AffinityNet(.tiny, seed: 3).backbone.stateDict().save(to: wrong.path)
        let refused = try inferAff(1, dir.appendingPathComponent("x"), weights: wrong)
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("wrong.h5") && refused.stderr.contains("f8_3.weight"), refused.stderr)
    }

    /// Images so small that their 4 × 4 feature map has no radius-2 pairs: upstream's fallback leaves the walk
    /// nothing to spread, so the labels are the pooled scores' argmax (after the CRF); the run succeeds.
    func testImagesSmallerThanThePairRadiusFallBack() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 3, size: "32x32", classes: 2, shards: 1)
        let dataset = try ShardedDataset(directory: shards, name: "train")
        let cams = dir.appendingPathComponent("cams")
        try CRFCommandTests.writeCAMs(from: dataset, into: cams)
        let weights = dir.appendingPathComponent("aff.h5")
        try AffinityNet(.tiny, seed: 3).stateDict().save(to: weights.path)
        let result = try TestSupport.pcsMPI(["infer-aff", "--data", shards.path, "--cams", cams.path, "--weights", weights.path,
                                             "--model", "tiny-aff", "--out", dir.appendingPathComponent("rw").path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let set = try ShardedDataset(directory: dir.appendingPathComponent("rw"), name: "rw")
        XCTAssertEqual(try set.labelMap(dataset.ids[0], name: "labels").pixels.count, 32 * 32)
    }
}
