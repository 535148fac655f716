/// A generated stand-in for PASCAL VOC: images with 1–3 class objects on clutter, their segmentation masks,
/// image-level labels and DRS-like saliency maps, so the whole pipeline runs and is tested without downloads.
///
/// Rules:
/// - A sample depends on `(config, index)` only: every random choice comes from
///   `SeededRandom(seed: config.seed).derived(index)`, so ranks can render disjoint index ranges in any order.
/// - Each class has its own shape family, colour and texture (``SyntheticClassStyle/table``); an instance varies only
///   in size (15–45 % of the short side, at least 14 px), position, a small rotation (±12°) and ±8 % brightness.
/// - Objects may overlap; later ones occlude earlier ones and the mask shows what is visible. An object stays in the
///   scene only if at least 30 % of its footprint is visible and its interior (mask pixels, band excluded) has at
///   least ``SyntheticScene/minimumVisiblePixels(width:height:)`` pixels; otherwise it is removed before painting.
///   Hence every listed object is visible, labels are exactly the classes of listed objects, and every image has one.
/// - Distractors (blobs, bars, wavy strokes) lie under the objects, belong to no class and take either greyish
///   colours or the hue of a class, so colour alone never identifies a class.
import Foundation
import NN
import Segmentation

/// Image size, number of classes and seed of a synthetic dataset.
public struct SyntheticConfig: Sendable, Codable, Equatable {
    public var width: Int
    public var height: Int
    /// Number of classes, 1...20; the first `classes` PASCAL VOC classes are used. Values outside are clamped.
    public var classes: Int
    public var seed: UInt64

    /// Sides below ``SyntheticScene/minimumSide`` are raised to it when rendering.
    public init(width: Int, height: Int, classes: Int, seed: UInt64) {
        self.width = width
        self.height = height
        self.classes = classes
        self.seed = seed
    }
}

/// One visible class object.
public struct SyntheticObject: Sendable, Equatable {
    /// 0-based class index.
    public var classIndex: Int
    /// 1-based inclusive VOC-style box around the visible pixels of the object (ignore band included).
    public var xmin: Int, ymin: Int, xmax: Int, ymax: Int

    public init(classIndex: Int, xmin: Int, ymin: Int, xmax: Int, ymax: Int) {
        self.classIndex = classIndex
        self.xmin = xmin
        self.ymin = ymin
        self.xmax = xmax
        self.ymax = ymax
    }
}

/// A rendered image with its annotations, all row-major over `height × width`.
public struct SyntheticSample: Sendable {
    public var width: Int
    public var height: Int
    /// Number of classes the labels range over (the config's, clamped to 1...20).
    public var classCount: Int
    /// Interleaved RGB, `height * width * 3` bytes.
    public var rgb: [UInt8]
    /// `height * width`: 0 background, `classIndex + 1` on object interiors, ``SyntheticScene/ignoreLabel`` on the
    /// one-pixel band just inside every object boundary (VOC's "void" contour).
    public var mask: [UInt8]
    /// `height * width` grey levels: high on objects with soft edges and patchy strength, sometimes raised on
    /// distractors (false positives), plus a little noise, like a DRS saliency map.
    public var saliency: [UInt8]
    /// Visible objects in painting order (later occlude earlier).
    public var objects: [SyntheticObject]

    /// Multi-hot over `classCount` classes: 1 for every class that has a visible object.
    public var imageLabels: [Float] {
        var labels = [Float](repeating: 0, count: classCount)
        for object in objects where labels.indices.contains(object.classIndex) { labels[object.classIndex] = 1 }
        return labels
    }
}

public enum SyntheticScene {
    /// Mask value of pixels that losses and metrics skip.
    public static let ignoreLabel: UInt8 = 255

    /// The smallest side rendered; smaller requested sides are raised to this.
    public static let minimumSide = 32

