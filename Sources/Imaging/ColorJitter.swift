import Foundation
import NN

/// torchvision 0.13's `ColorJitter(brightness, contrast, saturation, hue)` on a PIL image (spec §3.2 step 4),
/// reproducing Pillow 9.x's integer results exactly.
///
/// Parameters are drawn first (`draw`): a random order of the four ops (Fisher–Yates), then the brightness,
/// contrast and saturation factors uniform in [max(0, 1 − b), 1 + b] (etc.) and the hue shift uniform in [−h, h], each from
/// `SeededRandom.nextDouble()` (torchvision draws the same quantities from torch's generator, which we do not
/// reproduce). `apply` then runs the ops in that order, each producing a new uint8 image:
/// - brightness f: `ImageEnhance.Brightness` = `Image.blend(black, img, f)`;
/// - contrast f: `ImageEnhance.Contrast` = blend of a constant grey m = Int(mean(L(img)) + ½) with img;
/// - saturation f: `ImageEnhance.Color` = blend of L(img) (replicated to RGB) with img;
/// - hue h: img → HSV (Pillow's `rgb2hsv`), H += UInt8 wrap of Int(h·255) (truncated toward zero, as numpy's
///   `np.uint8(h * 255)` on x86), → RGB (Pillow's `hsv2rgb`).
/// Grey (1-channel) images: saturation and hue leave them unchanged (as Pillow/torchvision do for mode "L").
public struct ColorJitter: Equatable, Sendable {
    public enum Op: Int, CaseIterable, Sendable { case brightness = 0, contrast, saturation, hue }

    /// The drawn order and factors of one application.
    public struct Parameters: Equatable, Sendable {
        public var order: [Op]
        public var brightness: Double
        public var contrast: Double
        public var saturation: Double
        public var hue: Double
        public init(order: [Op], brightness: Double, contrast: Double, saturation: Double, hue: Double) {
            self.order = order
            self.brightness = brightness
            self.contrast = contrast
            self.saturation = saturation
            self.hue = hue
        }
    }

    public var brightness: Double
    public var contrast: Double
    public var saturation: Double
    public var hue: Double

    public init(brightness: Double = 0.3, contrast: Double = 0.3, saturation: Double = 0.3, hue: Double = 0.1) {
        precondition(hue >= 0 && hue <= 0.5, "ColorJitter: hue \(hue) must lie in [0, 0.5]")
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
    }

    /// Draws, in this order: the permutation of the four ops, then b, c, s (1 ± amount) and h (± hue).
    public func draw(_ rng: inout SeededRandom) -> Parameters {
        var order = Op.allCases
        AugmentationRandom.shuffle(&order, &rng)
        func factor(_ amount: Double) -> Double {
            let low = max(0, 1 - amount), high = 1 + amount
            return low + (high - low) * rng.nextDouble()
        }
        let b = factor(brightness), c = factor(contrast), s = factor(saturation)
        let h = -hue + (2 * hue) * rng.nextDouble()
        return Parameters(order: order, brightness: b, contrast: c, saturation: s, hue: h)
    }

    /// The ops of `parameters` applied to `image` in their drawn order.
    public static func apply(_ image: PixelImage, _ parameters: Parameters) -> PixelImage {
        var out = image
        for op in parameters.order {
            switch op {
            case .brightness: out = adjustBrightness(out, factor: parameters.brightness)
            case .contrast: out = adjustContrast(out, factor: parameters.contrast)
            case .saturation: out = adjustSaturation(out, factor: parameters.saturation)
            case .hue: out = adjustHue(out, shift: parameters.hue)
            }
        }
        return out
    }

    // MARK: The four ops

    /// `ImageEnhance.Brightness(img).enhance(f)`: blend(0, v, f) per byte.
    public static func adjustBrightness(_ image: PixelImage, factor: Double) -> PixelImage {
        let alpha = Float(factor)
        let table = (0..<256).map { blend(0, UInt8($0), alpha) }
        return mapBytes(image, table)
    }

    /// `ImageEnhance.Contrast(img).enhance(f)`: blend(m, v, f) per byte with m = Int(mean of L(img) + ½), the mean
    /// being ImageStat's Σ/n in Double.
    public static func adjustContrast(_ image: PixelImage, factor: Double) -> PixelImage {
        var total = 0
        if image.channels == 1 {
            for v in image.pixels { total += Int(v) }
        } else {
            image.pixels.withUnsafeBufferPointer { p in
                for i in 0..<(image.width * image.height) { total += Int(luma(p[3 * i], p[3 * i + 1], p[3 * i + 2])) }
            }
        }
        let mean = Double(total) / Double(image.width * image.height)
        let grey = UInt8(Int(mean + 0.5))
        let alpha = Float(factor)
        let table = (0..<256).map { blend(grey, UInt8($0), alpha) }
        return mapBytes(image, table)
    }

