import Foundation

/// Parameters that share a learning rate, a weight decay and a schedule (PyTorch's parameter groups).
public struct ParameterGroup {
    public var parameters: [Tensor]
    /// The group's learning rate at multiplier 1; the schedule scales it.
    public var learningRate: Float
    public var weightDecay: Float
    public var schedule: LearningRateSchedule
    /// For logs (`lr/<name>`); e.g. `backbone`, `aspp-weights`.
    public var name: String

    public init(_ parameters: [Tensor], learningRate: Float, weightDecay: Float = 0, schedule: LearningRateSchedule = .constant,
                name: String = "all") {
        self.parameters = parameters
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.schedule = schedule
        self.name = name
    }

    /// The learning rate of update `iteration` (0-based).
    public func learningRate(at iteration: Int) -> Float { learningRate * schedule.multiplier(at: iteration) }
}

/// Learning-rate multipliers over updates (0-based).
public enum LearningRateSchedule: Codable, Equatable {
    case constant
    /// (1 − it′ / maxIterations)^power with it′ = it rounded down to a multiple of `every`: the rate is refreshed
    /// every `every` updates and held in between, as deeplab-pytorch's `PolynomialLR(step_size: LR_DECAY = 10)`;
    /// `every` 1 is PSA's per-update poly. Past `maxIterations` the last rate is held.
    case poly(maxIterations: Int, power: Double, every: Int)
    /// γ^⌊it / stepSize⌋.
    case step(stepSize: Int, gamma: Double)

    /// Poly refreshed on every update.
    public static func poly(maxIterations: Int, power: Double) -> LearningRateSchedule {
        .poly(maxIterations: maxIterations, power: power, every: 1)
    }

    public func multiplier(at iteration: Int) -> Float {
        switch self {
        case .constant: return 1
        case let .poly(maxIterations, power, every):
            var it = iteration - iteration % max(every, 1)
            if it > maxIterations { it = maxIterations - maxIterations % max(every, 1) }
            return Float(pow(max(0, 1 - Double(it) / Double(maxIterations)), power))
        case let .step(stepSize, gamma): return Float(pow(gamma, Double(iteration / stepSize)))
        }
    }
}

/// What the training loop needs of an optimiser: groups with their own learning rates, one update, and the
/// state a checkpoint keeps so that a resumed run continues exactly.
///
/// A parameter without a gradient this update is neither moved nor decayed, nor does it get state (spec §12.3).
public protocol Optimizer: AnyObject {
    /// The name recorded in checkpoints (`adamw`, `sgd`); a checkpoint of another kind does not resume.
    static var kind: String { get }
    /// The per-parameter buffers exported (`m`, `v`; `momentum`).
    static var bufferNames: [String] { get }
    var groups: [ParameterGroup] { get }
    /// Updates taken.
    var iteration: Int { get }
    /// Applies one update. Afterwards `nonFinite` is the first parameter whose values or state are ±inf or NaN.
    func step()
    var nonFinite: Tensor? { get }
    /// Every parameter's buffers under the names given (parameters without state are left out).
    func exportState(names: [ObjectIdentifier: String]) -> OptimizerState
    /// Restores what `exportState` gave (parameters matched by name).
    func importState(_ saved: OptimizerState, names: [ObjectIdentifier: String])
}

extension Optimizer {
    /// Every group's learning rate for the next update.
    public var learningRates: [Float] { groups.map { $0.learningRate(at: iteration) } }
}

