import Foundation

/// The pixel pairs whose affinities AffinityNet predicts (spec §8.3), as upstream's `get_indices_of_pairs(radius,
/// size)` (`SP_2/tool/pyutils.py`, the same function as PSA's `tool/pyutils.py`) and the label extraction
/// `ExtractAffinityLabelInRadius` (`SP_2/voc12/data.py`) lay them out.
///
/// - Directions (dy, dx), in this order: (0, 1) … (0, r − 1); then for dy = 1 … r − 1, dx = −(r − 1) … r − 1, those
///   with dx² + dy² < r². Radius 5 gives 34: 4 + 9 + 9 + 7 + 5. Only the "forward" half-plane, so each unordered
///   pair of neighbours closer than r appears once.
/// - "From" pixels: rows 0 … H − r, columns r − 1 … W − r (a (H − r + 1) × (W − 2r + 2) window, row-major),
///   p = row · fromColumns + column − (r − 1). The "to" pixel of direction d is from + (dy_d, dx_d), always inside
///   the map.
/// - Affinities and labels are (B, D, P), direction-major: element (b, d, p) is the pair (from_p, from_p + offset_d).
///
/// For the 448 training crop (56 × 56 features, radius 5): D = 34, P = 52 · 48 = 2,496. At inference the same layout
/// is rebuilt per size, with `fallbackRadius` for small maps.
public struct AffinityPairs: Sendable {
    public let height: Int
    public let width: Int
    public let radius: Int
    /// The directions (dy, dx) in upstream's order.
    public let directions: [(dy: Int, dx: Int)]
    /// Rows of the from-window: H − radius + 1.
    public let fromRows: Int
    /// Columns of the from-window: W − 2·(radius − 1).
    public let fromColumns: Int
    /// P = fromRows · fromColumns.
    public let fromCount: Int

    /// The layout for an H × W map. Needs radius ≥ 2 and a map of at least radius rows and 2·radius − 1 columns
    /// (otherwise there is no from-pixel; `fallbackRadius` picks a radius that fits, as upstream does).
    public init(height: Int, width: Int, radius: Int = 5) {
        precondition(radius >= 2, "AffinityPairs: radius \(radius) < 2 has no pairs (map \(height)×\(width))")
        let floor = radius - 1
        precondition(height - floor >= 1 && width - 2 * floor >= 1,
                     "AffinityPairs: a \(height)×\(width) map is too small for radius \(radius) (needs ≥ \(radius)×\(2 * radius - 1))")
        self.height = height
        self.width = width
        self.radius = radius
        var directions: [(dy: Int, dx: Int)] = (1..<radius).map { (dy: 0, dx: $0) }
        for dy in 1..<radius {
            for dx in (-floor)...floor where dx * dx + dy * dy < radius * radius {
                directions.append((dy: dy, dx: dx))
            }
        }
        self.directions = directions
        fromRows = height - floor
        fromColumns = width - 2 * floor
        fromCount = fromRows * fromColumns
    }

    /// D, the number of directions (34 for radius 5).
    public var directionCount: Int { directions.count }

    /// Upstream's radius rule for a feature map of another size (`resnet38_aff.Net.forward`): `radius` when the
    /// smaller side is at least 2·radius + 1, else ⌊(min side − 1)/2⌋ (which is < 2, no pairs, below 5 pixels).
    public static func fallbackRadius(height: Int, width: Int, radius: Int = 5) -> Int {
        let minSide = min(height, width)
        return minSide < 2 * radius + 1 ? (minSide - 1) / 2 : radius
    }

    /// The flat index (row · W + column) of from-pixel p.
    @inline(__always)
    public func from(_ p: Int) -> Int { (p / fromColumns) * width + p % fromColumns + radius - 1 }

    /// The flat offset to-pixel − from-pixel of direction d: dy · W + dx.
    @inline(__always)
    public func offset(_ d: Int) -> Int { directions[d].dy * width + directions[d].dx }

    /// Upstream's `ind_from` (P flat indices).
    public var fromIndices: [Int] { (0..<fromCount).map(from) }

    /// Upstream's `ind_to` (D · P flat indices, direction-major).
    public var toIndices: [Int] {
        (0..<directionCount).flatMap { d in (0..<fromCount).map { from($0) + offset(d) } }
    }
}

