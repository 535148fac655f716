import Foundation
import NN

/// The layers of Conformer-S at 512×512, batch 2, timed forward and backward: what `pcs-mpi bench kernels`
/// prints. Compute-bound layers report GFLOP/s and their fraction of the `cblas_sgemm` rate measured in the same
/// run; memory-bound layers report GB/s against a `memcpy` of the same bytes.
public struct KernelBenchmark {
    public struct Result: Codable {
        public var layer: String
        public var forwardMs: Double
        public var backwardMs: Double
        /// GFLOP/s for compute-bound layers, GB/s for memory-bound ones.
        public var forwardRate: Double
        public var backwardRate: Double
        public var unit: String
        /// Activation reorders one forward + backward needed.
        public var reorders: Int
        /// Share of the forward + backward time spent inside oneDNN primitives (1 = no framework overhead).
        public var primitiveShare: Double
        /// The FLOPs behind the GFLOP/s (nil for memory-bound layers); in PyTorch's results, what
        /// `torch.utils.flop_counter` counts for the same layer, so that the two counts can be compared.
        public var forwardFlops: Double?
        public var backwardFlops: Double?
    }

    /// A layer to time: builds its inputs once, then runs forward (recording) and backward.
    struct Case {
        var name: String
        /// FLOPs of one forward (0 for memory-bound layers).
        var flops: Double
        /// Bytes one forward reads and writes (for memory-bound layers).
        var bytes: Double
        /// Backward work relative to forward: 2 (data and weight gradients), 1 where the input needs none.
        var backwardFactor: Double = 2
        var make: () -> (forward: () -> Tensor, parameters: [Tensor])
    }

    /// Which network's layers: Conformer-S's (the default), or the 3×3 layers of ResNet-38d and DeepLab-v2.
    public enum Layers: String, CaseIterable, Sendable { case conformer, dilated }

    public var repeats: Int
    public var batch: Int
    public var layers: Layers

    public init(repeats: Int = 5, batch: Int = 2, layers: Layers = .conformer) {
        self.repeats = repeats
        self.batch = batch
        self.layers = layers
    }

    func cases() -> [Case] {
        var rng = SeededRandom(seed: 1)
        let n = batch
        func input(_ shape: [Int]) -> Tensor {
            var r = SeededRandom(seed: UInt64(shape.reduce(7, *)))
            let t = Tensor((0..<shape.reduce(1, *)).map { _ in r.nextFloat() - 0.5 }, shape: shape)
            t.requiresGrad = true
            return t
        }
        func conv(_ name: String, _ c: Int, _ o: Int, _ k: Int, stride: Int, hw: Int, dilation d: Int = 1, batch: Int? = nil) -> Case {
            let n = batch ?? n
            let g = ConvGeometry(kernel: k, stride: stride, padding: k / 2 * d, dilation: d)
            let out = g.outputSize(hw, hw)
            let flops = 2.0 * Double(n * o * out.h * out.w) * Double(c * k * k)
            return Case(name: name, flops: flops, bytes: 0, backwardFactor: c >= 16 ? 2 : 1) {
                let layer = Conv2d(c, o, kernel: k, stride: stride, padding: k / 2 * d, dilation: d, bias: false, rng: &rng)
                // Inputs of inner layers arrive blocked, as they do inside the network.
                let x = input([n, c, hw, hw])
                let blocked = c >= 16 ? trainingLayout(x, &rng) : x
                // The stem's input is the image: no gradient is needed for it, as in training.
                blocked.requiresGrad = c >= 16
                return ({ layer(blocked) }, [layer.weight])
            }
        }
        func fc(_ name: String, _ k: Int, _ o: Int, tokens: Int) -> Case {
            Case(name: name, flops: 2.0 * Double(n * tokens * k * o), bytes: 0) {
                let layer = Linear(k, o, rng: &rng)
                let x = input([n, tokens, k])
                return ({ layer(x) }, layer.namedParameters("").map(\.1))
            }
        }
        let tokens = 1025
        if layers == .dilated {
            // ResNet-38d at crop 448 (stride 8: 56 × 56), batch 2, and DeepLab-v2 at crop 321 (41 × 41), batch 5:
            // the 3×3 layers, dilated ones included (run as sub-grid Winograd convolutions unless
            // --conv-algorithm direct).
            return [
                conv("resnet38 b3 256 @112 ×2", 256, 256, 3, stride: 1, hw: 112, batch: 2),
                conv("resnet38 b4 512 @56 ×2", 512, 512, 3, stride: 1, hw: 56, batch: 2),
                conv("resnet38 b5 512→1024 d2 @56 ×2", 512, 1024, 3, stride: 1, hw: 56, dilation: 2, batch: 2),
                conv("resnet38 b5 1024→512 d2 @56 ×2", 1024, 512, 3, stride: 1, hw: 56, dilation: 2, batch: 2),
                conv("resnet38 b6 512→1024 d4 @56 ×2", 512, 1024, 3, stride: 1, hw: 56, dilation: 4, batch: 2),
                conv("resnet38 b7 1024→2048 d4 @56 ×2", 1024, 2048, 3, stride: 1, hw: 56, dilation: 4, batch: 2),
                conv("deeplab layer1 64 @81 ×5", 64, 64, 3, stride: 1, hw: 81, batch: 5),
                conv("deeplab layer2 128 @41 ×5", 128, 128, 3, stride: 1, hw: 41, batch: 5),
                conv("deeplab layer3 256 d2 @41 ×5", 256, 256, 3, stride: 1, hw: 41, dilation: 2, batch: 5),
                conv("deeplab layer4 512 d4 @41 ×5", 512, 512, 3, stride: 1, hw: 41, dilation: 4, batch: 5),
            ]
        }
        return [
            conv("conv 7x7 s2 3→64 @512", 3, 64, 7, stride: 2, hw: 512),
            conv("conv 1x1 64→256 @128", 64, 256, 1, stride: 1, hw: 128),
            conv("conv 1x1 256→64 @128", 256, 64, 1, stride: 1, hw: 128),
            conv("conv 3x3 64→64 @128", 64, 64, 3, stride: 1, hw: 128),
            conv("conv 3x3 256→256 @32", 256, 256, 3, stride: 1, hw: 32),
            fc("linear 384→1152 (qkv) ×2050", 384, 1152, tokens: tokens),
            fc("linear 384→1536 (fc1) ×2050", 384, 1536, tokens: tokens),
            fc("linear 1536→384 (fc2) ×2050", 1536, 384, tokens: tokens),
            Case(name: "attention 6 heads × 1025 tokens", flops: 4.0 * Double(n * 6 * tokens * tokens * 64), bytes: 0) {
                let qkv = input([n, tokens, 3 * 384])
                return ({ selfAttention(qkv, heads: 6, scale: 0.125) }, [])
            },
            Case(name: "LayerNorm 2050×384", flops: 0, bytes: Double(2 * n * tokens * 384 * 4)) {
                let norm = LayerNorm(384, eps: 1e-6)
                let x = input([n, tokens, 384])
                return ({ norm(x) }, norm.namedParameters("").map(\.1))
            },
            Case(name: "BatchNorm 64ch @128 (blocked)", flops: 0, bytes: Double(2 * n * 64 * 128 * 128 * 4)) {
                let bn = BatchNorm2d(64, eps: 1e-6)
                let x = input([n, 64, 128, 128])
                let blocked = trainingLayout(x, &rng)
                blocked.requiresGrad = true
                return ({ bn(blocked) }, bn.namedParameters("").map(\.1))
            },
            Case(name: "coupling: 64ch @128 → tokens (reorder)", flops: 0, bytes: Double(2 * n * 64 * 128 * 128 * 4)) {
                let x = input([n, 64, 128, 128])
                let blocked = trainingLayout(x, &rng)
                blocked.requiresGrad = true
                return ({ blocked.plain() }, [])
            },
            Case(name: "GELU 2050×1536", flops: 0, bytes: Double(2 * n * tokens * 1536 * 4)) {
                let x = input([n, tokens, 1536])
                return ({ gelu(x) }, [])
            },
            Case(name: "ReLU 64ch @128 (blocked)", flops: 0, bytes: Double(2 * n * 64 * 128 * 128 * 4)) {
                let x = input([n, 64, 128, 128])
                let blocked = trainingLayout(x, &rng)
                blocked.requiresGrad = true
                return ({ relu(blocked) }, [])
            },
        ]
    }

