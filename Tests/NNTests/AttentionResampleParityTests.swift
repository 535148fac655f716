import Formats
import Foundation
@testable import NN
import XCTest

/// Forward and backward parity with PyTorch on the fixtures of scripts/fixtures/make_attention_resample_fixtures.py
/// (Tests/NNTests/Fixtures/ops2). Every op runs on PyTorch's inputs; the upstream gradient `dy` seeds backward.
/// Per tensor: |a − b| ≤ tol · max(1, max |b|), tol = 1e-5 forward and 1e-4 backward. A missing fixture file or
/// dataset throws, which fails the test.
final class AttentionResampleParityTests: ParityTestCase {
    override class var fixtureFolder: String { "ops2" }

    /// Runs `body` (which returns the output) with recording on, seeds backward with the case's `dy`, then compares
    /// the output with `y` and every (tensor, dataset) pair of `gradients()`.
    func run(_ op: String, _ c: Case, output: String = "y", seed: String = "dy", _ body: () throws -> Tensor,
             gradients: () -> [(Tensor, String)], line: UInt = #line) throws {
        let y = try body()
        let forward = try c.compare(y, output, tolerance: Self.forwardTolerance, line: line)
        Autograd.backward(y, seed: try c.tensor(seed, grad: false))
        var backward = 0.0
        for (t, name) in gradients() { backward = max(backward, try c.compare(t.grad, name, tolerance: Self.backwardTolerance, line: line)) }
        note(op, forward: forward, backward: backward)
    }

    func testResampleMatchesPyTorch() throws {
        let file = try open("resample.h5")
        for group in ["bilinear_5x7_to_9x4", "bilinear_8x8_to_3x5", "bilinear_16x16_to_7x7", "bilinear_4x3_to_8x6",
                      "bilinear_6x5_to_6x5", "bilinear_40x24_to_17x11", "nearest_5x7_to_9x4", "nearest_8x8_to_3x5", "nearest_7x5_to_9x13",
                      "nearest_3x4_to_6x12", "nearest_2x3_to_8x9", "nearest_3x4_to_3x4"] {
            let c = Case(file: file, group: group)
            let mode: InterpolationMode = group.hasPrefix("bilinear") ? .bilinear : .nearest
            let x = try c.tensor("x"), outShape = try c.expected("y").shape
            var y: Tensor?
            try run("interpolate \(mode)", c, {
                y = interpolate(x, size: (outShape[2], outShape[3]), mode: mode)
                return try XCTUnwrap(y)
            }) { [(x, "dx")] }
            // Stricter than the shared tolerance: nearest copies values, so it must be exact; bilinear evaluates
            // PyTorch's Float coordinates, so it may differ only by rounding in combining the taps (≤ 2 ulp here),
            // where oneDNN's more exact coordinates already miss by ~2e-6 at 16 → 7.
            let output = try XCTUnwrap(y)
            if mode == .nearest {
                XCTAssertEqual(output.toArray(), try c.expected("y").values, "\(group): nearest must copy PyTorch's pixels")
            } else {
                try c.compare(output, "y", tolerance: 2.5e-7)
            }
        }
    }

    func testElementwiseMatchesPyTorch() throws {
        let file = try open("elementwise.h5")
        for op in ["add", "mul"] {
            for shapes in ["same", "nchw_c", "bnc_1nc", "bnc_c", "c_bnc", "bnc_11c"] {
                let c = Case(file: file, group: "\(op)_\(shapes)")
                let a = try c.tensor("a"), b = try c.tensor("b")
                try run(op, c, { op == "add" ? add(a, b) : mul(a, b) }) { [(a, "da"), (b, "db")] }
            }
        }
        let c = Case(file: file, group: "scale")
        let x = try c.tensor("a"), s = Float(try c.attribute("s"))
        try run("scale", c, { scale(x, s) }) { [(x, "da")] }
    }

    func testConcatAndSliceMatchPyTorch() throws {
        let file = try open("concat_slice.h5")
        for name in ["tokens", "last", "three"] {
            let c = Case(file: file, group: "concat_\(name)")
            let count = Int(try c.attribute("count")), axis = Int(try c.attribute("axis"))
            let xs = try (0..<count).map { try c.tensor("x\($0)") }
            try run("concat", c, { concat(xs, axis: axis) }) { xs.enumerated().map { ($1, "dx\($0)") } }
        }
        for name in ["cls", "patches", "middle"] {
            let c = Case(file: file, group: "slice_\(name)")
            let axis = Int(try c.attribute("axis")), start = Int(try c.attribute("start")), length = Int(try c.attribute("length"))
            let x = try c.tensor("x0")
            try run("slice", c, { slice(x, axis: axis, range: start..<start + length) }) { [(x, "dx0")] }
        }
    }

    func testDropoutMasksReplayPyTorch() throws {
        let file = try open("dropout.h5")
        for group in ["dropout", "drop_path"] {
            let c = Case(file: file, group: group)
            let x = try c.tensor("x"), p = Float(try c.attribute("p")), keep = try c.expected("keep").values.map { $0 != 0 }
            XCTAssertTrue(keep.contains(true) && keep.contains(false), "\(group): the stored mask keeps some and drops some")
            try run(group, c, { group == "dropout" ? dropout(x, p: p, keep: keep) : dropPath(x, p: p, keep: keep) }) { [(x, "dx")] }
        }
    }

