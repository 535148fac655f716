import Foundation
import NN

/// The PC-stage training augmentation (spec §3.2 steps 2–8 and the §3.3 pair), as separate steps with their random
/// draws made explicit, so each step can be run and tested alone with chosen parameters.
///
/// `apply(_:rng:)` draws from `rng` in this order (the order upstream's transforms draw in): the long side L
/// (`RandomResizeLong`), the flip (`nextDouble() < 0.5`), the jitter parameters (`ColorJitter.draw`: order, b, c,
/// s, h), then the crop offsets (`RandomCrop.draw`: x axis, then y axis). The stream is ours (xoshiro), not
/// Python's or torch's: distributions match upstream, individual draws do not.
public struct PCTrainAugmentation: Equatable, Sendable {
    public var resize: RandomResizeLong
    public var flipProbability: Double
    public var jitter: ColorJitter
    public var normalization: Normalization
    public var crop: RandomCrop
    public var pairSize: Int

    public init(cropSize: Int = 512, pairSize: Int = 224, resize: RandomResizeLong = RandomResizeLong(),
                flipProbability: Double = 0.5, jitter: ColorJitter = ColorJitter(),
                normalization: Normalization = .imageNet) {
        self.resize = resize
        self.flipProbability = flipProbability
        self.jitter = jitter
        self.normalization = normalization
        self.crop = RandomCrop(size: cropSize)
        self.pairSize = pairSize
    }

    /// Every random choice of one application.
    public struct Draws: Equatable, Sendable {
        public var long: Int
        public var flip: Bool
        public var jitter: ColorJitter.Parameters
        public var crop: RandomCrop.Placement
        public init(long: Int, flip: Bool, jitter: ColorJitter.Parameters, crop: RandomCrop.Placement) {
            self.long = long
            self.flip = flip
            self.jitter = jitter
            self.crop = crop
        }
    }

    /// Draws the parameters for an image of the given size (the crop is placed in the resized image).
    public func draw(width: Int, height: Int, rng: inout SeededRandom) -> Draws {
        let long = resize.drawLong(&rng)
        let flip = rng.nextDouble() < flipProbability
        let jitterParameters = jitter.draw(&rng)
        let size = RandomResizeLong.targetSize(width: width, height: height, long: long)
        let placement = crop.draw(width: size.width, height: size.height, rng: &rng)
        return Draws(long: long, flip: flip, jitter: jitterParameters, crop: placement)
    }

    /// The augmented crop (`cropSize`² float CHW, RGB) and its pair (`pairSize`² float CHW; empty when `pairSize`
    /// is 0, as the SP stage trains without a pair).
    public func apply(_ image: PixelImage, rng: inout SeededRandom) -> (image: [Float], pair: [Float]) {
        apply(image, draws: draw(width: image.width, height: image.height, rng: &rng))
    }

    /// The chain with the given draws: resize-long (PIL bicubic), flip, jitter, normalise, crop + CHW, pair.
    public func apply(_ image: PixelImage, draws: Draws) -> (image: [Float], pair: [Float]) {
        precondition(image.channels == 3, "PCTrainAugmentation expects an RGB image, got \(image.channels) channels")
        var pixels = RandomResizeLong.apply(image, long: draws.long)
        if draws.flip { pixels = HorizontalFlip.apply(pixels) }
        pixels = ColorJitter.apply(pixels, draws.jitter)
        let normalized = normalization.apply(pixels)
        let cropped = crop.apply(normalized, width: pixels.width, height: pixels.height, channels: 3, placement: draws.crop)
        let pair = pairSize > 0 ? PairResize.apply(cropped, channels: 3, size: crop.size, to: pairSize) : []
        return (cropped, pair)
    }
}

/// Step 2, upstream's `RandomResizeLong(320, 640)`: L uniform integer in [minLong, maxLong]; the long side becomes L
/// and the other `Int(round(short·L/long))` (Double division, Python's round-half-to-even); a square image becomes
/// L × L (upstream's `w < h` test sends it to the width-is-long branch). Resampled with PIL bicubic.
public struct RandomResizeLong: Equatable, Sendable {
    public var minLong: Int
    public var maxLong: Int

