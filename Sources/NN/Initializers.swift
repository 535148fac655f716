import Foundation

/// Weight initialisers of spec §2.6. Each returns a plain parameter tensor (`requiresGrad`).
public enum Initializers {
    /// Normal(0, std) through Box–Muller.
    static func normal(_ rng: inout SeededRandom) -> Float {
        let u1 = max(rng.nextDouble(), 1e-300), u2 = rng.nextDouble()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Kaiming normal, fan-out mode, ReLU gain: std = √(2 / fanOut), fanOut = O · kH · kW.
    public static func kaimingNormalFanOut(_ shape: [Int], rng: inout SeededRandom) -> Tensor {
        let fanOut = shape[0] * shape.dropFirst(2).reduce(1, *)
        let std = Float((2.0 / Double(fanOut)).squareRoot())
        return Tensor((0..<shape.reduce(1, *)).map { _ in normal(&rng) * std }, shape: shape, requiresGrad: true)
    }

    /// Kaiming normal, fan-in mode, as PyTorch's `kaiming_normal_(w)` defaults (a = 0, `fan_in`, leaky-ReLU gain
    /// √(2 / (1 + a²)) = √2): std = gain / √fanIn, fanIn = I · kH · kW (shape (O, I, kH, kW), or (O, I) for a linear
    /// weight). The AffinityNet heads `f8_3`, `f8_4`, `f8_5` (spec §8.2).
    public static func kaimingNormalFanIn(_ shape: [Int], gain: Float = Float(2.0.squareRoot()), rng: inout SeededRandom) -> Tensor {
        let (fanIn, _) = fans(shape)
        let std = gain / Float(Double(fanIn).squareRoot())
        return Tensor((0..<shape.reduce(1, *)).map { _ in normal(&rng) * std }, shape: shape, requiresGrad: true)
    }

    /// Xavier (Glorot) uniform, as PyTorch's `xavier_uniform_(w, gain)`: U(−b, b) with
    /// b = gain · √(6 / (fanIn + fanOut)), fanIn = I · kH · kW, fanOut = O · kH · kW. AffinityNet's `f9` uses gain 4
    /// (spec §8.2).
    public static func xavierUniform(_ shape: [Int], gain: Float = 1, rng: inout SeededRandom) -> Tensor {
        let (fanIn, fanOut) = fans(shape)
        let bound = gain * Float((6.0 / Double(fanIn + fanOut)).squareRoot())
        return uniform(shape, bound: bound, rng: &rng)
    }

    /// PyTorch's `_calculate_fan_in_and_fan_out`: (I · receptive field, O · receptive field) of a weight (O, I, …).
    static func fans(_ shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        precondition(shape.count >= 2, "fan in and fan out need a weight of at least 2 dimensions, got \(shape)")
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// Normal N(0, std), as PyTorch's `nn.init.normal_(w, 0, std)` (DeepLab's ASPP: std 0.01).
    public static func normal(_ shape: [Int], std: Float, rng: inout SeededRandom) -> Tensor {
        Tensor((0..<shape.reduce(1, *)).map { _ in normal(&rng) * std }, shape: shape, requiresGrad: true)
    }

    /// Truncated normal as timm's `trunc_normal_(std=σ)`: N(0, σ) redrawn outside [−2, 2] (absolute bounds).
    public static func truncatedNormal(_ shape: [Int], std: Float, rng: inout SeededRandom) -> Tensor {
        let values = (0..<shape.reduce(1, *)).map { _ -> Float in
            while true {
                let v = normal(&rng) * std
                if abs(v) <= 2 { return v }
            }
        }
        return Tensor(values, shape: shape, requiresGrad: true)
    }

    /// Uniform in [−bound, bound] (PyTorch's default bias initialisation uses bound = 1/√fanIn).
    public static func uniform(_ shape: [Int], bound: Float, rng: inout SeededRandom) -> Tensor {
        Tensor((0..<shape.reduce(1, *)).map { _ in (rng.nextFloat() * 2 - 1) * bound }, shape: shape, requiresGrad: true)
    }

    public static func constant(_ shape: [Int], _ value: Float) -> Tensor {
        let t = Tensor.filled(value, shape: shape)
        t.requiresGrad = true
        return t
    }
}
