import Foundation

/// Every number of a dense-CRF call (spec §7.3). Standard deviations are in pixels (sxy) and in 0–255 colour
/// levels (srgb); `compat` is the Potts weight w of a term.
public struct CRFParameters: Codable, Equatable, Sendable {
    /// Mean-field iterations.
    public var iterations: Int
    /// Label unaries: the probability given to the map's label (`unary_from_labels`' gt_prob).
    public var gtProb: Double
    /// Probability unaries: the lower clip before −ln (`unary_from_softmax`' clip).
    public var clip: Float
    /// Appearance-free term on (x/sxy, y/sxy).
    public var gaussianSXY: Float
    public var gaussianCompat: Float
    /// Bilateral term on (x/sxy, y/sxy, r/srgb, g/srgb, b/srgb).
    public var bilateralSXY: Float
    public var bilateralSRGB: Float
    public var bilateralCompat: Float

    public init(iterations: Int = 10, gtProb: Double = 0.7, clip: Float = 1e-5,
                gaussianSXY: Float, gaussianCompat: Float,
                bilateralSXY: Float, bilateralSRGB: Float, bilateralCompat: Float) {
        self.iterations = iterations
        self.gtProb = gtProb
        self.clip = clip
        self.gaussianSXY = gaussianSXY
        self.gaussianCompat = gaussianCompat
        self.bilateralSXY = bilateralSXY
        self.bilateralSRGB = bilateralSRGB
        self.bilateralCompat = bilateralCompat
    }

    /// Throws for values pydensecrf would reject or turn into NaN/∞ (non-positive deviations, no iterations, …).
    public func validate() throws {
        func require(_ ok: Bool, _ name: String, _ value: String, _ requirement: String) throws {
            if !ok { throw DenseCRFError.invalidParameter(name: name, value: value, requirement: requirement) }
        }
        try require(iterations >= 0, "iterations", "\(iterations)", "at least 0")
        try require(gtProb > 0 && gtProb < 1, "gt_prob", "\(gtProb)", "in (0, 1)")
        try require(clip > 0 && clip <= 1, "clip", "\(clip)", "in (0, 1]")
        for (name, v) in [("Gaussian sxy", gaussianSXY), ("bilateral sxy", bilateralSXY), ("bilateral srgb", bilateralSRGB)] {
            try require(v > 0 && v.isFinite, name, "\(v)", "a positive number")
        }
        for (name, v) in [("Gaussian compat", gaussianCompat), ("bilateral compat", bilateralCompat)] {
            try require(v.isFinite, name, "\(v)", "a finite number")
        }
    }
}

/// Where the unary energies of a preset come from.
public enum CRFUnarySource: String, Sendable {
    /// A label map (`unary_from_labels` with gt_prob).
    case labels
    /// A probability map (`unary_from_softmax`).
    case probabilities
}

/// The three CRF calls of the pipeline (spec §7.3).
public enum CRFPreset: String, CaseIterable, Sendable, CustomStringConvertible {
    /// PSA's `crf_inference_label`: label unaries, 21 labels, gt_prob 0.7; Gaussian sxy 3 compat 3;
    /// bilateral sxy 50 srgb 5 compat 10.
    case psaLabel = "psa-label"
    /// PSA's `crf_inference` (`tool/imutils.py`): probability unaries; Gaussian sxy 3/scale compat 3;
    /// bilateral sxy 80/scale srgb 13 compat 10.
    case psaSoftmax = "psa-softmax"
    /// deeplab-pytorch's `DenseCRF` (its VOC config): probability unaries; Gaussian sxy 1 (POS_XY_STD) compat 3
    /// (POS_W); bilateral sxy 67 srgb 3 compat 4.
    case deeplab

    public var description: String { rawValue }

    /// The label count upstream uses (VOC: 20 classes + background); configurable in every call.
    public static let defaultLabels = 21

    public var unarySource: CRFUnarySource { self == .psaLabel ? .labels : .probabilities }

    /// The preset's parameters, 10 iterations. `scale` is `crf_inference`'s scale_factor (psa-softmax only; the
    /// divisions are made in double and rounded to float, as Python passes `3/scale` to the C++ float argument).
    public func parameters(scale: Double = 1) -> CRFParameters {
        switch self {
        case .psaLabel:
            return CRFParameters(gtProb: 0.7, gaussianSXY: 3, gaussianCompat: 3,
                                 bilateralSXY: 50, bilateralSRGB: 5, bilateralCompat: 10)
        case .psaSoftmax:
            return CRFParameters(gaussianSXY: Float(3 / scale), gaussianCompat: 3,
                                 bilateralSXY: Float(80 / scale), bilateralSRGB: 13, bilateralCompat: 10)
        case .deeplab:
            return CRFParameters(gaussianSXY: 1, gaussianCompat: 3,
                                 bilateralSXY: 67, bilateralSRGB: 3, bilateralCompat: 4)
        }
    }
}
