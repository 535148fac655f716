import CCRF
import Foundation
import XCTest
@testable import Segmentation

/// The pydensecrf fixtures of `Fixtures/densecrf` (see scripts/fixtures/make_densecrf_fixtures.py): a JSON header per
/// case and raw little-endian arrays.
struct DenseCRFFixture: Decodable {
    struct Gaussian: Decodable { var sxy: Double; var compat: Double }
    struct Bilateral: Decodable { var sxy: Double; var srgb: Double; var compat: Double }
    var name: String
    var preset: String
    var width: Int
    var height: Int
    var labels: Int
    var iterations: Int
    var unary: String
    var gt_prob: Double?
    var gaussian: Gaussian
    var bilateral: Bilateral
    var files: [String: String]

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/densecrf")

    static func load(_ name: String) throws -> DenseCRFFixture {
        try JSONDecoder().decode(DenseCRFFixture.self, from: Data(contentsOf: directory.appendingPathComponent("\(name).json")))
    }

    func raw<T>(_ key: String, as: T.Type) throws -> [T] {
        let file = try XCTUnwrap(files[key], "\(name): no \(key) file")
        let data = try Data(contentsOf: DenseCRFFixture.directory.appendingPathComponent(file))
        return data.withUnsafeBytes { Array($0.bindMemory(to: T.self)) }
    }

    var parameters: CRFParameters {
        CRFParameters(iterations: iterations, gtProb: gt_prob ?? 0.7,
                      gaussianSXY: Float(gaussian.sxy), gaussianCompat: Float(gaussian.compat),
                      bilateralSXY: Float(bilateral.sxy), bilateralSRGB: Float(bilateral.srgb),
                      bilateralCompat: Float(bilateral.compat))
    }

    /// Q (L × N) from our implementation on the fixture's inputs.
    func run(threads: Int = 1) throws -> [Float] {
        let image = try raw("image", as: UInt8.self)
        if unary == "labels" {
            return try DenseCRF.inference(image: image, width: width, height: height, labelMap: raw("labels", as: UInt8.self),
                                          labels: labels, parameters: parameters, threads: threads)
        }
        return try DenseCRF.inference(image: image, width: width, height: height, probabilities: raw("probs", as: Float.self),
                                      labels: labels, parameters: parameters, threads: threads)
    }
}

/// A small deterministic generator (the tests must not depend on the platform's random source).
private struct LCG {
    var state: UInt64
    mutating func next() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) / Double(1 << 53)
    }
}

/// A structured RGB image (a disc and a horizontal band on a two-tone background) with ±8 levels of noise.
private func syntheticImage(width w: Int, height h: Int, seed: UInt64) -> [UInt8] {
    var rng = LCG(state: seed)
    var image = [UInt8](repeating: 0, count: 3 * w * h)
    for y in 0..<h {
        for x in 0..<w {
            let disc = (x - w / 2) * (x - w / 2) + (y - h / 2) * (y - h / 2) < (h / 3) * (h / 3)
            for c in 0..<3 {
                let base = disc ? 60 + 20 * c : (x < w / 3 ? 180 : 120 - 30 * c) + (y < h / 4 ? 40 : 0)
                image[3 * (y * w + x) + c] = UInt8(clamping: base + Int(16 * rng.next()) - 8)
            }
        }
    }
    return image
}

final class DenseCRFTests: XCTestCase {
    // MARK: Lattice against brute force

