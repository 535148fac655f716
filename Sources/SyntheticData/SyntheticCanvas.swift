/// Pixel-level drawing for the synthetic dataset: rasterising shapes, painting them, the cluttered background and
/// the blurs and noise fields the saliency map is made of.
///
/// Rules:
/// - Canvases are row-major `[Float]` in [0, 1] (RGB canvases interleaved HWC); quantisation to bytes happens once, at the end.
/// - A shape's coverage is counted on a 2×2 grid of samples per pixel (0…4). Painting blends by coverage/4 so edges
///   are softly anti-aliased, while the crisp footprint used by the mask is "at least 2 of 4 samples inside".
/// - Hot loops run over unsafe buffers with no per-pixel allocation or closure call.
import Foundation
import NN
import NN

/// Where a shape sits in the image. The local frame is the shape's own: rotated by `angle`, scaled so `radius` pixels is 1.
struct SyntheticPlacement {
    var shape: SyntheticShape
    var centerX: Float
    var centerY: Float
    var radius: Float
    var angle: Float

    /// Coefficients of the pixel → local map: local = (a·dx + b·dy, −b·dx + a·dy) with d the offset from the centre.
    var frame: (a: Float, b: Float) { (cos(angle) / radius, sin(angle) / radius) }
}

/// The coverage of one placed shape over its pixel box (clipped to the image; half-open `x0..<x1`, `y0..<y1`).
struct SyntheticRaster {
    let x0: Int, y0: Int, x1: Int, y1: Int
    /// Samples inside the shape per pixel of the box, 0…4, row-major over the box.
    let coverage: [UInt8]
    /// Pixels whose coverage is at least ``solidCoverage``: the footprint before any occlusion.
    let solidPixelCount: Int

    /// The coverage from which a pixel belongs to the shape in the (crisp) mask.
    static let solidCoverage: UInt8 = 2

    var boxWidth: Int { x1 - x0 }

    init(_ placement: SyntheticPlacement, width: Int, height: Int) {
        let reach = SyntheticShape.boundingRadius * placement.radius + 1
        x0 = max(0, Int((placement.centerX - reach).rounded(.down)))
        y0 = max(0, Int((placement.centerY - reach).rounded(.down)))
        x1 = max(x0, min(width, Int((placement.centerX + reach).rounded(.up)) + 1))
        y1 = max(y0, min(height, Int((placement.centerY + reach).rounded(.up)) + 1))
        let boxWidth = x1 - x0
        var coverage = [UInt8](repeating: 0, count: boxWidth * (y1 - y0))
        var solid = 0
        let tester = SyntheticShapeTester(placement.shape)
        let (a, b) = placement.frame
        let cx = placement.centerX, cy = placement.centerY
        let (x0, y0, x1, y1) = (self.x0, self.y0, self.x1, self.y1)
        coverage.withUnsafeMutableBufferPointer { out in
            for y in y0..<y1 {
                let dyTop = Float(y) + 0.25 - cy, dyBottom = dyTop + 0.5
                let row = (y - y0) * boxWidth
                for x in x0..<x1 {
                    let dxLeft = Float(x) + 0.25 - cx, dxRight = dxLeft + 0.5
                    var count: UInt8 = 0
                    if tester.contains(a * dxLeft + b * dyTop, a * dyTop - b * dxLeft) { count += 1 }
                    if tester.contains(a * dxRight + b * dyTop, a * dyTop - b * dxRight) { count += 1 }
                    if tester.contains(a * dxLeft + b * dyBottom, a * dyBottom - b * dxLeft) { count += 1 }
                    if tester.contains(a * dxRight + b * dyBottom, a * dyBottom - b * dxRight) { count += 1 }
                    out[row + x - x0] = count
                    if count >= Self.solidCoverage { solid += 1 }
                }
            }
        }
        self.coverage = coverage
        self.solidPixelCount = solid
    }
}

enum SyntheticCanvas {
    /// Blends `color`, darkened by `texture` in the shape's local frame, over `rgb` wherever the raster covers it.
    static func paint(
        _ raster: SyntheticRaster, of placement: SyntheticPlacement, color: SIMD3<Float>,
        texture: SyntheticTexture, into rgb: inout [Float], width: Int
    ) {
        let (a, b) = placement.frame
        let cx = placement.centerX, cy = placement.centerY
        let depth = SyntheticTexture.shadeDepth
        raster.coverage.withUnsafeBufferPointer { coverage in
            rgb.withUnsafeMutableBufferPointer { out in
                for y in raster.y0..<raster.y1 {
                    let dy = Float(y) + 0.5 - cy
                    let row = (y - raster.y0) * raster.boxWidth
                    for x in raster.x0..<raster.x1 {
                        let count = coverage[row + x - raster.x0]
                        if count == 0 { continue }
                        let dx = Float(x) + 0.5 - cx
                        let shade = texture.shade(a * dx + b * dy, a * dy - b * dx)
                        let local = color * (1 - depth * shade)
                        let alpha = Float(count) * 0.25
                        let p = (y * width + x) * 3
                        out[p] += (local.x - out[p]) * alpha
                        out[p + 1] += (local.y - out[p + 1]) * alpha
                        out[p + 2] += (local.z - out[p + 2]) * alpha
                    }
                }
            }
        }
    }

