import Foundation

/// What the dense CRF rejects in user data: one line naming the problem, for the CLI to print before exiting 1.
public enum DenseCRFError: Error, Equatable, CustomStringConvertible {
    /// An array has the wrong number of elements for the stated shape.
    case shapeMismatch(what: String, expected: String, actual: Int)
    /// A label map holds `label` (at pixel `pixel`, row-major) but the CRF has only `labels` labels.
    case labelOutOfRange(label: Int, pixel: Int, labels: Int)
    /// A parameter outside its domain (e.g. gt_prob not in (0, 1), a non-positive standard deviation).
    case invalidParameter(name: String, value: String, requirement: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(what, expected, actual):
            return "dense CRF: \(what) has \(actual) values, expected \(expected)"
        case let .labelOutOfRange(label, pixel, labels):
            return "dense CRF: label \(label) at pixel \(pixel) is not below the label count \(labels)"
        case let .invalidParameter(name, value, requirement):
            return "dense CRF: \(name) = \(value), must be \(requirement)"
        }
    }
}

/// Unary energies U (L × N, label-major: `U[l*N + i]`, the layout of pydensecrf's `setUnaryEnergy` and of the
/// (L, H, W) probability files) as pydensecrf's `utils.py` makes them (spec §7.2).
public enum CRFUnary {
    /// `unary_from_labels(labels, L, gt_prob, zero_unsure=False)`: for a pixel labelled l,
    /// U[l] = −ln(gt_prob) and U[l′] = −ln((1 − gt_prob)/(L − 1)) for every other l′. Label 0 is an ordinary label.
    /// Both energies are computed in double and rounded to float, as numpy does before its float32 store.
    public static func fromLabels(_ labelMap: [UInt8], labels: Int, gtProb: Double) throws -> [Float] {
        let n = labelMap.count
        let (positive, negative) = try labelEnergies(labelMap, labels: labels, gtProb: gtProb)
        var u = [Float](repeating: negative, count: labels * n)
        for (i, l) in labelMap.enumerated() { u[Int(l) * n + i] = positive }
        return u
    }

    /// The two energies of `fromLabels`, (−ln(gt_prob), −ln((1 − gt_prob)/(L − 1))), after checking the labels.
    static func labelEnergies(_ labelMap: [UInt8], labels: Int, gtProb: Double) throws -> (Float, Float) {
        guard gtProb > 0 && gtProb < 1 else {
            throw DenseCRFError.invalidParameter(name: "gt_prob", value: "\(gtProb)", requirement: "in (0, 1)")
        }
        guard labels >= 1 else {
            throw DenseCRFError.invalidParameter(name: "label count", value: "\(labels)", requirement: "at least 1")
        }
        if let bad = labelMap.firstIndex(where: { Int($0) >= labels }) {
            throw DenseCRFError.labelOutOfRange(label: Int(labelMap[bad]), pixel: bad, labels: labels)
        }
        return (Float(-log(gtProb)), labels > 1 ? Float(-log((1 - gtProb) / Double(labels - 1))) : 0)
    }

    /// `unary_from_softmax(p)`: U = −ln(clip(p, `clip`, 1)), in float as numpy computes it for float32 input.
    /// `probabilities` is L × N label-major.
    public static func fromProbabilities(_ probabilities: [Float], labels: Int, pixels: Int,
                                         clip: Float = 1e-5) throws -> [Float] {
        try checkProbabilities(probabilities, labels: labels, pixels: pixels, clip: clip)
        return probabilities.map { energy(probability: $0, clip: clip) }
    }

    /// The checks of `fromProbabilities`: the shape, the clip, no NaN (NaN fails both comparisons and would survive
    /// `min`/`max`; it is rejected rather than propagated through Q).
    static func checkProbabilities(_ probabilities: [Float], labels: Int, pixels: Int, clip: Float,
                                   threads: Int = 1) throws {
        guard probabilities.count == labels * pixels else {
            throw DenseCRFError.shapeMismatch(what: "the probability map", expected: "\(labels) × \(pixels)",
                                              actual: probabilities.count)
        }
        guard clip > 0 && clip <= 1 else {
            throw DenseCRFError.invalidParameter(name: "clip", value: "\(clip)", requirement: "in (0, 1]")
        }
        // The first NaN: each range's first, the smallest of those.
        let parts = max(1, min(threads, probabilities.count >> 16))
        var firstNaN = [Int](repeating: Int.max, count: parts)
        probabilities.withUnsafeBufferPointer { p in
            firstNaN.withUnsafeMutableBufferPointer { found in
                parallelRanges(parts, threads: parts) { chunk in
                    for part in chunk {
                        let range = (part * p.count / parts)..<((part + 1) * p.count / parts)
                        if let bad = p[range].firstIndex(where: { $0.isNaN }) { found[part] = bad }
                    }
                }
            }
        }
        if let bad = firstNaN.min(), bad != Int.max {
            throw DenseCRFError.invalidParameter(name: "probability at index \(bad)", value: "nan", requirement: "a number")
        }
    }

    /// One probability's energy −ln(clip(p, `clip`, 1)).
    @inline(__always)
    static func energy(probability p: Float, clip: Float) -> Float { -logf(min(max(p, clip), 1)) }
}
