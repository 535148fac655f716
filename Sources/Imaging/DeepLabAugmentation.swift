import NN

/// DeepLab's input convention (spec §10.2, deeplab-pytorch's datasets): OpenCV's BGR channel order, float values
/// 0…255 with the Caffe mean subtracted, no division by a standard deviation.
public enum CaffeNormalization {
    /// The mean colour in BGR order: B 104.008, G 116.669, R 122.675.
    public static let meanBGR: [Float] = [104.008, 116.669, 122.675]

    /// CHW floats (BGR planes) of an RGB image: out[c, y, x] = rgb[y, x, 2 − c] − meanBGR[c].
    public static func chw(_ image: PixelImage) -> [Float] {
        precondition(image.channels == 3, "CaffeNormalization: \(image.channels) channels, RGB expected")
        return chw(bgr: bgrFloats(image), width: image.width, height: image.height)
    }

    /// The HWC BGR floats of an RGB image, before mean subtraction (cv2.imread(...).astype(np.float32)).
    public static func bgrFloats(_ image: PixelImage) -> [Float] {
        var out = [Float](repeating: 0, count: image.width * image.height * 3)
        for p in 0..<(image.width * image.height) {
            for c in 0..<3 { out[p * 3 + c] = Float(image.pixels[p * 3 + 2 - c]) }
        }
        return out
    }

    /// CHW planes of HWC BGR floats with the mean subtracted.
    public static func chw(bgr: [Float], width: Int, height: Int) -> [Float] {
        var out = [Float](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) {
            for c in 0..<3 { out[c * width * height + p] = bgr[p * 3 + c] - meanBGR[c] }
        }
        return out
    }
}

/// OpenCV's `cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)` of a float image (HWC, any channel
/// count): per axis, scale = in/out (Double), fx = Float((o + ½)·scale − ½), sx = ⌊fx⌋, λ = fx − sx; a source
/// index left of 0 clamps to 0 with λ = 0, one at or past in − 1 to in − 1 with λ = 0; y = (1 − λ)·x[sx] + λ·x[sx+1],
/// rows first, then columns. No antialiasing when downsampling (DeepLab's 0.5 and 0.75 scale augmentation).
public enum OpenCVLinearResize {
    struct Taps {
        var index: [Int]
        var weight: [Float]
    }

    static func taps(input: Int, output: Int) -> Taps {
        let scale = Double(input) / Double(output)
        var taps = Taps(index: [], weight: [])
        for o in 0..<output {
            let fx = Float((Double(o) + 0.5) * scale - 0.5)
            var sx = Int(fx.rounded(.down))
            var lambda = fx - Float(sx)
            if sx < 0 { sx = 0; lambda = 0 }
            if sx >= input - 1 { sx = input - 1; lambda = 0 }
            taps.index.append(sx)
            taps.weight.append(lambda)
        }
        return taps
    }

    public static func resize(_ values: [Float], width: Int, height: Int, channels: Int, toWidth: Int, toHeight: Int) -> [Float] {
        precondition(values.count == width * height * channels && toWidth > 0 && toHeight > 0,
                     "OpenCVLinearResize: \(values.count) values for \(width)x\(height)x\(channels) → \(toWidth)x\(toHeight)")
        if width == toWidth && height == toHeight { return values }
        let xs = taps(input: width, output: toWidth), ys = taps(input: height, output: toHeight)
        // Horizontal pass into rows of the output width, then the vertical blend of two such rows.
        var rows = [Float](repeating: 0, count: height * toWidth * channels)
        for y in 0..<height {
            for x in 0..<toWidth {
                let sx = xs.index[x], l = xs.weight[x], next = min(sx + 1, width - 1)
                for c in 0..<channels {
                    let a = values[(y * width + sx) * channels + c], b = values[(y * width + next) * channels + c]
                    rows[(y * toWidth + x) * channels + c] = a * (1 - l) + b * l
                }
            }
        }
        var out = [Float](repeating: 0, count: toHeight * toWidth * channels)
        let rowLength = toWidth * channels
        for y in 0..<toHeight {
            let sy = ys.index[y], l = ys.weight[y], next = min(sy + 1, height - 1)
            for i in 0..<rowLength {
                out[y * rowLength + i] = rows[sy * rowLength + i] * (1 - l) + rows[next * rowLength + i] * l
            }
        }
        return out
    }
}

/// Pillow's `Image.resize(size, resample=Image.NEAREST)` of a label map (deeplab-pytorch resizes labels this way,
/// for the scale augmentation and for each MSC logit size): the source index of output o is ⌊c_o⌋ where
/// c_0 = ½·in/out and c_{o+1} = c_o + in/out, accumulated in Double as Pillow's `ImagingScaleAffine` does (so
/// boundaries that fall on integers follow Pillow's rounding).
public enum PILNearestResize {
    static func sourceIndices(input: Int, output: Int) -> [Int] {
        let step = Double(input) / Double(output)
        var c = step * 0.5
        var indices: [Int] = []
        for _ in 0..<output {
            indices.append(min(Int(c), input - 1))
            c += step
        }
        return indices
    }

