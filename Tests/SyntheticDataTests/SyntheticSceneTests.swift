import Foundation
import XCTest

import Segmentation
@testable import SyntheticData

/// Checks the synthetic dataset's contract: determinism per (seed, index), consistent annotations, and class cues
/// strong enough to be learnt from image-level labels.
final class SyntheticSceneTests: XCTestCase {
    private let small = SyntheticConfig(width: 96, height: 80, classes: 20, seed: 7)

    func testSameSeedAndIndexGiveIdenticalSamples() {
        let first = SyntheticScene.render(index: 11, config: small)
        let second = SyntheticScene.render(index: 11, config: small)
        XCTAssertEqual(first.rgb, second.rgb)
        XCTAssertEqual(first.mask, second.mask)
        XCTAssertEqual(first.saliency, second.saliency)
        XCTAssertEqual(first.objects, second.objects)
    }

    func testDifferentSeedOrIndexGiveDifferentImages() {
        var otherSeed = small
        otherSeed.seed = 8
        let base = SyntheticScene.render(index: 0, config: small)
        XCTAssertNotEqual(base.rgb, SyntheticScene.render(index: 0, config: otherSeed).rgb)
        XCTAssertNotEqual(base.rgb, SyntheticScene.render(index: 1, config: small).rgb)
        XCTAssertNotEqual(base.saliency, SyntheticScene.render(index: 0, config: otherSeed).saliency)
    }

    /// Ranks render disjoint indices in any order and in parallel; a sample must not depend on what was rendered before.
    func testRenderingIsIndependentOfOrderAndThreads() {
        let fiveFirst = SyntheticScene.render(index: 5, config: small)
        _ = SyntheticScene.render(index: 3, config: small)
        let fiveAfterThree = SyntheticScene.render(index: 5, config: small)
        XCTAssertEqual(fiveFirst.rgb, fiveAfterThree.rgb)
        XCTAssertEqual(fiveFirst.mask, fiveAfterThree.mask)

        let count = 8
        let sequential = (0..<count).map { SyntheticScene.render(index: $0, config: small).rgb }
        let parallel = LockedImages(count: count)
        let config = small
        DispatchQueue.concurrentPerform(iterations: count) { i in
            let index = count - 1 - i
            parallel.store(SyntheticScene.render(index: index, config: config).rgb, at: index)
        }
        XCTAssertEqual(parallel.images, sequential)
    }

    func testBufferSizesFollowTheConfig() {
        for (width, height) in [(64, 64), (97, 131), (320, 240), (512, 512)] {
            let sample = SyntheticScene.render(index: 2, config: SyntheticConfig(width: width, height: height, classes: 5, seed: 1))
            XCTAssertEqual(sample.width, width)
            XCTAssertEqual(sample.height, height)
            XCTAssertEqual(sample.rgb.count, width * height * 3)
            XCTAssertEqual(sample.mask.count, width * height)
            XCTAssertEqual(sample.saliency.count, width * height)
            XCTAssertEqual(sample.imageLabels.count, 5)
        }
    }

    func testClassNamesArePascalVOCPrefixes() {
        XCTAssertEqual(SyntheticScene.classNames(count: 3), ["aeroplane", "bicycle", "bird"])
        XCTAssertEqual(SyntheticScene.classNames(count: 20).count, 20)
        XCTAssertEqual(SyntheticScene.classNames(count: 20).last, "tvmonitor")
        XCTAssertEqual(SyntheticScene.classNames(count: 20)[14], "person")
        XCTAssertEqual(SyntheticScene.classNames(count: 99).count, 20)
        XCTAssertEqual(SyntheticScene.classNames(count: -1), [])
    }

    /// Every class has a unique shape family, so shape alone separates classes.
    func testEveryClassHasItsOwnShapeFamily() {
        let shapes = SyntheticClassStyle.table.map { "\($0.shape)" }
        XCTAssertEqual(shapes.count, 20)
        XCTAssertEqual(Set(shapes).count, 20)
    }

