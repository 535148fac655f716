import Foundation
import Imaging
import NN
import Storage

/// Seeds from normalised CAMs with a constant background score (spec §5.1 `npy` mode): the prediction is the
/// argmax over (t, N_c1, N_c2, …), ties to the lower index, so background wins a tie and the lowest class index
/// wins among equal classes. Absent classes (zero channels upstream) never win for t ≥ 0.
public struct CAMSeeds {
    /// For every pixel the largest CAM value and its label (class index + 1), computed once so any number of
    /// thresholds costs one comparison per pixel each.
    public let best: [Float]
    public let label: [UInt8]
    public let width: Int, height: Int

    public init(_ maps: ClassActivationMaps) {
        let plane = maps.width * maps.height
        var best = [Float](repeating: -.infinity, count: plane)
        var label = [UInt8](repeating: 0, count: plane)
        for (k, c) in maps.classes.enumerated() {
            precondition(c + 1 < 255, "CAMSeeds: class \(c) does not fit a palette index")
            let base = k * plane
            for i in 0..<plane where maps.values[base + i] > best[i] {
                best[i] = maps.values[base + i]
                label[i] = UInt8(c + 1)
            }
        }
        self.best = best
        self.label = label
        width = maps.width
        height = maps.height
    }

    /// The label map for background score `threshold`.
    public func prediction(threshold: Float) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: best.count)
        prediction(threshold: threshold, into: &out)
        return out
    }

    /// The same into a reused buffer of `width · height` labels (one per threshold of a sweep).
    public func prediction(threshold: Float, into out: inout [UInt8]) {
        precondition(out.count == best.count, "CAMSeeds: a buffer of \(out.count) for \(width)x\(height) pixels")
        for i in out.indices { out[i] = best[i] > threshold ? label[i] : 0 }
    }
}

/// `--sweep START:STOP:STEP`: thresholds START, START + STEP, … below STOP (upstream's `--curve` is 0.30:0.60:0.01,
/// i.e. i/100 for i = 30 … 59). Where 1/STEP is an integer and STEP divides START, each value is formed as
/// (first + i) / (1/STEP) from integers, so 0.30:0.60:0.01 gives exactly upstream's i/100; otherwise START + i·STEP.
public func thresholdSweep(_ text: String) -> [Double]? {
    let parts = text.split(separator: ":").map { Double($0) }
    guard parts.count == 3, let start = parts[0], let stop = parts[1], let step = parts[2], step > 0, start >= 0, stop > start else { return nil }
    let first = (start / step).rounded(), perUnit = (1 / step).rounded()
    let exact = abs(first * step - start) < 1e-9 && abs(1 / step - perUnit) < 1e-6
    let count = Int(((stop - start) / step - 1e-9).rounded(.up))
    return (0..<count).map { exact ? (first + Double($0)) / perUnit : start + Double($0) * step }
}
