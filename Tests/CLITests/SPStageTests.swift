@testable import Distributed
import Formats
import Foundation
@testable import NN
import Storage
import TestSupport
import XCTest

/// The SP stage's commands end to end on a small synthetic set: extract-features and cluster give the same output
/// on 1 and 2 ranks, the labels hold one bit per present class, train-sp trains on 2 ranks and its checkpoint
/// feeds infer-cam; a feature file of another split is refused.
final class SPStageTests: XCTestCase {
    func testFeaturesClusterTrainSPAndInference() throws {
        let dir = try TestSupport.scratchDirectory()
        let synth = dir.appendingPathComponent("synth"), shards = dir.appendingPathComponent("shards")
        let quiet = ["--log-level", "warning"]
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", synth.path, "--images", "32", "--size", "64x48", "--classes", "3", "--seed", "4"] + quiet).status, 0)
        for split in ["train", "val"] {
            XCTAssertEqual(try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                                   synth.appendingPathComponent("ImageSets/Segmentation/\(split).txt").path,
                                                   "--out", shards.path, "--shards", "2"] + quiet).status, 0)
        }
        let pcRun = dir.appendingPathComponent("pc")
        XCTAssertEqual(try TestSupport.pcsMPI(["train-pc", "--data", shards.path, "--out", pcRun.path, "--model", "tiny-pc", "--max-steps", "2",
                                               "--batch", "2", "--crop", "64", "--pair", "32", "--resize-long", "64:96"] + quiet).status, 0)
        let pcWeights = try XCTUnwrap(TrainCheckpoint.newest(in: pcRun))

        // Features: the same matrix on 1 and 2 ranks, 64-d for the tiny network, in dataset order.
        func features(_ ranks: Int, split: String = "train") throws -> URL {
            let out = dir.appendingPathComponent("features-\(split)-\(ranks).h5")
            let arguments = ["extract-features", "--data", shards.path, "--split", split, "--model", "tiny-pc", "--weights", pcWeights.path,
                             "--side", "64", "--out", out.path] + quiet
            let result = ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments)
            XCTAssertEqual(result.status, 0, result.stderr)
            return out
        }
        let one = try features(1), two = try features(2)
        let (matrix, shape) = try HDF5File.open(one.path).read("/features", as: Float.self)
        let dataset = try ShardedDataset(directory: shards, name: "train")
        XCTAssertEqual(shape, [dataset.count, 64])
        XCTAssertEqual(try HDF5File.open(one.path).readStrings("/ids"), dataset.ids)
        XCTAssertEqual(try HDF5File.open(two.path).read("/features", as: Float.self).values, matrix)
        XCTAssertGreaterThan(Set(matrix).count, dataset.count, "features differ between images")

        // Clusters: the same labels on 1 and 2 ranks; one bit per present class.
        func cluster(_ ranks: Int, extra: [String] = [], featureFile: URL? = nil) throws -> (TestSupport.Result, URL) {
            let out = dir.appendingPathComponent("labels-\(ranks)\(extra.joined()).h5")
            let arguments = ["cluster", "--data", shards.path, "--features", (featureFile ?? one).path, "--out", out.path,
                             "--k", "2", "--restarts", "3"] + extra + quiet
            return (ranks == 1 ? try TestSupport.pcsMPI(arguments) : try TestSupport.mpirun(ranks, "pcs-mpi", arguments), out)
        }
        let (c1, labels1) = try cluster(1), (c2, labels2) = try cluster(2)
        XCTAssertEqual(c1.status, 0, c1.stderr)
        XCTAssertEqual(c2.status, 0, c2.stderr)
        let l1 = try HDF5File.open(labels1.path).read("/label_200", as: Float.self)
        XCTAssertEqual(try HDF5File.open(labels2.path).read("/label_200", as: Float.self).values, l1.values)
        XCTAssertEqual(l1.shape, [dataset.count, 6])
        for (r, id) in dataset.ids.enumerated() {
            let label = try dataset.locate(id).reader.label(id)
            for c in 0..<3 {
                let bits = l1.values[(r * 6 + c * 2)..<(r * 6 + c * 2 + 2)].reduce(0, +)
                XCTAssertEqual(bits, label[c], "image \(id), class \(c): one bit when present, none when absent")
            }
        }

        // A feature file of another split is refused, naming it.
        let (wrong, wrongOut) = try cluster(1, extra: ["--seed", "0"], featureFile: try features(1, split: "val"))
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("features-val-1.h5"), wrong.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: wrongOut.path))

        // train-sp on 2 ranks, then SP CAMs from its checkpoint.
        let spRun = dir.appendingPathComponent("sp")
        let train = try TestSupport.mpirun(2, "pcs-mpi", ["train-sp", "--data", shards.path, "--labels", labels1.path, "--out", spRun.path,
                                                          "--model", "tiny-sp", "--max-steps", "2", "--batch", "2", "--crop", "64",
                                                          "--resize-long", "64:96"] + quiet)
        XCTAssertEqual(train.status, 0, train.stderr)
        let spWeights = try XCTUnwrap(TrainCheckpoint.newest(in: spRun))
        let keys = try StateDict.load(path: spWeights.path).entries.map(\.key)
        XCTAssertTrue(keys.contains("conv_cls_head_200.weight") && keys.contains("trans_cls_head_200.bias"))
        let cams = dir.appendingPathComponent("cams-sp")
        let infer = try TestSupport.pcsMPI(["infer-cam", "--data", shards.path, "--out", cams.path, "--model", "tiny-sp", "--k", "2",
                                            "--weights", spWeights.path, "--long-side", "64", "--scales", "0.5,1"] + quiet)
        XCTAssertEqual(infer.status, 0, infer.stderr)
        XCTAssertEqual(try ShardedDataset(directory: cams, name: "cams").count, dataset.count)

    }
}
