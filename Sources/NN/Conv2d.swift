import CDNNL

/// Geometry of a 2-d convolution (square or not), as PyTorch's `Conv2d` takes it.
public struct ConvGeometry: Hashable, CustomStringConvertible {
    public var kernel: (h: Int, w: Int)
    public var stride: (h: Int, w: Int)
    public var padding: (h: Int, w: Int)
    public var dilation: (h: Int, w: Int)

    public init(kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        self.kernel = (kernel, kernel)
        self.stride = (stride, stride)
        self.padding = (padding, padding)
        self.dilation = (dilation, dilation)
    }

    /// Output size per axis: ⌊(in + 2p − d·(k − 1) − 1) / s⌋ + 1.
    public func outputSize(_ h: Int, _ w: Int) -> (h: Int, w: Int) {
        ((h + 2 * padding.h - dilation.h * (kernel.h - 1) - 1) / stride.h + 1,
         (w + 2 * padding.w - dilation.w * (kernel.w - 1) - 1) / stride.w + 1)
    }

    public var description: String {
        "k\(kernel.h)x\(kernel.w)s\(stride.h)x\(stride.w)p\(padding.h)x\(padding.w)d\(dilation.h)x\(dilation.w)"
    }

    public static func == (a: ConvGeometry, b: ConvGeometry) -> Bool { a.description == b.description }
    public func hash(into h: inout Hasher) { h.combine(description) }

    var strides: [Int64] { [Int64(stride.h), Int64(stride.w)] }
    /// oneDNN counts dilation from 0 (0 = dense), PyTorch from 1.
    var dilates: [Int64] { [Int64(dilation.h - 1), Int64(dilation.w - 1)] }
    var paddings: [Int64] { [Int64(padding.h), Int64(padding.w)] }
}

/// 2-d convolution y = W ⋆ x + b over NCHW tensors, forward and backward, on oneDNN.
///
/// Shapes: x (N, C, H, W), weight (O, C, kH, kW) in PyTorch's plain layout, bias (O), y (N, O, H', W').
/// Activations use the layout oneDNN chooses (`format_tag_any`, a blocked format on this CPU), so a stack of
/// convolutions never converts between layers; x is converted only if it arrives in another layout (a model
/// input). The weight is handed to the primitive in its preferred layout through `Tensor.inLayout`, cached
/// until the weight changes.
///
/// Backward: dx = Wᵀ ⋆ dy (backward-data primitive), dW = dy ⋆ x and db = Σ dy (backward-weights primitive);
/// dW is converted back to the plain layout so it accumulates in the parameter's own `.grad`.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry) -> Tensor {
    precondition(x.shape.count == 4 && weight.shape.count == 4 && x.shape[1] == weight.shape[1],
                 "conv2d: input \(x.shape) does not match weight \(weight.shape)")
    precondition(weight.shape[2] == g.kernel.h && weight.shape[3] == g.kernel.w, "conv2d: weight \(weight.shape) vs geometry \(g)")
    precondition(bias == nil || bias!.shape == [weight.shape[0]], "conv2d: bias \(bias!.shape) for weight \(weight.shape)")
    let out = g.outputSize(x.shape[2], x.shape[3])
    precondition(out.h > 0 && out.w > 0, "conv2d: input \(x.shape) is too small for \(g)")
    // One direction's multiply-adds: every output element sums C·kH·kW products (backward data and weights each
    // do the same amount again). Counted for the convolution as written, whatever algorithm runs it.
    let flops = 2 * Double(x.shape[0] * weight.shape[0] * out.h * out.w) * Double(weight.shape[1] * weight.shape[2] * weight.shape[3])
    if let y = polyphaseConv2d(x, weight: weight, bias: bias, geometry: g, flops: flops) { return y }
    return convolve(x, weight: weight, bias: bias, geometry: g, flops: flops)
}

