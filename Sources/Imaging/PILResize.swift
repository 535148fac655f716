import Foundation

/// Pillow-compatible convolution resize of an 8-bit image (`Image.resize(size, resample)` of Pillow 9.x for modes
/// "L" and "RGB"), pixel-exact against Pillow's `ImagingResample` (spec §0 "PIL bicubic", §13 note 1).
///
/// The exact rule, per axis (in = input length, out = output length, box = the whole image):
/// - scale = in / out (Double); filterscale = max(scale, 1); support = filter.support · filterscale (bicubic 2,
///   bilinear 1), so downsampling widens the kernel (antialiasing) and upsampling does not;
///   ksize = ⌈support⌉·2 + 1.
/// - Output index o has centre c = (o + ½)·scale; taps xmin = max(Int(c − support + ½), 0) …
///   xmax = min(Int(c + support + ½), in) (Int(): truncation toward zero); tap x gets weight
///   w = filter((x − c + ½) / filterscale), and the weights are divided by their sum (when it is not 0).
/// - Each weight becomes fixed point with 22 fractional bits: Int32(w·2²² ± ½) (sign of w, truncated toward zero).
/// - A pass computes acc = 2²¹ + Σ pixel·weight in Int32 and stores clamp(acc >> 22, 0, 255) (arithmetic shift).
/// - Horizontal pass first (only when the width changes), into an 8-bit intermediate, then the vertical pass (only
///   when the height changes). Equal sizes return a copy.
///
/// Filters: bicubic = Keys cubic with a = −0.5, |x| < 1: ((a + 2)|x| − (a + 3))x² + 1, 1 ≤ |x| < 2:
/// (((|x| − 5)|x| + 8)|x| − 4)·a, else 0; bilinear = max(1 − |x|, 0). All coefficient maths is in Double, as in C.
///
/// The coefficient tables are built once per call and axis (O(out·ksize), microseconds); the passes are plain
/// loops over the byte buffers with Int32 accumulators.
public enum PILResize {
    public enum Filter: String, Sendable {
        case bilinear, bicubic

        var support: Double { self == .bicubic ? 2 : 1 }

        @inline(__always) func weight(_ x: Double) -> Double {
            let x = abs(x)
            switch self {
            case .bilinear:
                return x < 1 ? 1 - x : 0
            case .bicubic:
                let a = -0.5
                if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
                if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
                return 0
            }
        }
    }

    /// Fixed-point fraction bits of the coefficients (Pillow's `PRECISION_BITS` = 32 − 8 − 2).
    static let precisionBits: Int32 = 22

    /// The taps of one axis: output index o reads `count[o]` input pixels from `first[o]` on with the Int32 weights
    /// `weights[o·ksize ..< o·ksize + count[o]]` (Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`).
    public struct Coefficients: Equatable, Sendable {
        public let ksize: Int
        public let first: [Int]
        public let count: [Int]
        public let weights: [Int32]

        public init(input: Int, output: Int, filter: Filter) {
            precondition(input > 0 && output > 0, "PILResize: sizes must be positive (\(input) -> \(output))")
            let scale = Double(input) / Double(output)
            let filterscale = max(scale, 1)
            let support = filter.support * filterscale
            let ksize = Int(support.rounded(.up)) * 2 + 1
            let ss = 1 / filterscale
            var first = [Int](repeating: 0, count: output), count = [Int](repeating: 0, count: output)
            var weights = [Int32](repeating: 0, count: output * ksize)
            var k = [Double](repeating: 0, count: ksize)
            for o in 0..<output {
                let center = (Double(o) + 0.5) * scale
                let xmin = max(Int(center - support + 0.5), 0)
                let xmax = min(Int(center + support + 0.5), input) - xmin
                var ww = 0.0
                for x in 0..<xmax {
                    let w = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                    k[x] = w
                    ww += w
                }
                for x in 0..<xmax {
                    let w = ww != 0 ? k[x] / ww : k[x]
                    let fixed = w * Double(1 << precisionBits)
                    weights[o * ksize + x] = Int32(w < 0 ? fixed - 0.5 : fixed + 0.5)
                }
                first[o] = xmin
                count[o] = xmax
            }
            self.ksize = ksize
            self.first = first
            self.count = count
            self.weights = weights
        }
    }