    public init(minLong: Int = 320, maxLong: Int = 640) {
        precondition(0 < minLong && minLong <= maxLong, "RandomResizeLong: bad range \(minLong)...\(maxLong)")
        self.minLong = minLong
        self.maxLong = maxLong
    }

    public func drawLong(_ rng: inout SeededRandom) -> Int { AugmentationRandom.uniformInt(minLong...maxLong, &rng) }

    /// The (width, height) after resizing the long side to `long`.
    public static func targetSize(width: Int, height: Int, long: Int) -> (width: Int, height: Int) {
        if width < height {
            return (Int((Double(width * long) / Double(height)).rounded(.toNearestOrEven)), long)
        }
        return (long, Int((Double(height * long) / Double(width)).rounded(.toNearestOrEven)))
    }

    public static func apply(_ image: PixelImage, long: Int) -> PixelImage {
        let size = targetSize(width: image.width, height: image.height, long: long)
        return PILResize.resize(image, width: size.width, height: size.height, filter: .bicubic)
    }
}

/// Step 3: mirror left–right (PIL `FLIP_LEFT_RIGHT`).
public enum HorizontalFlip {
    public static func apply(_ image: PixelImage) -> PixelImage {
        var out = image
        let (w, c) = (image.width, image.channels)
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for y in 0..<image.height {
                    let row = y * w * c
                    for x in 0..<w {
                        for ch in 0..<c { dst[row + x * c + ch] = src[row + (w - 1 - x) * c + ch] }
                    }
                }
            }
        }
        return out
    }
}

/// Step 6, upstream's `Normalize`: out = Float((Double(v)/255 − mean[c]) / std[c]) (numpy float64, stored as float32),
/// HWC in, HWC out. Evaluated once per byte value and channel into a lookup table.
public struct Normalization: Equatable, Sendable {
    public var mean: [Double]
    public var std: [Double]

    public static let imageNet = Normalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    public init(mean: [Double], std: [Double]) {
        precondition(mean.count == std.count, "Normalization: \(mean.count) means but \(std.count) stds")
        self.mean = mean
        self.std = std
    }

    /// The normalised value of byte `v` in channel `channel`.
    public func value(_ v: UInt8, channel: Int) -> Float { Float((Double(v) / 255.0 - mean[channel]) / std[channel]) }

    /// Float32 HWC values of an image with `mean.count` channels.
    public func apply(_ image: PixelImage) -> [Float] {
        let c = image.channels
        precondition(c == mean.count, "Normalization has \(mean.count) channels, image has \(c)")
        var table = [Float](repeating: 0, count: 256 * c)
        for v in 0..<256 { for ch in 0..<c { table[v * c + ch] = value(UInt8(v), channel: ch) } }
        var out = [Float](repeating: 0, count: image.pixels.count)
        table.withUnsafeBufferPointer { t in
            image.pixels.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<(src.count / c) {
                        for ch in 0..<c { dst[i * c + ch] = t[Int(src[i * c + ch]) * c + ch] }
                    }
                }
            }
        }
        return out
    }

    /// The normalised values in CHW order (upstream's `Normalize` then `HWC_to_CHW`), as the inference paths feed
    /// the network.
    public func applyCHW(_ image: PixelImage) -> [Float] {
        let hwc = apply(image), c = image.channels, plane = image.width * image.height
        var out = [Float](repeating: 0, count: hwc.count)
        for i in 0..<plane { for ch in 0..<c { out[ch * plane + i] = hwc[i * c + ch] } }
        return out
    }
}

/// Steps 7–8, upstream's `RandomCrop(512)` then HWC → CHW: a size × size container of zeros (the mean colour after
/// normalisation). Per axis, independently: if the image is longer than `size`, a window of `size` starting at a
/// uniform offset in [0, len − size] is cut from it; otherwise the whole axis goes to a uniform offset in
/// [0, size − len] inside the container. The x offset is drawn before the y offset (upstream's order).
public struct RandomCrop: Equatable, Sendable {
    public var size: Int

