/// The shape families, textures and per-class looks of the synthetic dataset.
///
/// Rules:
/// - Every class owns one shape family, one texture and one colour; no two classes share a shape family, so shape
///   alone separates any two classes, and colour plus texture make the cue redundant (a small network trained on
///   image-level labels only learns fast).
/// - Distractor families (``SyntheticShape/blob``, ``SyntheticShape/bar``, ``SyntheticShape/wave``) belong to no class
///   and contain no class shape as a part (a cluster of discs, say, would teach "disc" from distractors).
/// - Shapes live in a local frame where the object's radius is 1: every class shape fits inside the disc of radius
///   ``SyntheticShape/boundingRadius`` around the local origin, so a placement's pixel box is `centre ± boundingRadius·radius`.
/// - Rotations stay small (see the layout code) because square/diamond and triangle/house would otherwise blur together.
import Foundation

/// A shape family in the local frame (x right, y down, object radius 1).
enum SyntheticShape: Sendable, Equatable {
    case disc, square, triangle, star, ring, cross, diamond, hexagon, ellipse, crescent
    case heart, arrow, hourglass, tee, ell, sparkle, semicircle, trapezoid, house, frame
    /// A smooth irregular lobed blob; the four numbers are the cos/sin weights of its 3rd and 5th harmonics.
    case blob(Float, Float, Float, Float)
    /// A long thin rectangle.
    case bar
    /// A thick wavy stroke.
    case wave

    /// Every point of every shape lies within this distance of the local origin.
    static let boundingRadius: Float = 1.15

    /// The outline of the polygon families, in the local frame; nil for shapes tested analytically.
    var polygon: [SIMD2<Float>]? {
        switch self {
        case .triangle: return Self.regularPolygon(sides: 3, radius: 1, startDegrees: -90)
        case .hexagon: return Self.regularPolygon(sides: 6, radius: 1, startDegrees: 0)
        case .star: return Self.starPolygon(points: 5, outer: 1, inner: 0.45)
        case .sparkle: return Self.starPolygon(points: 4, outer: 1, inner: 0.28)
        case .arrow:
            return [[-0.95, -0.25], [0.15, -0.25], [0.15, -0.75], [1, 0], [0.15, 0.75], [0.15, 0.25], [-0.95, 0.25]]
        case .hourglass:
            return [[-0.85, -0.9], [0.85, -0.9], [0.18, 0], [0.85, 0.9], [-0.85, 0.9], [-0.18, 0]]
        case .tee:
            return [[-0.95, -0.85], [0.95, -0.85], [0.95, -0.4], [0.25, -0.4], [0.25, 0.95], [-0.25, 0.95], [-0.25, -0.4], [-0.95, -0.4]]
        case .ell:
            return [[-0.75, -0.95], [-0.25, -0.95], [-0.25, 0.45], [0.85, 0.45], [0.85, 0.95], [-0.75, 0.95]]
        case .trapezoid: return [[-0.5, -0.7], [0.5, -0.7], [1, 0.7], [-1, 0.7]]
        case .house: return [[0, -1], [0.85, -0.2], [0.85, 0.9], [-0.85, 0.9], [-0.85, -0.2]]
        default: return nil
        }
    }

    static func regularPolygon(sides: Int, radius: Float, startDegrees: Float) -> [SIMD2<Float>] {
        (0..<sides).map { k in
            let angle = (startDegrees + Float(k) * 360 / Float(sides)) * .pi / 180
            return SIMD2(radius * cos(angle), radius * sin(angle))
        }
    }

    static func starPolygon(points: Int, outer: Float, inner: Float) -> [SIMD2<Float>] {
        (0..<(2 * points)).map { k in
            let angle = -Float.pi / 2 + Float(k) * .pi / Float(points)
            let r = k.isMultiple(of: 2) ? outer : inner
            return SIMD2(r * cos(angle), r * sin(angle))
        }
    }
}

