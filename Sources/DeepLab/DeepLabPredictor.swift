import Foundation
import Imaging
import NN
import Segmentation

/// Whole-image DeepLab prediction (spec §10.3, deeplab-pytorch's `main.py test` and `crf`): the image at its own
/// size, Caffe-normalised; the MSC max logits upsampled bilinearly to the image size; softmax over the classes;
/// argmax. With `crf`, the probabilities are refined by the `deeplab` dense-CRF preset (10 iterations, Gaussian
/// sxy 1 compat 3, bilateral sxy 67 srgb 3 compat 4) on the image and argmaxed again.
public struct DeepLabPredictor {
    public var network: DeepLabV2MSC
    public var crf: CRFParameters?
    /// Hand the CRF deeplab-pytorch's colour image — the mean-subtracted BGR floats cast to uint8, negative values
    /// wrapping around (spec §12 Q11) — instead of the true image; for bit-compatibility with its CRF scores only.
    public var upstreamCRFImage = false

    public init(network: DeepLabV2MSC, crf: CRFParameters? = nil) {
        self.network = network
        self.crf = crf
    }

    /// The label maps of one image: without the CRF, and with it (nil unless `crf` is set).
    public func callAsFunction(_ image: PixelImage, threads: Int = 1) throws -> (labels: [UInt8], crf: [UInt8]?) {
        let (w, h) = (image.width, image.height)
        let classes = network.config.classes
        let probabilities: [Float] = Autograd.noGrad {
            let logits = network(Tensor(CaffeNormalization.chw(image), shape: [1, 3, h, w]))
            return Self.softmaxPlanes(interpolate(logits, size: (h, w), mode: .bilinear).toArray(), classes: classes)
        }
        let labels = DenseCRF.argmax(probabilities, labels: classes)
        guard let crf else { return (labels, nil) }
        let colour = upstreamCRFImage ? Self.upstreamCRFColours(image) : image.pixels
        let refined = try DenseCRF.labels(image: colour, width: w, height: h, probabilities: probabilities, labels: classes,
                                          parameters: crf, threads: threads)
        return (labels, refined)
    }

    /// Softmax over the class planes (L × N, label-major), in place of each pixel's column.
    static func softmaxPlanes(_ logits: [Float], classes: Int) -> [Float] {
        let n = logits.count / classes
        var out = [Float](repeating: 0, count: logits.count)
        for p in 0..<n {
            var top = -Float.infinity
            for c in 0..<classes { top = max(top, logits[c * n + p]) }
            var sum: Float = 0
            for c in 0..<classes {
                let e = expf(logits[c * n + p] - top)
                out[c * n + p] = e
                sum += e
            }
            for c in 0..<classes { out[c * n + p] /= sum }
        }
        return out
    }

    /// deeplab-pytorch's CRF input: `(bgr − mean).astype(np.uint8)` in HWC, which truncates toward zero and wraps
    /// modulo 256 (x86 numpy), channels in BGR order.
    static func upstreamCRFColours(_ image: PixelImage) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: image.width * image.height * 3)
        for p in 0..<(image.width * image.height) {
            for c in 0..<3 {
                let v = Float(image.pixels[p * 3 + 2 - c]) - CaffeNormalization.meanBGR[c]
                out[p * 3 + c] = UInt8(truncatingIfNeeded: Int(v.rounded(.towardZero)))
            }
        }
        return out
    }
}