    /// The first `count` VOC class names (clamped to 0...20).
    public static func classNames(count: Int) -> [String] {
        Array(VOC.classNames.prefix(max(0, min(count, VOC.classNames.count))))
    }

    /// Fewest interior mask pixels a class object needs to be kept (and labelled): 0.1 % of the image, at least 12.
    public static func minimumVisiblePixels(width: Int, height: Int) -> Int {
        max(12, width * height / 1000)
    }

    /// Renders sample `index` of the dataset described by `config`.
    public static func render(index: Int, config: SyntheticConfig) -> SyntheticSample {
        let width = max(minimumSide, config.width), height = max(minimumSide, config.height)
        let classCount = max(1, min(VOC.classNames.count, config.classes))
        let root = SeededRandom(seed: config.seed).derived(UInt64(bitPattern: Int64(index)))
        // Independent streams per stage, so tuning one stage never reshuffles the others.
        var layoutRandom = root.derived(1)
        var backgroundRandom = root.derived(2)
        var distractorRandom = root.derived(3)
        var paintRandom = root.derived(4)
        var saliencyRandom = root.derived(5)

        let layout = SyntheticLayout(width: width, height: height, classCount: classCount, random: &layoutRandom)
        let distractors = makeDistractors(width: width, height: height, classCount: classCount, random: &distractorRandom)

        var canvas = [Float](repeating: 0, count: width * height * 3)
        SyntheticCanvas.paintBackground(into: &canvas, width: width, height: height, random: &backgroundRandom)
        for distractor in distractors {
            SyntheticCanvas.paint(
                distractor.raster, of: distractor.placement, color: distractor.color, texture: distractor.texture,
                into: &canvas, width: width)
        }
        for object in layout.objects {
            let style = SyntheticClassStyle.table[object.classIndex]
            let jitter = Float.random(in: 0.92...1.08, using: &paintRandom)
            SyntheticCanvas.paint(
                object.raster, of: object.placement, color: style.color * jitter, texture: style.texture,
                into: &canvas, width: width)
        }

        return SyntheticSample(
            width: width, height: height, classCount: classCount,
            rgb: quantise(canvas, sensorNoise: 0.02, random: &paintRandom),
            mask: layout.mask(),
            saliency: makeSaliency(layout: layout, distractors: distractors, random: &saliencyRandom),
            objects: layout.visibleObjects())
    }