    /// A MultiHeadAttention whose parameters are the case's `<prefix>qkv_weight`, … (shapes checked).
    func attention(_ c: Case, prefix: String = "", dim: Int, heads: Int) throws -> MultiHeadAttention {
        var rng = SeededRandom(seed: 0)
        let m = MultiHeadAttention(dim: dim, heads: heads, rng: &rng)
        let params = [(m.qkv.weight, "qkv_weight"), (m.qkv.bias, "qkv_bias"), (m.proj.weight, "proj_weight"), (m.proj.bias, "proj_bias")]
        for (p, name) in params {
            let (values, shape) = try c.expected(prefix + name)
            guard let p, p.shape == shape else { throw HDF5Error(file: c.file.path, what: "\(name) \(shape) does not fit the layer") }
            p.storage.floats.update(from: values, count: values.count)
            p.version += 1
        }
        return m
    }

    func testAttentionMatchesPyTorch() throws {
        let file = try open("attention.h5")
        for group in ["heads2_n5_c12", "heads3_n7_c9"] {
            let c = Case(file: file, group: group)
            let heads = Int(try c.attribute("heads")), x = try c.tensor("x")
            let m = try attention(c, dim: x.shape[2], heads: heads)
            var mean: Tensor?
            try run("attention", c, { m(x) { mean = $0 } }) {
                [(x, "dx"), (m.qkv.weight, "dqkv_weight"), (m.proj.weight, "dproj_weight")]
                    + [(m.qkv.bias, "dqkv_bias"), (m.proj.bias, "dproj_bias")].compactMap { p, n in p.map { ($0, n) } }
            }
            worst["attention sink"] = (try c.compare(mean, "attn_mean", tolerance: Self.forwardTolerance), 0)
            // The core alone, from PyTorch's qkv output: dq, dk, dv and their interleaving into dqkv.
            let qkv = try c.tensor("qkv_out")
            let scale = Float(1 / Double(x.shape[2] / heads).squareRoot())
            try run("attention core", c, output: "o", seed: "d_o", { selfAttention(qkv, heads: heads, scale: scale) }) {
                [(qkv, "d_qkv_out")]
            }
            let (b, n, dim) = (x.shape[0], x.shape[1], x.shape[2])
            let d = dim / heads
            let dqkv = try XCTUnwrap(qkv.grad).toArray()
            for (which, name) in ["dq", "dk", "dv"].enumerated() {
                // (B, N, 3, h, d) → the which-th of (B, h, N, d).
                var split = [Float]()
                for s in 0..<b { for head in 0..<heads { for t in 0..<n { for f in 0..<d {
                    split.append(dqkv[(((s * n + t) * 3 + which) * heads + head) * d + f])
                } } } }
                try c.compare(Tensor(split, shape: [b, heads, n, d]), name, tolerance: Self.backwardTolerance)
            }
        }
    }

    func testAttentionSumOverLayersMatchesPyTorch() throws {
        let c = Case(file: try open("attention.h5"), group: "two_layers")
        let heads = Int(try c.attribute("heads")), x = try c.tensor("x")
        let first = try attention(c, prefix: "l1_", dim: x.shape[2], heads: heads)
        let second = try attention(c, prefix: "l2_", dim: x.shape[2], heads: heads)
        var sum: Tensor?
        let accumulate: (Tensor) -> Void = { map in
            if let sum { Kernels.addInPlace(sum.storage.floats, map.storage.floats, count: map.elementCount) } else { sum = map }
        }
        try run("attention two layers", c, { second(first(x, attentionSink: accumulate), attentionSink: accumulate) }) { [(x, "dx")] }
        worst["attention layer sum"] = (try c.compare(sum, "attn_sum", tolerance: Self.forwardTolerance), 0)
    }

    func testExistingOpsMatchPyTorch() throws {
        let file = try open("reference.h5")
        for (group, kernel) in [("conv_3x3_s2_p1_bias", 3), ("conv_3x3_d2_p2", 3), ("conv_1x1_bias", 1)] {
            let c = Case(file: file, group: group)
            let geometry = ConvGeometry(kernel: kernel, stride: Int(try c.attribute("stride")),
                                        padding: Int(try c.attribute("padding")), dilation: Int(try c.attribute("dilation")))
            let x = try c.tensor("x"), w = try c.tensor("weight")
            let b = group.hasSuffix("_bias") ? try c.tensor("bias") : nil
            try run("conv2d", c, { conv2d(x, weight: w, bias: b, geometry: geometry) }) {
                [(x, "dx"), (w, "dweight")] + (b.map { [($0, "dbias")] } ?? [])
            }
        }
        let l = Case(file: file, group: "linear")
        let x = try l.tensor("x"), w = try l.tensor("weight"), b = try l.tensor("bias")
        try run("linear", l, { linear(x, weight: w, bias: b) }) { [(x, "dx"), (w, "dweight"), (b, "dbias")] }
        let g = Case(file: file, group: "gelu")
        let v = try g.tensor("x")
        try run("gelu", g, { gelu(v) }) { [(v, "dx")] }
    }
}
