import Foundation

/// Multilabel soft margin loss, the PC and SP classification loss (spec §3.4), as PyTorch's
/// `F.multilabel_soft_margin_loss` with mean reduction:
///
///     ℓ = −(1/(B·C)) Σ_b Σ_c [ y_bc · log σ(s_bc) + (1 − y_bc) · log σ(−s_bc) ]
///
/// Shapes: logits (B, C), targets (B, C) in {0, 1} (soft targets work too); the result is a (1) tensor.
/// Evaluated with log σ(s) = −softplus(−s) in Double, so large logits neither overflow nor lose precision.
/// Backward: ∂ℓ/∂s_bc = (σ(s_bc) − y_bc) / (B·C).
public func multilabelSoftMarginLoss(_ logits: Tensor, _ targets: Tensor) -> Tensor {
    precondition(logits.shape.count == 2 && logits.shape == targets.shape,
                 "multilabelSoftMarginLoss: logits \(logits.shape) vs targets \(targets.shape)")
    let s = logits.plain(), y = targets.plain()
    let count = s.elementCount
    var total = 0.0
    for i in 0..<count {
        let si = Double(s.storage.floats[i]), yi = Double(y.storage.floats[i])
        total -= yi * -softplus(-si) + (1 - yi) * -softplus(si)
    }
    let loss = Tensor([Float(total / Double(count))], shape: [1])
    guard Autograd.needsGrad(logits) else { return loss }
    Autograd.record(loss) { dLoss in
        let scale = Double(dLoss.plain().storage.floats[0]) / Double(count)
        let ds = Tensor(shape: s.shape)
        for i in 0..<count {
            let si = Double(s.storage.floats[i])
            ds.storage.floats[i] = Float((1 / (1 + exp(-si)) - Double(y.storage.floats[i])) * scale)
        }
        logits.accumulateGrad(ds)
    }
    return loss
}

/// log(1 + eˣ) without overflow.
@inline(__always)
func softplus(_ x: Double) -> Double {
    x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
}

/// How a loss over many elements is reduced.
public enum LossReduction {
    /// Divided by the number of elements counted (PyTorch's `reduction="mean"`).
    case mean
    /// Not divided: the global-batch form, whose count the training loop sums over the ranks (`StageLoss.sums`).
    case sum
}

/// Cross-entropy over classes with an ignored label (DeepLab's loss), mean (or sum) over the pixels that are not
/// ignored:
///
///     ℓ = −(1/|P|) Σ_{p ∈ P} log softmax(z_p)[t_p],   P = { p : t_p ≠ ignoreIndex }   (sum: without 1/|P|)
///
/// Shapes: logits (N, C, H, W) (or (N, C)), labels (N, H, W) (or (N)) as Int32 class indices.
/// Backward: ∂ℓ/∂z_pc = (softmax(z_p)_c − [c = t_p]) / |P| on counted pixels, 0 on ignored ones.
/// When every pixel is ignored the result is a 0 without a graph (the training loop handles such a rank).
public func crossEntropyLoss(_ logits: Tensor, labels: [Int32], ignoreIndex: Int32 = 255, reduction: LossReduction = .mean) -> Tensor {
    let z = logits.plain()
    let n = z.shape[0], c = z.shape[1]
    let spatial = z.shape.dropFirst(2).reduce(1, *)
    precondition(labels.count == n * spatial, "crossEntropyLoss: \(labels.count) labels for logits \(z.shape)")
    var total = 0.0
    var counted = 0
    // probabilities are kept for backward: (N, C, spatial) like the logits.
    let probabilities = Tensor(shape: z.shape)
    let zp = z.storage.floats, pp = probabilities.storage.floats
    for b in 0..<n {
        for p in 0..<spatial {
            let base = b * c * spatial + p
            var maxLogit = -Double.infinity
            for k in 0..<c { maxLogit = max(maxLogit, Double(zp[base + k * spatial])) }
            var sum = 0.0
            for k in 0..<c { sum += exp(Double(zp[base + k * spatial]) - maxLogit) }
            for k in 0..<c { pp[base + k * spatial] = Float(exp(Double(zp[base + k * spatial]) - maxLogit) / sum) }
            let t = labels[b * spatial + p]
            guard t != ignoreIndex else { continue }
            precondition(t >= 0 && Int(t) < c, "crossEntropyLoss: label \(t) outside 0..<\(c) (and not the ignore index \(ignoreIndex))")
            total -= Double(zp[base + Int(t) * spatial]) - maxLogit - log(sum)
            counted += 1
        }
    }
    // zp and pp are raw pointers: keep their tensors alive until the loop above is done (ARC may release a
    // tensor after its last use by name, which is where the pointer was taken).
    withExtendedLifetime((z, probabilities)) {}
    let divisor = reduction == .mean ? Double(max(counted, 1)) : 1
    let loss = Tensor([counted > 0 ? Float(total / divisor) : 0], shape: [1])
    guard Autograd.needsGrad(logits), counted > 0 else { return loss }
    // The closure must own `probabilities` (not just its pointer `pp`): once the tensor is released its buffer
    // goes back to StoragePool and the next allocation of that size (the seed gradient, `dz`, …) would overwrite it.
    Autograd.record(loss) { [probabilities] dLoss in
        let pp = probabilities.storage.floats
        let scale = dLoss.plain().storage.floats[0] / Float(divisor)
        let dz = Tensor(shape: z.shape)
        let dp = dz.storage.floats
        for b in 0..<n {
            for p in 0..<spatial {
                let base = b * c * spatial + p
                let t = labels[b * spatial + p]
                for k in 0..<c {
                    let i = base + k * spatial
                    dp[i] = t == ignoreIndex ? 0 : (pp[i] - (Int32(k) == t ? 1 : 0)) * scale
                }
            }
        }
        logits.accumulateGrad(dz)
    }
    return loss
}
