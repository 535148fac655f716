import NN

/// The four ways PCSformer turns the CNN head's map and the transformer's attention into class activation maps
/// (spec §2.5 step 7). With X the head's map (C, P) per sample, Ā = Σ_layers mean_heads A (N, N),
/// R = Ā[1:, 1:] (patch to patch) and a = Ā[0, 1:] (class token row):
///
/// | method | M (C, P) |
/// |---|---|
/// | `convcam` | X |
/// | `clsattn` | M[c, p] = a[p] · X[c, p] |
/// | `transcam` | M = X·Rᵀ (the method PCSformer uses everywhere) |
/// | `attnagg` | M = X·R |
public enum CAMMethod: String, CaseIterable, Sendable {
    case convcam, clsattn, transcam, attnagg

    /// M reshaped to (B, C, h, w) from the head's map (B, C, h, w) and the summed attention (B, N, N).
    func apply(cam map: Tensor, attention: Tensor) -> Tensor {
        let x = map.plain()
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let p = h * w, n = p + 1
        precondition(attention.shape == [b, n, n], "CAM: attention \(attention.shape) for a \(h)x\(w) map")
        if self == .convcam { return x }
        let out = Tensor(shape: x.shape)
        let a = attention.plain()
        for s in 0..<b {
            let xs = x.storage.floats + s * c * p, ys = out.storage.floats + s * c * p
            let attn = a.storage.floats + s * n * n
            switch self {
            case .convcam: // returned above
                break
            case .clsattn:
                for k in 0..<c { for q in 0..<p { ys[k * p + q] = attn[1 + q] * xs[k * p + q] } }
            case .transcam, .attnagg:
                // R = Ā[1:, 1:]; M[k, q] = Σ_r X[k, r] · (transcam ? R[q, r] : R[r, q]).
                let r = Tensor(shape: [p, p])
                for i in 0..<p { for j in 0..<p { r.storage.floats[i * p + j] = attn[(1 + i) * n + 1 + j] } }
                Kernels.matmulRowMajor(xs, r.storage.floats, ys, m: c, k: p, n: p, transposeB: self == .transcam)
            }
        }
        return out
    }
}

/// Sums the head-averaged attention maps of the 12 layers as they are produced, so no layer's map is kept
/// (a 992×736 image has 2,852 tokens: 12 maps would need 390 MB per image, the sum needs 33 MB).
final class AttentionAccumulator {
    private(set) var sum: Tensor!

    func add(_ map: Tensor) {
        let map = map.plain()
        guard let sum else {
            let copy = Tensor(shape: map.shape)
            copy.storage.floats.update(from: map.storage.floats, count: map.elementCount)
            self.sum = copy
            return
        }
        withExtendedLifetime(map) {
            ComputeThreads.parallelRanges(map.elementCount) { r in
                Kernels.addInPlace(sum.storage.floats + r.lowerBound, map.storage.floats + r.lowerBound, count: r.count)
            }
        }
    }
}
