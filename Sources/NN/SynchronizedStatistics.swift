/// Synchronised BatchNorm (PyTorch's `SyncBatchNorm`): in training, every rank normalises with the mean and
/// variance of the global batch, and backward adds the terms that flow through those shared statistics.
///
/// With N values per channel over all ranks, x̂ = (x − μ)/√(σ² + ε), and each rank's own upstream gradient dy:
///
///     forward:  μ = Σ x / N,  σ² = Σ x² / N − μ²            (sums over every rank: one allreduce)
///     backward: dx = γ/√(σ² + ε) · (dy − B/N − x̂·G/N),  B = Σ dy,  G = Σ dy·x̂   (another allreduce)
///
/// oneDNN runs the normalisation itself with these statistics given (`use_global_stats`); its backward then
/// yields γ/√(σ² + ε)·dy and this rank's B and G, and the correction is added here. dγ and dβ stay this rank's
/// sums; the gradient reducer averages them like every other gradient.
extension BatchNorm2d {
    /// The global mean and (biased) variance per channel, and the global count N.
    func synchronizedStatistics(_ x: Tensor, reduce: (inout [Double]) -> Void) -> (Tensor, Tensor, Int) {
        let c = channels
        let plain = Reorder.ensure(x, MemoryDesc.plain(x.shape))
        let (n, spatial) = (x.shape[0], x.shape[2] * x.shape[3])
        var sums = [Double](repeating: 0, count: 2 * c + 1)
        let p = plain.storage.floats
        for b in 0..<n {
            for ch in 0..<c {
                let base = (b * c + ch) * spatial
                var s1 = 0.0, s2 = 0.0
                for i in 0..<spatial {
                    let v = Double(p[base + i])
                    s1 += v
                    s2 += v * v
                }
                sums[ch] += s1
                sums[c + ch] += s2
            }
        }
        sums[2 * c] = Double(n * spatial)
        reduce(&sums)
        let total = sums[2 * c]
        let mean = Tensor((0..<c).map { Float(sums[$0] / total) }, shape: [c])
        let variance = Tensor((0..<c).map { ch -> Float in
            let m = sums[ch] / total
            return Float(max(sums[c + ch] / total - m * m, 0))
        }, shape: [c])
        return (mean, variance, Int(total))
    }

    /// dx from oneDNN's `dxGiven` = γ/√(σ² + ε)·dy and this rank's dγ (= Σ dy·x̂) and dβ (= Σ dy); plain layout.
    /// Static, so that backward closures call it without holding the layer.
    static func synchronizedInputGradient(_ dxGiven: Tensor, x: Tensor, weight: Tensor, eps: Float, mean: Tensor, variance: Tensor,
                                          dW: Tensor, dB: Tensor, count: Int, reduce: (inout [Double]) -> Void) -> Tensor {
        let c = x.shape[1]
        var sums = dW.toArray().map(Double.init) + dB.toArray().map(Double.init)
        reduce(&sums)
        let dx = Reorder.convert(dxGiven, to: MemoryDesc.plain(x.shape))
        let xp = Reorder.ensure(x, MemoryDesc.plain(x.shape))
        let (n, spatial) = (x.shape[0], x.shape[2] * x.shape[3])
        let gamma = weight.toArray(), mu = mean.toArray(), sigma2 = variance.toArray()
        let d = dx.storage.floats, v = xp.storage.floats
        for ch in 0..<c {
            let invStd = 1 / (Double(sigma2[ch]) + Double(eps)).squareRoot()
            let scale = Double(gamma[ch]) * invStd / Double(count)
            let (g, b) = (sums[ch], sums[c + ch])
            for s in 0..<n {
                let base = (s * c + ch) * spatial
                for i in 0..<spatial {
                    let xhat = (Double(v[base + i]) - Double(mu[ch])) * invStd
                    d[base + i] -= Float(scale * (b + xhat * g))
                }
            }
        }
        return dx
    }
}
