@testable import Distributed
import Formats
import Foundation
@testable import NN
import TestSupport
import XCTest

/// `pcs-mpi train-pc` on a small synthetic set with the tiny model, as a user runs it under `mpirun -n 2`.
final class TrainPCTests: XCTestCase {
    /// A synthetic dataset ingested into shards; returns the shard folder.
    static func makeShards(_ dir: URL) throws -> URL {
        let synth = dir.appendingPathComponent("synth"), shards = dir.appendingPathComponent("shards")
        XCTAssertEqual(try TestSupport.pcsMPI(["synth", "--out", synth.path, "--images", "24", "--size", "96x96", "--classes", "3",
                                               "--log-level", "warning"]).status, 0)
        XCTAssertEqual(try TestSupport.pcsMPI(["ingest", "voc", "--root", synth.path, "--split",
                                               synth.appendingPathComponent("ImageSets/Segmentation/train.txt").path,
                                               "--out", shards.path, "--shards", "2", "--log-level", "warning"]).status, 0)
        return shards
    }

    static func trainArguments(_ shards: URL, _ run: URL, epochs: Int) -> [String] {
        ["train-pc", "--data", shards.path, "--out", run.path, "--model", "tiny-pc", "--epochs", "\(epochs)", "--batch", "4",
         "--crop", "64", "--pair", "32", "--resize-long", "64:96", "--lr", "1e-3"]
    }

    func testTrainsOnTwoRanksAndWritesCheckpointsAndMetrics() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try Self.makeShards(dir)
        let run = dir.appendingPathComponent("run")
        let result = try TestSupport.mpirun(2, "pcs-mpi", Self.trainArguments(shards, run, epochs: 2))
        XCTAssertEqual(result.status, 0, result.stderr)
        // 18 training images (24, a quarter in val), global batch 4: 4 steps per epoch.
        XCTAssertNotNil(FileManager.default.contents(atPath: run.appendingPathComponent("checkpoint-00000004.h5").path), "after epoch 0")
        XCTAssertNotNil(FileManager.default.contents(atPath: run.appendingPathComponent("checkpoint-00000008.h5").path), "after the last epoch")
        let lines = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 8)
        let events = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(events.count, 1)
        // The checkpoint's model group is a state dict the other tools read.
        XCTAssertEqual(try StateDict.load(path: run.appendingPathComponent("checkpoint-00000008.h5").path).count, 718)
        let synchronized = try TestSupport.mpirun(2, "pcs-mpi", Self.trainArguments(shards, dir.appendingPathComponent("sync"), epochs: 1) + ["--sync-bn"])
        XCTAssertEqual(synchronized.status, 0, synchronized.stderr)
        let odd = try TestSupport.mpirun(2, "pcs-mpi", Self.trainArguments(shards, run, epochs: 1) + ["--batch", "3"])
        XCTAssertNotEqual(odd.status, 0)
        XCTAssertTrue(odd.stderr.contains("does not split evenly over 2 ranks"), odd.stderr)
    }

    /// SIGUSR1 (Slurm's warning before preemption) sent to `mpirun`: the step finishes, a checkpoint is written,
    /// every rank exits 0; `--resume auto` then continues from it.
    func testSignalWritesACheckpointAndResumeContinues() throws {
        try signalRun(SIGUSR1, expectedStatus: 0)
    }

    /// SIGTERM sent to `mpirun`: Open MPI forwards it, the ranks checkpoint and exit 0 as for SIGUSR1, but mpirun
    /// itself then reports status 1 for having been terminated (its own rule; under `srun` each task's status is
    /// the rank's).
    func testTerminationWritesACheckpoint() throws {
        try signalRun(SIGTERM, expectedStatus: 1)
    }

    func signalRun(_ signal: Int32, expectedStatus: Int32) throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try Self.makeShards(dir)
        let run = dir.appendingPathComponent("run")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["mpirun", "-n", "2", "--oversubscribe", "--bind-to", "none", TestSupport.binary("pcs-mpi")]
            + Self.trainArguments(shards, run, epochs: 200)
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let log = dir.appendingPathComponent("log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let metrics = run.appendingPathComponent("metrics.jsonl").path
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, (FileManager.default.contents(atPath: metrics).map { String(decoding: $0, as: UTF8.self) } ?? "")
            .split(separator: "\n").count < 3 {
            usleep(100_000)
        }
        kill(process.processIdentifier, signal)
        while process.isRunning, Date() < deadline { usleep(100_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try handle.close()
        let output = try String(contentsOf: log, encoding: .utf8)
        XCTAssertEqual(process.terminationStatus, expectedStatus, output)
        XCTAssertTrue(output.contains("stop requested"), output)
        let checkpoint = try XCTUnwrap(TrainCheckpoint.newest(in: run), output)
        let stoppedAt = Int(checkpoint.lastPathComponent.dropFirst("checkpoint-".count).prefix(8)) ?? 0
        XCTAssertGreaterThanOrEqual(stoppedAt, 3)

        let resumed = try TestSupport.mpirun(2, "pcs-mpi", Self.trainArguments(shards, run, epochs: 200) + ["--resume", "auto", "--max-steps", "\(stoppedAt + 2)"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resume: step \(stoppedAt)"), resumed.stdout)
    }

    /// Settings from a YAML file, a flag overriding one of them, the resolved settings saved beside the run.
    func testConfigFileAndFlagOverride() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try Self.makeShards(dir)
        let run = dir.appendingPathComponent("run")
        let yaml = dir.appendingPathComponent("pc.yaml")
        try """
        data: \(shards.path)
        out: \(run.path)
        model: tiny-pc
        epochs: 1
        batch: 4
        crop: 64
        pair: 32
        resize-long: "64:96"
        lr: 0.001
        """.write(to: yaml, atomically: true, encoding: .utf8)
        let result = try TestSupport.mpirun(2, "pcs-mpi", ["train-pc", "--config", yaml.path, "--epochs", "2"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 8, "the flag's 2 epochs win over the file's 1")
        let saved = try String(contentsOf: run.appendingPathComponent("config.yaml"), encoding: .utf8)
        XCTAssertTrue(saved.contains("epochs: 2") && saved.contains("model: \"tiny-pc\"") && saved.contains("crop: 64"), saved)

        try "data: \(shards.path)\nout: \(run.path)\nlrr: 1\n".write(to: yaml, atomically: true, encoding: .utf8)
        let unknown = try TestSupport.pcsMPI(["train-pc", "--config", yaml.path])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("pc.yaml") && unknown.stderr.contains("lrr"), unknown.stderr)
    }
}