    /// The permutohedral lattice approximates out_i = Σ_j exp(−½‖f_i − f_j‖²) v_j only up to an overall scale and a
    /// blur that is not exactly Gaussian, so the comparison is on the *normalised* filter K v / K 1 (the scale
    /// cancels, as in the CRF's symmetric normalisation), as the RMS error relative to the RMS variation of the exact
    /// result around its mean. Measured: 1.3 % (d = 2) and 2.8 % (d = 5). Tolerance 4 % and 6 %. A brute-force
    /// filter with σ off by ×1.5 is 12–14 % away from the lattice, so the bound can catch a wrong scale factor.
    func testLatticeMatchesBruteForceGaussian() {
        let w = 32, h = 24, n = w * h, c = 3
        let image = syntheticImage(width: w, height: h, seed: 7)
        var rng = LCG(state: 11)
        var values = [Float](repeating: 0, count: n * c)
        for i in 0..<n {
            values[i * c] = i % w < w / 2 ? 1 : 0          // a step
            values[i * c + 1] = Float(i / w) / Float(h)     // a ramp
            values[i * c + 2] = Float(rng.next())           // noise
        }
        let sxy: Float = 3, srgb: Float = 10
        for (d, tolerance) in [(2, 0.04), (5, 0.06)] {
            var f = [Float](repeating: 0, count: n * d)
            for i in 0..<n {
                f[i * d] = Float(i % w) / sxy
                f[i * d + 1] = Float(i / w) / sxy
                for k in 2..<d { f[i * d + k] = Float(image[3 * i + k - 2]) / srgb }
            }
            let lattice = PermutohedralLattice(features: f, dimension: d)
            let filtered = lattice.filter(values, channels: c)
            let ones = lattice.filter([Float](repeating: 1, count: n), channels: 1)
            func relativeError(sigmaScale s: Double) -> Double {
                var e2 = 0.0, v2 = 0.0
                var exact = [Double](repeating: 0, count: n * c), norm = [Double](repeating: 0, count: n)
                for i in 0..<n {
                    for j in 0..<n {
                        var dist = 0.0
                        for k in 0..<d { let t = Double(f[i * d + k] - f[j * d + k]) / s; dist += t * t }
                        let g = exp(-0.5 * dist)
                        norm[i] += g
                        for ch in 0..<c { exact[i * c + ch] += g * Double(values[j * c + ch]) }
                    }
                }
                for ch in 0..<c {
                    var mean = 0.0
                    for i in 0..<n { mean += exact[i * c + ch] / norm[i] }
                    mean /= Double(n)
                    for i in 0..<n {
                        let a = Double(filtered[i * c + ch] / ones[i]), b = exact[i * c + ch] / norm[i]
                        e2 += (a - b) * (a - b)
                        v2 += (b - mean) * (b - mean)
                    }
                }
                return (e2 / v2).squareRoot()
            }
            let error = relativeError(sigmaScale: 1), wrong = relativeError(sigmaScale: 1.5)
            XCTAssertLessThan(error, tolerance, "d = \(d): lattice vs brute-force Gaussian, relative RMS error")
            XCTAssertGreaterThan(wrong, 2 * tolerance, "d = \(d): a brute force with σ × 1.5 should be far off")
            XCTAssertEqual(lattice.filter(values, channels: c, threads: 3), filtered, "d = \(d): thread count changed the filter")
            // D = K·1 must be positive for D^{−½}.
            XCTAssertGreaterThan(ones.min() ?? 0, 0)
            print("lattice d = \(d): relative RMS error \(error) (tolerance \(tolerance)); with σ × 1.5: \(wrong)")
        }
    }

    // MARK: pydensecrf fixtures

    /// Our Q against pydensecrf's after 10 iterations. The operations are densecrf's, in its order, down to Eigen's
    /// SSE exp and sum in the softmax, so the label-unary cases agree bit for bit on x86-64 glibc; the probability
    /// cases differ by an ulp or so, from numpy's float32 log in `unary_from_softmax` (measured max |ΔQ| ≤ 1e-6).
    /// Tolerance: argmax on ≥ 99.5 % of pixels and max |ΔQ| ≤ 1e-5.
    func testPresetsAgainstPydensecrf() throws {
        for name in ["psa_label", "psa_label_odd", "psa_softmax", "deeplab", "two_labels"] {
            let fixture = try DenseCRFFixture.load(name)
            let n = fixture.width * fixture.height
            let q = try fixture.run()
            let reference = try fixture.raw("q", as: Float.self)
            let referenceLabels = try fixture.raw("argmax", as: UInt8.self)
            XCTAssertEqual(q.count, fixture.labels * n, name)
            XCTAssertEqual(reference.count, q.count, name)
            let labels = DenseCRF.argmax(q, labels: fixture.labels)
            let agreement = Double(zip(labels, referenceLabels).filter { $0 == $1 }.count) / Double(n)
            let maxDifference = zip(q, reference).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertGreaterThanOrEqual(agreement, 0.995, "\(name): argmax agreement with pydensecrf")
            XCTAssertLessThanOrEqual(maxDifference, 1e-5, "\(name): max |Q − Q_pydensecrf|")
            // Each pixel's Q is a distribution.
            for i in stride(from: 0, to: n, by: 97) {
                let sum = (0..<fixture.labels).reduce(Float(0)) { $0 + q[$1 * n + i] }
                XCTAssertEqual(sum, 1, accuracy: 1e-5, "\(name): Q at pixel \(i) does not sum to 1")
            }
        }
    }

