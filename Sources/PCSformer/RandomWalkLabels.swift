import Formats
import Foundation
import Imaging
import NN
import Segmentation
import Storage

/// One image's random-walk labels (spec §8.6, upstream's `infer_aff.py`, what CSE calls `out_rw`):
///
/// 1. The normalised image, zero-padded at the bottom and right to multiples of 8; AffinityNet's embedding
///    (Hf × Wf = padded size / 8) and the affinities of the §8.3 pairs (radius 5, or ⌊(min side − 1)/2⌋ on small maps).
/// 2. Class scores: channel 0 the constant background score (0.46), channel c + 1 the CAM of each present class,
///    zero-padded like the image and 8 × 8 average-pooled.
/// 3. The random walk (`RandomWalk`, β 14, 2⁷ steps), bilinear (half-pixel) upsampling to the padded size, argmax
///    (steps 2 and 3: `RandomWalkArgmax`).
/// 4. With the CRF (the default): `psa-label` on the padded image rebuilt from the normalised tensor
///    (uint8 of clip((v·std + mean)·255), truncated), then cropped to the image.
public struct RandomWalkLabels {
    public var network: AffinityNet
    public var walk = RandomWalk()
    public var backgroundScore: Float = 0.46
    public var radius = 5
    /// nil: no CRF (upstream's `--crf` off).
    public var crf: CRFParameters? = CRFPreset.psaLabel.parameters()
    public var normalization = Normalization.imageNet

    public init(network: AffinityNet) { self.network = network }

    /// Labels 0 … `labels` − 1 of image `id` (H × W, row-major) from its CAMs.
    public func callAsFunction(image: PixelImage, cams: ClassActivationMaps, id: String, labels: Int, threads: Int = 1) throws -> [UInt8] {
        let (h, w) = (image.height, image.width)
        guard cams.width == w, cams.height == h else {
            throw FileError(path: id, what: "CAMs are \(cams.width)x\(cams.height), the image \(w)x\(h)")
        }
        guard cams.classes.allSatisfy({ $0 + 1 < labels }) else { throw FileError(path: id, what: "CAM classes \(cams.classes) do not fit \(labels) labels") }
        let (hp, wp) = ((h + 7) / 8 * 8, (w + 7) / 8 * 8)
        let (hf, wf) = (hp / 8, wp / 8)
        let plane = hp * wp

        let chw = normalization.applyCHW(image)
        var padded = [Float](repeating: 0, count: 3 * plane)
        for c in 0..<3 { for y in 0..<h { for x in 0..<w { padded[c * plane + y * wp + x] = chw[(c * h + y) * w + x] } } }
        var rng = SeededRandom(seed: 0)
        let embedding = Autograd.noGrad { network(Tensor(padded, shape: [1, 3, hp, wp]), training: false, rng: &rng) }

        let r = AffinityPairs.fallbackRadius(height: hf, width: wf, radius: radius)
        let pairs = r >= 2 ? AffinityPairs(height: hf, width: wf, radius: r) : nil
        let affinity = pairs.map { pairs in Autograd.noGrad { pairAffinity(embedding, pairs: pairs) }.toArray() } ?? []
        let argmax = RandomWalkArgmax(walk: walk, backgroundScore: backgroundScore)(
            affinity: affinity, pairs: pairs, featureHeight: hf, featureWidth: wf, cams: cams, labels: labels, threads: threads)
        var full = argmax
        if let crf {
            var canvas = [UInt8](repeating: 0, count: plane * 3)
            for c in 0..<3 {
                let (mean, std) = (Float(normalization.mean[c]), Float(normalization.std[c]))
                for i in 0..<plane { canvas[i * 3 + c] = UInt8(max(0, min(255, (padded[c * plane + i] * std + mean) * 255)).rounded(.towardZero)) }
            }
            full = try DenseCRF.labels(image: canvas, width: wp, height: hp, labelMap: argmax, labels: labels, parameters: crf, threads: threads)
        }
        var out = [UInt8](repeating: 0, count: h * w)
        for y in 0..<h { for x in 0..<w { out[y * w + x] = full[y * wp + x] } }
        return out
    }
}
