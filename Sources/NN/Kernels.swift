/// The few hot loops oneDNN has no primitive for. Plain loops over raw pointers, written so the compiler
/// vectorises them; everything else goes through oneDNN.
public enum Kernels {
    /// a[i] += b[i]
    @inline(__always)
    public static func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }

    /// a[i] *= s
    @inline(__always)
    public static func scaleInPlace(_ a: UnsafeMutablePointer<Float>, _ s: Float, count: Int) {
        for i in 0..<count { a[i] *= s }
    }

    /// Sum of the rows of a (rows × cols) row-major matrix into `out` (cols), accumulated in Double.
    public static func columnSums(_ a: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        var acc = [Double](repeating: 0, count: cols)
        acc.withUnsafeMutableBufferPointer { s in
            for r in 0..<rows {
                let row = a + r * cols
                for c in 0..<cols { s[c] += Double(row[c]) }
            }
            for c in 0..<cols { out[c] = Float(s[c]) }
        }
    }
}

extension Kernels {
    /// One AdamW update over a parameter (see `AdamW` for the formula).
    public static func adamW(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                             _ v: UnsafeMutablePointer<Float>, count: Int, lr: Float, weightDecay: Float, beta1: Float,
                             beta2: Float, eps: Float, stepSize: Float, sqrtBiasCorrection2: Float) {
        let decay = 1 - lr * weightDecay
        for i in 0..<count {
            let gi = g[i]
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            p[i] = p[i] * decay - stepSize * m[i] / (v[i].squareRoot() / sqrtBiasCorrection2 + eps)
        }
    }
}
