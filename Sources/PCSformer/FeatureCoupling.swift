import NN

/// FCUDown (`squeeze_block`, spec §2.5 step 4.2): CNN feature map → patch tokens, with the class token prepended.
///
///     s = GELU(LN(AvgPool_dw(Conv1×1(x2))))     x2 (B, m, H, W) → (B, P, C), P = (H/dw)·(W/dw)
///     out = [cls; s]                            (B, 1 + P, C), cls = the current class token x_t[:, 0]
public final class FeatureDown: Module {
    public let project: Conv2d
    public let norm: LayerNorm
    public let dw: Int

    public init(channels m: Int, embedDim: Int, dw: Int, rng: inout SeededRandom) {
        project = Conv2d(m, embedDim, kernel: 1, rng: &rng)
        norm = LayerNorm(embedDim, eps: 1e-6)
        self.dw = dw
    }

    public func callAsFunction(_ x2: Tensor, classToken: Tensor) -> Tensor {
        var y = project(x2)
        if dw > 1 { y = avgPool2d(y, kernel: dw, stride: dw) }
        let (b, c) = (y.shape[0], y.shape[1])
        let tokens = permute(y.plain().reshaped([b, c, y.shape[2] * y.shape[3]]), [0, 2, 1])
        return concat([classToken, gelu(norm(tokens))], axis: 1)
    }

    public var children: [(name: String, module: Module)] { [("conv_project", project), ("ln", norm)] }
}

/// FCUUp (`expand_block`, spec §2.5 step 4.4): patch tokens → CNN feature map.
///
///     r = tokens without the class token, as (B, C, h, w)
///     out = NearestUp_dw(ReLU(BN(Conv1×1(r))))   (B, m, h·dw, w·dw)
public final class FeatureUp: Module {
    public let project: Conv2d
    public let bn: BatchNorm2d
    public let dw: Int

    public init(channels m: Int, embedDim: Int, dw: Int, rng: inout SeededRandom) {
        project = Conv2d(embedDim, m, kernel: 1, rng: &rng)
        bn = BatchNorm2d(m, eps: 1e-6)
        self.dw = dw
    }

    public func callAsFunction(_ tokens: Tensor, h: Int, w: Int) -> Tensor {
        let (b, n, c) = (tokens.shape[0], tokens.shape[1], tokens.shape[2])
        precondition(n == h * w + 1, "FeatureUp: \(n) tokens for a \(h)x\(w) grid plus the class token")
        let grid = permute(slice(tokens, axis: 1, range: 1..<n), [0, 2, 1]).reshaped([b, c, h, w])
        let y = bn(project(grid), relu: true)
        return dw > 1 ? interpolate(y, size: (h * dw, w * dw), mode: .nearest) : y
    }

    public var children: [(name: String, module: Module)] { [("conv_project", project), ("bn", bn)] }
}