/// The convolution on oneDNN primitives: Winograd where `ConvAlgorithm.preferred` asks for it and oneDNN has it
/// for these shapes, the direct algorithm otherwise (Note [Winograd convolutions]).
///
/// With `phases` d > 1, x is the input of a dilated convolution that runs on its d² sub-grids (`Polyphase.swift`)
/// and `g` is the sub-grid convolution's geometry: x is gathered before the primitive, the result and the data
/// gradient scattered back after it. The gathered input is not kept for backward: the weight gradient gathers x
/// again, rather than hold a second copy of every dilated layer's input until then.
func convolve(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, flops: Double, phases d: Int = 1) -> Tensor {
    let (h, w) = (x.shape[2], x.shape[3])
    let xShape = d == 1 ? x.shape : polyphaseShape(x.shape, dilation: d)
    let out = g.outputSize(xShape[2], xShape[3])
    let yShape = [xShape[0], weight.shape[0], out.h, out.w]
    let training = Autograd.needsGrad(x, weight, bias)
    let shapes = "\(xShape)\(weight.shape)\(bias != nil)\(g)"
    // Training only (Note [Winograd convolutions]): in inference oneDNN's direct kernels run in NHWC, where a
    // Winograd 3×3 costs two layout conversions and a weight transform per call.
    let tryWinograd = ConvAlgorithm.preferred == .winograd && ConvAlgorithm.winogradShape(g) && training

    func forwardPrimitive(_ algorithm: dnnl_alg_kind_t) -> Primitive? {
        convForwardPrimitive(xShape, weight.shape, bias: bias != nil, geometry: g, training: training, algorithm: algorithm)
    }
    let winogradForward = tryWinograd ? forwardPrimitive(dnnl_convolution_winograd) : nil
    let algorithm = winogradForward != nil ? dnnl_convolution_winograd : dnnl_convolution_direct
    guard let forward = winogradForward ?? forwardPrimitive(dnnl_convolution_direct) else {
        preconditionFailure("oneDNN has no direct convolution for \(shapes)")
    }
    let src = Reorder.ensure(d == 1 ? x : polyphaseSplit(x, dilation: d), forward.desc(DNNL_ARG_SRC))
    let wei = weight.inLayout(forward.desc(DNNL_ARG_WEIGHTS))
    let result = Tensor(shape: yShape, desc: forward.desc(DNNL_ARG_DST))
    var args: [(Int32, UnsafeMutableRawPointer)] = [(DNNL_ARG_SRC, src.storage.data), (DNNL_ARG_WEIGHTS, wei.storage.data),
                                                    (DNNL_ARG_DST, result.storage.data)]
    if let bias { args.append((DNNL_ARG_BIAS, bias.storage.data)) }
    forward.execute(args)
    FlopCounter.add(flops)
    let y = d == 1 ? result : polyphaseMerge(result, dilation: d, height: h, width: w)

    guard training else { return y }
    let saved = d == 1 ? src : x
    // The backward primitives use the forward's algorithm where oneDNN has it, the direct one otherwise.
    func backwardPrimitive(_ kind: String, _ describe: (dnnl_alg_kind_t, inout dnnl_convolution_desc_t) -> Void) -> Primitive {
        func make(_ algorithm: dnnl_alg_kind_t) -> Primitive? {
            PrimitiveCache.optionalPrimitive("conv.\(kind)\(algorithm.rawValue)\(shapes)") {
                var desc = dnnl_convolution_desc_t()
                describe(algorithm, &desc)
                return tryMakePrimitiveDesc(&desc, "conv \(kind) \(shapes)", hint: forward.pd)
            }
        }
        guard let p = (algorithm == dnnl_convolution_winograd ? make(algorithm) : nil) ?? make(dnnl_convolution_direct) else {
            preconditionFailure("oneDNN has no direct convolution \(kind) for \(shapes)")
        }
        return p
    }
    Autograd.record(y) { dy in
        let dy = d == 1 ? dy : polyphaseSplit(dy, dilation: d)
        if x.requiresGrad {
            let bwd = backwardPrimitive("bwd_data") { algorithm, desc in
                var diffSrc = MemoryDesc.any(xShape), wei = MemoryDesc.any(weight.shape), diffDst = MemoryDesc.any(yShape)
                dnnlCheck(dnnl_dilated_convolution_backward_data_desc_init(
                    &desc, algorithm, &diffSrc, &wei, &diffDst, g.strides, g.dilates, g.paddings, g.paddings),
                          "describe conv backward-data \(shapes)")
            }
            let diffDst = Reorder.ensure(dy, bwd.desc(DNNL_ARG_DIFF_DST))
            let wei = weight.inLayout(bwd.desc(DNNL_ARG_WEIGHTS))
            let dx = Tensor(shape: xShape, desc: bwd.desc(DNNL_ARG_DIFF_SRC))
            bwd.execute([(DNNL_ARG_DIFF_DST, diffDst.storage.data), (DNNL_ARG_WEIGHTS, wei.storage.data),
                         (DNNL_ARG_DIFF_SRC, dx.storage.data)])
            FlopCounter.add(flops)
            x.accumulateGrad(d == 1 ? dx : polyphaseMerge(dx, dilation: d, height: h, width: w))
        }
        if weight.requiresGrad || bias?.requiresGrad == true {
            let bwd = backwardPrimitive("bwd_weights") { algorithm, desc in
                var src = MemoryDesc.any(xShape), diffWei = MemoryDesc.any(weight.shape), diffDst = MemoryDesc.any(yShape)
                var diffBias = bias != nil ? MemoryDesc.plain([weight.shape[0]]) : dnnl_memory_desc_t()
                dnnlCheck(dnnl_dilated_convolution_backward_weights_desc_init(
                    &desc, algorithm, &src, &diffWei, &diffBias, &diffDst,
                    g.strides, g.dilates, g.paddings, g.paddings), "describe conv backward-weights \(shapes)")
            }
            let srcB = Reorder.ensure(d == 1 ? saved : polyphaseSplit(saved, dilation: d), bwd.desc(DNNL_ARG_SRC))
            let diffDst = Reorder.ensure(dy, bwd.desc(DNNL_ARG_DIFF_DST))
            let dW = Tensor(shape: weight.shape, desc: bwd.desc(DNNL_ARG_DIFF_WEIGHTS))
            var args: [(Int32, UnsafeMutableRawPointer)] = [(DNNL_ARG_SRC, srcB.storage.data), (DNNL_ARG_DIFF_DST, diffDst.storage.data),
                                                            (DNNL_ARG_DIFF_WEIGHTS, dW.storage.data)]
            let dB = bias.map { Tensor(shape: $0.shape) }
            if let dB { args.append((DNNL_ARG_DIFF_BIAS, dB.storage.data)) }
            bwd.execute(args)
            FlopCounter.add(flops)
            if weight.requiresGrad { weight.accumulateGrad(Reorder.ensure(dW, weight.desc, kind: .weights)) }
            if let bias, let dB, bias.requiresGrad { bias.accumulateGrad(dB) }
        }
    }
    return y
}

