import Formats
import Foundation
@testable import Imaging
@testable import NN
@testable import PCSformer
import TestSupport
import XCTest

/// CAM inference (spec §4): the pyramid sizes, the normalisation, the whole multi-scale combination against a
/// PyTorch run of upstream's code (scripts/fixtures/make_multiscale_cam_fixture.py), the rank split, and the
/// upstream-format exports.
final class MultiScaleCAMTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Sizes against upstream's two lines evaluated by Python itself (its `round` is half-to-even), on shapes that
    /// include exact halves: 749×1000 gives 374.5 at the first resize.
    func testPyramidSizesMatchUpstreamFormula() throws {
        let shapes = [(500, 375), (375, 500), (500, 500), (749, 1000), (1000, 749), (333, 500), (500, 333), (640, 427),
                      (1000, 3), (81, 500), (499, 500), (500, 281)]
        let script = """
        import json, sys
        out = []
        for w, h in json.loads(sys.argv[1]):
            if w < h: base = (round(w / h * 500), 500)
            else: base = (500, round(h / w * 500))
            out.append([base] + [[round(base[0] * s) // 16 * 16, round(base[1] * s) // 16 * 16] for s in (0.25, 1, 1.5, 2)])
        print(json.dumps(out))
        """
        let argument = "[" + shapes.map { "[\($0.0),\($0.1)]" }.joined(separator: ",") + "]"
        let result = try TestSupport.run(TestSupport.python, ["-c", script, argument])
        XCTAssertEqual(result.status, 0, result.stderr)
        let expected = try JSONDecoder().decode([[[Int]]].self, from: Data(result.stdout.utf8))
        let pyramid = CAMPyramid.upstream
        for (shape, want) in zip(shapes, expected) {
            let base = pyramid.baseSize(width: shape.0, height: shape.1)
            XCTAssertEqual([base.width, base.height], want[0], "base size of \(shape)")
            XCTAssertEqual(pyramid.scaleSizes(width: shape.0, height: shape.1).map { [$0.width, $0.height] }, Array(want[1...]), "scales of \(shape)")
        }
        XCTAssertEqual(pyramid.scaleSizes(width: 500, height: 375).map { [$0.width, $0.height] }, [[112, 80], [496, 368], [736, 560], [992, 736]])
        XCTAssertNil(pyramid.problem(width: 500, height: 375))
        XCTAssertNotNil(pyramid.problem(width: 1000, height: 3), "a side that floors to 0 is refused before inference")
    }

    /// §4.2 by hand: lo = 0 (some pixel clamped) and lo > 0 (positive everywhere).
    func testNormalizationByHand() {
        var clamped: ArraySlice<Float> = [-1, 0, 2, 4]
        MultiScaleCAM.normalize(&clamped)
        let d: Double = 4 + 1e-5
        for (got, want) in zip(clamped, [-1e-5 / d, -1e-5 / d, (2 - 1e-5) / d, (4 - 1e-5) / d]) { XCTAssertEqual(Double(got), want, accuracy: 1e-7) }
        var positive: ArraySlice<Float> = [1, 2, 3]
        MultiScaleCAM.normalize(&positive)
        let e: Double = 2 + 1e-5
        // The minimum pixel is zeroed first, then shifted by lo: −(lo + 1e-5)/(hi − lo + 1e-5).
        for (got, want) in zip(positive, [-(1 + 1e-5) / e, (1 - 1e-5) / e, (2 - 1e-5) / e]) { XCTAssertEqual(Double(got), want, accuracy: 1e-6) }
    }

    /// The 6 passes (3 scales × mirror) of the tiny network, combined, against upstream's code run in PyTorch.
    func testMultiScaleCAMMatchesUpstream() throws {
        let reference = try HDF5File.open(Self.fixtures.appendingPathComponent("multiscale_cam.h5").path)
        let model = Conformer(.tiny, seed: 5)
        try model.load(try StateDict.load(path: Self.fixtures.appendingPathComponent("conformer_tiny.pth").path), strict: true, source: "conformer_tiny.pth")
        model.setBatchNormMode(.inference)
        let image = try PNGCodec.decodeRGB(try reference.read("/image_png", as: UInt8.self).values, name: "image_png")
        let label: [Float] = try reference.read("/label").values
        let pyramid = CAMPyramid(longSide: 64, scales: [0.5, 1, 1.5])
        XCTAssertEqual(pyramid.scaleSizes(width: image.width, height: image.height).map { [$0.width, $0.height] }, [[32, 16], [64, 48], [96, 64]])
        let maps = MultiScaleCAM(model: model, method: .transcam, pyramid: pyramid)(image, label: label)
        let classes: [Int32] = try reference.read("/classes").values
        let (cams, shape) = try reference.read("/cams", as: Float.self)
        XCTAssertEqual(maps.classes, classes.map { Int($0) })
        XCTAssertEqual([maps.classes.count, maps.height, maps.width], shape)
        let worst = zip(maps.values, cams).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 2e-5, "largest difference from upstream's normalised CAMs")
        // A mirrored pass that were not mirrored back would move every map's mass: check the left/right balance too.
        XCTAssertGreaterThan(cams.filter { $0 > 0.5 }.count, 0)
    }

    /// An absent class is not computed and an image without classes gives no maps.
    func testOnlyPresentClasses() {
        XCTAssertEqual(MultiScaleCAM.presentClasses([0, 1, 0, 1e-6, 0.5]), [1, 4])
    }

    /// Longest-processing-time-first: every id once, ranks' loads within the largest single cost.
    func testAssignmentBalancesCost() {
        var rng = SeededRandom(seed: 3)
        let costs = (0..<101).map { _ in rng.nextDouble() * 10 + 1 }
        let shares = CAMInferenceJob.assign(costs: costs, ranks: 4)
        XCTAssertEqual(shares.flatMap { $0 }.sorted(), Array(0..<101))
        let loads = shares.map { $0.reduce(0) { $0 + costs[$1] } }
        XCTAssertLessThanOrEqual(loads.max()! - loads.min()!, costs.max()!)
        XCTAssertEqual(CAMInferenceJob.assign(costs: costs, ranks: 4), shares, "deterministic on every rank")
    }

    /// Attention PNG values: truncation toward zero, and numpy's wrap-around for values ≤ −1 (−12.7 → 244).
    func testAttentionTruncatesAndWraps() {
        let map: ArraySlice<Float> = [1, 0.5, 0.999, 0, -12.7 / 255]
        let png = CAMExports.attention(map, width: 5, height: 1)
        XCTAssertEqual(png.pixels, [255, 127, 254, 0, 244], "numpy 1.24 gives the same bytes")
    }

    /// `--export-npy` files load in numpy as upstream's dict of float32 maps.
    func testNumpyDictFileLoadsInNumpy() throws {
        let dir = try TestSupport.scratchDirectory()
        let url = dir.appendingPathComponent("2007_000032.npy")
        try NumpyDictFile.write([(key: 4, shape: [2, 3], values: [0, 1, 2, 3, 4, 5.5]), (key: 14, shape: [2, 3], values: [-1, 0, 0, 0, 0, 1e-5])], to: url)
        let script = """
        import numpy as np, sys
        d = np.load(sys.argv[1], allow_pickle=True).item()
        for k in sorted(d): print(k, d[k].dtype, d[k].shape, repr(float(d[k].sum())), repr(float(d[k][1, 2])))
        """
        let result = try TestSupport.run(TestSupport.python, ["-W", "ignore", "-c", script, url.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.split(separator: "\n").map(String.init),
                       ["4 float32 (2, 3) 15.5 5.5", "14 float32 (2, 3) \(Double(Float(-1) + Float(1e-5))) \(Double(Float(1e-5)))"])
    }

    /// Heatmaps are RGB: on a black image a hot pixel (N = 1) is red, a cold one (N = 0) blue; the brightest
    /// channel of the overlay reaches 255 (upstream's renormalisation by the maximum).
    func testHeatmapIsRGB() {
        let black = PixelImage(width: 2, height: 1, channels: 3)
        let overlay = CAMExports.heatmap([1, 0], on: black)
        let hot = Array(overlay.pixels[0..<3]), cold = Array(overlay.pixels[3..<6])
        XCTAssertGreaterThan(hot[0], hot[2], "hot is red")
        XCTAssertGreaterThan(cold[2], cold[0], "cold is blue")
        XCTAssertEqual(overlay.pixels.max(), 255)
        XCTAssertEqual(JetColormap.rgb(0), [0, 0, 0.5])
        XCTAssertEqual(JetColormap.rgb(255), [0.5, 0, 0])
    }

    /// Flip handling on its own: a mirrored pass is mirrored back (column x takes the source's W − 1 − x) and
    /// weighted by the label before it is added.
    func testMirroredPassIsMirroredBack() {
        var sum = [Float](repeating: 1, count: 6)
        let source: [Float] = [1, 2, 3, 4, 5, 6] // 2 rows × 3 columns
        source.withUnsafeBufferPointer { MultiScaleCAM.accumulate(into: &sum, offset: 0, $0.baseAddress!, width: 3, height: 2, weight: 2, mirrored: true) }
        XCTAssertEqual(sum, [7, 5, 3, 13, 11, 9])
        source.withUnsafeBufferPointer { MultiScaleCAM.accumulate(into: &sum, offset: 0, $0.baseAddress!, width: 3, height: 2, weight: 1, mirrored: false) }
        XCTAssertEqual(sum, [8, 7, 6, 17, 16, 15])
    }
}
