import CCRF
import Dispatch
import Foundation

/// A fully connected CRF on a W × H image with L labels and Potts pairwise terms, with the mean-field inference of
/// Krähenbühl & Koltun (2011) as densecrf / pydensecrf compute it (spec §7.1):
///
///     Q⁰ = softmax(−U)
///     Qᵗ⁺¹ = softmax(−U + Σ_k w_k · K̃_k Qᵗ),   K̃ Q = D^{−½} K (D^{−½} Q),  D = K·1
///
/// per pixel over the labels. K_k is a Gaussian kernel in the term's feature space, filtered with the
/// permutohedral lattice (`PermutohedralLattice`; it includes the pixel itself); D^{−½} is densecrf's
/// NORMALIZE_SYMMETRIC, pydensecrf's default. densecrf's `PottsCompatibility` returns −w·K̃Q and the inference
/// subtracts it, hence the + above: a label gains where similar pixels already hold it.
///
/// **Layouts.** The public arrays are label-major, L × N with N = W·H pixels in row-major order (`U[l*N + i]`), the
/// layout of pydensecrf's `setUnaryEnergy`/`inference` and of (L, H, W) files. Internally Q is pixel-major (N × L,
/// densecrf's `MatrixXf` column layout) so that splat and slice read and write whole L-wide rows.
///
/// **Arithmetic.** Each element is computed with densecrf's float operations in densecrf's order (features
/// `Float(x)/sxy`, the scaled input Q·D^{−½}, `acc + w·(sliced·D^{−½})` term by term, softmax with Eigen's SSE exp,
/// its summation order and a division by the sum), so Q matches pydensecrf bit for bit where the unary does (label
/// unaries; numpy's float32 log in `unary_from_softmax` differs from glibc's by an ulp here and there).
///
/// **Threads.** Every step splits over `threads` by rows: the splat by vertex ownership, each blur axis by vertex,
/// the fused slice and softmax by pixel, the lattice build by pixel and vertex ranges (its vertex tables per thread,
/// merged in order). Q is bit-identical for every thread count and for the AVX2 and baseline kernels.
///
/// **Memory.** About 2 N·W·4 bytes of per-pixel buffers (−U and Q; W = L rounded up to a multiple of 4, plus a
/// message buffer on the rounds path) and the result, the lattices (8(d+1) bytes per pixel, 12(d+1) per vertex)
/// and their value buffers (2(M+1)·W·4 bytes). Measured peak RSS of `pcs-mpi crf` on a 1000 × 750 image, 21 labels,
/// psa-label, 2 threads: 376 MB (a smooth image, 119k bilateral vertices) and 534 MB (±20 levels of noise, 630k).
public struct DenseCRF: Sendable {
    public let width: Int
    public let height: Int
    public let labels: Int
    /// Threads for building the lattices and for inference.
    public var threads: Int
    /// A lattice whose two value buffers would take more bytes than this is filtered in rounds of fewer lanes
    /// (`PermutohedralLattice.Workspace`); tests lower it to exercise that path.
    var valueBufferLimit = PermutohedralLattice.maxValueBufferBytes

    /// −U, pixel-major in rows of `PermutohedralLattice.paddedWidth(L)` floats (pad lanes zero; zero until a unary
    /// is set, as densecrf).
    private var negUnary: [Float]
    private var terms: [PairwiseTerm] = []

    /// One Potts term: its lattice, D^{−½} per pixel and the weight w.
    struct PairwiseTerm: Sendable {
        var lattice: PermutohedralLattice
        var normalization: [Float]
        var weight: Float
    }

    public var pixelCount: Int { width * height }
    /// The lattice vertex count of each pairwise term, in the order they were added (for logs and memory figures).
    public var latticeVertexCounts: [Int] { terms.map(\.lattice.vertexCount) }

    public init(width: Int, height: Int, labels: Int, threads: Int = 1) throws {
        guard width >= 1, height >= 1 else {
            throw DenseCRFError.invalidParameter(name: "image size", value: "\(width) × \(height)", requirement: "at least 1 × 1")
        }
        guard labels >= 1 else {
            throw DenseCRFError.invalidParameter(name: "label count", value: "\(labels)", requirement: "at least 1")
        }
        guard threads >= 1 else {
            throw DenseCRFError.invalidParameter(name: "threads", value: "\(threads)", requirement: "at least 1")
        }
        (self.width, self.height, self.labels, self.threads) = (width, height, labels, threads)
        negUnary = parallelArray(count: width * height * PermutohedralLattice.paddedWidth(labels), repeating: 0, threads: threads)
    }

