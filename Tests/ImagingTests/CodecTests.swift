import Foundation
import TestSupport
import XCTest
@testable import Imaging

final class CodecTests: XCTestCase {
    /// A smooth colour gradient with a sharp square, so JPEG error stays small but is not zero.
    func gradient(width: Int = 48, height: Int = 32) -> PixelImage {
        var image = PixelImage(width: width, height: height, channels: 3)
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 3
                let inSquare = (10..<20).contains(x) && (8..<18).contains(y)
                image.pixels[i] = UInt8(x * 255 / width)
                image.pixels[i + 1] = UInt8(y * 255 / height)
                image.pixels[i + 2] = inSquare ? 220 : 40
            }
        }
        return image
    }

    func testJPEGRoundTripIsClose() throws {
        let image = gradient()
        let bytes = try JPEGCodec.encode(image, quality: 95)
        XCTAssertEqual(ImageFormat(sniffing: bytes), .jpeg)
        let decoded = try JPEGCodec.decodeRGB(bytes, name: "mem.jpg")
        XCTAssertEqual([decoded.width, decoded.height, decoded.channels], [48, 32, 3])
        var squaredError = 0.0
        for (a, b) in zip(image.pixels, decoded.pixels) { squaredError += pow(Double(a) - Double(b), 2) }
        let psnr = 10 * log10(255 * 255 / (squaredError / Double(image.pixels.count)))
        XCTAssertGreaterThan(psnr, 30, "JPEG round trip PSNR \(psnr) dB")
    }

    func testGreyJPEGDecodesToEqualChannels() throws {
        let grey = PixelImage(width: 16, height: 8, channels: 1, pixels: (0..<128).map { UInt8($0 * 2) })
        let decoded = try JPEGCodec.decodeRGB(try JPEGCodec.encode(grey), name: "grey.jpg")
        XCTAssertEqual(decoded.channels, 3)
        for p in stride(from: 0, to: decoded.pixels.count, by: 3) {
            XCTAssertEqual(decoded.pixels[p], decoded.pixels[p + 1])
            XCTAssertEqual(decoded.pixels[p], decoded.pixels[p + 2])
        }
    }

    func testPNGRoundTripsExactly() throws {
        let rgb = gradient()
        XCTAssertEqual(try PNGCodec.decodeRGB(try PNGCodec.encode(rgb), name: "rgb.png"), rgb)
        let grey = PixelImage(width: 20, height: 10, channels: 1, pixels: (0..<200).map { UInt8(($0 * 37) % 256) })
        let greyBytes = try PNGCodec.encode(grey)
        XCTAssertEqual(try PNGCodec.decodeGray(greyBytes, name: "grey.png"), grey)
        XCTAssertEqual(try PNGCodec.decodeIndices(greyBytes, name: "grey.png"), grey, "grey label maps keep their values")
    }

    func testPaletteIndicesRoundTripIncludingIgnore() throws {
        var indices = (0..<(33 * 17)).map { UInt8(($0 * 7) % 21) }
        indices[5] = 255
        indices[100] = 255
        let label = PixelImage(width: 33, height: 17, channels: 1, pixels: indices)
        let bytes = try PNGCodec.encodeIndexed(label)
        XCTAssertEqual(try PNGCodec.decodeIndices(bytes, name: "label.png"), label)
        let palette = try XCTUnwrap(try PNGCodec.palette(of: bytes, name: "label.png"))
        XCTAssertEqual(Array(palette[0..<9]), [0, 0, 0, 128, 0, 0, 0, 128, 0])
    }

    func testVOCPalette() {
        XCTAssertEqual(VOCPalette.color(of: 0), [0, 0, 0])
        XCTAssertEqual(VOCPalette.color(of: 1), [128, 0, 0])
        XCTAssertEqual(VOCPalette.color(of: 8), [64, 0, 0])
        XCTAssertEqual(VOCPalette.color(of: 15), [192, 128, 128])
        XCTAssertEqual(VOCPalette.color(of: 20), [0, 64, 128])
        XCTAssertEqual(VOCPalette.color(of: 255), [224, 224, 192])
        XCTAssertEqual(VOCPalette.rgb.count, 768)
    }

    func testCorruptTruncatedAndMissingFilesAreNamedErrors() throws {
        let jpeg = try JPEGCodec.encode(gradient())
        XCTAssertThrowsError(try JPEGCodec.decodeRGB(Array(jpeg.prefix(jpeg.count / 2)), name: "cut.jpg")) {
            XCTAssertTrue("\($0)".contains("cut.jpg"), "\($0)")
        }
        XCTAssertThrowsError(try ImageFile.decodeRGB(Array("not an image at all".utf8), name: "junk.jpg")) {
            XCTAssertTrue("\($0)".contains("junk.jpg"), "\($0)")
        }
        var damaged = jpeg
        for i in 2..<min(200, damaged.count) { damaged[i] = 0x00 }
        XCTAssertThrowsError(try ImageFile.decodeRGB(damaged, name: "zeroed.jpg"))
        let png = try PNGCodec.encode(gradient())
        XCTAssertThrowsError(try PNGCodec.decodeRGB(Array(png.prefix(png.count - 20)), name: "cut.png")) {
            XCTAssertTrue("\($0)".contains("cut.png"), "\($0)")
        }
        XCTAssertThrowsError(try ImageFile.loadRGB("/nonexistent/image.jpg")) {
            XCTAssertTrue("\($0)".contains("/nonexistent/image.jpg"), "\($0)")
        }
        XCTAssertThrowsError(try PNGCodec.decodeIndices(png, name: "rgb-label.png"), "an RGB PNG is not a label map")
    }

    /// Cross-checks against Pillow on the same files: JPEG pixels (both use libjpeg-turbo's default decoder) and
    /// the indices of a palette PNG with upstream's short 28-colour palette and ignore pixels (255).
    func testDecodingMatchesPillow() throws {
        let dir = try TestSupport.scratchDirectory()
        let jpegPath = dir.appendingPathComponent("g.jpg")
        try Data(try JPEGCodec.encode(gradient(width: 61, height: 37), quality: 80)).write(to: jpegPath)
        let script = """
        import sys, numpy as np
        from PIL import Image
        d = sys.argv[1]
        np.asarray(Image.open(d + '/g.jpg').convert('RGB')).tofile(d + '/g.rgb')
        idx = (np.arange(23 * 19).reshape(19, 23) % 21).astype(np.uint8); idx[3, 4] = 255; idx[10, :] = 255
        im = Image.fromarray(idx, mode='P')
        pal = []
        for i in range(28):
            c, r, g, b = i, 0, 0, 0
            for j in range(8):
                r |= ((c >> 0) & 1) << (7 - j); g |= ((c >> 1) & 1) << (7 - j); b |= ((c >> 2) & 1) << (7 - j); c >>= 3
            pal += [r, g, b]
        im.putpalette(pal)
        im.save(d + '/short.png')
        idx.tofile(d + '/short.idx')
        """
        let result = try TestSupport.run(TestSupport.python, ["-c", script, dir.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let ours = try ImageFile.loadRGB(jpegPath.path)
        let pillow = try [UInt8](Data(contentsOf: dir.appendingPathComponent("g.rgb")))
        XCTAssertEqual(ours.pixels, pillow, "JPEG decode differs from Pillow's")
        let shortPalette = try ImageFile.readBytes(dir.appendingPathComponent("short.png").path)
        let indices = try PNGCodec.decodeIndices(shortPalette, name: "short.png")
        XCTAssertEqual(indices.pixels, try [UInt8](Data(contentsOf: dir.appendingPathComponent("short.idx"))))
        XCTAssertEqual([indices.width, indices.height], [23, 19])
    }
}
