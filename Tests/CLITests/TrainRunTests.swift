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
        // The crash's temporary is gone, and metrics.jsonl holds every step once (step 5 was logged before the kill).
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: run.path).contains { $0.contains(".partial-") })
        let steps = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.compactMap { $0["step"] as? Int }
        XCTAssertEqual(steps, Array(1...8))
    }

    /// `--resume auto` when the newest checkpoint is damaged: a warning names it and the run resumes from the one
    /// before; when every checkpoint is damaged, it stops naming one instead of starting afresh.
    func testResumeFallsBackFromADamagedCheckpoint() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try TrainPCTests.makeShards(dir)
        let run = dir.appendingPathComponent("run")
        let arguments = TrainPCTests.trainArguments(shards, run, epochs: 1) + ["--checkpoint-every", "1"]
        XCTAssertEqual(try TestSupport.pcsMPI(arguments).status, 0)
        let newest = run.appendingPathComponent(TrainCheckpoint.fileName(step: 4))
        let full = try Data(contentsOf: newest)
        try full.prefix(full.count / 3).write(to: newest)
        let resumed = try TestSupport.pcsMPI(arguments + ["--resume", "auto", "--epochs", "2"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let output = resumed.stdout + resumed.stderr
        XCTAssertTrue(output.contains("checkpoint-00000004.h5") && output.contains("falling back to checkpoint-00000003.h5"), output)
        XCTAssertTrue(output.contains("resume: step 3"), output)

        for url in try TrainCheckpoint.all(in: run) { try Data("damaged".utf8).write(to: url) }
        let hopeless = try TestSupport.pcsMPI(arguments + ["--resume", "auto"])
        XCTAssertEqual(hopeless.status, 1, hopeless.stderr)
        XCTAssertTrue(hopeless.stderr.contains("checkpoint-0000"), hopeless.stderr)
    }

    /// Temporaries an interrupted run left (a checkpoint's, config.yaml's, a shard's) are removed when the next run
    /// starts in that folder; other hidden files are left alone.
    func testStaleTemporariesAreRemovedAtStart() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try TrainPCTests.makeShards(dir)
        let run = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        for name in [".checkpoint-00000002.h5.partial-4242", ".config.yaml.partial-4242", ".notes.txt.partial-1", ".keep"] {
            try Data("x".utf8).write(to: run.appendingPathComponent(name))
        }
        let staleShard = shards.appendingPathComponent(".train-00000-of-00002.h5.partial-4242")
        try Data("x".utf8).write(to: staleShard)
        XCTAssertEqual(try TestSupport.pcsMPI(TrainPCTests.trainArguments(shards, run, epochs: 1) + ["--max-steps", "1"]).status, 0)
        let left = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasPrefix(".") }.sorted()
        XCTAssertEqual(left, [".keep", ".notes.txt.partial-1"])

        let synth = dir.appendingPathComponent("synth")
        let ingest = try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                             synth.appendingPathComponent("ImageSets/Segmentation/train.txt").path,
                                             "--out", shards.path, "--shards", "2", "--log-level", "info"])
        XCTAssertEqual(ingest.status, 0, ingest.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: staleShard.path))
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

    /// On a terminal (a pseudo-terminal from util-linux's `script`) the progress bar is redrawn in place, and a log
    /// line clears it first instead of being written onto it (`…ETA 0:26checkpoint: …`, issue 18), then the bar comes
    /// back below the line.
    func testLogLinesOnATerminalClearTheBarFirst() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 8, size: "64x48", classes: 2)
        let command = [TestSupport.binary("pcs-mpi"), "train-pc", "--data", shards.path, "--out", dir.appendingPathComponent("run").path,
                       "--model", "tiny-pc", "--epochs", "1", "--batch", "2", "--crop", "64", "--pair", "32", "--resize-long", "64:96",
                       "--checkpoint-every", "2"].joined(separator: " ")
        let result = try TestSupport.run("/usr/bin/script", ["-qfec", command, "/dev/null"], timeout: 300)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let screen = result.stdout
        let bars = screen.components(separatedBy: "\rtrain ").count - 1
        XCTAssertGreaterThan(bars, 3, "no progress bar drawn on the terminal: \(screen.debugDescription)")
        let checkpoints = screen.components(separatedBy: "checkpoint: checkpoint-").count - 1
        XCTAssertGreaterThanOrEqual(checkpoints, 2, screen.debugDescription)
        XCTAssertEqual(screen.components(separatedBy: "\r\u{1B}[Kcheckpoint: checkpoint-").count - 1, checkpoints,
                       "a checkpoint line was written without clearing the bar: \(screen.debugDescription)")
        // Whatever follows a bar's ETA is the next redraw or clear (a carriage return), never text on the bar's line.
        let eta = try NSRegularExpression(pattern: "ETA [0-9]+:[0-9]{2}([^\\r\\n])")
        let onTheBar = eta.matches(in: screen, range: NSRange(screen.startIndex..., in: screen)).count
        XCTAssertEqual(onTheBar, 0, screen.debugDescription)
    }
}