    // MARK: Unary

    /// Sets U from an L × N label-major energy array (pydensecrf's `setUnaryEnergy`).
    public mutating func setUnaryEnergy(_ energy: [Float]) throws {
        guard energy.count == labels * pixelCount else {
            throw DenseCRFError.shapeMismatch(what: "the unary energy", expected: "\(labels) × \(height) × \(width)",
                                              actual: energy.count)
        }
        setNegativeUnary { i, k, n in -energy[k * n + i] }
    }

    /// Unaries from a label map (N values, row-major), `CRFUnary.fromLabels`.
    public mutating func setUnary(labelMap: [UInt8], gtProb: Double) throws {
        guard labelMap.count == pixelCount else {
            throw DenseCRFError.shapeMismatch(what: "the label map", expected: "\(height) × \(width)", actual: labelMap.count)
        }
        let (positive, negative) = try CRFUnary.labelEnergies(labelMap, labels: labels, gtProb: gtProb)
        setNegativeUnary { i, k, _ in Int(labelMap[i]) == k ? -positive : -negative }
    }

    /// Unaries from a probability map (L × N label-major), `CRFUnary.fromProbabilities`.
    public mutating func setUnary(probabilities: [Float], clip: Float = 1e-5) throws {
        guard probabilities.count == labels * pixelCount else {
            throw DenseCRFError.shapeMismatch(what: "the probability map", expected: "\(labels) × \(height) × \(width)",
                                              actual: probabilities.count)
        }
        try CRFUnary.checkProbabilities(probabilities, labels: labels, pixels: pixelCount, clip: clip, threads: threads)
        probabilities.withUnsafeBufferPointer { p in
            setNegativeUnary { i, k, n in -CRFUnary.energy(probability: p[k * n + i], clip: clip) }
        }
    }

    /// −U[i, k] = `value(i, k, N)` for every pixel i and label k, pixels over the threads (pad lanes stay zero).
    /// Blocks of 64 pixels sweep the labels, so that a label-major source is read in runs.
    private mutating func setNegativeUnary(_ value: (Int, Int, Int) -> Float) {
        let n = pixelCount, l = labels, stride = PermutohedralLattice.paddedWidth(l)
        negUnary.withUnsafeMutableBufferPointer { out in
            let dst = out.baseAddress!
            parallelRanges(n, threads: threads, minimum: 4096) { range in
                for lo in Swift.stride(from: range.lowerBound, to: range.upperBound, by: 64) {
                    let hi = min(lo + 64, range.upperBound)
                    for k in 0..<l { for i in lo..<hi { dst[i * stride + k] = value(i, k, n) } }
                }
            }
        }
    }

    // MARK: Pairwise terms

    /// The appearance-free term w·exp(−|p_i − p_j|²/2sxy²) on features (x/sxy, y/sxy), x = column, y = row
    /// (pydensecrf's `addPairwiseGaussian(sxy, compat)`).
    public mutating func addGaussian(sxy: Float, compat: Float) throws {
        try checkDeviation("Gaussian sxy", sxy)
        let n = pixelCount, w = width
        let f = pixelFeatures(dimension: 2) { i, f in
            f[0] = Float(i % w) / sxy
            f[1] = Float(i / w) / sxy
        }
        try addPairwise(features: f, dimension: 2, compat: compat)
    }

    /// The bilateral term on features (x/sxy, y/sxy, r/srgb, g/srgb, b/srgb) of an H × W × 3 uint8 image
    /// (pydensecrf's `addPairwiseBilateral(sxy, srgb, rgbim, compat)`).
    public mutating func addBilateral(sxy: Float, srgb: Float, image: [UInt8], compat: Float) throws {
        try checkDeviation("bilateral sxy", sxy)
        try checkDeviation("bilateral srgb", srgb)
        let n = pixelCount, w = width
        guard image.count == 3 * n else {
            throw DenseCRFError.shapeMismatch(what: "the RGB image", expected: "\(height) × \(width) × 3", actual: image.count)
        }
        let f = image.withUnsafeBufferPointer { rgb in
            pixelFeatures(dimension: 5) { i, f in
                f[0] = Float(i % w) / sxy
                f[1] = Float(i / w) / sxy
                for c in 0..<3 { f[2 + c] = Float(rgb[3 * i + c]) / srgb }
            }
        }
        try addPairwise(features: f, dimension: 5, compat: compat)
    }

