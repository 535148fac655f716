/// The jet colour map (matplotlib's segment data, which OpenCV's COLORMAP_JET follows): dark blue at 0 through
/// cyan, yellow and red to dark red at 255. Used for CAM heatmaps.
public enum JetColormap {
    /// RGB in 0…1 of `level` / 255, piecewise linear between the segment points.
    public static func rgb(_ level: UInt8) -> [Float] { table[Int(level)] }

    private static let table: [[Float]] = (0..<256).map { level in
        let x = Float(level) / 255
        func ramp(_ points: [(Float, Float)]) -> Float {
            for j in 1..<points.count where x <= points[j].0 {
                let (x0, y0) = points[j - 1], (x1, y1) = points[j]
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            }
            return points.last!.1
        }
        return [ramp([(0, 0), (0.35, 0), (0.66, 1), (0.89, 1), (1, 0.5)]),
                ramp([(0, 0), (0.125, 0), (0.375, 1), (0.64, 1), (0.91, 0), (1, 0)]),
                ramp([(0, 0.5), (0.11, 1), (0.34, 1), (0.65, 0), (1, 0)])]
    }
}
