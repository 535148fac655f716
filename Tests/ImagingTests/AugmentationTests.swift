import Foundation
import NN
import TestSupport
import XCTest
@testable import Imaging

/// The PC augmentation chain (spec §3.2, §3.3) against Pillow 9.x computed on the fly by Debian's python3 (Pillow +
/// numpy; no fixtures are committed). torchvision is not available, so the Python side re-states its few lines
/// (ColorJitter's op order, `adjust_hue`) and upstream's `RandomResizeLong`/`Normalize`/`RandomCrop` from their
/// source; random choices are passed to both sides explicitly.
final class AugmentationTests: XCTestCase {
    // MARK: Helpers

    /// A test picture with smooth gradients, hard edges, saturated (0/255) blocks and noise, so resampling both
    /// rounds and clips, and every colour-conversion branch (grey pixels, ties between channels) is hit.
    func texture(width: Int, height: Int, channels: Int = 3, seed: UInt64 = 1) -> PixelImage {
        var rng = SeededRandom(seed: seed)
        var image = PixelImage(width: width, height: height, channels: channels)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels {
                    let noise = Int(rng.next() % 256)
                    let value: Int
                    switch (x / 7 + y / 5 + c) % 5 {
                    case 0: value = (x * 255) / max(width - 1, 1)
                    case 1: value = ((x + y) % 2 == 0) ? 255 : 0
                    case 2: value = noise
                    case 3: value = (x / 3 + y / 3) % 2 == 0 ? 250 : 5
                    default: value = (y * 255) / max(height - 1, 1)
                    }
                    image.pixels[(y * width + x) * channels + c] = UInt8(value)
                }
                if (x + 3 * y) % 11 == 0, channels == 3 {  // grey pixels and channel ties
                    let i = (y * width + x) * 3
                    image.pixels[i + 1] = image.pixels[i]
                    if (x + y) % 2 == 0 { image.pixels[i + 2] = image.pixels[i] }
                }
            }
        }
        return image
    }

    /// Writes each image to `<name>.raw`, runs `script` with the folder and `arguments`, and returns the folder.
    func runPillow(_ script: String, inputs: [String: PixelImage], arguments: [String] = []) throws -> URL {
        let dir = try TestSupport.scratchDirectory()
        for (name, image) in inputs { try Data(image.pixels).write(to: dir.appendingPathComponent(name + ".raw")) }
        let prelude = """
        import sys, json, numpy as np
        from PIL import Image, ImageEnhance
        R = getattr(Image, 'Resampling', Image)
        T = getattr(Image, 'Transpose', Image)
        d = sys.argv[1]
        def load(name, w, h, c):
            a = np.fromfile(d + '/' + name + '.raw', np.uint8)
            return Image.fromarray(a.reshape(h, w, c) if c == 3 else a.reshape(h, w), 'RGB' if c == 3 else 'L')
        def adjust_hue(im, f):  # torchvision 0.13 functional_pil.adjust_hue
            h, s, v = im.convert('HSV').split()
            np_h = np.array(h, dtype=np.uint8)
            # torchvision adds np.uint8(f * 255); on x86 that float->uint8 cast truncates toward zero and wraps.
            np_h += np.uint8(int(f * 255) % 256)
            return Image.merge('HSV', (Image.fromarray(np_h, 'L'), s, v)).convert(im.mode)
        def jitter_op(im, op, f):  # torchvision 0.13 ColorJitter.forward, fn_id 0..3
            if op == 0: return ImageEnhance.Brightness(im).enhance(f)
            if op == 1: return ImageEnhance.Contrast(im).enhance(f)
            if op == 2: return ImageEnhance.Color(im).enhance(f)
            return adjust_hue(im, f)

        """
        let result = try TestSupport.run(TestSupport.python, ["-c", prelude + script, dir.path] + arguments)
        XCTAssertEqual(result.status, 0, result.stderr)
        return dir
    }

    func bytes(_ dir: URL, _ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
    }

    func floats(_ dir: URL, _ name: String) throws -> [Float] {
        let data = try Data(contentsOf: dir.appendingPathComponent(name))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// Asserts byte-exact equality, reporting how many bytes differ and by how much.
    func assertSameBytes(_ ours: [UInt8], _ theirs: [UInt8], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, theirs.count, "\(what): sizes", file: file, line: line)
        guard ours.count == theirs.count else { return }
        var differing = 0, offByOne = 0, worst = 0
        for (a, b) in zip(ours, theirs) where a != b {
            differing += 1
            let d = abs(Int(a) - Int(b))
            if d == 1 { offByOne += 1 }
            worst = max(worst, d)
        }
        XCTAssertEqual(differing, 0, "\(what): \(differing) of \(ours.count) bytes differ (\(offByOne) by 1, worst \(worst))",
                       file: file, line: line)
    }

    // MARK: PIL resize

    func checkResize(_ filter: PILResize.Filter) throws {
        // (input w, h, channels) -> (output w, h): down, up, odd and mixed (one axis up, the other down), identity axis.
        let cases: [(Int, Int, Int, Int, Int)] = [
            (500, 375, 3, 320, 240), (375, 500, 3, 480, 640), (37, 53, 3, 91, 29), (500, 375, 3, 640, 480),
            (500, 333, 3, 333, 222), (37, 53, 1, 91, 29), (64, 48, 3, 64, 17), (64, 48, 3, 5, 48), (3, 2, 3, 1, 1),
        ]
        var inputs: [String: PixelImage] = [:]
        var spec: [[Int]] = []
        for (i, (w, h, c, ow, oh)) in cases.enumerated() {
            inputs["in\(i)"] = texture(width: w, height: h, channels: c, seed: UInt64(i + 1))
            spec.append([w, h, c, ow, oh])
        }
        let script = """
        cases = json.loads(sys.argv[2])
        for i, (w, h, c, ow, oh) in enumerate(cases):
            im = load('in%d' % i, w, h, c)
            np.asarray(im.resize((ow, oh), getattr(R, sys.argv[3]))).tofile(d + '/out%d.raw' % i)
        """
        let json = String(data: try JSONSerialization.data(withJSONObject: spec), encoding: .utf8)!
        let dir = try runPillow(script, inputs: inputs, arguments: [json, filter.rawValue.uppercased()])
        for (i, (w, h, c, ow, oh)) in cases.enumerated() {
            let ours = PILResize.resize(inputs["in\(i)"]!, width: ow, height: oh, filter: filter)
            XCTAssertEqual([ours.width, ours.height, ours.channels], [ow, oh, c])
            assertSameBytes(ours.pixels, try bytes(dir, "out\(i).raw"), "\(filter) \(w)x\(h)x\(c) -> \(ow)x\(oh)")
        }
    }

    func testBicubicResizeMatchesPillowExactly() throws { try checkResize(.bicubic) }

    func testBilinearResizeMatchesPillowExactly() throws { try checkResize(.bilinear) }

    func testResizeCoefficientsFollowPillowRule() {
        // Downscaling by 2 with bicubic: support 4, ksize 9; output o has centre 2o + 1 and reads
        // Int(c − 4 + ½) ..< Int(c + 4 + ½), clamped to 0..<8.
        let k = PILResize.Coefficients(input: 8, output: 4, filter: .bicubic)
        XCTAssertEqual(k.ksize, 9)
        XCTAssertEqual(Array(k.first), [0, 0, 1, 3])
        XCTAssertEqual(Array(k.count), [5, 7, 7, 5])
        for o in 0..<4 {  // fixed-point weights sum to 2^22 up to the rounding of each tap
            let sum = k.weights[(o * 9)..<(o * 9 + k.count[o])].reduce(0, +)
            XCTAssertLessThanOrEqual(abs(Int(sum) - (1 << 22)), k.count[o], "output \(o)")
        }
        XCTAssertEqual(PILResize.resize(texture(width: 9, height: 7), width: 9, height: 7), texture(width: 9, height: 7))
    }

    // MARK: Colour jitter

    func testBrightnessContrastSaturationMatchImageEnhance() throws {
        let image = texture(width: 61, height: 43, seed: 7)
        let grey = texture(width: 23, height: 19, channels: 1, seed: 8)
        let factors = [0.0, 0.5, 0.7, 0.8123, 1.0, 1.0001, 1.17, 1.3, 2.5]
        let script = """
        fs = json.loads(sys.argv[2])
        for name, w, h, c in (('rgb', 61, 43, 3), ('grey', 23, 19, 1)):
            im = load(name, w, h, c)
            for op in range(3):
                for j, f in enumerate(fs):
                    np.asarray(jitter_op(im, op, f)).tofile(d + '/%s_%d_%d.raw' % (name, op, j))
        """
        let json = String(data: try JSONSerialization.data(withJSONObject: factors), encoding: .utf8)!
        let dir = try runPillow(script, inputs: ["rgb": image, "grey": grey], arguments: [json])
        let ops: [(String, (PixelImage, Double) -> PixelImage)] = [
            ("brightness", { ColorJitter.adjustBrightness($0, factor: $1) }),
            ("contrast", { ColorJitter.adjustContrast($0, factor: $1) }),
            ("saturation", { ColorJitter.adjustSaturation($0, factor: $1) }),
        ]
        for (op, (name, function)) in ops.enumerated() {
            for (j, f) in factors.enumerated() {
                assertSameBytes(function(image, f).pixels, try bytes(dir, "rgb_\(op)_\(j).raw"), "RGB \(name) \(f)")
                assertSameBytes(function(grey, f).pixels, try bytes(dir, "grey_\(op)_\(j).raw"), "L \(name) \(f)")
            }
        }
        XCTAssertNotEqual(ColorJitter.adjustContrast(image, factor: 0.7), image, "the ops must change the image")
    }

    func testHueShiftMatchesPillowHSVRoundTrip() throws {
        let image = texture(width: 67, height: 41, seed: 9)
        let shifts = [-0.5, -0.1, -0.0731, -0.0039, 0.0, 0.002, 0.0039, 0.05, 0.0999, 0.1, 0.5]
        let script = """
        for j, f in enumerate(json.loads(sys.argv[2])):
            np.asarray(adjust_hue(load('rgb', 67, 41, 3), f)).tofile(d + '/hue_%d.raw' % j)
        """
        let json = String(data: try JSONSerialization.data(withJSONObject: shifts), encoding: .utf8)!
        let dir = try runPillow(script, inputs: ["rgb": image], arguments: [json])
        for (j, f) in shifts.enumerated() {
            assertSameBytes(ColorJitter.adjustHue(image, shift: f).pixels, try bytes(dir, "hue_\(j).raw"), "hue \(f)")
        }
    }

    /// Pillow's RGB → HSV, HSV → RGB and RGB → L conversions on every one of the 2²⁴ byte triples.
    func testColourConversionsMatchPillowOnEveryTriple() throws {
        let script = """
        idx = np.arange(1 << 24, dtype=np.uint32)
        a = np.stack([(idx >> 16) & 255, (idx >> 8) & 255, idx & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
        im = Image.fromarray(a, 'RGB')
        np.asarray(im.convert('HSV')).tofile(d + '/hsv.raw')
        np.asarray(im.convert('L')).tofile(d + '/l.raw')
        bands = [Image.fromarray(np.ascontiguousarray(a[..., k]), 'L') for k in range(3)]
        np.asarray(Image.merge('HSV', bands).convert('RGB')).tofile(d + '/rgb.raw')
        """
        let dir = try runPillow(script, inputs: [:])
        let hsv = try bytes(dir, "hsv.raw"), rgb = try bytes(dir, "rgb.raw"), luma = try bytes(dir, "l.raw")
        var toHSV = 0, toRGB = 0, toL = 0
        var firstMiss = ""
        for t in 0..<(1 << 24) {
            let (a, b, c) = (UInt8(t >> 16), UInt8((t >> 8) & 255), UInt8(t & 255))
            let h = ColorJitter.rgbToHSV(a, b, c)
            if h.0 != hsv[3 * t] || h.1 != hsv[3 * t + 1] || h.2 != hsv[3 * t + 2] {
                toHSV += 1
                if firstMiss.isEmpty { firstMiss = "rgb2hsv\((a, b, c)) = \(h), Pillow \(hsv[(3 * t)..<(3 * t + 3)])" }
            }
            let r = ColorJitter.hsvToRGB(a, b, c)
            if r.0 != rgb[3 * t] || r.1 != rgb[3 * t + 1] || r.2 != rgb[3 * t + 2] {
                toRGB += 1
                if firstMiss.isEmpty { firstMiss = "hsv2rgb\((a, b, c)) = \(r), Pillow \(rgb[(3 * t)..<(3 * t + 3)])" }
            }
            if ColorJitter.luma(a, b, c) != luma[t] { toL += 1 }
        }
        XCTAssertEqual([toHSV, toRGB, toL], [0, 0, 0], "mismatching triples (RGB→HSV, HSV→RGB, RGB→L); \(firstMiss)")
    }

    func testJitterAppliesOpsInTheDrawnOrder() throws {
        let image = texture(width: 45, height: 38, seed: 11)
        let parameters: [ColorJitter.Parameters] = [
            .init(order: [.brightness, .contrast, .saturation, .hue], brightness: 1.29, contrast: 0.71, saturation: 1.2, hue: -0.08),
            .init(order: [.hue, .saturation, .contrast, .brightness], brightness: 0.74, contrast: 1.26, saturation: 0.7, hue: 0.093),
            .init(order: [.contrast, .hue, .brightness, .saturation], brightness: 1.0, contrast: 1.3, saturation: 1.3, hue: 0.1),
        ]
        let spec = parameters.map { p -> [Any] in
            [p.order.map(\.rawValue), [p.brightness, p.contrast, p.saturation, p.hue]]
        }
        let script = """
        for j, (order, fs) in enumerate(json.loads(sys.argv[2])):
            im = load('rgb', 45, 38, 3)
            for op in order: im = jitter_op(im, op, fs[op])
            np.asarray(im).tofile(d + '/jit_%d.raw' % j)
        """
        let json = String(data: try JSONSerialization.data(withJSONObject: spec), encoding: .utf8)!
        let dir = try runPillow(script, inputs: ["rgb": image], arguments: [json])
        for (j, p) in parameters.enumerated() {
            assertSameBytes(ColorJitter.apply(image, p).pixels, try bytes(dir, "jit_\(j).raw"), "jitter \(p)")
        }
        var reordered = parameters[0]
        reordered.order.reverse()
        XCTAssertNotEqual(ColorJitter.apply(image, reordered), ColorJitter.apply(image, parameters[0]), "order matters")
    }

    func testJitterDrawsAreDeterministicAndInRange() {
        let jitter = ColorJitter()
        var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42), c = SeededRandom(seed: 43)
        let first = (0..<50).map { _ in jitter.draw(&a) }
        XCTAssertEqual(first, (0..<50).map { _ in jitter.draw(&b) }, "same seed, same draws")
        XCTAssertNotEqual(first, (0..<50).map { _ in jitter.draw(&c) }, "another seed, other draws")
        var orders = Set<[Int]>()
        var rng = SeededRandom(seed: 5)
        var sums = [0.0, 0.0, 0.0, 0.0]
        let n = 4000
        for _ in 0..<n {
            let p = jitter.draw(&rng)
            XCTAssertEqual(Set(p.order), Set(ColorJitter.Op.allCases))
            orders.insert(p.order.map(\.rawValue))
            for (k, v) in [p.brightness, p.contrast, p.saturation].enumerated() {
                XCTAssertTrue((0.7...1.3).contains(v), "factor \(v)")
                sums[k] += v
            }
            XCTAssertTrue((-0.1...0.1).contains(p.hue), "hue \(p.hue)")
            sums[3] += p.hue
        }
        XCTAssertEqual(orders.count, 24, "every order of the four ops occurs")
        for k in 0..<3 { XCTAssertEqual(sums[k] / Double(n), 1, accuracy: 0.01) }
        XCTAssertEqual(sums[3] / Double(n), 0, accuracy: 0.005)
    }

    // MARK: Resize-long, flip, normalise, crop, pair

    func testResizeLongSizesIncludingHalfwayRounding() throws {
        // 375·322/500 = 241.5 → 242 and 375·326/500 = 244.5 → 244 (halves to even); 333·327/500 = 217.782 → 218.
        XCTAssertEqual(RandomResizeLong.targetSize(width: 500, height: 375, long: 322).height, 242)
        XCTAssertEqual(RandomResizeLong.targetSize(width: 500, height: 375, long: 326).height, 244)
        XCTAssertEqual(RandomResizeLong.targetSize(width: 375, height: 500, long: 326).width, 244)
        XCTAssertEqual(RandomResizeLong.targetSize(width: 500, height: 333, long: 327).height, 218)
        XCTAssertTrue(RandomResizeLong.targetSize(width: 400, height: 400, long: 333) == (333, 333))
        // Python's own rounding over a sweep of shapes and every L.
        let shapes = [(500, 375), (375, 500), (500, 333), (334, 500), (500, 500), (481, 640), (200, 118)]
        var ours: [[Int]] = []
        for (w, h) in shapes {
            for long in 320...640 {
                let s = RandomResizeLong.targetSize(width: w, height: h, long: long)
                ours.append([s.width, s.height])
            }
        }
        let script = """
        out = []
        for w, h in json.loads(sys.argv[2]):
            for L in range(320, 641):
                out.append([int(round(w * L / h)), L] if w < h else [L, int(round(h * L / w))])
        open(d + '/sizes.json', 'w').write(json.dumps(out))
        """
        let json = String(data: try JSONSerialization.data(withJSONObject: shapes.map { [$0.0, $0.1] }), encoding: .utf8)!
        let dir = try runPillow(script, inputs: [:], arguments: [json])
        let python = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("sizes.json"))) as! [[Int]]
        XCTAssertEqual(ours, python)
        var rng = SeededRandom(seed: 3)
        let longs = (0..<3000).map { _ in RandomResizeLong().drawLong(&rng) }
        XCTAssertEqual(longs.min(), 320)
        XCTAssertEqual(longs.max(), 640)
    }

    func testNormalizationMatchesHandComputedValues() {
        let image = PixelImage(width: 2, height: 1, channels: 3, pixels: [0, 128, 255, 124, 116, 104])
        let v = Normalization.imageNet.apply(image)
        // (v/255 − mean)/std in Double, then rounded once to Float: (0, 128, 255) and (124, 116, 104) per channel.
        let expected: [Double] = [-2.1179039301310043, 0.20518207282913153, 2.6399999999999997,
                                  0.005565544995290721, -0.004901960784313827, 0.008191721132897456]
        XCTAssertEqual(v, expected.map { Float($0) })
        XCTAssertEqual(Normalization.imageNet.value(255, channel: 0), Float((1 - 0.485) / 0.229))
    }

    func testCropPlacementAndZeroFill() {
        // 7 × 3 image (wider than the 5 crop, shorter than it), values encode position: v = 1 + x + 10y + 100c.
        let (w, h, c) = (7, 3, 2)
        var values = [Float](repeating: 0, count: w * h * c)
        for y in 0..<h { for x in 0..<w { for k in 0..<c { values[(y * w + x) * c + k] = Float(1 + x + 10 * y + 100 * k) } } }
        let crop = RandomCrop(size: 5)
        let p = RandomCrop.Placement(imageLeft: 2, imageTop: 0, containerLeft: 0, containerTop: 1)
        let out = crop.apply(values, width: w, height: h, channels: c, placement: p)
        for k in 0..<c {
            for y in 0..<5 {
                for x in 0..<5 {
                    let expected: Float = (1...3).contains(y) ? Float(1 + (x + 2) + 10 * (y - 1) + 100 * k) : 0
                    XCTAssertEqual(out[(k * 5 + y) * 5 + x], expected, "c\(k) y\(y) x\(x)")
                }
            }
        }
        // Transposed case: narrower (3) than the crop, taller (7) than it.
        let tall = (0..<(3 * 7)).map { Float($0 + 1) }
        let q = RandomCrop.Placement(imageLeft: 0, imageTop: 1, containerLeft: 2, containerTop: 0)
        let out2 = crop.apply(tall, width: 3, height: 7, channels: 1, placement: q)
        for y in 0..<5 {
            for x in 0..<5 { XCTAssertEqual(out2[y * 5 + x], x >= 2 ? Float((y + 1) * 3 + (x - 2) + 1) : 0, "y\(y) x\(x)") }
        }
        // Draws: the long axis gets an image offset in [0, len − size], the short one a container offset in [0, size − len].
        var rng = SeededRandom(seed: 9)
        var seen = (Set<Int>(), Set<Int>(), Set<Int>(), Set<Int>())
        for _ in 0..<500 {
            let a = crop.draw(width: 7, height: 3, rng: &rng)
            XCTAssertEqual([a.containerLeft, a.imageTop], [0, 0])
            seen.0.insert(a.imageLeft); seen.1.insert(a.containerTop)
            let b = crop.draw(width: 3, height: 8, rng: &rng)
            XCTAssertEqual([b.imageLeft, b.containerTop], [0, 0])
            seen.2.insert(b.containerLeft); seen.3.insert(b.imageTop)
        }
        XCTAssertEqual([seen.0, seen.1, seen.2, seen.3], [Set(0...2), Set(0...2), Set(0...2), Set(0...3)])
        let exact = crop.draw(width: 5, height: 5, rng: &rng)
        XCTAssertEqual(exact, RandomCrop.Placement(imageLeft: 0, imageTop: 0, containerLeft: 0, containerTop: 0))
    }

    func testPairResizeIsBitIdenticalToInterpolate() {
        var rng = SeededRandom(seed: 4)
        let crop = (0..<(3 * 512 * 512)).map { _ in rng.nextFloat() * 4 - 2 }
        let ours = PairResize.apply(crop, channels: 3, size: 512, to: 224)
        let reference = interpolate(Tensor(crop, shape: [1, 3, 512, 512]), size: (224, 224), mode: .bilinear).toArray()
        XCTAssertEqual(ours, reference)
        XCTAssertEqual(ours[0], 0.5 * crop[0] + 0.5 * crop[1], accuracy: 2, "sanity: the first tap pair is blended")
        let odd = (0..<(2 * 37 * 37)).map { _ in rng.nextFloat() }
        XCTAssertEqual(PairResize.apply(odd, channels: 2, size: 37, to: 16),
                       interpolate(Tensor(odd, shape: [1, 2, 37, 37]), size: (16, 16), mode: .bilinear).toArray())
    }

    func testFlipMirrorsRows() {
        let image = PixelImage(width: 3, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(HorizontalFlip.apply(image).pixels, [3, 2, 1, 6, 5, 4])
    }

    // MARK: The whole chain

    /// Resize-long, flip, jitter, normalise and crop with fixed draws, against Pillow + numpy doing upstream's steps;
    /// for an image shorter than the crop on one axis and longer on the other, and one larger on both.
    func testFullChainMatchesPillowReference() throws {
        let image = texture(width: 500, height: 375, seed: 21)
        let augmentation = PCTrainAugmentation()
        let draws: [PCTrainAugmentation.Draws] = [
            .init(long: 600, flip: true,
                  jitter: .init(order: [.hue, .brightness, .saturation, .contrast], brightness: 1.21, contrast: 0.77, saturation: 1.1, hue: -0.06),
                  crop: .init(imageLeft: 57, imageTop: 0, containerLeft: 0, containerTop: 31)),
            .init(long: 640, flip: false,
                  jitter: .init(order: [.contrast, .saturation, .hue, .brightness], brightness: 0.72, contrast: 1.3, saturation: 0.7, hue: 0.1),
                  crop: .init(imageLeft: 128, imageTop: 0, containerLeft: 0, containerTop: 32)),
        ]
        let spec = draws.map { d -> [Any] in
            [d.long, d.flip ? 1 : 0, d.jitter.order.map(\.rawValue),
             [d.jitter.brightness, d.jitter.contrast, d.jitter.saturation, d.jitter.hue],
             [d.crop.imageLeft, d.crop.imageTop, d.crop.containerLeft, d.crop.containerTop]]
        }
        let script = """
        mean, std, S = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 512
        for j, (L, flip, order, fs, (il, it, cl, ct)) in enumerate(json.loads(sys.argv[2])):
            im = load('img', 500, 375, 3)
            w, h = im.size
            size = (int(round(w * L / h)), L) if w < h else (L, int(round(h * L / w)))
            im = im.resize(size, R.BICUBIC)
            if flip: im = im.transpose(T.FLIP_LEFT_RIGHT)
            for op in order: im = jitter_op(im, op, fs[op])
            a = np.asarray(im)
            proc = np.empty_like(a, np.float32)
            for k in range(3): proc[..., k] = (a[..., k] / 255. - mean[k]) / std[k]
            ch, cw = min(S, a.shape[0]), min(S, a.shape[1])
            box = np.zeros((S, S, 3), np.float32)
            box[ct:ct + ch, cl:cl + cw] = proc[it:it + ch, il:il + cw]
            np.ascontiguousarray(box.transpose(2, 0, 1)).tofile(d + '/chain_%d.f32' % j)
        """
        let json = String(data: try JSONSerialization.data(withJSONObject: spec), encoding: .utf8)!
        let dir = try runPillow(script, inputs: ["img": image], arguments: [json])
        for (j, d) in draws.enumerated() {
            let (crop, pair) = augmentation.apply(image, draws: d)
            let reference = try floats(dir, "chain_\(j).f32")
            XCTAssertEqual(crop.count, 3 * 512 * 512)
            XCTAssertEqual(pair.count, 3 * 224 * 224)
            let differing = zip(crop, reference).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "chain \(j): \(differing) of \(crop.count) values differ")
            XCTAssertEqual(pair, PairResize.apply(crop, channels: 3, size: 512, to: 224))
        }
    }

    func testChainIsDeterministicPerSeedAndTimesIt() {
        let image = texture(width: 500, height: 375, seed: 2)
        let augmentation = PCTrainAugmentation()
        var a = SeededRandom(seed: 77), b = SeededRandom(seed: 77)
        let first = augmentation.apply(image, rng: &a)
        let second = augmentation.apply(image, rng: &b)
        XCTAssertEqual(first.image, second.image)
        XCTAssertEqual(first.pair, second.pair)
        XCTAssertEqual(a, b, "both streams advanced alike")
        var c = SeededRandom(seed: 78)
        XCTAssertNotEqual(augmentation.apply(image, rng: &c).image, first.image)
        // Timing only (printed, never asserted): run in release for meaningful numbers.
        var rng = SeededRandom(seed: 1)
        let runs = 20
        let start = Date()
        for _ in 0..<runs { _ = augmentation.apply(image, rng: &rng) }
        let perImage = Date().timeIntervalSince(start) / Double(runs)
        print(String(format: "PCTrainAugmentation on 500x375: %.2f ms per image", perImage * 1000))
        func time(_ label: String, _ body: () -> Void) {
            let start = Date()
            for _ in 0..<runs { body() }
            print(String(format: "  %@: %.2f ms", label, Date().timeIntervalSince(start) / Double(runs) * 1000))
        }
        let resized = RandomResizeLong.apply(image, long: 480)
        let parameters = ColorJitter.Parameters(order: ColorJitter.Op.allCases, brightness: 1.1, contrast: 0.9, saturation: 1.2, hue: 0.05)
        let normalized = Normalization.imageNet.apply(resized)
        let placement = RandomCrop.Placement(imageLeft: 0, imageTop: 0, containerLeft: 0, containerTop: 76)
        let cropped = RandomCrop().apply(normalized, width: 480, height: 360, channels: 3, placement: placement)
        time("resize to 480x360") { _ = RandomResizeLong.apply(image, long: 480) }
        time("flip") { _ = HorizontalFlip.apply(resized) }
        for op in ColorJitter.Op.allCases {
            var one = parameters
            one.order = [op]
            time("jitter \(op)") { _ = ColorJitter.apply(resized, one) }
        }
        time("normalise") { _ = Normalization.imageNet.apply(resized) }
        time("crop") { _ = RandomCrop().apply(normalized, width: 480, height: 360, channels: 3, placement: placement) }
        time("pair") { _ = PairResize.apply(cropped, channels: 3, size: 512, to: 224) }
    }
}