    /// N × d features, `fill(i, row)` writing pixel i's d values; pixels over the threads.
    private func pixelFeatures(dimension d: Int, _ fill: (Int, UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        [Float](unsafeUninitializedCapacity: pixelCount * d) { buffer, count in
            let base = buffer.baseAddress!
            parallelRanges(pixelCount, threads: threads, minimum: 16384) { range in
                for i in range { fill(i, base + i * d) }
            }
            count = pixelCount * d
        }
    }

    /// A Potts term with Gaussian kernel exp(−½‖f_i − f_j‖²) on arbitrary features (N × d, pixel-major), symmetric
    /// normalisation (pydensecrf's `addPairwiseEnergy(feats, compat)`). Builds the lattice and D^{−½} now.
    public mutating func addPairwise(features: [Float], dimension d: Int, compat: Float) throws {
        guard d >= 1 && d <= 16 else {
            throw DenseCRFError.invalidParameter(name: "feature dimension", value: "\(d)", requirement: "in 1...16")
        }
        guard features.count == d * pixelCount else {
            throw DenseCRFError.shapeMismatch(what: "the feature array", expected: "\(pixelCount) × \(d)", actual: features.count)
        }
        guard compat.isFinite else {
            throw DenseCRFError.invalidParameter(name: "compat", value: "\(compat)", requirement: "a finite number")
        }
        if let bad = features.firstIndex(where: { !$0.isFinite }) {
            throw DenseCRFError.invalidParameter(name: "feature \(bad)", value: "\(features[bad])", requirement: "finite")
        }
        let lattice = PermutohedralLattice(features: features, dimension: d, threads: threads)
        terms.append(PairwiseTerm(lattice: lattice, normalization: normalization(lattice), weight: compat))
    }

    /// D^{−½} = 1/√(D + 1e-20), D = K·1, computed in double and stored as float as densecrf does, with D filtered
    /// through densecrf's one-channel (scalar) path: rows of 4 lanes, lane 0 the channel (the others are never read).
    private func normalization(_ lattice: PermutohedralLattice) -> [Float] {
        let n = pixelCount
        let ones: [Float] = parallelArray(count: 4 * n, repeating: 1, threads: threads)
        var d: [Float] = parallelArray(count: 4 * n, repeating: nil, threads: threads)
        ones.withUnsafeBufferPointer { input in
            d.withUnsafeMutableBufferPointer { out in
                lattice.filter(input: input.baseAddress!, width: 4, channels: 1,
                               workspace: PermutohedralLattice.Workspace(lattice: lattice, width: 4), threads: threads,
                               into: .store(out.baseAddress!))
            }
        }
        var norm: [Float] = parallelArray(count: n, repeating: nil, threads: threads)
        norm.withUnsafeMutableBufferPointer { out in
            parallelRanges(n, threads: threads, minimum: 1 << 16) { r in
                for i in r { out[i] = Float(1.0 / (Double(d[4 * i]) + 1e-20).squareRoot()) }
            }
        }
        return norm
    }

    private func checkDeviation(_ name: String, _ v: Float) throws {
        guard v > 0 && v.isFinite else {
            throw DenseCRFError.invalidParameter(name: name, value: "\(v)", requirement: "a positive number")
        }
    }

    // MARK: Inference

    /// Q after `iterations` mean-field updates, L × N label-major (pydensecrf's `inference(n)`).
    public func inference(iterations: Int = 10) -> [Float] {
        precondition(iterations >= 0, "DenseCRF.inference: iterations must be ≥ 0, got \(iterations)")
        return meanField(iterations: iterations)
    }

    /// Q label-major (L × N), written by the last pass. Until then Q lives in rows of `width` floats (pad lanes
    /// zero), which each term's splat reads scaled by the term's D^{−½} (densecrf's `in * norm_.asDiagonal()`).
    /// Per iteration every term is splatted and blurred, then one pass over the pixels slices all terms and takes
    /// the softmax (`ccrf_update`): −U + w₁·(slice₁·D₁^{−½}) + w₂·(slice₂·D₂^{−½}) + …, added in that order as densecrf's `tmp1 −= out` does.
    /// Where a lattice's value buffers would pass `valueBufferLimit`, its lanes are filtered in rounds instead, into
    /// a message buffer (the same sums, term by term), and the softmax follows the last term's slice.
    func meanField(iterations: Int) -> [Float] {
        let n = pixelCount, l = labels, threads = self.threads
        let width = PermutohedralLattice.paddedWidth(l)
        // The last pass writes every element of `result`; Q's pad lanes must be zero (the splats read them).
        var result: [Float] = parallelArray(count: n * l, repeating: nil, threads: threads)
        var q: [Float] = parallelArray(count: n * width, repeating: 0, threads: threads)
        let workspaces = terms.map {
            PermutohedralLattice.Workspace(lattice: $0.lattice, width: width, maxValueBufferBytes: valueBufferLimit)
        }
        let fused = workspaces.allSatisfy { $0.rounds.count == 1 }
        var message: [Float] = fused ? [] : parallelArray(count: n * width, repeating: nil, threads: threads)
        withPointers(terms.map(\.normalization)) { norms in
            negUnary.withUnsafeBufferPointer { nu in
                q.withUnsafeMutableBufferPointer { qb in
                    result.withUnsafeMutableBufferPointer { rb in
                        message.withUnsafeMutableBufferPointer { mb in
                            let negU = nu.baseAddress!, qp = qb.baseAddress!, out = rb.baseAddress!
                            let done = terms.isEmpty || iterations == 0
                            parallelRanges(n, threads: threads, minimum: 1024) { r in
                                ccrf_softmax(negU, Int64(width), Int32(l), Int64(r.lowerBound), Int64(r.upperBound),
                                             done ? out : qp, Int64(done ? 1 : width), Int64(done ? n : 1))
                            }
                            if done { return }
                            for it in 0..<iterations {
                                // The last iteration writes the result (label planes) instead of Q's rows.
                                let (dst, pixelStride, labelStride) = it == iterations - 1 ? (out, 1, n) : (qp, width, 1)
                                if fused {
                                    let blurred = terms.indices.map { t in
                                        terms[t].lattice.splatBlur(input: qp, scale: norms[t], width: width, lanes: 0..<width,
                                                                   buffers: workspaces[t].buffers, threads: threads)
                                    }
                                    withUpdateTerms(blurred: blurred, norms: norms) { list in
                                        list.withUnsafeBufferPointer { tp in
                                            parallelRanges(n, threads: threads, minimum: 1024) { r in
                                                ccrf_update(tp.baseAddress!, Int32(tp.count), negU, Int64(width), Int32(l),
                                                            Int64(r.lowerBound), Int64(r.upperBound), dst, Int64(pixelStride),
                                                            Int64(labelStride))
                                            }
                                        }
                                    }
                                    continue
                                }
                                let mp = mb.baseAddress!
                                for (t, term) in terms.enumerated() {
                                    let target = PermutohedralLattice.SliceTarget.accumulate(
                                        base: t == 0 ? negU : UnsafePointer(mp), acc: mp, norm: norms[t]!, weight: term.weight)
                                    let softmax: (Range<Int>) -> Void = { r in
                                        ccrf_softmax(mp, Int64(width), Int32(l), Int64(r.lowerBound), Int64(r.upperBound),
                                                     dst, Int64(pixelStride), Int64(labelStride))
                                    }
                                    term.lattice.filter(input: qp, scale: norms[t], width: width, channels: l,
                                                        workspace: workspaces[t], threads: threads, into: target,
                                                        completed: t == terms.count - 1 ? softmax : nil)
                                }
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// Calls `body` with each term's `ccrf_term` (its lattice's slice arrays, its blurred rows, D^{−½}, weight).
    private func withUpdateTerms<R>(blurred: [UnsafeMutablePointer<Float>], norms: [UnsafePointer<Float>?],
                                    _ body: ([ccrf_term]) -> R) -> R {
        func step(_ t: Int, _ built: [ccrf_term]) -> R {
            if t == terms.count { return body(built) }
            let lattice = terms[t].lattice
            return lattice.withLatticePointers { offsets, weights, _ in
                step(t + 1, built + [ccrf_term(offsets: offsets, weights: weights, vpp: Int32(lattice.dimension + 1),
                                               rows: blurred[t], alpha: lattice.alpha, norm: norms[t], weight: terms[t].weight)])
            }
        }
        return step(0, [])
    }

    /// The argmax label of each pixel of a label-major Q (the first maximum, as numpy's argmax). Needs L ≤ 256.
    /// Blocks of pixels run on `threads` threads, each sweeping the label planes over its block.
    public static func argmax(_ q: [Float], labels l: Int, threads: Int = 1) -> [UInt8] {
        precondition(l >= 1 && l <= 256, "DenseCRF.argmax: label count \(l) does not fit in UInt8")
        precondition(q.count % l == 0, "DenseCRF.argmax: \(q.count) values are not L × N with L = \(l)")
        let n = q.count / l
        var best = [UInt8](repeating: 0, count: n)
        q.withUnsafeBufferPointer { qb in
            best.withUnsafeMutableBufferPointer { bb in
                let q = qb.baseAddress!, b = bb.baseAddress!
                parallelRanges(n, threads: threads, minimum: 16384) { range in
                    let block = 1024
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { top in
                        for lo in stride(from: range.lowerBound, to: range.upperBound, by: block) {
                            let hi = min(lo + block, range.upperBound)
                            for i in lo..<hi { top[i - lo] = q[i] }
                            for k in 1..<l {
                                let plane = q + k * n
                                for i in lo..<hi where plane[i] > top[i - lo] {
                                    top[i - lo] = plane[i]
                                    b[i] = UInt8(k)
                                }
                            }
                        }
                    }
                }
            }
        }
        return best
    }
}

/// Calls `body` with the base addresses of `arrays`.
private func withPointers<R>(_ arrays: [[Float]], _ body: ([UnsafePointer<Float>?]) -> R) -> R {
    func step(_ index: Int, _ acc: [UnsafePointer<Float>?]) -> R {
        if index == arrays.count { return body(acc) }
        return arrays[index].withUnsafeBufferPointer { step(index + 1, acc + [$0.baseAddress!]) }
    }
    return step(0, [])
}

// MARK: - Convenience

extension DenseCRF {
    /// A CRF with both of the parameters' terms (Gaussian first, then bilateral, as upstream adds them).
    public static func model(image: [UInt8], width: Int, height: Int, labels: Int, parameters p: CRFParameters,
                             threads: Int = 1) throws -> DenseCRF {
        try p.validate()
        var crf = try DenseCRF(width: width, height: height, labels: labels, threads: threads)
        guard image.count == 3 * width * height else {
            throw DenseCRFError.shapeMismatch(what: "the RGB image", expected: "\(height) × \(width) × 3", actual: image.count)
        }
        try crf.addGaussian(sxy: p.gaussianSXY, compat: p.gaussianCompat)
        try crf.addBilateral(sxy: p.bilateralSXY, srgb: p.bilateralSRGB, image: image, compat: p.bilateralCompat)
        return crf
    }

    /// Q (L × N label-major) for a label map (upstream's `crf_inference_label` with the psa-label preset).
    public static func inference(image: [UInt8], width: Int, height: Int, labelMap: [UInt8],
                                 labels: Int = CRFPreset.defaultLabels,
                                 parameters: CRFParameters = CRFPreset.psaLabel.parameters(),
                                 threads: Int = 1) throws -> [Float] {
        var crf = try model(image: image, width: width, height: height, labels: labels, parameters: parameters, threads: threads)
        try crf.setUnary(labelMap: labelMap, gtProb: parameters.gtProb)
        return crf.inference(iterations: parameters.iterations)
    }

    /// Q (L × N label-major) for a probability map, L × N label-major (`crf_inference`, deeplab-pytorch's `DenseCRF`).
    public static func inference(image: [UInt8], width: Int, height: Int, probabilities: [Float], labels: Int,
                                 parameters: CRFParameters, threads: Int = 1) throws -> [Float] {
        var crf = try model(image: image, width: width, height: height, labels: labels, parameters: parameters, threads: threads)
        try crf.setUnary(probabilities: probabilities, clip: parameters.clip)
        return crf.inference(iterations: parameters.iterations)
    }

    /// The CRF's argmax labels for a label map: upstream's `crf_inference_label(img, labels, t, n_labels, gt_prob)`.
    public static func labels(image: [UInt8], width: Int, height: Int, labelMap: [UInt8],
                              labels: Int = CRFPreset.defaultLabels,
                              parameters: CRFParameters = CRFPreset.psaLabel.parameters(),
                              threads: Int = 1) throws -> [UInt8] {
        try checkArgmaxRange(labels)
        let q = try inference(image: image, width: width, height: height, labelMap: labelMap, labels: labels,
                              parameters: parameters, threads: threads)
        return argmax(q, labels: labels, threads: threads)
    }

    /// The CRF's argmax labels for a probability map (L × N label-major).
    public static func labels(image: [UInt8], width: Int, height: Int, probabilities: [Float], labels: Int,
                              parameters: CRFParameters, threads: Int = 1) throws -> [UInt8] {
        try checkArgmaxRange(labels)
        let q = try inference(image: image, width: width, height: height, probabilities: probabilities, labels: labels,
                              parameters: parameters, threads: threads)
        return argmax(q, labels: labels, threads: threads)
    }

    private static func checkArgmaxRange(_ labels: Int) throws {
        guard labels >= 1 && labels <= 256 else {
            throw DenseCRFError.invalidParameter(name: "label count", value: "\(labels)", requirement: "in 1...256 for a uint8 label map")
        }
    }
}