/// A shape resolved once per placement so the per-sample inside test does no lookups or allocations.
struct SyntheticShapeTester {
    let shape: SyntheticShape
    let polygon: [SIMD2<Float>]

    init(_ shape: SyntheticShape) {
        self.shape = shape
        self.polygon = shape.polygon ?? []
    }

    /// Whether local point (x, y) is inside the shape.
    @inline(__always)
    func contains(_ x: Float, _ y: Float) -> Bool {
        if !polygon.isEmpty { return Self.polygonContains(polygon, x, y) }
        let r2 = x * x + y * y
        switch shape {
        case .disc: return r2 <= 1
        case .square: return abs(x) <= 0.78 && abs(y) <= 0.78
        case .ring: return r2 <= 1 && r2 >= 0.25
        case .cross: return (abs(x) <= 0.3 && abs(y) <= 0.95) || (abs(y) <= 0.3 && abs(x) <= 0.95)
        case .diamond: return abs(x) / 0.72 + abs(y) <= 1
        case .ellipse: return x * x + (y * y) / 0.3 <= 1
        case .crescent:
            let dx = x - 0.45, dy = y + 0.15
            return r2 <= 1 && dx * dx + dy * dy >= 0.72
        case .heart:
            let hx = x * 1.15, hy = 0.25 - y * 1.15
            let s = hx * hx + hy * hy - 1
            return s * s * s - hx * hx * hy * hy * hy <= 0
        case .semicircle: return r2 <= 1 && y <= 0.3
        case .frame:
            let m = max(abs(x), abs(y))
            return m <= 0.85 && m >= 0.42
        case let .blob(c3, s3, c5, s5):
            guard r2 > 1e-8 else { return true }
            // Harmonics from cos/sin of the polar angle via multiple-angle identities: no atan2 in the hot loop.
            let rho = r2.squareRoot()
            let c = x / rho, s = y / rho
            let cos3 = 4 * c * c * c - 3 * c, sin3 = 3 * s - 4 * s * s * s
            let c2 = c * c, s2 = s * s
            let cos5 = c * (16 * c2 * c2 - 20 * c2 + 5), sin5 = s * (16 * s2 * s2 - 20 * s2 + 5)
            let radius = 0.72 + c3 * cos3 + s3 * sin3 + c5 * cos5 + s5 * sin5
            return rho <= radius
        case .bar: return abs(x) <= 1 && abs(y) <= 0.2
        case .wave: return abs(x) <= 1 && abs(y - 0.35 * sin(4.7 * x)) <= 0.17
        default: return false
        }
    }

    /// Even-odd crossing test.
    @inline(__always)
    static func polygonContains(_ p: [SIMD2<Float>], _ x: Float, _ y: Float) -> Bool {
        var inside = false
        var j = p.count - 1
        for i in 0..<p.count {
            let a = p[i], b = p[j]
            if (a.y > y) != (b.y > y) {
                let crossX = a.x + (y - a.y) * (b.x - a.x) / (b.y - a.y)
                if x < crossX { inside.toggle() }
            }
            j = i
        }
        return inside
    }
}

/// A surface pattern in the local frame, so it scales and rotates with its object.
enum SyntheticTexture: Int, Sendable, CaseIterable {
    case solid, stripes, diagonalStripes, dots, checker, gradient, rings, grid

    /// How strongly the pattern darkens the base colour at full shade.
    static let shadeDepth: Float = 0.5