    /// Fills `rgb` (HWC, width·height·3) with clutter: a desaturated base colour, a linear gradient, smooth value
    /// noise in brightness and tint, then low-contrast soft blobs and thin lines. Contrasts stay low so that objects,
    /// which are saturated and textured, remain the salient thing in the image.
    static func paintBackground(into rgb: inout [Float], width: Int, height: Int, random: inout SeededRandom) {
        let shortSide = Float(min(width, height))
        let base = SyntheticColor.rgb(
            hueDegrees: Float.random(in: 0..<360, using: &random),
            saturation: Float.random(in: 0.04...0.22, using: &random),
            value: Float.random(in: 0.35...0.7, using: &random))
        let gradientAngle = Float.random(in: 0..<(2 * .pi), using: &random)
        let gradientStrength = Float.random(in: 0.04...0.12, using: &random)
        let gx = cos(gradientAngle) * gradientStrength / Float(width)
        let gy = sin(gradientAngle) * gradientStrength / Float(height)
        let brightness = noiseField(width: width, height: height, cellsAcross: 6, random: &random)
        let tint = noiseField(width: width, height: height, cellsAcross: 4, random: &random)
        let halfWidth = Float(width) / 2, halfHeight = Float(height) / 2
        rgb.withUnsafeMutableBufferPointer { out in
            brightness.withUnsafeBufferPointer { brightness in
                tint.withUnsafeBufferPointer { tint in
                    for y in 0..<height {
                        for x in 0..<width {
                            let i = y * width + x
                            let lift = 0.1 * brightness[i] + gx * (Float(x) - halfWidth) + gy * (Float(y) - halfHeight)
                            let warm = 0.04 * tint[i]
                            out[3 * i] = base.x + lift + warm
                            out[3 * i + 1] = base.y + lift
                            out[3 * i + 2] = base.z + lift - warm
                        }
                    }
                }
            }
        }
        for _ in 0..<Int.random(in: 6...14, using: &random) {
            let delta = Float.random(in: -0.09...0.09, using: &random)
            let tilt = SIMD3<Float>(repeating: delta) + SIMD3(
                Float.random(in: -0.03...0.03, using: &random), Float.random(in: -0.03...0.03, using: &random),
                Float.random(in: -0.03...0.03, using: &random))
            paintSoftEllipse(
                centerX: Float.random(in: 0..<Float(width), using: &random),
                centerY: Float.random(in: 0..<Float(height), using: &random),
                radiusX: shortSide * Float.random(in: 0.05...0.2, using: &random),
                radiusY: shortSide * Float.random(in: 0.05...0.2, using: &random),
                delta: tilt, into: &rgb, width: width, height: height)
        }
        for _ in 0..<Int.random(in: 3...8, using: &random) {
            paintLine(
                from: (Float.random(in: 0..<Float(width), using: &random), Float.random(in: 0..<Float(height), using: &random)),
                to: (Float.random(in: 0..<Float(width), using: &random), Float.random(in: 0..<Float(height), using: &random)),
                halfThickness: Float.random(in: 0.5...1.5, using: &random),
                delta: Float.random(in: -0.1...0.1, using: &random), into: &rgb, width: width, height: height)
        }
    }

    /// Adds `delta` to an axis-aligned ellipse whose edge fades out over the outer 30 % of its radius.
    static func paintSoftEllipse(
        centerX: Float, centerY: Float, radiusX: Float, radiusY: Float, delta: SIMD3<Float>,
        into rgb: inout [Float], width: Int, height: Int
    ) {
        let xs = max(0, Int(centerX - radiusX))..<max(0, min(width, Int(centerX + radiusX) + 1))
        let ys = max(0, Int(centerY - radiusY))..<max(0, min(height, Int(centerY + radiusY) + 1))
        rgb.withUnsafeMutableBufferPointer { out in
            for y in ys {
                let ny = (Float(y) + 0.5 - centerY) / radiusY
                for x in xs {
                    let nx = (Float(x) + 0.5 - centerX) / radiusX
                    let distance = (nx * nx + ny * ny).squareRoot()
                    let alpha = min(1, max(0, (1 - distance) / 0.3))
                    if alpha == 0 { continue }
                    let p = (y * width + x) * 3
                    out[p] += delta.x * alpha
                    out[p + 1] += delta.y * alpha
                    out[p + 2] += delta.z * alpha
                }
            }
        }
    }