    /// Clamps to [0, 1], adds uniform per-channel noise of ±`sensorNoise` and rounds to bytes.
    static func quantise(_ values: [Float], sensorNoise: Float, random: inout SeededRandom) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count)
        let noiseScale = 2 * sensorNoise / 255
        values.withUnsafeBufferPointer { values in
            bytes.withUnsafeMutableBufferPointer { out in
                var bits: UInt64 = 0
                for i in 0..<values.count {
                    // One 64-bit draw feeds eight noise bytes.
                    if i & 7 == 0 { bits = random.next() }
                    let noise = (Float(bits & 0xFF) * noiseScale) - sensorNoise
                    bits >>= 8
                    let v = min(1, max(0, values[i] + noise))
                    out[i] = UInt8(v * 255 + 0.5)
                }
            }
        }
        return bytes
    }

    /// A shape painted under the objects that belongs to no class.
    struct Distractor {
        var placement: SyntheticPlacement
        var raster: SyntheticRaster
        var color: SIMD3<Float>
        var texture: SyntheticTexture
        /// The saliency map's (false) response on this distractor; 0 for none.
        var falseSaliency: Float
    }

    /// 1–4 distractors of 8–30 % of the short side at any rotation. Half are greyish, half borrow a class hue with
    /// a random texture, so a classifier has to look at shape to tell a class object from a distractor.
    static func makeDistractors(width: Int, height: Int, classCount: Int, random: inout SeededRandom) -> [Distractor] {
        let shortSide = Float(min(width, height))
        return (0..<Int.random(in: 1...4, using: &random)).map { _ in
            let shape: SyntheticShape
            switch Int.random(in: 0..<3, using: &random) {
            case 0:
                // Lobes of at least 0.07 keep a blob from passing for a disc.
                let lobe3 = Float.random(in: 0.07...0.1, using: &random), phase3 = Float.random(in: 0..<(2 * .pi), using: &random)
                let lobe5 = Float.random(in: 0...0.1, using: &random), phase5 = Float.random(in: 0..<(2 * .pi), using: &random)
                shape = .blob(lobe3 * cos(phase3), lobe3 * sin(phase3), lobe5 * cos(phase5), lobe5 * sin(phase5))
            case 1: shape = .bar
            default: shape = .wave
            }
            let placement = SyntheticPlacement(
                shape: shape,
                centerX: Float.random(in: 0..<Float(width), using: &random),
                centerY: Float.random(in: 0..<Float(height), using: &random),
                radius: max(4, shortSide * Float.random(in: 0.04...0.15, using: &random)),
                angle: Float.random(in: 0..<(2 * .pi), using: &random))
            let color: SIMD3<Float>
            if Bool.random(using: &random) {
                color = SyntheticColor.rgb(
                    hueDegrees: Float.random(in: 0..<360, using: &random),
                    saturation: Float.random(in: 0...0.15, using: &random),
                    value: Float.random(in: 0.25...0.9, using: &random))
            } else {
                let borrowed = SyntheticClassStyle.table[Int.random(in: 0..<classCount, using: &random)]
                color = SyntheticColor.rgb(
                    hueDegrees: borrowed.hueDegrees + Float.random(in: -8...8, using: &random),
                    saturation: borrowed.saturation, value: borrowed.value * Float.random(in: 0.9...1.05, using: &random))
            }
            let texture = SyntheticTexture.allCases[Int.random(in: 0..<SyntheticTexture.allCases.count, using: &random)]
            let falseSaliency = random.nextFloat() < 0.35 ? Float.random(in: 0.25...0.6, using: &random) : 0
            return Distractor(
                placement: placement, raster: SyntheticRaster(placement, width: width, height: height),
                color: color, texture: texture, falseSaliency: falseSaliency)
        }
    }

    /// A DRS-like saliency map: each visible object at a strength of 0.8–1 modulated by smooth noise (patchy
    /// responses), some distractors at 0.25–0.6, blurred (σ ≈ 2 % of the short side), plus low-frequency and pixel noise.
    static func makeSaliency(layout: SyntheticLayout, distractors: [Distractor], random: inout SeededRandom) -> [UInt8] {
        let width = layout.width, height = layout.height
        var map = [Float](repeating: 0, count: width * height)
        for distractor in distractors where distractor.falseSaliency > 0 {
            let raster = distractor.raster
            for y in raster.y0..<raster.y1 {
                for x in raster.x0..<raster.x1 where raster.coverage[(y - raster.y0) * raster.boxWidth + x - raster.x0] >= SyntheticRaster.solidCoverage {
                    map[y * width + x] = max(map[y * width + x], distractor.falseSaliency)
                }
            }
        }
        let strengths = layout.objects.map { _ in Float.random(in: 0.8...1, using: &random) }
        let patchiness = SyntheticCanvas.noiseField(width: width, height: height, cellsAcross: 5, random: &random)
        for i in 0..<map.count {
            let owner = Int(layout.owner[i])
            if owner > 0 { map[i] = strengths[owner - 1] * (0.82 + 0.18 * patchiness[i]) }
        }
        let radius = max(1, min(width, height) / 45)
        SyntheticCanvas.boxBlur(&map, width: width, height: height, radius: radius, passes: 2)
        let drift = SyntheticCanvas.noiseField(width: width, height: height, cellsAcross: 4, random: &random)
        for i in 0..<map.count { map[i] += 0.04 + 0.04 * drift[i] }
        return quantise(map, sensorNoise: 0.03, random: &random)
    }
}