    /// Labels, mask and objects tell the same story, at every size and class count, and no image is unlabelled.
    func testAnnotationsAreConsistent() {
        let configs = [
            SyntheticConfig(width: 64, height: 64, classes: 20, seed: 3),
            SyntheticConfig(width: 96, height: 80, classes: 3, seed: 4),
            SyntheticConfig(width: 160, height: 120, classes: 1, seed: 5),
            SyntheticConfig(width: 72, height: 200, classes: 20, seed: 6),
        ]
        for config in configs {
            let minimum = SyntheticScene.minimumVisiblePixels(width: config.width, height: config.height)
            for index in 0..<40 {
                let sample = SyntheticScene.render(index: index, config: config)
                let context = "\(config) index \(index)"
                var pixelsPerClass = [Int](repeating: 0, count: config.classes)
                var ignored = 0
                for value in sample.mask {
                    switch Int(value) {
                    case 0: break
                    case 1...config.classes: pixelsPerClass[Int(value) - 1] += 1
                    case Int(SyntheticScene.ignoreLabel): ignored += 1
                    default: XCTFail("mask value \(value) outside {0, 1...\(config.classes), 255}: \(context)")
                    }
                }
                let labels = sample.imageLabels
                XCTAssertEqual(labels.count, config.classes)
                XCTAssertGreaterThanOrEqual(labels.reduce(0, +), 1, "no label: \(context)")
                XCTAssertTrue((1...3).contains(sample.objects.count), context)
                XCTAssertGreaterThan(ignored, 0, "objects without an ignore band: \(context)")
                for c in 0..<config.classes {
                    XCTAssertEqual(labels[c] == 1, pixelsPerClass[c] >= minimum, "class \(c): \(context)")
                    XCTAssertTrue(labels[c] == 0 || labels[c] == 1)
                }
                for object in sample.objects {
                    XCTAssertTrue((0..<config.classes).contains(object.classIndex), context)
                    XCTAssertTrue(1 <= object.xmin && object.xmin <= object.xmax && object.xmax <= config.width, context)
                    XCTAssertTrue(1 <= object.ymin && object.ymin <= object.ymax && object.ymax <= config.height, context)
                }
                // Every pixel of class c lies in some box of class c.
                for y in 0..<config.height {
                    for x in 0..<config.width {
                        let value = Int(sample.mask[y * config.width + x])
                        guard (1...config.classes).contains(value) else { continue }
                        let inBox = sample.objects.contains { o in
                            o.classIndex == value - 1 && (o.xmin...o.xmax).contains(x + 1) && (o.ymin...o.ymax).contains(y + 1)
                        }
                        XCTAssertTrue(inBox, "pixel (\(x), \(y)) of class \(value - 1) outside its boxes: \(context)")
                        if !inBox { return }
                    }
                }
            }
        }
    }

    /// Objects take a sensible share of the image: enough signal for CAMs, enough background to contrast with.
    func testObjectsCoverAPlausibleFractionOfTheImage() {
        var fraction = 0.0
        let images = 50
        for index in 0..<images {
            let sample = SyntheticScene.render(index: index, config: small)
            fraction += Double(sample.mask.filter { $0 != 0 }.count) / Double(sample.mask.count)
        }
        fraction /= Double(images)
        XCTAssertGreaterThanOrEqual(fraction, 0.05)
        XCTAssertLessThanOrEqual(fraction, 0.70)
    }

    /// A crude learnability check: every class's mean colour over its interior pixels stays clearly apart from every
    /// other class's and from the background's, so colour/texture statistics alone already separate the classes.
    func testClassesHaveDistinctMeanColours() {
        let config = SyntheticConfig(width: 96, height: 96, classes: 20, seed: 11)
        var sums = [SIMD3<Double>](repeating: .zero, count: config.classes + 1)
        var counts = [Double](repeating: 0, count: config.classes + 1)
        for index in 0..<160 {
            let sample = SyntheticScene.render(index: index, config: config)
            for (i, value) in sample.mask.enumerated() where value != SyntheticScene.ignoreLabel {
                let pixel = SIMD3(Double(sample.rgb[3 * i]), Double(sample.rgb[3 * i + 1]), Double(sample.rgb[3 * i + 2]))
                sums[Int(value)] += pixel
                counts[Int(value)] += 1
            }
        }
        for c in 0...config.classes { XCTAssertGreaterThan(counts[c], 0, "class \(c - 1) never appeared") }
        let means = zip(sums, counts).map { $0 / max(1, $1) }
        var closest = Double.infinity
        for a in 0..<means.count {
            for b in (a + 1)..<means.count {
                let d = means[a] - means[b]
                closest = min(closest, (d * d).sum().squareRoot())
            }
        }
        XCTAssertGreaterThan(closest, 20, "two classes (or a class and background) have near-identical mean colour")
    }

