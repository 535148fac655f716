import Distributed
import Foundation
import Imaging
import NN
import Storage

/// Multi-scale CAM inference for one image (spec §4): the pyramid's scales each with its mirror, 2·S passes of
/// the network in eval mode, combined and normalised exactly as upstream.
///
/// Per pass k with CAM M_k (C, h_k, w_k): keep the foreground channels of the present classes, upsample them
/// bilinearly (half-pixel) to the original size (H0, W0), multiply by the label y_c, mirror a flipped pass back,
/// and sum in pass order: S_c = Σ_k M_k,c. Then per class (§4.2), in Float as upstream's numpy:
///
///     S ← max(S, 0);  hi = max S;  lo = min S;  S[S < lo + 1e-5] = 0;  N = (S − lo − 1e-5) / (hi − lo + 1e-5)
///
/// Only present classes (y_c > 1e-5) are computed: an absent class is multiplied by 0 and never saved. Upsampling
/// only the present channels is exact, since the interpolation acts on each channel alone.
public struct MultiScaleCAM {
    public let model: Conformer
    public let method: CAMMethod
    public let pyramid: CAMPyramid
    public var normalization = Normalization.imageNet

    public init(model: Conformer, method: CAMMethod = .transcam, pyramid: CAMPyramid = .upstream) {
        self.model = model
        self.method = method
        self.pyramid = pyramid
    }

    /// The present classes of a foreground label vector (upstream: `label[c] > 1e-5`).
    public static func presentClasses(_ label: [Float]) -> [Int] {
        label.indices.filter { label[$0] > 1e-5 }
    }

    /// The normalised CAMs of `image` for the classes present in `label` (foreground, one entry per class).
    /// The model must be in inference mode (`setBatchNormMode(.inference)`).
    public func callAsFunction(_ image: PixelImage, label: [Float]) -> ClassActivationMaps {
        let classes = Self.presentClasses(label)
        let (w0, h0) = (image.width, image.height)
        var sum = [Float](repeating: 0, count: classes.count * h0 * w0)
        guard !classes.isEmpty else { return ClassActivationMaps(classes: [], width: w0, height: h0, values: []) }
        for scaled in pyramid.images(image) {
            // The image and its mirror as one batch of 2 (eval-mode BatchNorm treats samples independently).
            let x = Tensor(Self.withMirror(normalization.applyCHW(scaled), width: scaled.width), shape: [2, 3, scaled.height, scaled.width])
            let cam = Autograd.noGrad { model(x, cam: method).cam! }
            let up = interpolate(Self.channels(cam, foreground: classes), size: (h0, w0), mode: .bilinear)
            withExtendedLifetime(up) {
                let p = up.storage.floats
                let plane = h0 * w0
                for pass in 0..<2 {
                    for (k, c) in classes.enumerated() {
                        let src = p + (pass * classes.count + k) * plane
                        Self.accumulate(into: &sum, offset: k * plane, src, width: w0, height: h0,
                                        weight: label[c], mirrored: pass == 1)
                    }
                }
            }
        }
        for k in 0..<classes.count {
            Self.normalize(&sum[(k * h0 * w0)..<((k + 1) * h0 * w0)])
        }
        return ClassActivationMaps(classes: classes, width: w0, height: h0, values: sum)
    }

    /// CHW planes followed by their left–right mirror (upstream's `np.flip(x, -1)` of the normalised array: the
    /// normalisation is per pixel, so mirroring before or after it gives the same values).
    static func withMirror(_ chw: [Float], width: Int) -> [Float] {
        var out = [Float](repeating: 0, count: 2 * chw.count)
        out.withUnsafeMutableBufferPointer { dst in
            chw.withUnsafeBufferPointer { src in
                dst.baseAddress!.update(from: src.baseAddress!, count: chw.count)
                for row in 0..<(chw.count / width) {
                    let s = src.baseAddress! + row * width, d = dst.baseAddress! + chw.count + row * width
                    for x in 0..<width { d[x] = s[width - 1 - x] }
                }
            }
        }
        return out
    }

    /// The CAM channels 1 + c (c in `foreground`) of a (B, C, h, w) map, as (B, K, h, w).
    static func channels(_ cam: Tensor, foreground: [Int]) -> Tensor {
        let x = cam.plain()
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        precondition(foreground.allSatisfy { $0 + 1 < c }, "MultiScaleCAM: classes \(foreground) outside a CAM of \(c) channels")
        let out = Tensor(shape: [b, foreground.count, h, w])
        withExtendedLifetime(x) {
            for s in 0..<b {
                for (k, cls) in foreground.enumerated() {
                    (out.storage.floats + (s * foreground.count + k) * h * w)
                        .update(from: x.storage.floats + (s * c + cls + 1) * h * w, count: h * w)
                }
            }
        }
        return out
    }

    /// sum[offset...] += weight · src, the source mirrored left–right when `mirrored`.
    static func accumulate(into sum: inout [Float], offset: Int, _ src: UnsafePointer<Float>, width: Int, height: Int,
                           weight: Float, mirrored: Bool) {
        sum.withUnsafeMutableBufferPointer { dst in
            for y in 0..<height {
                let row = dst.baseAddress! + offset + y * width, s = src + y * width
                if mirrored {
                    for x in 0..<width { row[x] += s[width - 1 - x] * weight }
                } else {
                    for x in 0..<width { row[x] += s[x] * weight }
                }
            }
        }
    }

    /// Upstream's per-class normalisation of a summed map (see the type's comment), in place.
    public static func normalize(_ s: inout ArraySlice<Float>) {
        guard !s.isEmpty else { return }
        let eps: Float = 1e-5
        var hi = -Float.infinity, lo = Float.infinity
        for i in s.indices {
            let v = max(s[i], 0)
            s[i] = v
            hi = max(hi, v)
            lo = min(lo, v)
        }
        let floor = lo + eps, denominator = hi - lo + eps
        for i in s.indices {
            let v = s[i] < floor ? 0 : s[i]
            s[i] = (v - lo - eps) / denominator
        }
    }
}
