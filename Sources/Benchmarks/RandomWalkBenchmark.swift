import Formats
import Foundation
import NN
import PCSformer
import Storage

/// `bench aff`, the random walk: what `infer-aff` does per image between AffinityNet and the CRF
/// (`RandomWalkArgmax`: CAM volume, 8×8 pooling, the sparse walk, bilinear upsampling, argmax), at 500×375 and
/// 640×480. The inputs are those of `scripts/bench/bench_aff_torch.py walk --save-inputs DIR` when given (so both
/// sides time the same data, and the labels are compared with upstream's dense walk), else a generated scene.
public struct RandomWalkBenchmark {
    public static let sizes = [(width: 500, height: 375), (width: 640, height: 480)]

    /// One image's walk inputs: affinities over the radius-5 pairs, CAMs at the image size, and upstream's labels.
    public struct Inputs {
        public var width: Int, height: Int
        public var affinity: [Float]
        public var cams: ClassActivationMaps
        public var upstreamLabels: [UInt8]?
        /// The settings (β, logt, background) upstream's labels were made with.
        public var settings: RandomWalkArgmax?

        public var pairs: AffinityPairs { AffinityPairs(height: (height + 7) / 8, width: (width + 7) / 8) }

        /// DIR/walk-WxH.h5 of the PyTorch script: affinity_q / 65535, cams_q / 255, its argmax.
        public static func load(_ folder: URL, width: Int, height: Int) throws -> Inputs {
            let path = folder.appendingPathComponent("walk-\(width)x\(height).h5").path
            let file = try HDF5File.open(path)
            let (q, shape): ([Int32], [Int]) = try file.read("affinity_q")
            let (cams, camShape): ([UInt8], [Int]) = try file.read("cams_q")
            let (classes, _): ([Int32], [Int]) = try file.read("classes")
            let (labels, _): ([UInt8], [Int]) = try file.read("argmax")
            let beta = try file.numericAttribute("beta", as: Double.self)?.first ?? 14
            let logT = try file.numericAttribute("logt", as: Int64.self)?.first ?? 7
            let background = try file.numericAttribute("background", as: Double.self)?.first ?? 0.46
            var inputs = Inputs(width: width, height: height, affinity: q.map { Float($0) / 65535 },
                                cams: ClassActivationMaps(classes: classes.map(Int.init), width: camShape[2], height: camShape[1],
                                                          values: cams.map { Float($0) / 255 }), upstreamLabels: labels)
            inputs.settings = RandomWalkArgmax(walk: RandomWalk(beta: beta, logT: Int(logT)), backgroundScore: Float(background))
            guard camShape == [classes.count, height, width], shape == [inputs.pairs.directionCount, inputs.pairs.fromCount] else {
                throw FileError(path: path, what: "inputs of shapes \(shape), \(camShape), not those of a \(width)x\(height) image")
            }
            return inputs
        }

        /// Affinities uniform in [0.5, 1] and two classes' CAMs of random values: for timing only.
        public static func generated(width: Int, height: Int) -> Inputs {
            var rng = SeededRandom(seed: 21)
            let pairs = AffinityPairs(height: (height + 7) / 8, width: (width + 7) / 8)
            let affinity = (0..<(pairs.directionCount * pairs.fromCount)).map { _ in 0.5 + 0.5 * rng.nextFloat() }
            let cams = (0..<(2 * width * height)).map { _ in rng.nextFloat() }
            return Inputs(width: width, height: height, affinity: affinity,
                          cams: ClassActivationMaps(classes: [4, 11], width: width, height: height, values: cams), upstreamLabels: nil, settings: nil)
        }
    }

    public struct Row {
        public var imagesPerSecond: Double
        /// The share of pixels whose label equals upstream's dense walk's, when the inputs carry it.
        public var agreement: Double?
    }

    public var argmax: RandomWalkArgmax
    public var repeats: Int

    public init(argmax: RandomWalkArgmax = RandomWalkArgmax(), repeats: Int) {
        self.argmax = argmax
        self.repeats = repeats
    }

    /// Images/s at `threads` threads over `repeats` calls after one untimed call, with the inputs' settings when
    /// they carry them.
    public func measure(_ inputs: Inputs, threads: Int) -> Row {
        let argmax = inputs.settings ?? argmax
        let (hf, wf) = ((inputs.height + 7) / 8, (inputs.width + 7) / 8)
        let pairs = inputs.pairs
        func once() -> [UInt8] {
            argmax(affinity: inputs.affinity, pairs: pairs, featureHeight: hf, featureWidth: wf, cams: inputs.cams, labels: 21, threads: threads)
        }
        let labels = once()
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<repeats { _ = once() }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let agreement = inputs.upstreamLabels.map { upstream -> Double in
            var same = 0
            for y in 0..<inputs.height { for x in 0..<inputs.width where labels[y * wf * 8 + x] == upstream[y * inputs.width + x] { same += 1 } }
            return Double(same) / Double(inputs.width * inputs.height)
        }
        return Row(imagesPerSecond: Double(repeats) / seconds, agreement: agreement)
    }
}
