import CDNNL

/// How oneDNN computes the 3×3 stride-1 convolutions of training: Winograd's F(4×4, 3×3) or the direct algorithm.
///
/// Note [Winograd convolutions]. Winograd's algorithm turns each 6×6 input tile into a 4×4 output tile with 36
/// multiplications per channel pair where the direct algorithm needs 144; oneDNN 2.6 has it on AVX-512 for the
/// forward pass, the data gradient and the weight gradient (`jit_wino_4x3:avx512_core`). On this project's
/// machine it ran the Conformer's, ResNet-38's and DeepLab's 3×3 layers 1.7–2.7× faster in both directions
/// (`bench kernels`, `bench kernels --layers dilated`); whole steps: train-aff 1.6×, train-deeplab ~1.2×, the
/// Conformer's PC step within the noise (its 3×3 layers are a small share of it). The price is rounding: the tile transforms add and subtract
/// products of different sizes, so results differ from the direct sum by ~1e-6–1e-5 relative where the
/// direct algorithm differs from a float64 sum by ~1e-7; every parity test holds at its tolerance. `direct`
/// gives the bit-for-bit behaviour of earlier releases (`--conv-algorithm direct`).
///
/// Training only: inference (no tape) keeps the direct algorithm, so CAMs, seeds and predictions are what they
/// were. There oneDNN's direct kernels run in NHWC at batch 1, and a Winograd 3×3 between two of them cost two
/// layout conversions and, in oneDNN's inference mode, a copy of the weights in a layout of its own per input
/// size; measured on this machine, Winograd made the Conformer's CAM inference 20 % slower and DeepLab's no
/// faster, for 215 MiB more.
///
/// Dilated 3×3 convolutions (ResNet-38's b5–b7, DeepLab's layer3/layer4) have no Winograd kernel; with
/// padding = dilation d they are ordinary 3×3 convolutions on the d² interleaved sub-grids of the input
/// (`x[i·d + a, j·d + b]`), which `Polyphase.swift` gathers into the batch axis and scatters back.
public enum ConvAlgorithm: String, CaseIterable, Sendable {
    case winograd
    case direct

    /// The algorithm every 3×3 stride-1 convolution tries first; a shape Winograd cannot run falls back to the
    /// direct algorithm silently (that is a property of the shape, not an error). Set once at start-up.
    nonisolated(unsafe) public static var preferred: ConvAlgorithm = .winograd

    /// Whether `g` is a shape Winograd's F(4×4, 3×3) applies to at all (oneDNN decides the rest).
    static func winogradShape(_ g: ConvGeometry) -> Bool {
        g.kernel == (3, 3) && g.stride == (1, 1) && g.dilation == (1, 1)
    }
}
