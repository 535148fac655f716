@testable import Distributed
import Foundation
import TestSupport
import XCTest

/// Writing into a full disk (a small tmpfs): `train-pc` and `ingest` stop with one line that says so, exit 1, no
/// crash, no temporary left, and the checkpoints written before are complete. Needs `mount` (CI runs as root);
/// where mounting is refused the tests are skipped with the reason.
final class FullDiskTests: XCTestCase {
    var mounts: [URL] = []

    /// A tmpfs of `size` (e.g. "12m") mounted on a new scratch folder.
    func smallDisk(_ size: String) throws -> URL {
        let point = try TestSupport.scratchDirectory().appendingPathComponent("disk")
        try FileManager.default.createDirectory(at: point, withIntermediateDirectories: true)
        let mount = try TestSupport.run("/usr/bin/env", ["mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", point.path], timeout: 30)
        guard mount.status == 0 else { throw XCTSkip("cannot mount a tmpfs here (\(mount.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))") }
        mounts.append(point)
        return point
    }

    override func tearDown() {
        for point in mounts { _ = try? TestSupport.run("/usr/bin/env", ["umount", point.path], timeout: 30) }
        mounts = []
        super.tearDown()
    }

    func assertOneLineNoSpace(_ result: TestSupport.Result, naming path: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        let errors = result.stderr.split(separator: "\n").filter { $0.contains("error") }
        XCTAssertEqual(errors.count, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(errors.first?.contains("no space left on device") == true && errors.first?.contains(path) == true,
                      result.stderr, file: file, line: line)
        XCTAssertFalse(result.stderr.contains("HDF5-DIAG"), "HDF5 prints nothing of its own", file: file, line: line)
    }

    func testTrainingIntoAFullDisk() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try TrainPCTests.makeShards(dir)
        let run = try smallDisk("12m").appendingPathComponent("run")
        let result = try TestSupport.pcsMPI(TrainPCTests.trainArguments(shards, run, epochs: 40) + ["--checkpoint-every", "1", "--keep", "100"])
        assertOneLineNoSpace(result, naming: run.path)
        let kept = try TrainCheckpoint.all(in: run)
        XCTAssertFalse(kept.isEmpty, "some checkpoints fitted before the disk filled")
        for checkpoint in kept { XCTAssertNoThrow(try TrainCheckpoint.verify(checkpoint)) }
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: run.path).contains { $0.contains(".partial-") })
    }

    func testIngestIntoAFullDisk() throws {
        let dir = try TestSupport.scratchDirectory()
        let synth = dir.appendingPathComponent("synth")
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", synth.path, "--images", "24", "--size", "96x96", "--classes", "3",
                                               "--log-level", "warning"]).status, 0)
        let out = try smallDisk("200k").appendingPathComponent("shards")
        let result = try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                             synth.appendingPathComponent("ImageSets/Segmentation/train.txt").path,
                                             "--out", out.path, "--shards", "2"])
        assertOneLineNoSpace(result, naming: out.path)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: out.path).contains { $0.contains(".partial-") })
    }
}
