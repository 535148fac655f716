import Distributed
import Foundation
import Formats
import Storage
import TestSupport
import XCTest

/// train-pc and infer-cam with their two ranks on two test hosts (`scripts/hosts/`: network namespaces, TCP only):
/// the same parameters and CAMs as on one host, bit for bit; a rank killed during an allreduce, or a host whose
/// link is cut, ends the whole job within a bound, keeps the complete checkpoints, and the rerun goes on.
final class MultiHostTests: XCTestCase {
    let quiet = ["--log-level", "warning"]

    /// The hosts go when the class is done (the next class that needs them brings them up again).
    override class func tearDown() { TestHosts.down() }

    override func setUpWithError() throws {
        if let reason = TestHosts.up(2) {
            print("MultiHostTests skipped: \(reason)")
            throw XCTSkip(reason)
        }
    }

    /// One thread per rank on both sides: the arithmetic is then the same whatever the host layout.
    func trainArguments(_ shards: URL, out: URL, epochs: Int = 3) -> [String] {
        ["train-pc", "--data", shards.path, "--out", out.path, "--model", "tiny-pc", "--epochs", "\(epochs)", "--batch", "2",
         "--crop", "64", "--pair", "32", "--resize-long", "64:96", "--lr", "1e-3", "--checkpoint-every", "1", "--keep", "2",
         "--threads", "1"] + quiet
    }

    func inferArguments(_ shards: URL, weights: URL, out: URL) -> [String] {
        ["infer-cam", "--data", shards.path, "--split", "train", "--out", out.path, "--model", "tiny-pc", "--weights", weights.path,
         "--long-side", "64", "--scales", "0.5,1", "--chunk", "1", "--threads", "1"] + quiet
    }

    func oneHost(_ arguments: [String], environment: [String: String] = [:]) throws -> TestSupport.Result {
        try TestSupport.run("/usr/bin/env", ["mpirun", "-n", "2", "--oversubscribe", "--bind-to", "none", TestSupport.binary("pcs-mpi")] + arguments,
                            timeout: 300, environment: environment)
    }

    func model(_ checkpoint: URL) throws -> [String: [Float]] {
        let dict = try StateDict.load(path: checkpoint.path)
        return Dictionary(uniqueKeysWithValues: dict.keys.map { ($0, dict[$0]?.floats ?? []) })
    }

    func cams(_ folder: URL) throws -> [String: CAMRecord] {
        let set = try ShardedDataset(directory: folder, name: CAMSetAttributes.name)
        return Dictionary(uniqueKeysWithValues: try set.ids.map { ($0, try set.camRecord($0)) })
    }

