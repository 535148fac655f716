import CDNNL

/// Runs oneDNN's matmul C = A·B (+ bias) on plain buffers, where A is (M, K), B is (K, N), C is (M, N), and each
/// operand may be a transposed view (`transposeA`: A is stored as (K, M) row-major; `transposeB`: B is stored as
/// (N, K) row-major, which is how a PyTorch `Linear` keeps its weight). Primitives are cached per shape.
func matmul(_ a: UnsafeMutableRawPointer, _ b: UnsafeMutableRawPointer, _ c: UnsafeMutableRawPointer,
            bias: UnsafeMutableRawPointer? = nil, m: Int, k: Int, n: Int, transposeA: Bool = false, transposeB: Bool = false) {
    let key = "matmul\(m)x\(k)x\(n)\(transposeA)\(transposeB)\(bias != nil)"
    let primitive = PrimitiveCache.primitive(key) {
        var aMD = transposeA ? MemoryDesc.strided([m, k], strides: [1, m]) : MemoryDesc.plain([m, k])
        var bMD = transposeB ? MemoryDesc.strided([k, n], strides: [1, k]) : MemoryDesc.plain([k, n])
        var cMD = MemoryDesc.plain([m, n])
        var biasMD = bias != nil ? MemoryDesc.plain([1, n]) : dnnl_memory_desc_t()
        var desc = dnnl_matmul_desc_t()
        dnnlCheck(dnnl_matmul_desc_init(&desc, &aMD, &bMD, &biasMD, &cMD), "describe \(key)")
        return makePrimitiveDesc(&desc, key)
    }
    var args: [(Int32, UnsafeMutableRawPointer)] = [(DNNL_ARG_SRC, a), (DNNL_ARG_WEIGHTS, b), (DNNL_ARG_DST, c)]
    if let bias { args.append((DNNL_ARG_BIAS, bias)) }
    primitive.execute(args)
    FlopCounter.add(2 * Double(m) * Double(k) * Double(n))
}

/// y = x·Wᵀ + b over the last dimension, as PyTorch's `F.linear`.
///
/// Shapes: x (…, K) plain, weight (O, K), bias (O), y (…, O). The leading dimensions are flattened into
/// M = ∏ rows, which costs nothing for plain tensors.
///
/// Backward: dx = dy·W (M×O · O×K), dW = dyᵀ·x (O×M · M×K, dy read transposed in place), db = Σ_rows dy.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let (o, k) = (weight.shape[0], weight.shape[1])
    precondition(weight.shape.count == 2 && x.shape.last == k, "linear: input \(x.shape) does not match weight \(weight.shape)")
    precondition(bias == nil || bias!.shape == [o], "linear: bias \(bias!.shape) for weight \(weight.shape)")
    let x = x.plain()
    let m = x.elementCount / k
    let yShape = Array(x.shape.dropLast()) + [o]
    let y = Tensor(shape: yShape)
    matmul(x.storage.data, weight.storage.data, y.storage.data, bias: bias?.storage.data, m: m, k: k, n: o, transposeB: true)
    guard Autograd.needsGrad(x, weight, bias) else { return y }
    Autograd.record(y) { dy in
        let dy = dy.plain()
        if x.requiresGrad {
            let dx = Tensor(shape: x.shape)
            matmul(dy.storage.data, weight.storage.data, dx.storage.data, m: m, k: o, n: k)
            x.accumulateGrad(dx)
        }
        if weight.requiresGrad {
            let dW = Tensor(shape: weight.shape)
            matmul(dy.storage.data, x.storage.data, dW.storage.data, m: o, k: m, n: k, transposeA: true)
            weight.accumulateGrad(dW)
        }
        if let bias, bias.requiresGrad {
            let dB = Tensor(shape: bias.shape)
            Kernels.columnSums(dy.storage.floats, rows: m, cols: o, into: dB.storage.floats)
            bias.accumulateGrad(dB)
        }
    }
    return y
}

/// A fully connected layer with PyTorch's parameter names (`weight` (O, K), `bias` (O)).
public final class Linear {
    public let weight: Tensor
    public let bias: Tensor?

    /// Weights truncated-normal (σ = 0.02) and bias zero, as spec §2.6 initialises the transformer's linears.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout SeededRandom) {
        weight = Initializers.truncatedNormal([outFeatures, inFeatures], std: 0.02, rng: &rng)
        self.bias = bias ? Initializers.constant([outFeatures], 0) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }

    public func namedParameters(_ prefix: String) -> [(String, Tensor)] {
        [("\(prefix)weight", weight)] + (bias.map { [("\(prefix)bias", $0)] } ?? [])
    }
}

extension Kernels {
    /// C = A·B (or A·Bᵀ) on plain row-major buffers through oneDNN's matmul: A (m, k), B (k, n) or, transposed,
    /// stored as (n, k); C (m, n). For computations outside autograd (CAMs, random walk).
    public static func matmulRowMajor(_ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                                      m: Int, k: Int, n: Int, transposeB: Bool = false) {
        matmul(UnsafeMutableRawPointer(a), UnsafeMutableRawPointer(b), UnsafeMutableRawPointer(c), m: m, k: k, n: n, transposeB: transposeB)
    }
}
