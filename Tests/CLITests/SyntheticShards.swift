import Foundation
import TestSupport
import XCTest

/// The small datasets the CLI tests run on: `pcs-mpi synth` (no val split) and `ingest voc` of its train list.
enum SyntheticShards {
    /// Returns the shard folder DIR/shards (set `train`); the synthetic VOC folder is DIR/synth.
    static func make(in dir: URL, images: Int, size: String, classes: Int, shards: Int = 2,
                     file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let synth = dir.appendingPathComponent("synth"), out = dir.appendingPathComponent("shards")
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", synth.path, "--images", "\(images)", "--size", size, "--classes", "\(classes)",
                                               "--val-fraction", "0", "--log-level", "warning"]).status, 0, file: file, line: line)
        XCTAssertEqual(try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                               synth.appendingPathComponent("ImageSets/Segmentation/train.txt").path,
                                               "--out", out.path, "--shards", "\(shards)", "--log-level", "warning"]).status, 0,
                       file: file, line: line)
        return out
    }
}
