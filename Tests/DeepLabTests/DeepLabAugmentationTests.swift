import Formats
import Foundation
@testable import Imaging
import NN
import XCTest

/// deeplab-pytorch's augmentation pieces against the libraries it calls (Fixtures/augment.h5, from
/// scripts/fixtures/make_deeplab_fixtures.py): OpenCV's INTER_LINEAR on float images and Pillow's NEAREST on
/// label maps, then the whole chain's rules (scale sizes, padding with the mean colour and 255, crop, flip).
final class DeepLabAugmentationTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/augment.h5")

    func testOpenCVLinearResizeMatchesCV2() throws {
        let file = try HDF5File.open(Self.fixture.path)
        for name in ["cv2_down_075", "cv2_down_half", "cv2_up_150", "cv2_up_125"] {
            let x = try file.read("\(name)/x", as: Float.self), y = try file.read("\(name)/y", as: Float.self)
            let out = OpenCVLinearResize.resize(x.values, width: x.shape[1], height: x.shape[0], channels: 3,
                                                toWidth: y.shape[1], toHeight: y.shape[0])
            let worst = zip(out, y.values).map { abs($0 - $1) }.max() ?? .infinity
            // OpenCV's float path rounds its coefficients the same way; its SIMD sums in another order.
            XCTAssertLessThanOrEqual(worst, 1e-3, "\(name): worst |ours − cv2| on 0…255 values")
        }
    }

    func testPILNearestResizeMatchesPillowExactly() throws {
        let file = try HDF5File.open(Self.fixture.path)
        for (name, sizes) in [("pil_321", [(41, 41), (21, 21), (31, 31)]), ("pil_odd", [(27, 33), (55, 67), (18, 22)])] {
            let x = try file.read("\(name)/x", as: UInt8.self)
            for (h, w) in sizes {
                let expected = try file.read("\(name)/y_\(h)x\(w)", as: UInt8.self).values
                let out = PILNearestResize.resize(x.values, width: x.shape[1], height: x.shape[0], toWidth: w, toHeight: h)
                XCTAssertEqual(out, expected, "\(name) → \(h)x\(w)")
            }
        }
    }

    func testCropPadsWithTheMeanColourAndIgnoreLabelAndFlips() {
        // A 20 × 10 image, scale 1, crop 16: rows 10…15 are padding (0 after mean subtraction, label 255).
        var image = PixelImage(width: 20, height: 10, channels: 3, pixels: [UInt8](repeating: 0, count: 600))
        for p in 0..<200 { image.pixels[p * 3] = UInt8(p % 20); image.pixels[p * 3 + 1] = 50; image.pixels[p * 3 + 2] = 200 }
        let labels = (0..<200).map { UInt8($0 % 20 < 10 ? 1 : 2) }
        let augmentation = DeepLabAugmentation(scales: [1], cropSize: 16)
        let plain = augmentation.apply(image, labels: labels, draws: .init(scale: 1, top: 0, left: 4, flip: false))
        let plane = 256
        // Channel 0 is blue (the image's third byte): 200 − 104.008; channel 2 red: x − 122.675.
        XCTAssertEqual(plain.image[0], 200 - 104.008, accuracy: 1e-4)
        XCTAssertEqual(plain.image[2 * plane + 3], Float(4 + 3) - 122.675, accuracy: 1e-4)
        XCTAssertEqual(plain.labels[0], 1)
        XCTAssertEqual(plain.labels[15], 2)
        XCTAssertEqual(plain.labels[10 * 16], 255, "bottom padding is ignored")
        XCTAssertEqual(plain.image[10 * 16], 0, "bottom padding is the mean colour")
        let flipped = augmentation.apply(image, labels: labels, draws: .init(scale: 1, top: 0, left: 4, flip: true))
        for y in 0..<16 {
            for x in 0..<16 {
                XCTAssertEqual(flipped.labels[y * 16 + x], plain.labels[y * 16 + 15 - x])
                XCTAssertEqual(flipped.image[2 * plane + y * 16 + x], plain.image[2 * plane + y * 16 + 15 - x])
            }
        }
    }

    func testDrawsStayInsideThePaddedImage() {
        let augmentation = DeepLabAugmentation()
        var rng = SeededRandom(seed: 1)
        var scales = Set<Double>()
        for _ in 0..<200 {
            let d = augmentation.draw(width: 500, height: 375, rng: &rng)
            scales.insert(d.scale)
            let size = DeepLabAugmentation.scaledSize(width: 500, height: 375, scale: d.scale)
            XCTAssertTrue((0...max(0, size.height - 321)).contains(d.top) && (0...max(0, size.width - 321)).contains(d.left), "\(d)")
        }
        XCTAssertEqual(scales, [0.5, 0.75, 1, 1.25, 1.5])
        XCTAssertEqual(DeepLabAugmentation.scaledSize(width: 500, height: 375, scale: 0.75).height, 281, "int(375 · 0.75)")
    }
}