    public static func resize<T>(_ labels: [T], width: Int, height: Int, toWidth: Int, toHeight: Int) -> [T] {
        precondition(labels.count == width * height && toWidth > 0 && toHeight > 0,
                     "PILNearestResize: \(labels.count) labels for \(width)x\(height) → \(toWidth)x\(toHeight)")
        if width == toWidth && height == toHeight { return labels }
        let xs = sourceIndices(input: width, output: toWidth), ys = sourceIndices(input: height, output: toHeight)
        var out: [T] = []
        out.reserveCapacity(toWidth * toHeight)
        for y in ys { for x in xs { out.append(labels[y * width + x]) } }
        return out
    }
}

/// deeplab-pytorch's training augmentation (`_BaseDataset._augmentation`, spec §10.2), draws explicit:
/// a scale s from `scales` (h, w → Int(h·s), Int(w·s); image OpenCV bilinear on floats, labels Pillow nearest),
/// padding on the bottom/right to at least `cropSize` with the mean colour (0 after subtraction) and label
/// `ignoreLabel`, a uniform crop offset per axis in [0, len − cropSize] (rows first, as upstream draws), and a
/// left–right flip with probability ½; then the Caffe normalisation to CHW.
public struct DeepLabAugmentation: Equatable, Sendable {
    public var scales: [Double]
    public var cropSize: Int
    public var ignoreLabel: UInt8

    public init(scales: [Double] = [0.5, 0.75, 1.0, 1.25, 1.5], cropSize: Int = 321, ignoreLabel: UInt8 = 255) {
        precondition(!scales.isEmpty && scales.allSatisfy { $0 > 0 } && cropSize > 0, "DeepLabAugmentation: scales \(scales), crop \(cropSize)")
        self.scales = scales
        self.cropSize = cropSize
        self.ignoreLabel = ignoreLabel
    }

    public struct Draws: Equatable, Sendable {
        public var scale: Double
        public var top: Int, left: Int
        public var flip: Bool
        public init(scale: Double, top: Int, left: Int, flip: Bool) {
            self.scale = scale
            self.top = top
            self.left = left
            self.flip = flip
        }
    }

    /// The scaled size (upstream's `int(h * scale)`, truncation), at least 1 pixel.
    public static func scaledSize(width: Int, height: Int, scale: Double) -> (width: Int, height: Int) {
        (max(1, Int(Double(width) * scale)), max(1, Int(Double(height) * scale)))
    }

    public func draw(width: Int, height: Int, rng: inout SeededRandom) -> Draws {
        let scale = scales[AugmentationRandom.uniformInt(0...(scales.count - 1), &rng)]
        let size = Self.scaledSize(width: width, height: height, scale: scale)
        let top = AugmentationRandom.uniformInt(0...(max(size.height, cropSize) - cropSize), &rng)
        let left = AugmentationRandom.uniformInt(0...(max(size.width, cropSize) - cropSize), &rng)
        return Draws(scale: scale, top: top, left: left, flip: rng.nextDouble() < 0.5)
    }

    /// The crop as CHW Caffe-normalised floats (3 · cropSize²) and its labels (cropSize², row-major).
    public func apply(_ image: PixelImage, labels: [UInt8], draws: Draws) -> (image: [Float], labels: [UInt8]) {
        precondition(labels.count == image.width * image.height, "DeepLabAugmentation: \(labels.count) labels for a \(image.width)x\(image.height) image")
        let size = Self.scaledSize(width: image.width, height: image.height, scale: draws.scale)
        let bgr = OpenCVLinearResize.resize(CaffeNormalization.bgrFloats(image), width: image.width, height: image.height, channels: 3,
                                            toWidth: size.width, toHeight: size.height)
        let scaledLabels = PILNearestResize.resize(labels, width: image.width, height: image.height, toWidth: size.width, toHeight: size.height)
        let s = cropSize, plane = s * s
        var chw = [Float](repeating: 0, count: 3 * plane)
        var cropLabels = [UInt8](repeating: ignoreLabel, count: plane)
        for y in 0..<s {
            let sy = draws.top + y
            guard sy < size.height else { continue }  // bottom padding: mean colour (0), ignore label
            for x in 0..<s {
                let sx = draws.left + (draws.flip ? s - 1 - x : x)
                guard sx < size.width else { continue }
                let p = sy * size.width + sx
                for c in 0..<3 { chw[c * plane + y * s + x] = bgr[p * 3 + c] - CaffeNormalization.meanBGR[c] }
                cropLabels[y * s + x] = scaledLabels[p]
            }
        }
        return (chw, cropLabels)
    }
}