    public init(size: Int = 512) { self.size = size }

    /// Where the copied rectangle comes from in the image and where it goes in the container.
    public struct Placement: Equatable, Sendable {
        public var imageLeft: Int, imageTop: Int, containerLeft: Int, containerTop: Int
        public init(imageLeft: Int, imageTop: Int, containerLeft: Int, containerTop: Int) {
            self.imageLeft = imageLeft
            self.imageTop = imageTop
            self.containerLeft = containerLeft
            self.containerTop = containerTop
        }
    }

    public func draw(width: Int, height: Int, rng: inout SeededRandom) -> Placement {
        func axis(_ length: Int) -> (image: Int, container: Int) {
            length > size ? (AugmentationRandom.uniformInt(0...(length - size), &rng), 0)
                          : (0, AugmentationRandom.uniformInt(0...(size - length), &rng))
        }
        let x = axis(width)
        let y = axis(height)
        return Placement(imageLeft: x.image, imageTop: y.image, containerLeft: x.container, containerTop: y.container)
    }

    /// The container, CHW (channels × size × size), from HWC `values` of a width × height image.
    public func apply(_ values: [Float], width: Int, height: Int, channels c: Int, placement p: Placement) -> [Float] {
        precondition(values.count == width * height * c, "RandomCrop: \(values.count) values for \(width)x\(height)x\(c)")
        let cw = min(size, width), ch = min(size, height)
        precondition(p.imageLeft >= 0 && p.imageLeft + cw <= width && p.imageTop >= 0 && p.imageTop + ch <= height
                     && p.containerLeft >= 0 && p.containerLeft + cw <= size
                     && p.containerTop >= 0 && p.containerTop + ch <= size, "RandomCrop: placement \(p) out of range")
        var out = [Float](repeating: 0, count: c * size * size)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<ch {
                    let srcRow = ((p.imageTop + y) * width + p.imageLeft) * c
                    for k in 0..<c {
                        let dstRow = (k * size + p.containerTop + y) * size + p.containerLeft
                        for x in 0..<cw { dst[dstRow + x] = src[srcRow + x * c + k] }
                    }
                }
            }
        }
        return out
    }
}

/// §3.3: the crop resized to pairSize² with PyTorch's bilinear, align_corners=False, no antialias — the arithmetic of
/// `NN.interpolate(_:size:mode: .bilinear)` (`Kernels.bilinear` on the same `bilinearTaps`), run on plain arrays:
/// augmentation runs on the batch loader's queue, which has no use for autograd. A test checks it is bit-identical
/// to `interpolate`.
public enum PairResize {
    /// `values`: channels × size × size (CHW); returns channels × target × target.
    public static func apply(_ values: [Float], channels: Int, size: Int, to target: Int) -> [Float] {
        precondition(values.count == channels * size * size, "PairResize: \(values.count) values for \(channels)x\(size)²")
        let t = bilinearTaps(input: size, output: target)
        var out = [Float](repeating: 0, count: channels * target * target)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                Kernels.bilinear(src.baseAddress!, planes: channels, inH: size, inW: size, rows: t, cols: t, into: dst.baseAddress!)
            }
        }
        return out
    }
}

/// Integer draws that do not depend on the standard library's algorithms (so streams stay fixed across Swift
/// versions): Lemire's multiply-shift with rejection on `next()`, and Fisher–Yates from the last element down.
enum AugmentationRandom {
    static func uniformInt(_ range: ClosedRange<Int>, _ rng: inout SeededRandom) -> Int {
        let n = UInt64(range.upperBound - range.lowerBound) &+ 1
        if n == 0 { return Int(truncatingIfNeeded: rng.next()) }  // the full 64-bit range
        var m = rng.next().multipliedFullWidth(by: n)
        if m.low < n {
            let threshold = (0 &- n) % n
            while m.low < threshold { m = rng.next().multipliedFullWidth(by: n) }
        }
        return range.lowerBound + Int(m.high)
    }

    static func shuffle<T>(_ items: inout [T], _ rng: inout SeededRandom) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(i, uniformInt(0...i, &rng))
        }
    }
}