    func testTrainAndInferOnTwoHostsEqualOneHost() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 8, size: "64x48", classes: 2)
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        XCTAssertEqual(try oneHost(trainArguments(shards, out: one)).status, 0)
        let trained = try TestHosts.mpirun(2, TestSupport.binary("pcs-mpi"), trainArguments(shards, out: two))
        XCTAssertEqual(trained.status, 0, trained.stdout + trained.stderr)
        let final = TrainCheckpoint.fileName(step: 12)
        let reference = try model(one.appendingPathComponent(final))
        XCTAssertFalse(reference.isEmpty)
        XCTAssertEqual(try model(two.appendingPathComponent(final)), reference, "parameters differ between one host and two")

        let camsOne = dir.appendingPathComponent("cams-one"), camsTwo = dir.appendingPathComponent("cams-two")
        XCTAssertEqual(try oneHost(inferArguments(shards, weights: one.appendingPathComponent(final), out: camsOne)).status, 0)
        let inferred = try TestHosts.mpirun(2, TestSupport.binary("pcs-mpi"), inferArguments(shards, weights: one.appendingPathComponent(final), out: camsTwo))
        XCTAssertEqual(inferred.status, 0, inferred.stdout + inferred.stderr)
        let referenceCAMs = try cams(camsOne)
        XCTAssertEqual(referenceCAMs.count, 8)
        XCTAssertEqual(try cams(camsTwo), referenceCAMs, "CAMs differ between one host and two")
    }

    /// Rank 1 (on pcs-h1) dies by SIGKILL right after sending a gradient bucket of step 5, while rank 0 (on pcs-h0)
    /// waits in the allreduce: every process on both hosts and mpirun end within 10 s of the death, Open MPI names
    /// the lost rank in one line, the checkpoints on disk are complete, and `--resume auto` on two hosts ends with
    /// the parameters of the uninterrupted run.
    func testRankKilledDuringAllreduceEndsEveryHostAndTheRunResumes() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 8, size: "64x48", classes: 2)
        let reference = dir.appendingPathComponent("reference"), run = dir.appendingPathComponent("run")
        XCTAssertEqual(try oneHost(trainArguments(shards, out: reference)).status, 0)
        let binary = TestSupport.binary("pcs-mpi")
        // tiny-pc's gradients fit one bucket: the 5th allreduce of rank 1 is step 5's.
        let job = try TestHosts.start(2, binary, trainArguments(shards, out: run), environment: ["PCS_MPI_CRASH_AT": "allreduce:5:rank-1-"])
        var seen = false
        var died: Date?
        while job.isRunning, died == nil {
            let alive = !TestHosts.processes(host: 1, running: binary).isEmpty
            if alive { seen = true } else if seen { died = Date() }
            usleep(20_000)
        }
        let result = job.finish(timeout: 60)
        let ended = Date()
        XCTAssertTrue(seen, "rank 1 never ran on pcs-h1")
        XCTAssertFalse(result.timedOut, "the job hung after losing a rank")
        XCTAssertNotEqual(result.status, 0)
        if let died {
            print(String(format: "MultiHostTests: the job ended %.1f s after rank 1 died", ended.timeIntervalSince(died)))
            XCTAssertLessThan(ended.timeIntervalSince(died), 10, "the job took too long to end")
        }
        XCTAssertTrue(TestHosts.processes(host: 0, running: binary).isEmpty && TestHosts.processes(host: 1, running: binary).isEmpty,
                      "a rank outlived the job")
        let output = result.stdout + result.stderr
        XCTAssertEqual(output.split(separator: "\n").filter { $0.contains("process rank 1") && $0.contains("exited on signal 9") }.count, 1, output)

        let kept = try TrainCheckpoint.all(in: run)
        XCTAssertFalse(kept.isEmpty, "no checkpoint before the loss")
        XCTAssertLessThan(try XCTUnwrap(kept.last).lastPathComponent, TrainCheckpoint.fileName(step: 12), "the run ended early")
        for checkpoint in kept { XCTAssertNoThrow(try TrainCheckpoint.verify(checkpoint)) }
        let resumed = try TestHosts.mpirun(2, binary, trainArguments(shards, out: run) + ["--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.stdout + resumed.stderr)
        let final = TrainCheckpoint.fileName(step: 12)
        XCTAssertEqual(try model(run.appendingPathComponent(final)), try model(reference.appendingPathComponent(final)))
    }

    /// pcs-h1's link goes down after the first checkpoint: no rank can tell whether its peer is slow or gone, so
    /// Open MPI's daemon keep-alive (tightened by scripts/hosts/mpirun: 5 s idle, 3 probes 2 s apart) declares the
    /// host lost and ends the job: within 25 s of the cut here, the checkpoints complete, and the rerun resumes.
    func testCutLinkEndsTheJobWithinTheBound() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 8, size: "64x48", classes: 2)
        let run = dir.appendingPathComponent("run")
        let binary = TestSupport.binary("pcs-mpi")
        let job = try TestHosts.start(2, binary, trainArguments(shards, out: run, epochs: 200))
        while job.isRunning, (try? TrainCheckpoint.all(in: run).count) ?? 0 < 2 { usleep(20_000) }
        try TestHosts.setLink(host: 1, up: false)
        defer { try? TestHosts.setLink(host: 1, up: true) }
        let cut = Date()
        let result = job.finish(timeout: 120)
        let ended = Date()
        XCTAssertFalse(result.timedOut, "the job hung after the link was cut")
        XCTAssertNotEqual(result.status, 0, "the job cannot finish without pcs-h1")
        print(String(format: "MultiHostTests: the job ended %.1f s after pcs-h1's link was cut", ended.timeIntervalSince(cut)))
        XCTAssertLessThan(ended.timeIntervalSince(cut), 25, "the lost host was not noticed in time")
        for _ in 0..<100 where !TestHosts.processes(host: 1, running: binary).isEmpty { usleep(100_000) }
        XCTAssertTrue(TestHosts.processes(host: 0, running: binary).isEmpty && TestHosts.processes(host: 1, running: binary).isEmpty,
                      "a rank outlived the job")
        XCTAssertTrue((result.stdout + result.stderr).contains("lost communication with a remote daemon"), result.stdout + result.stderr)
        let kept = try TrainCheckpoint.all(in: run)
        for checkpoint in kept { XCTAssertNoThrow(try TrainCheckpoint.verify(checkpoint)) }
        let step = try XCTUnwrap(Int(try XCTUnwrap(kept.last).deletingPathExtension().lastPathComponent.dropFirst("checkpoint-".count)))

        try TestHosts.setLink(host: 1, up: true)
        let resumed = try TestHosts.mpirun(2, binary, trainArguments(shards, out: run, epochs: 200)
                                           + ["--resume", "auto", "--max-steps", "\(step + 2)", "--log-level", "info"])
        XCTAssertEqual(resumed.status, 0, resumed.stdout + resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resume: step \(step)"), resumed.stdout)
        XCTAssertEqual(try TrainCheckpoint.newest(in: run)?.lastPathComponent, TrainCheckpoint.fileName(step: step + 2))
    }

    /// infer-cam on two hosts loses rank 1 while it commits its second part; the rerun on two hosts keeps the
    /// complete parts and ends with the CAMs of an uninterrupted run on one host.
    func testInterruptedInferenceRerunsToTheSameCAMs() throws {
        let dir = try TestSupport.scratchDirectory()
        let shards = try SyntheticShards.make(in: dir, images: 8, size: "64x48", classes: 2)
        let train = dir.appendingPathComponent("train")
        XCTAssertEqual(try TestSupport.pcsMPI(["train-pc", "--data", shards.path, "--out", train.path, "--model", "tiny-pc", "--max-steps", "2",
                                               "--batch", "2", "--crop", "64", "--pair", "32", "--resize-long", "64:96"] + quiet).status, 0)
        let weights = try XCTUnwrap(TrainCheckpoint.newest(in: train))
        let reference = dir.appendingPathComponent("reference"), out = dir.appendingPathComponent("cams")
        XCTAssertEqual(try oneHost(inferArguments(shards, weights: weights, out: reference)).status, 0)
        let binary = TestSupport.binary("pcs-mpi")
        let killed = try TestHosts.mpirun(2, binary, inferArguments(shards, weights: weights, out: out),
                                          timeout: 120, environment: ["PCS_MPI_CRASH_AT": "commit:2:-r00001-"])
        XCTAssertFalse(killed.timedOut)
        XCTAssertNotEqual(killed.status, 0)
        let rerun = try TestHosts.mpirun(2, binary, inferArguments(shards, weights: weights, out: out) + ["--log-level", "info"])
        XCTAssertEqual(rerun.status, 0, rerun.stdout + rerun.stderr)
        XCTAssertTrue((rerun.stdout + rerun.stderr).contains("images already done"), rerun.stdout + rerun.stderr)
        XCTAssertEqual(try cams(out), try cams(reference))
    }
}
