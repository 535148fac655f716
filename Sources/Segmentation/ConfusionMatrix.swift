import Foundation

/// Pixel counts of ground truth against prediction, and the two mIoU conventions of the pipeline (spec §5).
///
/// Rows are ground-truth classes, columns predicted classes, over pixels whose ground truth is a class
/// (0 ≤ gt < n; 255 and anything else is ignored). A prediction outside 0 ..< n (e.g. 255) is counted apart per
/// ground-truth class: it lowers recall but enters no column. Counts are integers, so sums over ranks (one
/// allreduce of `counts`) give the same numbers for any rank count.
public struct ConfusionMatrix: Equatable, Sendable {
    public let classes: Int
    /// n × n counts, row-major (gt, prediction), then n counts of out-of-range predictions per gt class.
    public var counts: [Int64]

    public init(classes: Int) {
        self.classes = classes
        counts = [Int64](repeating: 0, count: classes * classes + classes)
    }

    /// Adds one image's ground truth and prediction (same size, row-major label maps).
    public mutating func add(groundTruth: [UInt8], prediction: [UInt8]) {
        precondition(groundTruth.count == prediction.count, "ConfusionMatrix: \(groundTruth.count) ground-truth pixels, \(prediction.count) predicted")
        let n = classes
        counts.withUnsafeMutableBufferPointer { c in
            for i in 0..<groundTruth.count {
                let g = Int(groundTruth[i])
                guard g < n else { continue }
                let p = Int(prediction[i])
                if p < n { c[g * n + p] += 1 } else { c[n * n + g] += 1 }
            }
        }
    }

    public func count(groundTruth g: Int, prediction p: Int) -> Int64 { counts[g * classes + p] }

    /// Pixels of class i in the ground truth (T_i), predicted as i (P_i, in-range predictions on valid pixels), both (TP_i).
    public func totals(_ i: Int) -> (truth: Int64, predicted: Int64, truePositive: Int64) {
        let n = classes
        var t = counts[n * n + i], p: Int64 = 0
        for j in 0..<n {
            t += counts[i * n + j]
            p += counts[j * n + i]
        }
        return (t, p, counts[i * n + i])
    }

    /// Upstream's evaluation (spec §5.1): IoU_i = TP/(T + P − TP + 1e-10), mIoU the mean over all classes (an absent
    /// class counts as 0); precision TP/(P + 1e-10) and recall TP/(T + 1e-10) alongside.
    public var upstream: (iou: [Double], meanIoU: Double, precision: [Double], recall: [Double]) {
        var iou: [Double] = [], precision: [Double] = [], recall: [Double] = []
        for i in 0..<classes {
            let (t, p, tp) = totals(i)
            iou.append(Double(tp) / (Double(t + p - tp) + 1e-10))
            precision.append(Double(tp) / (Double(p) + 1e-10))
            recall.append(Double(tp) / (Double(t) + 1e-10))
        }
        return (iou, iou.reduce(0, +) / Double(classes), precision, recall)
    }

    /// deeplab-pytorch's scores (spec §5.3) on the n × n matrix (out-of-range predictions are not in it):
    /// IoU_i = diag/(row + column − diag), NaN where that is 0/0; mean IoU = the mean of the non-NaN IoUs; pixel
    /// accuracy; mean accuracy (diag/row over non-empty rows); frequency-weighted IoU.
    public var deeplab: (iou: [Double], meanIoU: Double, pixelAccuracy: Double, meanAccuracy: Double, frequencyWeightedIoU: Double) {
        let n = classes
        var rows = [Double](repeating: 0, count: n), columns = [Double](repeating: 0, count: n), diagonal = [Double](repeating: 0, count: n)
        for g in 0..<n {
            for p in 0..<n {
                let v = Double(counts[g * n + p])
                rows[g] += v
                columns[p] += v
            }
            diagonal[g] = Double(counts[g * n + g])
        }
        let total = rows.reduce(0, +)
        let iou = (0..<n).map { i -> Double in
            let denominator = rows[i] + columns[i] - diagonal[i]
            return denominator > 0 ? diagonal[i] / denominator : .nan
        }
        let valid = iou.filter { !$0.isNaN }
        let accuracies = (0..<n).compactMap { rows[$0] > 0 ? diagonal[$0] / rows[$0] : nil }
        var weighted = 0.0
        for i in 0..<n where !iou[i].isNaN && total > 0 { weighted += rows[i] / total * iou[i] }
        return (iou, valid.isEmpty ? .nan : valid.reduce(0, +) / Double(valid.count),
                total > 0 ? diagonal.reduce(0, +) / total : .nan,
                accuracies.isEmpty ? .nan : accuracies.reduce(0, +) / Double(accuracies.count), weighted)
    }
}
