import Foundation

/// Conflict self-elimination (spec §9, upstream `SP_2/CSE_voc.py`): the final pseudo label of one image from its
/// saliency map, the attention maps of its listed classes and its random-walk labels.
///
/// The rule, per pixel of an H × W image with C classes (label 0 is background, class c is label c + 1):
///
/// 1. Scores: background `G₀ = 1 − s/255` from the 8-bit saliency `s`; for each class c with an attention map,
///    `G_{c+1} = (a − min a)/(max a − min a + 1e-8)` (min-max normalised over the map; a constant map gives 0
///    everywhere); classes without a map score 0.
/// 2. Saliency-or-attention `SA = max(s, 255·[G_{c+1} > attention])` over the classes with a map.
/// 3. Every score below ``foreground`` becomes 0 (background included).
/// 4. The label is the argmax of the scores, the lowest label on ties (so a pixel whose scores are all 0 is
///    background); it becomes 255 where more than one score exceeds ``conflict``.
/// 5. Background on a pixel with `SA ≥ background` becomes 255.
/// 6. A label that differs from the random-walk label becomes 255.
/// 7. If fewer than ``minimumForeground`` · H · W pixels keep a class label (0 < L < 255), the whole image is 255.
///
/// The arithmetic is upstream's numpy arithmetic, so the labels are pixel-identical: `G₀` is float32
/// (`float32(1) − float32(s)/255`); the normalised attention is computed in float64, compared with
/// ``attention`` in float64, and stored into the float32 score volume; ``foreground`` and ``conflict`` are
/// compared against those float32 scores as float32 (`Float(threshold)`, the rounding numpy applies to a Python
/// float); the ratio of step 7 is float64. Strict and non-strict comparisons are upstream's (`<`, `>`, `>`, `≥`,
/// `<`).
///
/// Beyond upstream, bad input is an error rather than a numpy broadcast failure or a silently wrong map: maps of
/// different sizes, an attention class outside 0..<C, a random-walk label that is neither 0...C nor 255, an empty
/// image, or more classes than a palette index holds.
public struct ConflictSelfElimination: Sendable {
    /// A pixel where more than one score exceeds this is a conflict and is ignored (upstream `conflict`).
    public var conflict: Double = 0.9
    /// Scores below this are zeroed, background included (upstream `fg_thr`).
    public var foreground: Double = 0.4
    /// Background is not trusted where the saliency-or-attention value (0...255) is at least this
    /// (upstream `bg_thr`).
    public var background: Double = 32
    /// Normalised attention above this marks a pixel as attended: 255 in the saliency-or-attention map
    /// (upstream `att_thr`).
    public var attention: Double = 0.8
    /// An image keeping fewer than this share of class-labelled pixels becomes all 255 (upstream's 0.01).
    public var minimumForeground: Double = 0.01

    public init(conflict: Double = 0.9, foreground: Double = 0.4, background: Double = 32, attention: Double = 0.8,
                minimumForeground: Double = 0.01) {
        self.conflict = conflict
        self.foreground = foreground
        self.background = background
        self.attention = attention
        self.minimumForeground = minimumForeground
    }

    /// The label ignored by training and evaluation.
    public static let ignore: UInt8 = 255