    /// `ImageEnhance.Color(img).enhance(f)`: blend(L, v, f) per channel, L = the pixel's luma (`luma`).
    public static func adjustSaturation(_ image: PixelImage, factor: Double) -> PixelImage {
        guard image.channels == 3 else { return image }
        let alpha = Float(factor)
        var out = image
        out.pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<(image.width * image.height) {
                let (r, g, b) = (p[3 * i], p[3 * i + 1], p[3 * i + 2])
                let l = luma(r, g, b)
                p[3 * i] = blend(l, r, alpha)
                p[3 * i + 1] = blend(l, g, alpha)
                p[3 * i + 2] = blend(l, b, alpha)
            }
        }
        return out
    }

    /// torchvision's PIL `adjust_hue(img, h)`: RGB → HSV, H += UInt8(truncatingIfNeeded: Int(h·255)), HSV → RGB.
    public static func adjustHue(_ image: PixelImage, shift hueFactor: Double) -> PixelImage {
        precondition(hueFactor >= -0.5 && hueFactor <= 0.5, "adjustHue: factor \(hueFactor) outside [-0.5, 0.5]")
        guard image.channels == 3 else { return image }
        let shift = UInt8(truncatingIfNeeded: Int(hueFactor * 255))
        var out = image
        out.pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<(image.width * image.height) {
                let (h, s, v) = rgbToHSV(p[3 * i], p[3 * i + 1], p[3 * i + 2])
                let (r, g, b) = hsvToRGB(h &+ shift, s, v)
                p[3 * i] = r
                p[3 * i + 1] = g
                p[3 * i + 2] = b
            }
        }
        return out
    }

    // MARK: Pillow's per-pixel primitives

    /// Pillow's `ImagingBlend` for one byte: t = Float(a) + alpha·Float(b − a) in Float (alpha = Float(factor)),
    /// then 0 if t ≤ 0, 255 if t ≥ 255, else t truncated. (For alpha in [0, 1] Pillow skips the clamp, which
    /// cannot matter there; alpha 0 and 1 give a and b exactly either way.)
    @inline(__always) public static func blend(_ a: UInt8, _ b: UInt8, _ alpha: Float) -> UInt8 {
        let product = alpha * Float(Int(b) - Int(a))
        let t = Float(a) + product
        if t <= 0 { return 0 }
        if t >= 255 { return 255 }
        return UInt8(t)
    }

    /// Pillow's RGB → L (ITU-R 601-2 in 16-bit fixed point): (19595·r + 38470·g + 7471·b + 2¹⁵) >> 16.
    @inline(__always) public static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        UInt8(truncatingIfNeeded: (Int(r) * 19595 + Int(g) * 38470 + Int(b) * 7471 + 0x8000) >> 16)
    }

    /// Pillow's `rgb2hsv_row`, with C's mix of float and double evaluated the same way: chroma, s and rc/gc/bc in
    /// Float; h = bc − gc (Float), or (2 + rc) − bc / (4 + gc) − rc in Double stored to Float; h = fmod(h/6 + 1, 1)
    /// in Double stored to Float (computed without calling fmod; same value); H = clamp(Int(h·255)), S = clamp(Int(s·255)) (Double products, truncation); V = max.
    public static func rgbToHSV(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> (UInt8, UInt8, UInt8) {
        let maxc = max(r, g, b), minc = min(r, g, b)
        if maxc == minc { return (0, 0, maxc) }
        let cr = Float(maxc - minc)
        let s = cr / Float(maxc)
        let rc = Float(maxc - r) / cr, gc = Float(maxc - g) / cr, bc = Float(maxc - b) / cr
        var h: Float
        if r == maxc {
            h = bc - gc
        } else if g == maxc {
            h = Float((2.0 + Double(rc)) - Double(bc))
        } else {
            h = Float((4.0 + Double(gc)) - Double(rc))
        }
        // fmod(x, 1) for x = h/6 + 1 ∈ [5/6, 11/6): x − 1 when x ≥ 1 (exact, Sterbenz), else x — fmod's value.
        let x = Double(h) / 6.0 + 1.0
        h = Float(x >= 1 ? x - 1 : x)
        return (clip8(Int(Double(h) * 255.0)), clip8(Int(Double(s) * 255.0)), maxc)
    }

    /// Pillow's `hsv2rgb`: i = ⌊h·6/255⌋ and f = h·6/255 − i (Double, f stored to Float), fs = s/255 (stored to
    /// Float); p = round(v·(1 − fs)), q = round(v·(1 − Float(fs·f))), t = round(v·(1 − fs·(1 − f))) in Double with C's
    /// round (halves away from zero), clamped; then the colorsys sextant table on i mod 6. s = 0 gives (v, v, v).
    public static func hsvToRGB(_ h: UInt8, _ s: UInt8, _ v: UInt8) -> (UInt8, UInt8, UInt8) {
        if s == 0 { return (v, v, v) }
        let h6 = Double(h) * 6.0 / 255.0
        let i = Int(h6)  // h6 ≥ 0: truncation is floor
        let f = Float(h6 - Double(i))
        let fs = Float(Double(s) / 255.0)
        let vd = Double(v)
        let p = clip8(Int((vd * (1.0 - Double(fs))).rounded()))
        let q = clip8(Int((vd * (1.0 - Double(fs * f))).rounded()))
        let t = clip8(Int((vd * (1.0 - Double(fs) * (1.0 - Double(f)))).rounded()))
        switch i % 6 {
        case 0: return (v, t, p)
        case 1: return (q, v, p)
        case 2: return (p, v, t)
        case 3: return (p, q, v)
        case 4: return (t, p, v)
        default: return (v, p, q)
        }
    }

    @inline(__always) static func clip8(_ x: Int) -> UInt8 { x <= 0 ? 0 : (x >= 255 ? 255 : UInt8(x)) }

    /// Every byte of `image` replaced by `table[byte]`.
    static func mapBytes(_ image: PixelImage, _ table: [UInt8]) -> PixelImage {
        var out = image
        table.withUnsafeBufferPointer { t in
            out.pixels.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count { p[i] = t[Int(p[i])] }
            }
        }
        return out
    }
}
