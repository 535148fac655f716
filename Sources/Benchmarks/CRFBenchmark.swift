import Foundation
import NN
import Segmentation

/// `bench crf`: the dense CRF as the pipeline calls it per image (model, unary, both kernels, 10 iterations,
/// argmax) on one 500×375 RGB image with 21 labels, for each preset and thread count. The inputs are those of
/// `scripts/bench/bench_crf_pydensecrf.py --save-inputs DIR` when given (so both sides time the same data), else a
/// generated scene of rectangles with a corrupted label map and noisy probabilities.
public struct CRFBenchmark {
    public struct Inputs {
        public var width: Int, height: Int, labels: Int
        /// (H, W, 3) RGB, (H, W) labels, (labels, H, W) probabilities.
        public var image: [UInt8], labelMap: [UInt8], probabilities: [Float]
    }

    public struct Result: Codable {
        public var preset: String
        public var threads: Int
        public var imagesPerSecond: Double
        /// Milliseconds per image in each phase: the lattices and D^{−½} (`model`), the unary, the mean-field
        /// iterations, the argmax.
        public var phaseMilliseconds: [String: Double]
    }

    /// The phases of `Result.phaseMilliseconds`, in the order they run.
    public static let phases = ["lattices", "unary", "mean field", "argmax"]

    public var images: Int

    public init(images: Int) { self.images = images }

    /// Reads the raw inputs the pydensecrf script saved.
    public static func load(_ folder: URL) throws -> Inputs {
        struct Header: Codable { var width: Int, height: Int, labels: Int }
        let header = try JSONDecoder().decode(Header.self, from: Data(contentsOf: folder.appendingPathComponent("inputs.json")))
        let (w, h, l) = (header.width, header.height, header.labels)
        let image = [UInt8](try Data(contentsOf: folder.appendingPathComponent("image.u8")))
        let labels = [UInt8](try Data(contentsOf: folder.appendingPathComponent("labels.u8")))
        let raw = try Data(contentsOf: folder.appendingPathComponent("probs.f32"))
        guard image.count == w * h * 3, labels.count == w * h, raw.count == 4 * l * w * h else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: folder.path])
        }
        let probabilities = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return Inputs(width: w, height: h, labels: l, image: image, labelMap: labels, probabilities: probabilities)
    }

    /// A generated scene: rectangles of random colours and labels, 20 % of the label pixels flipped, and
    /// probabilities 0.6 on the true label (noise on the rest), normalised.
    public static func generated(width: Int = 500, height: Int = 375, labels: Int = 21) -> Inputs {
        var rng = SeededRandom(seed: 17)
        var image = [UInt8](repeating: 128, count: width * height * 3)
        var truth = [UInt8](repeating: 0, count: width * height)
        for _ in 0..<12 {
            let x0 = Int(rng.next() % UInt64(width)), y0 = Int(rng.next() % UInt64(height))
            let x1 = min(width, x0 + 40 + Int(rng.next() % 200)), y1 = min(height, y0 + 30 + Int(rng.next() % 150))
            let label = UInt8(1 + rng.next() % UInt64(labels - 1))
            let colour = (0..<3).map { _ in UInt8(rng.next() % 256) }
            for y in y0..<y1 {
                for x in x0..<x1 {
                    truth[y * width + x] = label
                    for c in 0..<3 { image[(y * width + x) * 3 + c] = colour[c] &+ UInt8(rng.next() % 16) }
                }
            }
        }
        let labelMap = truth.map { rng.nextFloat() < 0.2 ? UInt8(rng.next() % UInt64(labels)) : $0 }
        var probabilities = [Float](repeating: 0, count: labels * width * height)
        for p in 0..<(width * height) {
            var total: Float = 0
            for l in 0..<labels {
                let v = (Int(truth[p]) == l ? 0.6 : 0) + 0.1 * rng.nextFloat()
                probabilities[l * width * height + p] = v
                total += v
            }
            for l in 0..<labels { probabilities[l * width * height + p] /= total }
        }
        return Inputs(width: width, height: height, labels: labels, image: image, labelMap: labelMap, probabilities: probabilities)
    }

    /// Images per second of one preset at `threads` threads (after one untimed call), and the time in each phase.
    public func measure(_ inputs: Inputs, preset: CRFPreset, threads: Int) throws -> Result {
        let parameters = preset.parameters()
        var seconds = [Double](repeating: 0, count: CRFBenchmark.phases.count)
        func once() throws {
            var clock = Date()
            func lap(_ phase: Int) {
                let now = Date()
                seconds[phase] += now.timeIntervalSince(clock)
                clock = now
            }
            var crf = try DenseCRF.model(image: inputs.image, width: inputs.width, height: inputs.height,
                                         labels: inputs.labels, parameters: parameters, threads: threads)
            lap(0)
            switch preset.unarySource {
            case .labels: try crf.setUnary(labelMap: inputs.labelMap, gtProb: parameters.gtProb)
            case .probabilities: try crf.setUnary(probabilities: inputs.probabilities, clip: parameters.clip)
            }
            lap(1)
            let q = crf.inference(iterations: parameters.iterations)
            lap(2)
            _ = DenseCRF.argmax(q, labels: inputs.labels, threads: threads)
            lap(3)
        }
        try once()
        seconds = seconds.map { _ in 0 }
        let start = Date()
        for _ in 0..<images { try once() }
        let total = Date().timeIntervalSince(start)
        return Result(preset: preset.rawValue, threads: threads, imagesPerSecond: Double(images) / total,
                      phaseMilliseconds: Dictionary(uniqueKeysWithValues: zip(CRFBenchmark.phases,
                                                                              seconds.map { 1000 * $0 / Double(images) })))
    }
}
