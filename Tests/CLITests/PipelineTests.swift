import Foundation
import TestSupport
import XCTest

/// `pcs-mpi pipeline`: every stage in order under mpirun, the manifest, skipping what is current, redoing what
/// changed and what `--from` names.
final class PipelineTests: XCTestCase {
    struct Manifest: Decodable {
        struct Entry: Decodable { var stamp: String; var finished: String; var commands: [[String]] }
        var stages: [String: Entry]
    }

    func config(_ run: URL, threshold: String) -> String {
        """
        run: \(run.path)
        synth: {images: 24, size: 64x48, classes: 3, seed: 2}
        ingest: {shards: 2}
        train-pc: {model: tiny-pc, epochs: 1, batch: 4, crop: 64, pair: 32, resize-long: "64:96", lr: 1e-3}
        infer-cam: {split: train, long-side: 64, scales: "0.5,1,1.5"}
        eval: {threshold: \(threshold), sheet-images: 3}
        """
    }

    func testStagesManifestSkipAndRedo() throws {
        let dir = try TestSupport.scratchDirectory()
        let run = dir.appendingPathComponent("run"), yaml = dir.appendingPathComponent("p.yaml")
        try config(run, threshold: "0.46").write(to: yaml, atomically: true, encoding: .utf8)
        func pipeline(_ extra: [String] = []) throws -> TestSupport.Result {
            let result = try TestSupport.mpirun(2, "pcs-mpi", ["pipeline", "--config", yaml.path] + extra)
            XCTAssertEqual(result.status, 0, result.stderr)
            return result
        }
        func manifest() throws -> Manifest {
            try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: run.appendingPathComponent("manifest.json")))
        }
        let first = try pipeline()
        XCTAssertTrue(first.stdout.contains("PC seed mIoU"), first.stdout)
        let m1 = try manifest()
        XCTAssertEqual(Set(m1.stages.keys), ["synth", "ingest", "train-pc", "infer-cam", "eval"])
        XCTAssertTrue(m1.stages.values.allSatisfy { !$0.finished.isEmpty })
        for file in ["eval-pc/eval.json", "eval-pc/contact-sheet.png", "cams-pc/cams-index.json", "shards/train-index.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent(file).path), file)
        }

        // Nothing changed: every stage is skipped.
        let second = try pipeline()
        XCTAssertEqual(second.stdout.components(separatedBy: "is up to date").count - 1, 5, second.stdout)
        XCTAssertEqual(try manifest().stages.mapValues(\.finished), m1.stages.mapValues(\.finished))

        // A new eval threshold redoes eval only.
        try config(run, threshold: "0.3").write(to: yaml, atomically: true, encoding: .utf8)
        let third = try pipeline()
        XCTAssertEqual(third.stdout.components(separatedBy: "is up to date").count - 1, 4, third.stdout)
        let m3 = try manifest()
        XCTAssertNotEqual(m3.stages["eval"]?.stamp, m1.stages["eval"]?.stamp)
        XCTAssertEqual(m3.stages["infer-cam"]?.finished, m1.stages["infer-cam"]?.finished)

        // --from infer-cam redoes infer-cam and eval.
        let fourth = try pipeline(["--from", "infer-cam"])
        XCTAssertEqual(fourth.stdout.components(separatedBy: "is up to date").count - 1, 3, fourth.stdout)
        XCTAssertNotEqual(try manifest().stages["infer-cam"]?.finished, m1.stages["infer-cam"]?.finished)

        // An unknown stage in the file, and an unknown --from, are one-line errors.
        try (config(run, threshold: "0.3") + "\ntrain-xx: {epochs: 1}\n").write(to: yaml, atomically: true, encoding: .utf8)
        let bad = try TestSupport.pcsMPI(["pipeline", "--config", yaml.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("unknown stage `train-xx`"), bad.stderr)
        let badFrom = try TestSupport.pcsMPI(["pipeline", "--config", yaml.path, "--from", "nowhere"])
        XCTAssertEqual(badFrom.status, 2, badFrom.stderr)
    }
}
