@testable import Distributed
import Foundation
import TestSupport
import XCTest

/// The run driver as a user meets it: checkpoint retention, a crash in the middle of writing a checkpoint, and
/// the silent failures that are errors now (an unreadable run folder for `--resume auto`, a corrupt pipeline
/// manifest, an unreadable `classes.txt`).
final class TrainRunTests: XCTestCase {
    /// --checkpoint-every 1 --keep 2, and the process killed (SIGKILL) while committing its 5th checkpoint: the
    /// two before it are complete and nothing under a final name is partial; `--resume auto` continues from the
    /// 4th, and the finished run keeps the final checkpoint and the 2 before it.
    func testKeepAndAKillWhileWritingACheckpoint() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try TrainPCTests.makeShards(dir)
        let run = dir.appendingPathComponent("run")
        let arguments = TrainPCTests.trainArguments(shards, run, epochs: 2) + ["--checkpoint-every", "1", "--keep", "2"]
        let killed = try TestSupport.run(TestSupport.binary("pcs-mpi"), arguments,
                                         environment: ["PCS_MPI_CRASH_AT": "commit:5:checkpoint"])
        XCTAssertNotEqual(killed.status, 0, killed.stderr)
        XCTAssertEqual(try TrainCheckpoint.all(in: run).map(\.lastPathComponent), ["checkpoint-00000003.h5", "checkpoint-00000004.h5"])
        let names = try FileManager.default.contentsOfDirectory(atPath: run.path)
        XCTAssertTrue(names.contains { $0.hasPrefix(".checkpoint-00000005.h5.partial-") }, "the crash left its temporary file: \(names)")

        let resumed = try TestSupport.pcsMPI(arguments + ["--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resume: step 4") || resumed.stderr.contains("resume: step 4"), resumed.stdout + resumed.stderr)
        XCTAssertEqual(try TrainCheckpoint.all(in: run).map(\.lastPathComponent),
                       ["checkpoint-00000006.h5", "checkpoint-00000007.h5", "checkpoint-00000008.h5"])
    }

    /// `--resume auto` where the run folder cannot be read stops with the path named instead of starting afresh
    /// (which would overwrite the folder's checkpoints). As root every folder is readable, so the folder is a file
    /// there; as another user it is also a folder without read permission.
    func testResumeAutoOnAnUnreadableRunFolderIsAnError() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try TrainPCTests.makeShards(dir)
        var runs = [dir.appendingPathComponent("a-file")]
        try Data("not a folder".utf8).write(to: runs[0])
        if getuid() != 0 {
            let locked = dir.appendingPathComponent("locked")
            try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: true)
            try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: locked.path)
            runs.append(locked)
        }
        for run in runs {
            let result = try TestSupport.pcsMPI(TrainPCTests.trainArguments(shards, run, epochs: 1) + ["--resume", "auto"])
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains("--resume auto") && result.stderr.contains(run.path), result.stderr)
            XCTAssertEqual(result.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1, result.stderr)
        }
    }

    /// A manifest.json that exists but is not one: `pipeline` stops naming it (it used to re-run every stage).
    func testCorruptPipelineManifestIsAnError() throws {
        let dir = try TestSupport.scratchDirectory()
        let run = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        let manifest = run.appendingPathComponent("manifest.json")
        try Data("{\"stages\": [tru".utf8).write(to: manifest)
        let yaml = dir.appendingPathComponent("p.yaml")
        try "run: \(run.path)\nsynth: {images: 8, size: 64x48, classes: 2}\n".write(to: yaml, atomically: true, encoding: .utf8)
        let result = try TestSupport.pcsMPI(["pipeline", "--config", yaml.path])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains(manifest.path) && result.stderr.contains("manifest"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("synth").path), "no stage ran")
    }

    /// A classes.txt that is not UTF-8 text: `ingest voc` stops naming it (it used to fall back to VOC's names).
    func testUnreadableClassListIsAnError() throws {
        let dir = try TestSupport.scratchDirectory()
        let synth = dir.appendingPathComponent("synth")
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", synth.path, "--images", "4", "--size", "64x48", "--classes", "2",
                                               "--log-level", "warning"]).status, 0)
        let classes = synth.appendingPathComponent("classes.txt")
        try Data([0xFF, 0xFE, 0x00, 0x81]).write(to: classes)
        let result = try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                             synth.appendingPathComponent("ImageSets/Segmentation/train.txt").path,
                                             "--out", dir.appendingPathComponent("shards").path])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains(classes.path), result.stderr)
    }
}
