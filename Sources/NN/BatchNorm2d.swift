import CDNNL

/// How a `BatchNorm2d` normalises and what it learns.
public enum BatchNormMode: String {
    /// PyTorch's `train()`: normalise with the batch's statistics and update the running statistics.
    case training
    /// PyTorch's `eval()`: normalise with the running statistics; weight and bias still receive gradients when
    /// they require them.
    case inference
    /// Eval mode with the affine parameters held fixed (AffinityNet, DeepLab): running statistics, no update,
    /// and no gradient for weight or bias whatever their `requiresGrad`; the input still receives its gradient.
    case frozen
}

/// 2-d batch normalisation with PyTorch's names and semantics, on oneDNN's batch normalisation primitive in the
/// input's own layout (a blocked activation stays blocked).
///
/// Shapes: x (N, C, H, W), y the same (same layout); `weight` γ, `bias` β, `running_mean`, `running_var` (C).
/// Per channel c, over the n = N·H·W values of that channel:
///
///     training:   μ_c = mean(x_c), σ²_c = mean((x_c − μ_c)²)   (biased, used to normalise)
///     inference:  μ_c = running_mean_c, σ²_c = running_var_c
///     y = γ_c · (x − μ_c) / √(σ²_c + ε) + β_c
///
/// Training also updates, as PyTorch does (m = momentum):
///
///     running_mean ← (1 − m)·running_mean + m·μ,   running_var ← (1 − m)·running_var + m·σ²·n/(n − 1),
///     num_batches_tracked ← num_batches_tracked + 1.
///
/// Backward (x̂ = (x − μ)/√(σ² + ε), sums over the n values of a channel): dβ = Σ dy, dγ = Σ dy·x̂, and
/// dx = γ/√(σ² + ε) · (dy − (Σ dy)/n − x̂·(Σ dy·x̂)/n) in training, dx = γ/√(σ² + ε) · dy with running statistics.
public final class BatchNorm2d {
    public let channels: Int
    public let weight: Tensor
    public let bias: Tensor
    public let runningMean: Tensor
    public let runningVar: Tensor
    /// PyTorch's `num_batches_tracked` (an int64 scalar in the state dict): training forward passes so far.
    public var numBatchesTracked = 0
    public let eps: Float
    public let momentum: Float
    public var mode: BatchNormMode = .training
    /// Synchronised BatchNorm (`--sync-bn`): when set, training mode normalises with statistics over every rank's
    /// batch. The closure sums a vector over the ranks (an allreduce); see `SynchronizedStatistics.swift`.
    public var statisticsReducer: ((inout [Double]) -> Void)?

