import Formats
import NN
@testable import PCSformer
import Storage
import XCTest

/// The sparse walk (`RandomWalkArgmax`) against upstream's dense one at image size: `random_walk_500x375.h5`, made by
/// `scripts/bench/bench_aff_torch.py fixture` with PSA's own lines (the n × n matrix A^β, column-normalised, squared
/// 7 times in float32, V · T, bilinear, max) on a synthetic scene's affinities (34 × 2,365 pairs on 63 × 47 cells)
/// and two classes' CAMs, with PCSformer's settings (β 14, logt 7, background 0.46).
final class RandomWalkFixtureTests: XCTestCase {
    func testSparseWalkLabelsAgreeWithUpstreamDenseWalk() throws {
        let file = try HDF5File.open(MultiScaleCAMTests.fixtures.appendingPathComponent("random_walk_500x375.h5").path)
        let (q, qShape): ([Int32], [Int]) = try file.read("affinity_q")
        let (camsQ, camShape): ([UInt8], [Int]) = try file.read("cams_q")
        let (classes, _): ([Int32], [Int]) = try file.read("classes")
        let (expected, _): ([UInt8], [Int]) = try file.read("argmax")
        let beta = try XCTUnwrap(try file.numericAttribute("beta", as: Double.self)?.first)
        let logT = try XCTUnwrap(try file.numericAttribute("logt", as: Int64.self)?.first)
        let background = try XCTUnwrap(try file.numericAttribute("background", as: Double.self)?.first)
        let (h, w) = (camShape[1], camShape[2])
        let (hf, wf) = ((h + 7) / 8, (w + 7) / 8)
        let pairs = AffinityPairs(height: hf, width: wf)
        XCTAssertEqual(qShape, [pairs.directionCount, pairs.fromCount], "the fixture's pair layout is upstream's radius 5")
        // Both sides read the same float32 values: q / 65535 and q / 255.
        let affinity = q.map { Float($0) / 65535 }
        let cams = ClassActivationMaps(classes: classes.map(Int.init), width: w, height: h, values: camsQ.map { Float($0) / 255 })

        func agreement(_ walk: RandomWalk) -> Double {
            let padded = RandomWalkArgmax(walk: walk, backgroundScore: Float(background))(
                affinity: affinity, pairs: pairs, featureHeight: hf, featureWidth: wf, cams: cams, labels: 21, threads: 2)
            var same = 0
            for y in 0..<h { for x in 0..<w where padded[y * wf * 8 + x] == expected[y * w + x] { same += 1 } }
            return Double(same) / Double(h * w)
        }
        let walked = agreement(RandomWalk(beta: beta, logT: Int(logT)))
        XCTAssertGreaterThanOrEqual(walked, 0.999, "sparse and dense walks agree on \(100 * walked) % of the pixels")
        // The walk matters here: the pooled CAMs upsampled without it (T^1 ≈ identity at logT 0) disagree far more.
        let unwalked = agreement(RandomWalk(beta: beta, logT: 0))
        XCTAssertLessThan(unwalked, 0.95, "without the walk \(100 * unwalked) % agree: the fixture would not test the walk")
        print(String(format: "random walk 500x375: %.4f %% of pixels agree with upstream's dense walk (%.2f %% without the walk)", 100 * walked, 100 * unwalked))
    }
}