    /// `x` through a training-mode 1×1 convolution (tape dropped): an activation in the blocked layout that
    /// training convolutions produce, as inner layers receive it.
    func trainingLayout(_ x: Tensor, _ rng: inout SeededRandom) -> Tensor {
        let y = Conv2d(x.shape[1], x.shape[1], kernel: 1, bias: false, rng: &rng)(x)
        Autograd.reset()
        return y
    }

    /// Runs every case; `progress` receives each result as it is measured.
    public func run(progress: (Result) -> Void = { _ in }) -> [Result] {
        var results: [Result] = []
        for c in cases() {
            let (forward, parameters) = c.make()
            var bestForward = Double.infinity, bestBackward = Double.infinity
            var reorders = 0
            var primitiveShare = 0.0
            for i in 0...repeats {
                parameters.zeroGrad()
                let before = Reorder.count
                let inPrimitives = Primitive.executionNanoseconds
                let t0 = DispatchTime.now().uptimeNanoseconds
                let y = forward()
                let forwardEnd = DispatchTime.now().uptimeNanoseconds
                // The upstream gradient is the benchmark's input, not the layer's work: made outside the timing.
                let seed = Tensor.zeros(like: y)
                let t1 = DispatchTime.now().uptimeNanoseconds
                Autograd.backward(y, seed: seed)
                let t2 = DispatchTime.now().uptimeNanoseconds
                if i == 0 { continue } // warm-up: primitives are created here
                reorders = Reorder.count - before
                primitiveShare = max(primitiveShare, Double(Primitive.executionNanoseconds - inPrimitives) / Double(t2 - t1 + forwardEnd - t0))
                bestForward = min(bestForward, Double(forwardEnd - t0) / 1e9)
                bestBackward = min(bestBackward, Double(t2 - t1) / 1e9)
            }
            let computeBound = c.flops > 0
            let work = computeBound ? c.flops : c.bytes
            let result = Result(layer: c.name, forwardMs: bestForward * 1e3, backwardMs: bestBackward * 1e3,
                                forwardRate: work / bestForward / 1e9,
                                backwardRate: (computeBound ? c.backwardFactor * work : 1.5 * work) / bestBackward / 1e9,
                                unit: computeBound ? "GFLOP/s" : "GB/s", reorders: reorders,
                                primitiveShare: primitiveShare, forwardFlops: computeBound ? work : nil,
                                backwardFlops: computeBound ? c.backwardFactor * work : nil)
            results.append(result)
            progress(result)
        }
        return results
    }

    /// GB/s of `memcpy` over `bytes` bytes, best of 5: the yardstick for memory-bound layers.
    public static func memcpyRate(bytes: Int = 64 << 20) -> Double {
        let a = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let b = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { a.deallocate(); b.deallocate() }
        memset(a, 1, bytes)
        memset(b, 0, bytes)
        var best = Double.infinity
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            memcpy(b, a, bytes)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(bytes) / best / 1e9
    }
}