/// The affinity of every pair (spec §8.2): a = exp(−mean_c |f_from − f_to|), as upstream's
/// `torch.exp(-torch.mean(torch.abs(ft - ff), dim=1))` after the two `index_select`s.
///
/// Shapes: features (B, C, H, W) in any layout, with H × W the map `pairs` was built for; the result (B, D, P)
/// plain, direction-major (see `AffinityPairs`). Sums over channels in Float, as PyTorch.
/// Backward, with g = dy · (−a / C): df_from[c] += g · sign(f_from[c] − f_to[c]), df_to[c] −= the same, where
/// sign(0) = 0 (PyTorch's subgradient of abs). Keeps the plain features and a for backward.
public func pairAffinity(_ features: Tensor, pairs: AffinityPairs) -> Tensor {
    precondition(features.shape.count == 4 && features.shape[2] == pairs.height && features.shape[3] == pairs.width,
                 "pairAffinity: features \(features.shape) are not (B, C, \(pairs.height), \(pairs.width))")
    let f = features.plain()
    let batch = f.shape[0], channels = f.shape[1]
    let w = pairs.width, hw = pairs.height * pairs.width
    let d = pairs.directionCount, p = pairs.fromCount
    let rows = pairs.fromRows, columns = pairs.fromColumns, start = pairs.radius - 1
    let offsets = (0..<d).map(pairs.offset)
    let y = Tensor(shape: [batch, d, p])
    let fp = f.storage.floats, yp = y.storage.floats
    let invChannels = 1 / Float(channels)
    ComputeThreads.parallelRanges(batch * d, minimumPerThread: 1) { tasks in
        for task in tasks {
            let b = task / d, out = yp + task * p, offset = offsets[task % d]
            out.update(repeating: 0, count: p)
            for c in 0..<channels {
                let plane = fp + (b * channels + c) * hw
                for r in 0..<rows {
                    let source = plane + r * w + start, target = source + offset, o = out + r * columns
                    for x in 0..<columns { o[x] += abs(source[x] - target[x]) }
                }
            }
            for i in 0..<p { out[i] = exp(-(out[i] * invChannels)) }
        }
    }
    withExtendedLifetime((f, y)) {}
    guard Autograd.needsGrad(features) else { return y }
    Autograd.record(y) { [features = features.slot, f, y] dy in
        let dy = dy.plain()
        // g = dy · ∂a/∂s with s the channel sum: −a / C.
        let g = Tensor(shape: y.shape)
        let gp = g.storage.floats, dyp = dy.storage.floats, ap = y.storage.floats
        for i in 0..<(batch * d * p) { gp[i] = -dyp[i] * ap[i] * invChannels }
        let df = Tensor.zeros(f.shape)
        let fp = f.storage.floats, dfp = df.storage.floats
        // One task per (b, c): its writes stay in its own channel plane.
        ComputeThreads.parallelRanges(batch * channels, minimumPerThread: 1) { tasks in
            for task in tasks {
                let b = task / channels
                let plane = fp + task * hw, gradPlane = dfp + task * hw
                for k in 0..<d {
                    let offset = offsets[k], gRow = gp + (b * d + k) * p
                    for r in 0..<rows {
                        let source = plane + r * w + start, gs = gradPlane + r * w + start, gr = gRow + r * columns
                        for x in 0..<columns {
                            let diff = source[x] - source[x + offset]
                            let s: Float = diff > 0 ? gr[x] : (diff < 0 ? -gr[x] : 0)
                            gs[x] += s
                            gs[x + offset] -= s
                        }
                    }
                }
            }
        }
        withExtendedLifetime((f, g, dy, y)) {}
        features.accumulateGrad(df)
    }
    return y
}

/// The affinity labels of one batch (spec §8.4 step 4): three 0/1 float masks (B, D, P) laid out as the affinities
/// (`AffinityPairs`), upstream's `bg_pos`, `fg_pos` and `neg` label tensors:
///
/// - `bgPos`: both ends background (label 0);
/// - `fgPos`: both ends the same foreground class (neither 0 nor 255);
/// - `neg`: both ends valid (< 255) and different.
///
/// An unsure end (255) makes a pair none of the three. The masks take no gradient.
public struct AffinityLabels {
    public let bgPos: Tensor
    public let fgPos: Tensor
    public let neg: Tensor

    /// Masks given as tensors (e.g. upstream's, read from a file); all three must have one shape (B, D, P).
    public init(bgPos: Tensor, fgPos: Tensor, neg: Tensor) {
        precondition(bgPos.shape.count == 3 && bgPos.shape == fgPos.shape && bgPos.shape == neg.shape,
                     "AffinityLabels: masks \(bgPos.shape), \(fgPos.shape), \(neg.shape) are not one (B, D, P) shape")
        self.bgPos = bgPos
        self.fgPos = fgPos
        self.neg = neg
    }

    /// Masks from label maps (one H × W map per image, row-major; 0 background, 255 unsure, else a class), as
    /// upstream's `ExtractAffinityLabelInRadius`.
    public init<Label: BinaryInteger>(labelMaps: [[Label]], pairs: AffinityPairs) {
        let d = pairs.directionCount, p = pairs.fromCount
        var bg = [Float](repeating: 0, count: labelMaps.count * d * p), fg = bg, ng = bg
        for (b, map) in labelMaps.enumerated() {
            precondition(map.count == pairs.height * pairs.width,
                         "AffinityLabels: label map \(b) has \(map.count) values for a \(pairs.height)×\(pairs.width) layout")
            for k in 0..<d {
                let offset = pairs.offset(k)
                for i in 0..<p {
                    let from = pairs.from(i)
                    let a = map[from], c = map[from + offset]
                    let j = (b * d + k) * p + i
                    let valid = a < 255 && c < 255
                    if a == c {
                        if a == 0 { bg[j] = 1 } else if valid { fg[j] = 1 }
                    } else if valid {
                        ng[j] = 1
                    }
                }
            }
        }
        let shape = [labelMaps.count, d, p]
        self.init(bgPos: Tensor(bg, shape: shape), fgPos: Tensor(fg, shape: shape), neg: Tensor(ng, shape: shape))
    }
}