/// The class objects of one image and, per pixel, which of them is visible there.
struct SyntheticLayout {
    struct Object {
        var classIndex: Int
        var placement: SyntheticPlacement
        var raster: SyntheticRaster
    }

    let width: Int
    let height: Int
    /// Kept objects in painting order.
    let objects: [Object]
    /// Per pixel: 0 where no object is solid, k + 1 where `objects[k]` is the topmost solid one.
    let owner: [UInt8]

    /// Proposes 1–3 objects (40/35/25 %) and drops the badly occluded ones; after four empty attempts, which the
    /// size floor makes practically impossible, falls back to one large centred object.
    init(width: Int, height: Int, classCount: Int, random: inout SeededRandom) {
        self.width = width
        self.height = height
        let minimum = SyntheticScene.minimumVisiblePixels(width: width, height: height)
        let shortSide = Float(min(width, height))
        for _ in 0..<4 {
            let draw = random.nextFloat()
            let count = draw < 0.4 ? 1 : (draw < 0.75 ? 2 : 3)
            var proposed: [Object] = []
            for _ in 0..<count {
                let classIndex = Int.random(in: 0..<classCount, using: &random)
                // Uniform in area rather than diameter, so mid-sized objects are as common as small ones.
                let diameter = Float.random(in: 0.0225...0.2025, using: &random).squareRoot()
                let radius = max(7, shortSide * diameter / 2)
                let angle = Float.random(in: -12...12, using: &random) * .pi / 180
                // A few tries for a spot that does not bury an earlier object; the last try is taken regardless.
                var center = (Float(width) / 2, Float(height) / 2)
                for _ in 0..<8 {
                    center = (Self.coordinate(extent: width, radius: radius, random: &random),
                              Self.coordinate(extent: height, radius: radius, random: &random))
                    let clear = proposed.allSatisfy { earlier in
                        let dx = earlier.placement.centerX - center.0, dy = earlier.placement.centerY - center.1
                        return (dx * dx + dy * dy).squareRoot() >= 0.8 * max(radius, earlier.placement.radius)
                    }
                    if clear { break }
                }
                let placement = SyntheticPlacement(
                    shape: SyntheticClassStyle.table[classIndex].shape,
                    centerX: center.0, centerY: center.1, radius: radius, angle: angle)
                proposed.append(Object(
                    classIndex: classIndex, placement: placement,
                    raster: SyntheticRaster(placement, width: width, height: height)))
            }
            let (kept, owner) = Self.removingOccluded(proposed, width: width, height: height, minimum: minimum)
            if !kept.isEmpty {
                self.objects = kept
                self.owner = owner
                return
            }
        }
        let classIndex = Int.random(in: 0..<classCount, using: &random)
        let placement = SyntheticPlacement(
            shape: SyntheticClassStyle.table[classIndex].shape,
            centerX: Float(width) / 2, centerY: Float(height) / 2, radius: 0.3 * shortSide, angle: 0)
        let fallback = [Object(
            classIndex: classIndex, placement: placement, raster: SyntheticRaster(placement, width: width, height: height))]
        self.objects = fallback
        self.owner = Self.ownership(fallback, width: width, height: height)
    }

    /// A centre coordinate that keeps most of the object (90 % of its radius) inside the image.
    static func coordinate(extent: Int, radius: Float, random: inout SeededRandom) -> Float {
        let low = 0.9 * radius, high = Float(extent) - 0.9 * radius
        return high > low ? Float.random(in: low...high, using: &random) : Float(extent) / 2
    }

