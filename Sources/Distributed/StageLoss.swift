import NN

/// A stage's loss for one micro-batch on one rank, in the form that tells the loop how to make the update that
/// of the whole global batch.
///
/// - `mean`: a per-rank mean (PC, SP: every rank holds as many images). The loop averages it over the ranks,
///   which is the global mean when the ranks' shares are equal.
/// - `sums`: terms Σ_t with their counts (DeepLab: cross-entropy summed over the valid pixels, and their number;
///   AffinityNet: three Σ terms over pixel pairs). The loop all-reduces the sums and counts, so the objective is
///
///       L = Σ_t weight_t · (Σ_ranks sum_t) / (Σ_ranks count_t)
///
///   and the gradient is that of L over the global batch, whatever each rank's count. A term whose global count
///   is 0 contributes nothing.
///
/// With gradient accumulation (K micro-batches per update) the update's objective is the mean of the K
/// micro-batch objectives, as deeplab-pytorch's `iter_size` (each micro-batch's loss divided by K).
public enum StageLoss {
    public struct Term {
        public var sum: Tensor
        public var count: Double
        public var weight: Double

        public init(sum: Tensor, count: Double, weight: Double = 1) {
            self.sum = sum
            self.count = count
            self.weight = weight
        }
    }

    case mean(Tensor)
    case sums([Term])

    /// The tensors backward starts from.
    var tensors: [Tensor] {
        switch self {
        case let .mean(t): return [t]
        case let .sums(terms): return terms.map(\.sum)
        }
    }
}