    /// The CRF must change something: its labels differ from the unary argmax on a few percent of pixels (as
    /// pydensecrf's do), so agreement with the fixture is not agreement with the input.
    func testCRFChangesLabels() throws {
        let fixture = try DenseCRFFixture.load("psa_label")
        let q = try fixture.run()
        let labels = DenseCRF.argmax(q, labels: fixture.labels)
        let input = try fixture.raw("labels", as: UInt8.self)
        let changed = Double(zip(labels, input).filter { $0 != $1 }.count) / Double(labels.count)
        XCTAssertGreaterThan(changed, 0.02)
        XCTAssertLessThan(changed, 0.5)
    }

    // MARK: Threads

    /// Q for 1, 2 and 3 threads, bit for bit, on an image large enough that the splat (vertex ranges), the fused
    /// slice and softmax (pixel ranges) and the lattice build split (21 labels: rows of 24 floats; 5: rows of 8;
    /// 2: rows of 4 and the scalar slice order).
    func testThreadCountsGiveIdenticalQ() throws {
        let w = 64, h = 48, n = w * h
        let image = syntheticImage(width: w, height: h, seed: 3)
        for labels in [21, 5, 2] {
            var rng = LCG(state: UInt64(labels))
            let labelMap = (0..<n).map { i in UInt8((i % w) * labels / w + (rng.next() < 0.1 ? 1 : 0)) % UInt8(labels) }
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                results.append(try DenseCRF.inference(image: image, width: w, height: h, labelMap: labelMap, labels: labels,
                                                      parameters: CRFPreset.psaLabel.parameters(), threads: threads))
            }
            XCTAssertEqual(results[0], results[1], "\(labels) labels: 1 vs 2 threads")
            XCTAssertEqual(results[0], results[2], "\(labels) labels: 1 vs 3 threads")
        }
    }

    /// The lattice numbers its vertices in first-insertion order whatever the thread count: with several threads the
    /// points are numbered in per-thread tables and merged (`PermutohedralLattice.insert`), which must give the same
    /// vertex of every point, the same neighbours and the same weights as one thread inserting every key in order.
    func testLatticeNumberingDoesNotDependOnThreads() {
        let w = 150, h = 100, n = w * h
        let image = syntheticImage(width: w, height: h, seed: 9)
        for (d, sxy, srgb) in [(2, Float(1), Float(1)), (5, Float(20), Float(5))] {
            var f = [Float](repeating: 0, count: n * d)
            for i in 0..<n {
                f[i * d] = Float(i % w) / sxy
                f[i * d + 1] = Float(i / w) / sxy
                for k in 2..<d { f[i * d + k] = Float(image[3 * i + k - 2]) / srgb }
            }
            let one = PermutohedralLattice(features: f, dimension: d, threads: 1)
            for threads in [2, 3] {
                let many = PermutohedralLattice(features: f, dimension: d, threads: threads)
                XCTAssertEqual(many.vertexCount, one.vertexCount, "d = \(d), \(threads) threads: vertex count")
                XCTAssertEqual(many.offsets, one.offsets, "d = \(d), \(threads) threads: vertex numbers")
                XCTAssertEqual(many.neighbours, one.neighbours, "d = \(d), \(threads) threads: neighbours")
                XCTAssertEqual(many.weights, one.weights, "d = \(d), \(threads) threads: weights")
            }
            // Vertex numbers are first-insertion order: scanning the offsets, each new vertex is the next number.
            var next: Int32 = 1
            for o in one.offsets where o >= next {
                XCTAssertEqual(o, next, "d = \(d): vertex \(o) appears before vertex \(next)")
                next = o + 1
            }
        }
    }

    /// The AVX2 and baseline copies of the C kernels (`ccrf_use_portable`), and the per-term path the CRF takes when a
    /// lattice's value buffers pass `valueBufferLimit` (lanes filtered in rounds), give Q bit for bit equal to the
    /// fused default, at 1 and 2 threads, for 21 labels (rows of 24), 5 (rows of 8, the generic update) and 2 (the
    /// scalar slice order), with both unary kinds.
    func testKernelCopiesAndRoundsGiveIdenticalQ() throws {
        defer { ccrf_use_portable(0) }
        print("AVX2 kernels on this CPU: \(ccrf_uses_avx2() != 0)")
        let w = 40, h = 30, n = w * h
        let image = syntheticImage(width: w, height: h, seed: 5)
        for labels in [21, 5, 2] {
            var rng = LCG(state: UInt64(100 + labels))
            let labelMap = (0..<n).map { i in UInt8((i / 7 + (rng.next() < 0.2 ? 1 : 0)) % labels) }
            var probabilities = (0..<(labels * n)).map { _ in Float(rng.next()) + 0.05 }
            for i in 0..<n {
                let total = (0..<labels).reduce(Float(0)) { $0 + probabilities[$1 * n + i] }
                for k in 0..<labels { probabilities[k * n + i] /= total }
            }
            for unaryFromLabels in [true, false] {
                func run(threads: Int, portable: Bool = false, limit: Int? = nil) throws -> [Float] {
                    ccrf_use_portable(portable ? 1 : 0)
                    let preset: CRFPreset = unaryFromLabels ? .psaLabel : .deeplab
                    var crf = try DenseCRF.model(image: image, width: w, height: h, labels: labels,
                                                 parameters: preset.parameters(), threads: threads)
                    if let limit { crf.valueBufferLimit = limit }
                    if unaryFromLabels {
                        try crf.setUnary(labelMap: labelMap, gtProb: 0.7)
                    } else {
                        try crf.setUnary(probabilities: probabilities)
                    }
                    return crf.inference(iterations: 5)
                }
                let what = "\(labels) labels, \(unaryFromLabels ? "label" : "probability") unaries"
                let reference = try run(threads: 1)
                XCTAssertTrue(reference.allSatisfy(\.isFinite), what)
                XCTAssertEqual(try run(threads: 1, portable: true), reference, "\(what): baseline vs AVX2 kernels")
                XCTAssertEqual(try run(threads: 2, portable: true), reference, "\(what): baseline kernels, 2 threads")
                // 64 bytes hold one round of 4 lanes for a handful of vertices: every term filters in rounds.
                XCTAssertEqual(try run(threads: 1, limit: 64), reference, "\(what): lanes in rounds")
                XCTAssertEqual(try run(threads: 2, limit: 64), reference, "\(what): lanes in rounds, 2 threads")
            }
        }
    }

    // MARK: Unaries and presets

    func testUnaryFromLabels() throws {
        let u = try CRFUnary.fromLabels([0, 2, 1], labels: 3, gtProb: 0.7)
        let p = Float(-log(0.7)), q = Float(-log(0.3 / 2))
        XCTAssertEqual(u, [p, q, q,   q, q, p,   q, p, q])      // label-major: U[l·N + i]
        let probs: [Float] = [0.5, 0, 1, 0.5, 1, 0]
        XCTAssertEqual(try CRFUnary.fromProbabilities(probs, labels: 2, pixels: 3),
                       probs.map { -logf(min(max($0, 1e-5), 1)) })
    }

    func testPresetParameters() {
        let label = CRFPreset.psaLabel.parameters()
        XCTAssertEqual([label.gaussianSXY, label.gaussianCompat, label.bilateralSXY, label.bilateralSRGB, label.bilateralCompat],
                       [3, 3, 50, 5, 10])
        XCTAssertEqual(label.gtProb, 0.7)
        XCTAssertEqual(label.iterations, 10)
        let softmax = CRFPreset.psaSoftmax.parameters(scale: 2)
        XCTAssertEqual([softmax.gaussianSXY, softmax.bilateralSXY, softmax.bilateralSRGB], [1.5, 40, 13])
        let deeplab = CRFPreset.deeplab.parameters()
        XCTAssertEqual([deeplab.gaussianSXY, deeplab.gaussianCompat, deeplab.bilateralSXY, deeplab.bilateralSRGB,
                        deeplab.bilateralCompat], [1, 3, 67, 3, 4])
        XCTAssertEqual(CRFPreset(rawValue: "psa-label"), .psaLabel)
        XCTAssertEqual(CRFPreset.psaLabel.unarySource, .labels)
        XCTAssertEqual(CRFPreset.deeplab.unarySource, .probabilities)
    }

    // MARK: Bad input

    func testBadInputThrowsOneLineErrors() {
        let w = 8, h = 6, n = w * h
        let image = [UInt8](repeating: 100, count: 3 * n)
        func check(_ expected: DenseCRFError, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try body(), file: file, line: line) { error in
                XCTAssertEqual(error as? DenseCRFError, expected, file: file, line: line)
                XCTAssertFalse("\(error)".contains("\n"), "multi-line error: \(error)", file: file, line: line)
            }
        }
        var labelMap = [UInt8](repeating: 1, count: n)
        labelMap[13] = 21
        check(.labelOutOfRange(label: 21, pixel: 13, labels: 21)) {
            _ = try DenseCRF.labels(image: image, width: w, height: h, labelMap: labelMap)
        }
        check(.shapeMismatch(what: "the RGB image", expected: "6 × 8 × 3", actual: 3 * n - 3)) {
            _ = try DenseCRF.labels(image: Array(image.dropLast(3)), width: w, height: h, labelMap: [UInt8](repeating: 0, count: n))
        }
        check(.shapeMismatch(what: "the label map", expected: "6 × 8", actual: n + 1)) {
            _ = try DenseCRF.labels(image: image, width: w, height: h, labelMap: [UInt8](repeating: 0, count: n + 1))
        }
        check(.shapeMismatch(what: "the probability map", expected: "4 × 6 × 8", actual: 3 * n)) {
            _ = try DenseCRF.labels(image: image, width: w, height: h, probabilities: [Float](repeating: 0.25, count: 3 * n),
                                    labels: 4, parameters: CRFPreset.deeplab.parameters())
        }
        var bad = CRFPreset.psaLabel.parameters()
        bad.gtProb = 1
        check(.invalidParameter(name: "gt_prob", value: "1.0", requirement: "in (0, 1)")) {
            _ = try DenseCRF.labels(image: image, width: w, height: h, labelMap: [UInt8](repeating: 0, count: n), parameters: bad)
        }
        bad = CRFPreset.psaLabel.parameters()
        bad.bilateralSRGB = 0
        check(.invalidParameter(name: "bilateral srgb", value: "0.0", requirement: "a positive number")) {
            _ = try DenseCRF.labels(image: image, width: w, height: h, labelMap: [UInt8](repeating: 0, count: n), parameters: bad)
        }
        check(.invalidParameter(name: "image size", value: "0 × 6", requirement: "at least 1 × 1")) {
            _ = try DenseCRF(width: 0, height: 6, labels: 2)
        }
        var probabilities = [Float](repeating: 0.5, count: 2 * n)
        probabilities[5] = .nan
        check(.invalidParameter(name: "probability at index 5", value: "nan", requirement: "a number")) {
            _ = try DenseCRF.labels(image: image, width: w, height: h, probabilities: probabilities, labels: 2,
                                    parameters: CRFPreset.deeplab.parameters())
        }
    }

    /// A CRF without pairwise terms returns softmax(−U) (densecrf's behaviour), and 0 iterations the same.
    func testNoIterationsIsSoftmaxOfUnary() throws {
        var crf = try DenseCRF(width: 3, height: 1, labels: 2)
        try crf.setUnaryEnergy([0, 1, 2, 1, 1, 0])
        let q = crf.inference(iterations: 5)
        for i in 0..<3 {
            let u0 = [Float(0), 1, 2][i], u1 = [Float(1), 1, 0][i]
            XCTAssertEqual(q[i], 1 / (1 + exp(u0 - u1)), accuracy: 1e-6)
            XCTAssertEqual(q[3 + i], 1 / (1 + exp(u1 - u0)), accuracy: 1e-6)
        }
    }
}
