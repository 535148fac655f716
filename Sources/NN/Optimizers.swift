import Foundation

/// Parameters that share a learning rate and a weight decay (PyTorch's parameter groups).
public struct ParameterGroup {
    public var parameters: [Tensor]
    /// The group's learning rate at multiplier 1; the schedule scales it.
    public var learningRate: Float
    public var weightDecay: Float

    public init(_ parameters: [Tensor], learningRate: Float, weightDecay: Float = 0) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.weightDecay = weightDecay
    }
}

/// Learning-rate multipliers over iterations.
public enum LearningRateSchedule: Codable, Equatable {
    case constant
    /// (1 − it / maxIterations)^power, DeepLab's and PSA's schedule.
    case poly(maxIterations: Int, power: Double)
    /// γ^⌊it / stepSize⌋.
    case step(stepSize: Int, gamma: Double)

    public func multiplier(at iteration: Int) -> Float {
        switch self {
        case .constant: return 1
        case let .poly(maxIterations, power): return Float(pow(max(0, 1 - Double(iteration) / Double(maxIterations)), power))
        case let .step(stepSize, gamma): return Float(pow(gamma, Double(iteration / stepSize)))
        }
    }
}

/// Calls `update(parameter, gradient, learning rate, group)` for every parameter that has a gradient this step
/// (a parameter without one is neither moved nor decayed, spec §12.3), then bumps its version so cached layout
/// copies refresh. The loop both optimisers share.
private func forEachGradient(_ groups: [ParameterGroup], multiplier: Float, _ update: (Tensor, Tensor, Float, ParameterGroup) -> Void) {
    for group in groups {
        for p in group.parameters {
            guard let g = p.grad?.plain() else { continue }
            precondition(p.isPlain, "optimisers update plain parameters; \(p) is blocked")
            update(p, g, group.learningRate * multiplier, group)
            p.version += 1
        }
    }
}

/// One parameter's AdamW moments. A class, so the update writes them in place (as values in a dictionary the
/// arrays would be copied on every step: twice the model's size).
final class AdamMoments {
    var m: [Float], v: [Float], steps: Int
    init(m: [Float], v: [Float], steps: Int) {
        self.m = m
        self.v = v
        self.steps = steps
    }
}

/// AdamW with decoupled weight decay, as `torch.optim.AdamW`:
///
///     p ← p·(1 − lr·λ);  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²
///     p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// A parameter without a gradient this step is left untouched: neither moved nor decayed (spec §12.3).
public final class AdamW {
    public var groups: [ParameterGroup]
    public let beta1: Float, beta2: Float, eps: Float
    public var schedule: LearningRateSchedule
    /// Optimiser steps taken.
    public internal(set) var iteration = 0
    var state: [ObjectIdentifier: AdamMoments] = [:]

    public init(_ groups: [ParameterGroup], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, schedule: LearningRateSchedule = .constant) {
        self.groups = groups
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.schedule = schedule
    }

    public func step() {
        forEachGradient(groups, multiplier: schedule.multiplier(at: iteration)) { p, g, lr, group in
            let n = p.elementCount
            let s = state[ObjectIdentifier(p)] ?? AdamMoments(m: [Float](repeating: 0, count: n), v: [Float](repeating: 0, count: n), steps: 0)
            state[ObjectIdentifier(p)] = s
            s.steps += 1
            let c1 = 1 - pow(beta1, Float(s.steps)), c2 = (1 - pow(beta2, Float(s.steps))).squareRoot()
            s.m.withUnsafeMutableBufferPointer { m in
                s.v.withUnsafeMutableBufferPointer { v in
                    Kernels.adamW(p.storage.floats, g.storage.floats, m.baseAddress!, v.baseAddress!, count: n,
                                  lr: lr, weightDecay: group.weightDecay, beta1: beta1, beta2: beta2, eps: eps,
                                  stepSize: lr / c1, sqrtBiasCorrection2: c2)
                }
            }
        }
        iteration += 1
    }
}

/// SGD with momentum and L2 weight decay, as `torch.optim.SGD`: d = g + λp; b ← μb + d (b = d on the first step);
/// p ← p − lr·b. Per-group learning rates and decays (DeepLab's 1×/10× groups).
public final class SGD {
    public var groups: [ParameterGroup]
    public let momentum: Float
    public var schedule: LearningRateSchedule
    public private(set) var iteration = 0
    /// Momentum buffers, one array per parameter, in a class so the update writes them in place.
    private final class Buffer {
        var values: [Float]
        init(_ values: [Float]) { self.values = values }
    }
    private var buffers: [ObjectIdentifier: Buffer] = [:]

    public init(_ groups: [ParameterGroup], momentum: Float = 0.9, schedule: LearningRateSchedule = .constant) {
        self.groups = groups
        self.momentum = momentum
        self.schedule = schedule
    }

    public func step() {
        forEachGradient(groups, multiplier: schedule.multiplier(at: iteration)) { p, g, lr, group in
            let n = p.elementCount
            let pp = p.storage.floats, gp = g.storage.floats
            let first = buffers[ObjectIdentifier(p)] == nil
            let buffer = buffers[ObjectIdentifier(p)] ?? Buffer([Float](repeating: 0, count: n))
            buffers[ObjectIdentifier(p)] = buffer
            buffer.values.withUnsafeMutableBufferPointer { b in
                for i in 0..<n {
                    let d = gp[i] + group.weightDecay * pp[i]
                    b[i] = first ? d : momentum * b[i] + d
                    pp[i] -= lr * b[i]
                }
            }
        }
        iteration += 1
    }
}

extension Array where Element == Tensor {
    /// Clears the gradients of these parameters before the next backward pass.
    public func zeroGrad() { for p in self { p.grad = nil } }
}
