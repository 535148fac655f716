import Foundation
import Imaging

/// The image pyramid of CAM inference (spec §4.1, `VOC12ClsDatasetMSF_origscale`).
///
/// The image is first resized so its long side is `longSide` (W < H: (round(W/H·L), L), else (L, round(H/W·L))),
/// then, for each scale s, resized again from that image to (round(W_L·s) // 16 · 16, round(H_L·s) // 16 · 16).
/// Both resizes are PIL bicubic, and `round` is Python's (half to even), so the sizes match upstream's for every
/// image shape. The double resampling is upstream's (§12 Q8). For 500×375: 112×80, 496×368, 736×560, 992×736.
public struct CAMPyramid: Equatable, Sendable, Codable {
    public var longSide: Int
    public var scales: [Double]

    /// Upstream's pyramid: long side 500, scales 0.25, 1, 1.5, 2.
    public static let upstream = CAMPyramid(longSide: 500, scales: [0.25, 1, 1.5, 2])

    public init(longSide: Int = 500, scales: [Double] = [0.25, 1, 1.5, 2]) {
        precondition(longSide > 0 && !scales.isEmpty && scales.allSatisfy { $0 > 0 },
                     "CAMPyramid: long side \(longSide) and scales \(scales) must be positive")
        self.longSide = longSide
        self.scales = scales
    }

    /// Python 3's `round(x)`: to the nearest integer, halves to even.
    static func pythonRound(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }

    /// The size after the first resize (long side = `longSide`), as `imutils.rescale` computes it.
    public func baseSize(width: Int, height: Int) -> (width: Int, height: Int) {
        if width < height {
            return (Self.pythonRound(Double(width) / Double(height) * Double(longSide)), longSide)
        }
        return (longSide, Self.pythonRound(Double(height) / Double(width) * Double(longSide)))
    }

    /// The network input size of every scale, in order.
    public func scaleSizes(width: Int, height: Int) -> [(width: Int, height: Int)] {
        let base = baseSize(width: width, height: height)
        return scales.map { s in
            (Self.pythonRound(Double(base.width) * s) / 16 * 16, Self.pythonRound(Double(base.height) * s) / 16 * 16)
        }
    }

    /// Why an image cannot go through the pyramid (a side rounds down to 0), or nil.
    public func problem(width: Int, height: Int) -> String? {
        for (s, size) in zip(scales, scaleSizes(width: width, height: height)) where size.width < 16 || size.height < 16 {
            return "a \(width)x\(height) image is \(size.width)x\(size.height) at scale \(s); every side must reach 16 (use larger --scales)"
        }
        return nil
    }

    /// The resized images, one per scale.
    public func images(_ image: PixelImage) -> [PixelImage] {
        let base = baseSize(width: image.width, height: image.height)
        let resized = PILResize.resize(image, width: base.width, height: base.height, filter: .bicubic)
        return scaleSizes(width: image.width, height: image.height).map {
            PILResize.resize(resized, width: $0.width, height: $0.height, filter: .bicubic)
        }
    }

    /// A rough cost of one image (pixels through the network, plus the full-size upsampling), used to balance
    /// the ids over the ranks.
    public func cost(width: Int, height: Int) -> Double {
        let passes = scaleSizes(width: width, height: height).reduce(0.0) { $0 + Double($1.width * $1.height) }
        return 2 * passes + Double(width * height) / 4
    }
}