    /// Repeatedly removes the topmost object that shows under 30 % of its footprint or has too small an interior;
    /// removing the topmost offender first gives the objects under it their best chance.
    static func removingOccluded(
        _ proposed: [Object], width: Int, height: Int, minimum: Int
    ) -> ([Object], [UInt8]) {
        var objects = proposed
        while true {
            let owner = ownership(objects, width: width, height: height)
            let (visible, interior) = visibility(owner, objectCount: objects.count, width: width, height: height)
            let failing = objects.indices.last { k in
                visible[k] * 10 < objects[k].raster.solidPixelCount * 3 || interior[k] < minimum
            }
            guard let k = failing else { return (objects, owner) }
            objects.remove(at: k)
        }
    }

    static func ownership(_ objects: [Object], width: Int, height: Int) -> [UInt8] {
        var owner = [UInt8](repeating: 0, count: width * height)
        for (k, object) in objects.enumerated() {
            let raster = object.raster
            for y in raster.y0..<raster.y1 {
                let row = (y - raster.y0) * raster.boxWidth - raster.x0
                for x in raster.x0..<raster.x1 where raster.coverage[row + x] >= SyntheticRaster.solidCoverage {
                    owner[y * width + x] = UInt8(k + 1)
                }
            }
        }
        return owner
    }

    /// Whether the owned pixel at (x, y) has the same owner on all four in-image neighbours (i.e. is not on the band).
    @inline(__always)
    static func isInterior(_ owner: UnsafeBufferPointer<UInt8>, x: Int, y: Int, width: Int, height: Int) -> Bool {
        let i = y * width + x, o = owner[i]
        return (x == 0 || owner[i - 1] == o) && (x == width - 1 || owner[i + 1] == o)
            && (y == 0 || owner[i - width] == o) && (y == height - 1 || owner[i + width] == o)
    }

    /// Per object: visible pixels, and visible pixels off the boundary band.
    static func visibility(_ owner: [UInt8], objectCount: Int, width: Int, height: Int) -> (visible: [Int], interior: [Int]) {
        var visible = [Int](repeating: 0, count: objectCount), interior = visible
        owner.withUnsafeBufferPointer { owner in
            for y in 0..<height {
                for x in 0..<width {
                    let o = Int(owner[y * width + x])
                    if o == 0 { continue }
                    visible[o - 1] += 1
                    if isInterior(owner, x: x, y: y, width: width, height: height) { interior[o - 1] += 1 }
                }
            }
        }
        return (visible, interior)
    }

    /// The VOC-style mask: class + 1 on interiors, the ignore label on the one-pixel band, 0 elsewhere.
    func mask() -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: width * height)
        owner.withUnsafeBufferPointer { owner in
            for y in 0..<height {
                for x in 0..<width {
                    let o = Int(owner[y * width + x])
                    if o == 0 { continue }
                    mask[y * width + x] = Self.isInterior(owner, x: x, y: y, width: width, height: height)
                        ? UInt8(objects[o - 1].classIndex + 1) : SyntheticScene.ignoreLabel
                }
            }
        }
        return mask
    }

    /// Kept objects with 1-based inclusive boxes around their visible pixels.
    func visibleObjects() -> [SyntheticObject] {
        var boxes = objects.map { SyntheticObject(classIndex: $0.classIndex, xmin: Int.max, ymin: Int.max, xmax: 0, ymax: 0) }
        for y in 0..<height {
            for x in 0..<width {
                let o = Int(owner[y * width + x])
                if o == 0 { continue }
                boxes[o - 1].xmin = min(boxes[o - 1].xmin, x + 1)
                boxes[o - 1].ymin = min(boxes[o - 1].ymin, y + 1)
                boxes[o - 1].xmax = max(boxes[o - 1].xmax, x + 1)
                boxes[o - 1].ymax = max(boxes[o - 1].ymax, y + 1)
            }
        }
        // Only the unvalidated fallback object could own no pixel; report it as an empty box at the origin.
        return boxes.map { box in
            box.xmax == 0 ? SyntheticObject(classIndex: box.classIndex, xmin: 1, ymin: 1, xmax: 1, ymax: 1) : box
        }
    }
}
