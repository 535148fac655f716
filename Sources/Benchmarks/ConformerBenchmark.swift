import Foundation
import NN
import PCSformer

/// `pcs-mpi bench conformer`: the PC training step (a 512×512 and a 224×224 forward on the same images, the loss
/// of spec §3.4, backward, an AdamW step; `batch` images) and CAM inference at 496×368 (VOC's 500×375 at scale
/// 1, floored to multiples of 16), timed on this rank's threads.
public struct ConformerBenchmark {
    public struct Result: Codable {
        public var what: String
        public var seconds: Double
        public var imagesPerSecond: Double
        /// Convolution and matrix-product GFLOP/s (a lower bound of the work done).
        public var gflops: Double
        /// Those FLOPs per image (forward and backward for a training step); in PyTorch's results, what
        /// `torch.utils.flop_counter` counts for the same work, so that the two counts can be compared.
        public var flopsPerImage: Double?
    }

    public var variant: ModelVariant
    public var batch: Int
    public var steps: Int
    /// Skip the training step, so the process's peak memory is inference's alone.
    public var inferenceOnly: Bool

    public init(variant: ModelVariant = .pc, batch: Int = 2, steps: Int = 2, inferenceOnly: Bool = false) {
        self.variant = variant
        self.batch = batch
        self.steps = steps
        self.inferenceOnly = inferenceOnly
    }

    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededRandom(seed: seed)
        return Tensor((0..<shape.reduce(1, *)).map { _ in rng.nextFloat() * 2 - 1 }, shape: shape)
    }

    /// Times `body` `repeats` times after one warm-up run (which creates the primitives); best run.
    func time(_ repeats: Int, _ body: () -> Void) -> (seconds: Double, flops: Double) {
        body()
        var best = (Double.infinity, 0.0)
        for _ in 0..<repeats {
            let flops = FlopCounter.count
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if seconds < best.0 { best = (seconds, FlopCounter.count - flops) }
        }
        return best
    }

    public func run() -> [Result] {
        let model = Conformer(variant.config(), seed: 1)
        if inferenceOnly { return inference(model) }
        let step = trainingStep(model)
        let train = time(steps) { _ = step() }
        return [Result(what: "PC training step 512+224, batch \(batch)", seconds: train.seconds,
                       imagesPerSecond: Double(batch) / train.seconds, gflops: train.flops / train.seconds / 1e9,
                       flopsPerImage: train.flops / Double(batch))]
            + inference(model)
    }

    /// The PC training step `run` times, on fixed random inputs: zero the gradients, the pair loss, backward,
    /// AdamW. The closure returns the optimiser step's nanoseconds (it records no ops for `OpProfile`).
    func trainingStep(_ model: Conformer) -> () -> UInt64 {
        let optimizer = AdamW([ParameterGroup(model.parameters, learningRate: 5e-5, weightDecay: 5e-4)])
        let c = model.config.numClasses
        let image = Self.random([batch, 3, 512, 512], seed: 2)
        let pair = Autograd.noGrad { interpolate(image, size: (224, 224), mode: .bilinear) }
        var labelRNG = SeededRandom(seed: 3)
        let labels = Tensor((0..<(batch * (c - 1))).map { _ in labelRNG.nextFloat() < 0.1 ? 1 : 0 }, shape: [batch, c - 1])
        model.setBatchNormMode(.training)
        return {
            for p in model.parameters { p.grad = nil }
            PCTrainingStage.loss(model, crops: image, pairs: pair, labels: labels).backward()
            let start = DispatchTime.now().uptimeNanoseconds
            optimizer.step()
            return DispatchTime.now().uptimeNanoseconds - start
        }
    }

    /// One training step (as `run` times it) with `OpProfile` on: the op families, most time first, the optimiser
    /// step's nanoseconds (it records no ops) and the whole step's.
    public func profileStep() -> (rows: [OpProfile.Row], optimizerNanoseconds: UInt64, stepNanoseconds: UInt64) {
        let step = trainingStep(Conformer(variant.config(), seed: 1))
        _ = step()                                                  // warm-up: primitives are created here
        let start = DispatchTime.now().uptimeNanoseconds
        OpProfile.start()
        let optimizerNanoseconds = step()
        let total = DispatchTime.now().uptimeNanoseconds - start
        return (OpProfile.stop(), optimizerNanoseconds, total)
    }

    /// CAM inference at scale 1 (496×368) and, with `inferenceOnly`, at scale 2 (992×736, 2,852 tokens: the
    /// largest pass of the CAM pyramid, whose memory the attention accumulator keeps small).
    func inference(_ model: Conformer) -> [Result] {
        model.setBatchNormMode(.inference)
        let sizes = inferenceOnly ? [(368, 496), (736, 992)] : [(368, 496)]
        return sizes.map { (h, w) in
            let input = Self.random([1, 3, h, w], seed: 4)
            let infer = time(max(steps, 2)) { _ = Autograd.noGrad { model(input, cam: .transcam) } }
            return Result(what: "inference \(w)x\(h) + transcam", seconds: infer.seconds, imagesPerSecond: 1 / infer.seconds,
                          gflops: infer.flops / infer.seconds / 1e9, flopsPerImage: infer.flops)
        }
    }
}