    /// Pillow's `clip8`: the accumulator shifted right by 22 bits, clamped to 0…255.
    @inline(__always) static func clip8(_ acc: Int32) -> UInt8 {
        let v = acc >> precisionBits
        return v <= 0 ? 0 : (v >= 255 ? 255 : UInt8(truncatingIfNeeded: v))
    }

    /// `image` resized to width × height as Pillow's `image.resize((width, height), filter)` (any channel count;
    /// Pillow's modes "L" and "RGB" are 1 and 3).
    public static func resize(_ image: PixelImage, width: Int, height: Int, filter: Filter = .bicubic) -> PixelImage {
        precondition(width > 0 && height > 0, "PILResize: output size \(width)x\(height) must be positive")
        if width == image.width && height == image.height { return image }
        let vertical = Coefficients(input: image.height, output: height, filter: filter)
        var source = image
        var rowOffset = 0
        if width != image.width {
            // Only the rows the vertical pass reads (Pillow's ybox_first ..< ybox_last).
            let firstRow = vertical.first[0], lastRow = vertical.first[height - 1] + vertical.count[height - 1]
            let horizontal = Coefficients(input: image.width, output: width, filter: filter)
            source = horizontalPass(image, rows: firstRow..<lastRow, coefficients: horizontal)
            rowOffset = firstRow
        }
        if height == image.height { return source }
        return verticalPass(source, rowOffset: rowOffset, coefficients: vertical)
    }

    /// Resamples the rows `rows` of `image` along x; the result has `rows.count` rows.
    static func horizontalPass(_ image: PixelImage, rows: Range<Int>, coefficients k: Coefficients) -> PixelImage {
        let outW = k.first.count, c = image.channels, inW = image.width
        var out = PixelImage(width: outW, height: rows.count, channels: c)
        let half: Int32 = 1 << (precisionBits - 1)
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                k.weights.withUnsafeBufferPointer { weights in
                    for (r, y) in rows.enumerated() {
                        let inRow = src.baseAddress! + y * inW * c
                        let outRow = dst.baseAddress! + r * outW * c
                        for o in 0..<outW {
                            let w = weights.baseAddress! + o * k.ksize
                            let p = inRow + k.first[o] * c
                            let n = k.count[o]
                            if c == 3 {
                                var s0 = half, s1 = half, s2 = half
                                for x in 0..<n {
                                    let wx = w[x], q = p + 3 * x
                                    s0 &+= Int32(q[0]) &* wx
                                    s1 &+= Int32(q[1]) &* wx
                                    s2 &+= Int32(q[2]) &* wx
                                }
                                outRow[3 * o] = clip8(s0)
                                outRow[3 * o + 1] = clip8(s1)
                                outRow[3 * o + 2] = clip8(s2)
                            } else {
                                for ch in 0..<c {
                                    var s = half
                                    for x in 0..<n { s &+= Int32(p[c * x + ch]) &* w[x] }
                                    outRow[c * o + ch] = clip8(s)
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Resamples along y; output row o reads input rows `first[o] − rowOffset` onwards (the input may start at row
    /// `rowOffset` of the original image, as after a horizontal pass over the used rows only).
    static func verticalPass(_ image: PixelImage, rowOffset: Int, coefficients k: Coefficients) -> PixelImage {
        let outH = k.first.count, rowBytes = image.width * image.channels
        var out = PixelImage(width: image.width, height: outH, channels: image.channels)
        let half: Int32 = 1 << (precisionBits - 1)
        var acc = [Int32](repeating: 0, count: rowBytes)
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                acc.withUnsafeMutableBufferPointer { acc in
                    let a = acc.baseAddress!
                    for o in 0..<outH {
                        a.update(repeating: half, count: rowBytes)
                        let base = (k.first[o] - rowOffset) * rowBytes
                        for t in 0..<k.count[o] {
                            let w = k.weights[o * k.ksize + t]
                            let row = src.baseAddress! + base + t * rowBytes
                            for i in 0..<rowBytes { a[i] &+= Int32(row[i]) &* w }
                        }
                        let outRow = dst.baseAddress! + o * rowBytes
                        for i in 0..<rowBytes { outRow[i] = clip8(a[i]) }
                    }
                }
            }
        }
        return out
    }
}
