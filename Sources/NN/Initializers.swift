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
