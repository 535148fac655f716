import Foundation
import TestSupport
import XCTest

/// `pcs-mpi pipeline` through the second half on tiny networks: … → crf-labels → train-aff → infer-aff → cse →
/// eval-labels → train-deeplab → infer-deeplab → eval-final, each stage's output in place, both label sets scored
/// (the random-walk labels ignore nothing, CSE ignores a share of the pixels), and DeepLab trained on the pseudo
/// labels and scored on the val images no stage trained on (with one epoch per network the pseudo labels are too
/// poor for a bound here; `DeepLabCommandTests` checks that DeepLab learns, the demo what the chain reaches).
final class PipelineToPseudoLabelsTests: XCTestCase {
    func testTheChainEndsInScoredPseudoLabels() throws {
        try chain(synth: "{images: 48, size: 96x80, classes: 3, seed: 1}")
    }

    /// The same chain on the same images written and ingested in COCO's layout (sparse category ids, polygons
    /// and RLE, saliency maps beside them for CSE).
    func testTheChainRunsOnCOCOsLayout() throws {
        try chain(synth: "{images: 48, size: 96x80, classes: 3, seed: 1, format: coco}")
    }

    func chain(synth: String) throws {
        let dir = try TestSupport.scratchDirectory()
        let run = dir.appendingPathComponent("run"), yaml = dir.appendingPathComponent("p.yaml")
        try """
        run: \(run.path)
        synth: \(synth)
        ingest: {shards: 2}
        train-pc: {model: tiny-pc, epochs: 1, batch: 4, crop: 64, pair: 32, resize-long: "64:96", lr: 2e-3}
        infer-cam: {split: train, method: convcam, long-side: 96}
        extract-features: {side: 64}
        cluster: {k: 2, restarts: 1, seed: 0}
        train-sp: {model: tiny-sp, epochs: 1, batch: 4, crop: 64, resize-long: "64:96", lr: 2e-3}
        train-aff: {model: tiny-aff, crop: 72, batch: 4, epochs: 1, lr: 0.05}
        train-deeplab: {model: tiny-deeplab, iterations: 300, batch: 4, crop: 64, lr: 2e-3, batch-norm: train, checkpoint-every: 300}
        """.write(to: yaml, atomically: true, encoding: .utf8)
        let result = try TestSupport.mpirun(2, "pcs-mpi", ["pipeline", "--config", yaml.path], timeout: 600)
        XCTAssertEqual(result.status, 0, result.stderr)
        for stage in ["crf-labels", "train-aff", "infer-aff", "cse", "eval-labels", "train-deeplab", "infer-deeplab", "eval-final"] {
            XCTAssertTrue(result.stdout.contains("pipeline: \(stage)"), stage)
        }
        for (set, index) in [("crf-labels", "crf-labels"), ("rw", "rw"), ("pseudo-labels", "pseudo-labels")] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("\(set)/\(index)-index.json").path), set)
        }
        func report(_ name: String, in folder: String = "eval-labels") throws -> [String: Any] {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("\(folder)/\(name).json"))) as? [String: Any])
        }
        let rw = try report("rw"), pseudo = try report("pseudo-labels")
        XCTAssertEqual(rw["ignoredShare"] as? Double, 0)
        let ignored = try XCTUnwrap(pseudo["ignoredShare"] as? Double)
        XCTAssertTrue(ignored > 0 && ignored <= 1, "\(ignored)")
        for r in [rw, pseudo] {
            let mIoU = try XCTUnwrap((r["result"] as? [String: Any])?["meanIoU"] as? Double)
            XCTAssertTrue(mIoU >= 0 && mIoU <= 1)
        }
    
        XCTAssertTrue(result.stdout.contains("pipeline results") && result.stdout.contains("DeepLab + CRF"), result.stdout)

        for map in ["labels", "crf"] {
            let final = try XCTUnwrap((try report(map, in: "eval-final")["result"] as? [String: Any])?["meanIoU"] as? Double)
            XCTAssertTrue(final >= 0 && final <= 1, "DeepLab (\(map)) val mIoU \(final)")
        }
    }
}