    /// Weight 1, bias 0, running mean 0, running variance 1 (spec §2.6). Conformer-S uses eps 1e-5 in the stem
    /// and 1e-6 in its blocks (spec §2.2).
    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        precondition(channels > 0, "BatchNorm2d: \(channels) channels")
        self.channels = channels
        weight = Initializers.constant([channels], 1)
        bias = Initializers.constant([channels], 0)
        runningMean = Tensor.filled(0, shape: [channels])
        runningVar = Tensor.filled(1, shape: [channels])
        self.eps = eps
        self.momentum = momentum
    }

    /// Parameters under their state-dict names.
    public func namedParameters(_ prefix: String) -> [(String, Tensor)] {
        [("\(prefix)weight", weight), ("\(prefix)bias", bias)]
    }

    /// Float buffers under their state-dict names. The third buffer, `\(prefix)num_batches_tracked`, is an int64
    /// scalar kept in `numBatchesTracked`.
    public func namedBuffers(_ prefix: String) -> [(String, Tensor)] {
        [("\(prefix)running_mean", runningMean), ("\(prefix)running_var", runningVar)]
    }

    /// Normalises x (N, C, H, W) according to `mode`; see the type's documentation.
    public func callAsFunction(_ x: Tensor) -> Tensor { callAsFunction(x, relu: false) }

    /// Normalises x and, with `relu`, applies max(·, 0) in the same primitive: `relu(bn(x))` in one pass over the
    /// activation forward and one backward (oneDNN's `fuse_norm_relu`; training keeps a bit mask of the positive
    /// outputs for backward), the same values as the two ops. Synchronised statistics run the two ops apart.
    public func callAsFunction(_ x: Tensor, relu fuseReLU: Bool) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[1] == channels,
                     "BatchNorm2d(\(channels)): input \(x.shape) is not (N, \(channels), H, W)")
        if fuseReLU && mode == .training && statisticsReducer != nil { return relu(callAsFunction(x, relu: false)) }
        // Locals, so that the backward closure holds what it needs and not the layer.
        let mode = self.mode, weight = self.weight, bias = self.bias, eps = self.eps, channels = self.channels
        let n = x.shape[0] * x.shape[2] * x.shape[3]
        let synchronized = mode == .training && statisticsReducer != nil
        let reducer = synchronized ? statisticsReducer : nil
        // Batch statistics computed by the primitive itself (not when they are synchronised over the ranks).
        let batchStatistics = mode == .training && !synchronized
        precondition(mode != .training || n > 1,
                     "BatchNorm2d: training needs more than one value per channel, input \(x.shape)")
        let affineGrads = mode != .frozen && (weight.requiresGrad || bias.requiresGrad)
        let record = Autograd.isRecording && (x.requiresGrad || affineGrads)
        let flags = normalizationScaleShift | (batchStatistics ? 0 : dnnl_use_global_stats.rawValue)
            | (fuseReLU ? dnnl_fuse_norm_relu.rawValue : 0)
        // Batch statistics come out of the primitive only in training propagation; so does a backward hint.
        let propagation = batchStatistics || record ? dnnl_forward_training : dnnl_forward_inference
        let shapes = "\(x.shape)\(x.layoutKey)eps\(eps)flags\(flags)"

        let forward = PrimitiveCache.primitive("batchnorm.fwd\(propagation.rawValue)\(shapes)") {
            var data = x.desc
            var desc = dnnl_batch_normalization_desc_t()
            dnnlCheck(dnnl_batch_normalization_forward_desc_init(&desc, propagation, &data, eps, flags),
                      "describe batch norm \(x.shape) (\(mode))")
            return makePrimitiveDesc(&desc, "batch norm \(x.shape) (\(mode))")
        }
        let y = Tensor(shape: x.shape, desc: x.desc)
        // Statistics: written by the primitive in training; read from the running buffers otherwise, through
        // copies when recording (the backward pass must see what the forward pass used, even after a reload).
        let mean: Tensor, variance: Tensor
        var globalCount = n
        if batchStatistics {
            (mean, variance) = (Tensor(shape: [channels]), Tensor(shape: [channels]))
        } else if synchronized, let reduce = reducer {
            (mean, variance, globalCount) = synchronizedStatistics(x, reduce: reduce)
        } else if record {
            (mean, variance) = (Tensor(runningMean.toArray(), shape: [channels]), Tensor(runningVar.toArray(), shape: [channels]))
        } else {
            (mean, variance) = (runningMean, runningVar)
        }
        // The fused ReLU's mask, which training propagation writes and backward reads.
        let workspace = fuseReLU && propagation == dnnl_forward_training
            ? RawBuffer(bytes: MemoryDesc.byteCount(forward.desc(DNNL_ARG_WORKSPACE))) : nil
        var args: [(Int32, UnsafeMutableRawPointer)] = [
            (DNNL_ARG_SRC, x.storage.data), (DNNL_ARG_DST, y.storage.data),
            (DNNL_ARG_SCALE, weight.storage.data), (DNNL_ARG_SHIFT, bias.storage.data),
            (DNNL_ARG_MEAN, mean.storage.data), (DNNL_ARG_VARIANCE, variance.storage.data)]
        if let workspace { args.append((DNNL_ARG_WORKSPACE, workspace.data)) }
        forward.execute(args)
        if mode == .training { updateRunningStatistics(mean: mean, variance: variance, count: globalCount) }

        guard record else { return y }
        Autograd.countUses([x, affineGrads ? weight : nil, affineGrads ? bias : nil])
        Autograd.record(y) { dy in
            // Always the full backward (frozen mode drops dγ, dβ, one cheap reduction): oneDNN 2.6.3 has no
            // `backward_data` implementation with a scale. The shift goes in although backward does
            // not read it: oneDNN counts it among the inputs and rejects an execution without it.
            let backward = PrimitiveCache.primitive("batchnorm.bwd\(shapes)") {
                var data = x.desc, diff = x.desc
                var desc = dnnl_batch_normalization_desc_t()
                dnnlCheck(dnnl_batch_normalization_backward_desc_init(&desc, dnnl_backward, &diff, &data, eps, flags),
                          "describe batch norm backward \(x.shape) (\(mode))")
                return makePrimitiveDesc(&desc, "batch norm backward \(x.shape) (\(mode))", hint: forward.pd)
            }
            let dy = Reorder.ensure(dy, backward.desc(DNNL_ARG_DIFF_DST))
            let dx = Tensor(shape: x.shape, desc: backward.desc(DNNL_ARG_DIFF_SRC))
            let dW = Tensor(shape: [channels]), dB = Tensor(shape: [channels])
            var args: [(Int32, UnsafeMutableRawPointer)] = [
                (DNNL_ARG_SRC, x.storage.data), (DNNL_ARG_DIFF_DST, dy.storage.data), (DNNL_ARG_MEAN, mean.storage.data),
                (DNNL_ARG_VARIANCE, variance.storage.data), (DNNL_ARG_SCALE, weight.storage.data), (DNNL_ARG_SHIFT, bias.storage.data),
                (DNNL_ARG_DIFF_SRC, dx.storage.data), (DNNL_ARG_DIFF_SCALE, dW.storage.data), (DNNL_ARG_DIFF_SHIFT, dB.storage.data)]
            if let workspace { args.append((DNNL_ARG_WORKSPACE, workspace.data)) }
            backward.execute(args)
            if let reduce = reducer, x.requiresGrad {
                x.accumulateGrad(BatchNorm2d.synchronizedInputGradient(dx, x: x, weight: weight, eps: eps, mean: mean, variance: variance,
                                                                       dW: dW, dB: dB, count: globalCount, reduce: reduce))
            } else if x.requiresGrad {
                x.accumulateGrad(dx)
            }
            if affineGrads && weight.requiresGrad { weight.accumulateGrad(dW) }
            if affineGrads && bias.requiresGrad { bias.accumulateGrad(dB) }
        }
        return y
    }

    /// PyTorch's momentum update of the running statistics from one batch's mean and biased variance over n values.
    private func updateRunningStatistics(mean: Tensor, variance: Tensor, count n: Int) {
        Kernels.momentumUpdate(runningMean.storage.floats, mean.storage.floats, momentum: momentum, count: channels)
        Kernels.momentumUpdate(runningVar.storage.floats, variance.storage.floats, momentum: momentum,
                               scale: Float(Double(n) / Double(n - 1)), count: channels)
        runningMean.version += 1
        runningVar.version += 1
        numBatchesTracked += 1
    }
}

/// Bytes a primitive needs kept between its forward and backward executions (a workspace), freed with the owner.
final class RawBuffer {
    let data: UnsafeMutableRawPointer
    init(bytes: Int) { data = .allocate(byteCount: max(bytes, 1), alignment: 64) }
    deinit { data.deallocate() }
}