/// Calls `update(parameter, gradient, learning rate, group)` for every parameter that has a gradient this step
/// (a parameter without one is neither moved nor decayed, spec §12.3), then bumps its version so cached layout
/// copies refresh. `update` returns whether the parameter and its state stayed finite; the first that did not is
/// returned. The loop both optimisers share.
private func forEachGradient(_ groups: [ParameterGroup], iteration: Int, _ update: (Tensor, Tensor, Float, ParameterGroup) -> Bool) -> Tensor? {
    var nonFinite: Tensor?
    for group in groups {
        let lr = group.learningRate(at: iteration)
        for p in group.parameters {
            guard let g = p.grad?.plain() else { continue }
            precondition(p.isPlain, "optimisers update plain parameters; \(p) is blocked")
            if !update(p, g, lr, group), nonFinite == nil { nonFinite = p }
            p.version += 1
        }
    }
    return nonFinite
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
public final class AdamW: Optimizer {
    public static let kind = "adamw"
    public static let bufferNames = ["m", "v"]
    public var groups: [ParameterGroup]
    public let beta1: Float, beta2: Float, eps: Float
    public internal(set) var iteration = 0
    public private(set) var nonFinite: Tensor?
    var state: [ObjectIdentifier: AdamMoments] = [:]

    public init(_ groups: [ParameterGroup], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) {
        self.groups = groups
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    public func step() {
        nonFinite = forEachGradient(groups, iteration: iteration) { p, g, lr, group in
            let n = p.elementCount
            let s = state[ObjectIdentifier(p)] ?? AdamMoments(m: [Float](repeating: 0, count: n), v: [Float](repeating: 0, count: n), steps: 0)
            state[ObjectIdentifier(p)] = s
            s.steps += 1
            let c1 = 1 - pow(beta1, Float(s.steps)), c2 = (1 - pow(beta2, Float(s.steps))).squareRoot()
            return s.m.withUnsafeMutableBufferPointer { m in
                s.v.withUnsafeMutableBufferPointer { v in
                    Kernels.adamW(p.storage.floats, g.storage.floats, m.baseAddress!, v.baseAddress!, count: n,
                                  lr: lr, weightDecay: group.weightDecay, beta1: beta1, beta2: beta2, eps: eps,
                                  stepSize: lr / c1, sqrtBiasCorrection2: c2)
                }
            }
        }
        iteration += 1
    }

    public func exportState(names: [ObjectIdentifier: String]) -> OptimizerState {
        var result = OptimizerState(kind: Self.kind, iteration: iteration)
        for (id, s) in state {
            guard let name = names[id] else { continue }
            result.buffers[name] = ["m": s.m, "v": s.v]
            result.steps[name] = s.steps
        }
        return result
    }

    public func importState(_ saved: OptimizerState, names: [ObjectIdentifier: String]) {
        iteration = saved.iteration
        state = [:]
        for (id, name) in names {
            guard let b = saved.buffers[name], let m = b["m"], let v = b["v"] else { continue }
            state[id] = AdamMoments(m: m, v: v, steps: saved.steps[name] ?? 0)
        }
    }
}

/// SGD with momentum and coupled (L2) weight decay, as `torch.optim.SGD` (dampening 0, not Nesterov):
///
///     d = g + λp;  b ← μb + d  (b = d on a parameter's first update);  p ← p − lr·b
public final class SGD: Optimizer {
    public static let kind = "sgd"
    public static let bufferNames = ["momentum"]
    public var groups: [ParameterGroup]
    public let momentum: Float
    public private(set) var iteration = 0
    public private(set) var nonFinite: Tensor?
    /// Momentum buffers, one array per parameter, in a class so the update writes them in place.
    private final class Buffer {
        var values: [Float]
        init(_ values: [Float]) { self.values = values }
    }
    private var buffers: [ObjectIdentifier: Buffer] = [:]

    public init(_ groups: [ParameterGroup], momentum: Float = 0.9) {
        self.groups = groups
        self.momentum = momentum
    }

    public func step() {
        nonFinite = forEachGradient(groups, iteration: iteration) { p, g, lr, group in
            let n = p.elementCount
            let pp = p.storage.floats, gp = g.storage.floats
            let first = buffers[ObjectIdentifier(p)] == nil
            let buffer = buffers[ObjectIdentifier(p)] ?? Buffer([Float](repeating: 0, count: n))
            buffers[ObjectIdentifier(p)] = buffer
            return buffer.values.withUnsafeMutableBufferPointer { b in
                var poison: Float = 0 // x·0 is NaN exactly for non-finite x (see Kernels.adamW)
                for i in 0..<n {
                    let d = gp[i] + group.weightDecay * pp[i]
                    b[i] = first ? d : momentum * b[i] + d
                    pp[i] -= lr * b[i]
                    poison += pp[i] * 0 + b[i] * 0
                }
                return poison == 0
            }
        }
        iteration += 1
    }

    public func exportState(names: [ObjectIdentifier: String]) -> OptimizerState {
        var result = OptimizerState(kind: Self.kind, iteration: iteration)
        for (id, buffer) in buffers {
            guard let name = names[id] else { continue }
            result.buffers[name] = ["momentum": buffer.values]
        }
        return result
    }

    public func importState(_ saved: OptimizerState, names: [ObjectIdentifier: String]) {
        iteration = saved.iteration
        buffers = [:]
        for (id, name) in names {
            guard let values = saved.buffers[name]?["momentum"] else { continue }
            buffers[id] = Buffer(values)
        }
    }
}

extension Array where Element == Tensor {
    /// Clears the gradients of these parameters before the next backward pass.
    public func zeroGrad() { for p in self { p.grad = nil } }
}