    /// Adds `delta` (grey) along a segment, with a one-pixel linear falloff at its sides.
    static func paintLine(
        from start: (Float, Float), to end: (Float, Float), halfThickness: Float, delta: Float,
        into rgb: inout [Float], width: Int, height: Int
    ) {
        let reach = halfThickness + 1
        let xs = max(0, Int(min(start.0, end.0) - reach))..<max(0, min(width, Int(max(start.0, end.0) + reach) + 1))
        let ys = max(0, Int(min(start.1, end.1) - reach))..<max(0, min(height, Int(max(start.1, end.1) + reach) + 1))
        let ex = end.0 - start.0, ey = end.1 - start.1
        let lengthSquared = max(1e-6, ex * ex + ey * ey)
        rgb.withUnsafeMutableBufferPointer { out in
            for y in ys {
                for x in xs {
                    let px = Float(x) + 0.5 - start.0, py = Float(y) + 0.5 - start.1
                    let t = min(1, max(0, (px * ex + py * ey) / lengthSquared))
                    let qx = px - t * ex, qy = py - t * ey
                    let alpha = min(1, max(0, halfThickness + 0.5 - (qx * qx + qy * qy).squareRoot()))
                    if alpha == 0 { continue }
                    let p = (y * width + x) * 3
                    out[p] += delta * alpha
                    out[p + 1] += delta * alpha
                    out[p + 2] += delta * alpha
                }
            }
        }
    }

    /// Smooth value noise in [−1, 1]: random values on a coarse grid (`cellsAcross` cells along the longer side),
    /// smoothstep-interpolated to every pixel.
    static func noiseField(width: Int, height: Int, cellsAcross: Int, random: inout SeededRandom) -> [Float] {
        let longSide = Float(max(width, height))
        let cellsX = max(1, Int((Float(cellsAcross) * Float(width) / longSide).rounded()))
        let cellsY = max(1, Int((Float(cellsAcross) * Float(height) / longSide).rounded()))
        let nodesX = cellsX + 1
        var nodes = [Float](repeating: 0, count: nodesX * (cellsY + 1))
        for k in nodes.indices { nodes[k] = Float.random(in: -1...1, using: &random) }
        // Per-column cell index and weight, so the pixel loop only multiplies and adds.
        var columnCell = [Int](repeating: 0, count: width)
        var columnWeight = [Float](repeating: 0, count: width)
        for x in 0..<width {
            let g = (Float(x) + 0.5) / Float(width) * Float(cellsX)
            let cell = min(cellsX - 1, Int(g))
            let f = g - Float(cell)
            columnCell[x] = cell
            columnWeight[x] = f * f * (3 - 2 * f)
        }
        var field = [Float](repeating: 0, count: width * height)
        field.withUnsafeMutableBufferPointer { out in
            for y in 0..<height {
                let g = (Float(y) + 0.5) / Float(height) * Float(cellsY)
                let cell = min(cellsY - 1, Int(g))
                let f = g - Float(cell)
                let wy = f * f * (3 - 2 * f)
                let top = cell * nodesX, bottom = top + nodesX
                for x in 0..<width {
                    let c = columnCell[x], wx = columnWeight[x]
                    let upper = nodes[top + c] + (nodes[top + c + 1] - nodes[top + c]) * wx
                    let lower = nodes[bottom + c] + (nodes[bottom + c + 1] - nodes[bottom + c]) * wx
                    out[y * width + x] = upper + (lower - upper) * wy
                }
            }
        }
        return field
    }

    /// In-place separable box blur with edge clamping; two passes approximate a Gaussian of σ ≈ radius·0.8.
    static func boxBlur(_ image: inout [Float], width: Int, height: Int, radius: Int, passes: Int) {
        guard radius > 0 else { return }
        var line = [Float](repeating: 0, count: max(width, height))
        let norm = 1 / Float(2 * radius + 1)
        for _ in 0..<passes {
            image.withUnsafeMutableBufferPointer { img in
                line.withUnsafeMutableBufferPointer { line in
                    for y in 0..<height {
                        blurLine(img, start: y * width, stride: 1, count: width, radius: radius, norm: norm, scratch: line)
                    }
                    for x in 0..<width {
                        blurLine(img, start: x, stride: width, count: height, radius: radius, norm: norm, scratch: line)
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func blurLine(
        _ img: UnsafeMutableBufferPointer<Float>, start: Int, stride: Int, count: Int, radius: Int, norm: Float,
        scratch: UnsafeMutableBufferPointer<Float>
    ) {
        for i in 0..<count { scratch[i] = img[start + i * stride] }
        var sum: Float = 0
        for k in -radius...radius { sum += scratch[min(count - 1, max(0, k))] }
        for i in 0..<count {
            img[start + i * stride] = sum * norm
            sum += scratch[min(count - 1, i + radius + 1)] - scratch[max(0, i - radius)]
        }
    }
}