    /// Shade in [0, 1] at local point (x, y): 0 keeps the base colour, 1 darkens it by ``shadeDepth``.
    @inline(__always)
    func shade(_ x: Float, _ y: Float) -> Float {
        switch self {
        case .solid: return 0
        case .stripes: return Self.fraction(y * 2.2) < 0.5 ? 1 : 0
        case .diagonalStripes: return Self.fraction((x + y) * 1.6) < 0.5 ? 1 : 0
        case .dots:
            let fx = Self.fraction(x * 2.4) - 0.5, fy = Self.fraction(y * 2.4) - 0.5
            return fx * fx + fy * fy < 0.09 ? 1 : 0
        case .checker:
            let parity = Int((x * 2.2 + 16).rounded(.down)) + Int((y * 2.2 + 16).rounded(.down))
            return parity & 1 == 0 ? 1 : 0
        case .gradient: return min(1, max(0, (y + 1) * 0.5))
        case .rings: return Self.fraction((x * x + y * y).squareRoot() * 3) < 0.5 ? 1 : 0
        case .grid: return Self.fraction(x * 2.5) < 0.28 || Self.fraction(y * 2.5) < 0.28 ? 1 : 0
        }
    }

    /// Fractional part that is also correct for negative inputs.
    @inline(__always)
    static func fraction(_ t: Float) -> Float { t - t.rounded(.down) }
}

/// The fixed look of one class: shape family, texture and base colour (linear-ish RGB in [0, 1]).
struct SyntheticClassStyle: Sendable {
    let shape: SyntheticShape
    let texture: SyntheticTexture
    let hueDegrees: Float
    let saturation: Float
    let value: Float
    var color: SIMD3<Float> { SyntheticColor.rgb(hueDegrees: hueDegrees, saturation: saturation, value: value) }

    /// One style per PASCAL VOC class, in VOC order. Hues step by the golden angle (137.5°) so any prefix of the
    /// table (a run with fewer classes) still has well-spread colours. Golden-angle steps of 8 and 13 classes land
    /// only 20° and 12.5° apart in hue, so those pairs get opposite brightness (the graph of such pairs is
    /// bipartite; ``brightClasses`` is one side of it).
    static let brightClasses: Set<Int> = [0, 1, 5, 6, 10, 11, 12, 15, 16, 17]

    static let table: [SyntheticClassStyle] = {
        // Textures were chosen so that no two classes within 60° of hue share one.
        let looks: [(SyntheticShape, SyntheticTexture)] = [
            (.triangle, .solid),            // aeroplane
            (.ring, .stripes),              // bicycle
            (.star, .diagonalStripes),      // bird
            (.crescent, .dots),             // boat
            (.ellipse, .checker),           // bottle
            (.square, .gradient),           // bus
            (.hexagon, .rings),             // car
            (.disc, .grid),                 // cat
            (.cross, .stripes),             // chair
            (.diamond, .solid),             // cow
            (.trapezoid, .dots),            // diningtable
            (.heart, .diagonalStripes),     // dog
            (.arrow, .gradient),            // horse
            (.hourglass, .checker),         // motorbike
            (.tee, .grid),                  // person
            (.ell, .rings),                 // pottedplant
            (.sparkle, .grid),              // sheep
            (.semicircle, .diagonalStripes), // sofa
            (.house, .stripes),             // train
            (.frame, .checker),             // tvmonitor
        ]
        return looks.enumerated().map { k, look in
            let bright = brightClasses.contains(k)
            return SyntheticClassStyle(
                shape: look.0, texture: look.1,
                hueDegrees: (Float(k) * 137.5).truncatingRemainder(dividingBy: 360),
                saturation: bright ? 0.85 : 0.95, value: bright ? 0.95 : 0.72)
        }
    }()
}

enum SyntheticColor {
    /// HSV → RGB, all components in [0, 1] except hue in degrees.
    static func rgb(hueDegrees: Float, saturation: Float, value: Float) -> SIMD3<Float> {
        let h = (hueDegrees.truncatingRemainder(dividingBy: 360) + 360).truncatingRemainder(dividingBy: 360) / 60
        let sector = min(5, Int(h))
        let f = h - Float(sector)
        let p = value * (1 - saturation)
        let q = value * (1 - saturation * f)
        let t = value * (1 - saturation * (1 - f))
        switch sector {
        case 0: return [value, t, p]
        case 1: return [q, value, p]
        case 2: return [p, value, t]
        case 3: return [p, q, value]
        case 4: return [t, p, value]
        default: return [value, p, q]
        }
    }
}