    /// The pseudo labels (0...`classes`, 255), row-major, `width` × `height`.
    ///
    /// - Parameters:
    ///   - saliency: the 8-bit saliency map, row-major; its size is the image's.
    ///   - attention: 8-bit attention maps by class index (0..<`classes`); a class listed for the image but without
    ///     a map is simply absent, and scores 0 everywhere, as upstream skips a missing file.
    ///   - randomWalk: the random-walk labels (0...`classes`, 255).
    ///   - classes: C, the number of foreground classes (20 for VOC, 80 for COCO).
    /// - Throws: ``ConflictSelfEliminationError`` on bad input.
    public func labels(saliency: [UInt8], width: Int, height: Int, attention maps: [Int: [UInt8]],
                       randomWalk: [UInt8], classes: Int) throws -> [UInt8] {
        typealias Failure = ConflictSelfEliminationError
        guard classes >= 1, classes < Int(Self.ignore) else { throw Failure.classCount(classes) }
        guard width > 0, height > 0 else { throw Failure.emptyImage(width: width, height: height) }
        let plane = width * height
        guard saliency.count == plane else {
            throw Failure.sizeMismatch(what: "saliency map", count: saliency.count, width: width, height: height)
        }
        guard randomWalk.count == plane else {
            throw Failure.sizeMismatch(what: "random-walk labels", count: randomWalk.count, width: width, height: height)
        }
        let present = maps.keys.sorted()
        for c in present {
            guard (0..<classes).contains(c) else { throw Failure.classOutOfRange(c, classes: classes) }
            let count = maps[c]!.count
            guard count == plane else {
                throw Failure.sizeMismatch(what: "attention map of class \(c)", count: count, width: width, height: height)
            }
        }
        if let bad = randomWalk.first(where: { Int($0) > classes && $0 != Self.ignore }) {
            throw Failure.randomWalkLabel(Int(bad), classes: classes)
        }

        // Per class, the normalised score and the attended flag of each 8-bit value, exactly as numpy forms them:
        // (uint8 a − uint8 min) / (float64(max − min) + 1e-8) in float64, then stored as float32.
        let foregroundF = Float(foreground), conflictF = Float(conflict)
        var scoreTables: [[Float]] = [], attendedTables: [[Bool]] = []
        for c in present {
            let map = maps[c]!
            let low = map.min()!, high = map.max()!
            let denominator = Double(high - low) + 1e-8
            var score = [Float](repeating: 0, count: 256), attended = [Bool](repeating: false, count: 256)
            for v in Int(low)...Int(high) {
                let normalised = Double(v - Int(low)) / denominator
                attended[v] = normalised > attention
                let stored = Float(normalised)
                score[v] = stored < foregroundF ? 0 : stored
            }
            scoreTables.append(score)
            attendedTables.append(attended)
        }
        let labelsOfPresent = present.map { UInt8($0 + 1) }
        let planes = present.map { maps[$0]! }
        // Classes without a map keep all-zero channels; they only count as conflicts for a negative `conflict`.
        let absentAbove = Float(0) > conflictF ? classes - present.count : 0

        var out = [UInt8](repeating: Self.ignore, count: plane)
        var valid = 0
        for i in 0..<plane {
            let s = saliency[i]
            var backgroundScore = Float(1) - Float(s) / Float(255)
            if backgroundScore < foregroundF { backgroundScore = 0 }
            var best = backgroundScore, label: UInt8 = 0
            var above = absentAbove + (backgroundScore > conflictF ? 1 : 0)
            var attended = false
            for k in 0..<present.count {
                let v = Int(planes[k][i])
                let g = scoreTables[k][v]
                if g > best { best = g; label = labelsOfPresent[k] }
                if g > conflictF { above += 1 }
                if attendedTables[k][v] { attended = true }
            }
            if above > 1 { label = Self.ignore }
            let salientOrAttended = attended ? 255 : Double(s)
            if label == 0, salientOrAttended >= background { label = Self.ignore }
            if label != randomWalk[i] { label = Self.ignore }
            if label != 0, label != Self.ignore { valid += 1 }
            out[i] = label
        }
        if Double(valid) / Double(plane) < minimumForeground {
            return [UInt8](repeating: Self.ignore, count: plane)
        }
        return out
    }
}

/// Bad input to ``ConflictSelfElimination`` (the message is one line).
public enum ConflictSelfEliminationError: Error, Equatable, LocalizedError, CustomStringConvertible {
    /// A map whose pixel count is not the saliency map's width × height.
    case sizeMismatch(what: String, count: Int, width: Int, height: Int)
    /// An attention map for a class index outside 0..<classes.
    case classOutOfRange(Int, classes: Int)
    /// A random-walk label that is neither 0...classes nor 255.
    case randomWalkLabel(Int, classes: Int)
    /// A class count that does not leave label 255 free (or is not positive).
    case classCount(Int)
    /// A saliency map without pixels.
    case emptyImage(width: Int, height: Int)

    public var description: String {
        switch self {
        case let .sizeMismatch(what, count, width, height):
            return "CSE: the \(what) has \(count) pixels, but the saliency map is \(width)×\(height) (\(width * height) pixels)"
        case let .classOutOfRange(c, classes):
            return "CSE: attention map for class \(c), but there are \(classes) classes (0..\(classes - 1))"
        case let .randomWalkLabel(label, classes):
            return "CSE: random-walk label \(label) is neither 0...\(classes) nor 255"
        case let .classCount(classes):
            return "CSE: \(classes) classes; the labels 0...C must stay below 255"
        case let .emptyImage(width, height):
            return "CSE: the saliency map is \(width)×\(height), without pixels"
        }
    }

    public var errorDescription: String? { description }
}