/// The three terms of the affinity loss (spec §8.5, upstream's `train_aff.py`), as sums and counts for a
/// global-batch loss (`StageLoss.sums`):
///
///     bgSum  = Σ −bg_pos · ln(a + 1e-5),        bgCount  = Σ bg_pos
///     fgSum  = Σ −fg_pos · ln(a + 1e-5),        fgCount  = Σ fg_pos
///     negSum = Σ −neg    · ln(1 + 1e-5 − a),    negCount = Σ neg
///
/// Upstream's loss on one process is bg/4 + fg/4 + neg/2 with each term sum / (count + 1e-5) (`affinityLoss`);
/// over ranks the loop divides the all-reduced sums by the all-reduced counts (the 1e-5 only matters for a term
/// with count 0, which upstream makes 0 and the loop skips).
///
/// Shapes: affinity (B, D, P) (any layout; `pairAffinity`'s output), masks as `labels`; each sum a (1) tensor, in
/// Double before rounding (the log arguments in Float, as upstream's float32: see `logArgument`).
/// Backward: ∂bgSum/∂a = −bg_pos / (a + 1e-5), ∂fgSum/∂a = −fg_pos / (a + 1e-5), ∂negSum/∂a = neg / (1 + 1e-5 − a).
public func affinityLossSums(_ affinity: Tensor, labels: AffinityLabels)
    -> (bgSum: Tensor, bgCount: Double, fgSum: Tensor, fgCount: Double, negSum: Tensor, negCount: Double) {
    precondition(affinity.shape == labels.bgPos.shape,
                 "affinityLossSums: affinity \(affinity.shape) vs label masks \(labels.bgPos.shape)")
    let a = affinity.plain()
    let bg = maskedLogSum(affinity, a, labels.bgPos, complement: false)
    let fg = maskedLogSum(affinity, a, labels.fgPos, complement: false)
    let neg = maskedLogSum(affinity, a, labels.neg, complement: true)
    return (bg.sum, bg.count, fg.sum, fg.count, neg.sum, neg.count)
}

/// Upstream's AffinityNet loss on one process: bg/4 + fg/4 + neg/2, each term Σ / (Σ mask + 1e-5) (see
/// `affinityLossSums`); a (1) tensor.
public func affinityLoss(_ affinity: Tensor, labels: AffinityLabels) -> Tensor {
    let t = affinityLossSums(affinity, labels: labels)
    let bg = scale(t.bgSum, Float(1 / (4 * (t.bgCount + 1e-5))))
    let fg = scale(t.fgSum, Float(1 / (4 * (t.fgCount + 1e-5))))
    let neg = scale(t.negSum, Float(1 / (2 * (t.negCount + 1e-5))))
    return add(add(bg, fg), neg)
}

/// a + 1e-5, or (`complement`) 1 + 1e-5 − a, evaluated in Float as PyTorch evaluates upstream's float32 expression
/// (the constant 1 + 1e-5 rounds to 1.0000100136 in Float, and 1.0000100136 − a is exact for a near 1). In Double
/// the argument near a = 1 would differ by ~1e-3 relative from upstream's, and so would the steepest gradients.
@inline(__always)
private func logArgument(_ a: Float, _ complement: Bool) -> Double {
    Double(complement ? Float(1 + 1e-5) - a : a + Float(1e-5))
}

/// Σ −m · ln(a + 1e-5) (or, `complement`, Σ −m · ln(1 + 1e-5 − a)) and Σ m, in Double over the Float arguments
/// (`logArgument`). `a` is `affinity` plain.
private func maskedLogSum(_ affinity: Tensor, _ a: Tensor, _ mask: Tensor, complement: Bool) -> (sum: Tensor, count: Double) {
    let m = mask.plain()
    let n = a.elementCount
    let ap = a.storage.floats, mp = m.storage.floats
    var total = 0.0, count = 0.0
    for i in 0..<n where mp[i] != 0 {
        total -= Double(mp[i]) * log(logArgument(ap[i], complement))
        count += Double(mp[i])
    }
    withExtendedLifetime((a, m)) {}
    let sum = Tensor([Float(total)], shape: [1])
    guard Autograd.needsGrad(affinity) else { return (sum, count) }
    Autograd.record(sum) { [affinity = affinity.slot, a, m] dSum in
        let scale = Double(dSum.plain().storage.floats[0])
        let da = Tensor(shape: a.shape)
        let ap = a.storage.floats, mp = m.storage.floats, dp = da.storage.floats
        for i in 0..<n {
            let mi = Double(mp[i])
            guard mi != 0 else { dp[i] = 0; continue }
            let x = logArgument(ap[i], complement)
            dp[i] = Float(scale * (complement ? mi / x : -mi / x))
        }
        withExtendedLifetime((a, m)) {}
        affinity.accumulateGrad(da)
    }
    return (sum, count)
}