/// The forward convolution primitive for these shapes and algorithm (cached), or nil where oneDNN has no
/// implementation of the algorithm for them.
func convForwardPrimitive(_ xShape: [Int], _ weightShape: [Int], bias: Bool, geometry g: ConvGeometry, training: Bool,
                          algorithm: dnnl_alg_kind_t) -> Primitive? {
    let out = g.outputSize(xShape[2], xShape[3])
    let yShape = [xShape[0], weightShape[0], out.h, out.w]
    let shapes = "\(xShape)\(weightShape)\(bias)\(g)"
    return PrimitiveCache.optionalPrimitive("conv.fwd\(training)\(algorithm.rawValue)\(shapes)") {
        var src = MemoryDesc.any(xShape), wei = MemoryDesc.any(weightShape), dst = MemoryDesc.any(yShape)
        // A zero descriptor tells oneDNN there is no bias.
        var bia = bias ? MemoryDesc.plain([weightShape[0]]) : dnnl_memory_desc_t()
        var desc = dnnl_convolution_desc_t()
        dnnlCheck(dnnl_dilated_convolution_forward_desc_init(
            &desc, training ? dnnl_forward_training : dnnl_forward_inference, algorithm,
            &src, &wei, &bia, &dst, g.strides, g.dilates, g.paddings, g.paddings), "describe conv \(shapes)")
        return tryMakePrimitiveDesc(&desc, "conv \(shapes)")
    }
}

/// Creates a primitive descriptor from an op descriptor (any of oneDNN's `*_desc_t`), optionally with the
/// forward descriptor a backward primitive needs as a hint.
func makePrimitiveDesc<D>(_ desc: inout D, _ what: String, hint: dnnl_primitive_desc_t? = nil,
                          outputScale: Float? = nil) -> dnnl_primitive_desc_t {
    guard let pd = tryMakePrimitiveDesc(&desc, what, hint: hint, outputScale: outputScale) else {
        preconditionFailure("oneDNN has no implementation of \(what)")
    }
    return pd
}

/// As `makePrimitiveDesc`, but nil where oneDNN has no implementation for the descriptor (an algorithm such as
/// Winograd that only some shapes have); any other failure stops.
func tryMakePrimitiveDesc<D>(_ desc: inout D, _ what: String, hint: dnnl_primitive_desc_t? = nil,
                             outputScale: Float? = nil) -> dnnl_primitive_desc_t? {
    var pd: dnnl_primitive_desc_t?
    var attr: dnnl_primitive_attr_t?
    if var scale = outputScale {
        dnnlCheck(dnnl_primitive_attr_create(&attr), "attributes of \(what)")
        dnnlCheck(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale), "output scale of \(what)")
    }
    defer { if let attr { dnnl_primitive_attr_destroy(attr) } }
    let status = withUnsafePointer(to: &desc) { p in
        dnnl_primitive_desc_create(&pd, UnsafeRawPointer(p), attr, DNNLRuntime.shared.engine, hint)
    }
    if status == dnnl_unimplemented { return nil }
    dnnlCheck(status, "create \(what)")
    return pd!
}

/// A convolution layer with PyTorch's parameter names (`weight`, `bias`) and layout.
public final class Conv2d {
    public let weight: Tensor
    public let bias: Tensor?
    public let geometry: ConvGeometry

    /// Weights Kaiming-normal (fan-out, ReLU gain: std = √(2 / (O·kH·kW))), as the spec's §2.6 initialises the
    /// freshly created convolutions; bias uniform in ±1/√(C·kH·kW) as PyTorch's default.
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1,
                bias: Bool = true, rng: inout SeededRandom) {
        geometry = ConvGeometry(kernel: kernel, stride: stride, padding: padding, dilation: dilation)
        let shape = [outChannels, inChannels, kernel, kernel]
        weight = Initializers.kaimingNormalFanOut(shape, rng: &rng)
        self.bias = bias ? Initializers.uniform([outChannels], bound: 1 / Float(inChannels * kernel * kernel).squareRoot(), rng: &rng) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, geometry: geometry)
    }

    /// Parameters under their state-dict names.
    public func namedParameters(_ prefix: String) -> [(String, Tensor)] {
        [("\(prefix)weight", weight)] + (bias.map { [("\(prefix)bias", $0)] } ?? [])
    }
}