    /// Saliency is a usable prior: high inside objects, low on background, and soft at edges (the background ring
    /// just outside objects sits clearly between the two, as after a blur).
    func testSaliencyHighlightsObjectsWithSoftEdges() {
        var object = Mean(), background = Mean(), justOutside = Mean()
        for index in 0..<20 {
            let sample = SyntheticScene.render(index: index, config: small)
            let width = sample.width
            for (i, value) in sample.mask.enumerated() {
                let s = Double(sample.saliency[i])
                if value == 0 {
                    let x = i % width
                    let touchesObject = (x > 0 && sample.mask[i - 1] != 0) || (x < width - 1 && sample.mask[i + 1] != 0)
                        || (i >= width && sample.mask[i - width] != 0) || (i + width < sample.mask.count && sample.mask[i + width] != 0)
                    if touchesObject { justOutside.add(s) } else { background.add(s) }
                } else if value != SyntheticScene.ignoreLabel {
                    object.add(s)
                }
            }
        }
        XCTAssertGreaterThan(object.value, 170)
        XCTAssertLessThan(background.value, 50)
        XCTAssertGreaterThan(justOutside.value, background.value + 40, "saliency edges are not soft")
        XCTAssertLessThan(justOutside.value, object.value - 40, "saliency edges are not soft")
    }

    /// An object buried under a later one is removed from the scene rather than labelled from a sliver.
    func testBuriedObjectsAreRemoved() {
        let width = 64, height = 64
        func object(_ classIndex: Int, radius: Float) -> SyntheticLayout.Object {
            let placement = SyntheticPlacement(shape: .disc, centerX: 32, centerY: 32, radius: radius, angle: 0)
            return SyntheticLayout.Object(
                classIndex: classIndex, placement: placement,
                raster: SyntheticRaster(placement, width: width, height: height))
        }
        let minimum = SyntheticScene.minimumVisiblePixels(width: width, height: height)
        let (kept, owner) = SyntheticLayout.removingOccluded(
            [object(0, radius: 10), object(1, radius: 12)], width: width, height: height, minimum: minimum)
        XCTAssertEqual(kept.map(\.classIndex), [1])
        XCTAssertFalse(owner.contains(2))
        let (both, _) = SyntheticLayout.removingOccluded(
            [object(0, radius: 20), object(1, radius: 8)], width: width, height: height, minimum: minimum)
        XCTAssertEqual(both.map(\.classIndex), [0, 1], "a ring left visible around the top object is enough")
    }

    /// Degenerate configs are clamped rather than crashing.
    func testOutOfRangeConfigsAreClamped() {
        let sample = SyntheticScene.render(index: -4, config: SyntheticConfig(width: 1, height: 0, classes: 40, seed: 0))
        XCTAssertEqual(sample.width, SyntheticScene.minimumSide)
        XCTAssertEqual(sample.height, SyntheticScene.minimumSide)
        XCTAssertEqual(sample.imageLabels.count, 20)
        XCTAssertGreaterThanOrEqual(sample.imageLabels.reduce(0, +), 1)
    }
}

/// Images written from concurrent renders, guarded by a lock.
private final class LockedImages: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [[UInt8]]

    init(count: Int) { storage = Array(repeating: [], count: count) }

    func store(_ image: [UInt8], at index: Int) { lock.withLock { storage[index] = image } }

    var images: [[UInt8]] { lock.withLock { storage } }
}

private struct Mean {
    private var sum = 0.0, count = 0.0
    mutating func add(_ x: Double) { sum += x; count += 1 }
    var value: Double { count > 0 ? sum / count : .nan }
}
