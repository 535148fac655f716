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
/// `Float(x)/sxy`, the scaled input Q·D^{−½}, `acc + w·(sliced·D^{−½})` term by term, softmax with division by the
/// sum), so Q matches pydensecrf to float rounding (exp and the sum order inside softmax differ from Eigen's).
///
/// **Threads.** Each term's splat, blur and slice split over `threads` by groups of SIMD4 label lanes (at most
/// ⌈L/4⌉ busy threads), the softmax and input scaling by pixel ranges, the lattice build's elevation and neighbour
/// search by pixel/vertex ranges (its hash insertion is sequential). Q is bit-identical for every thread count.
///
/// **Memory.** About 4 N·⌈L/4⌉·16 bytes of per-pixel buffers (−U, the sum, one input per term) plus Q, the lattices
/// (8(d+1) bytes per pixel and 8(d+1) per vertex) and their value buffers (2(M+1)·⌈L/4⌉·16 bytes); measured peak
/// RSS for a 1000 × 750 image, 21 labels, psa-label through `labels(...)`: 520 MB.
public struct DenseCRF: Sendable {
    public let width: Int
    public let height: Int
    public let labels: Int
    /// Threads for building the lattices and for inference.
    public var threads: Int

    /// −U, pixel-major in rows of ⌈L/4⌉ SIMD4 vectors (pad lanes zero; zero until a unary is set, as densecrf).
    private var negUnary: [F4]
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
        negUnary = [F4](repeating: .zero, count: width * height * (PermutohedralLattice.paddedWidth(labels) / 4))
    }

    // MARK: Unary

    /// Sets U from an L × N label-major energy array (pydensecrf's `setUnaryEnergy`).
    public mutating func setUnaryEnergy(_ energy: [Float]) throws {
        let n = pixelCount, l = labels
        guard energy.count == l * n else {
            throw DenseCRFError.shapeMismatch(what: "the unary energy", expected: "\(l) × \(height) × \(width)", actual: energy.count)
        }
        let stride = PermutohedralLattice.paddedWidth(l)
        energy.withUnsafeBufferPointer { u in
            negUnary.withUnsafeMutableBufferPointer { out in
                let src = u.baseAddress!
                let dst = UnsafeMutableRawPointer(out.baseAddress!).assumingMemoryBound(to: Float.self)
                parallelRanges(n, threads: threads, minimum: 4096) { range in
                    for i in range { for k in 0..<l { dst[i * stride + k] = -src[k * n + i] } }
                }
            }
        }
    }

    /// Unaries from a label map (N values, row-major), `CRFUnary.fromLabels`.
    public mutating func setUnary(labelMap: [UInt8], gtProb: Double) throws {
        guard labelMap.count == pixelCount else {
            throw DenseCRFError.shapeMismatch(what: "the label map", expected: "\(height) × \(width)", actual: labelMap.count)
        }
        try setUnaryEnergy(CRFUnary.fromLabels(labelMap, labels: labels, gtProb: gtProb))
    }

    /// Unaries from a probability map (L × N label-major), `CRFUnary.fromProbabilities`.
    public mutating func setUnary(probabilities: [Float], clip: Float = 1e-5) throws {
        guard probabilities.count == labels * pixelCount else {
            throw DenseCRFError.shapeMismatch(what: "the probability map", expected: "\(labels) × \(height) × \(width)",
                                              actual: probabilities.count)
        }
        try setUnaryEnergy(CRFUnary.fromProbabilities(probabilities, labels: labels, pixels: pixelCount, clip: clip))
    }

    // MARK: Pairwise terms

    /// The appearance-free term w·exp(−|p_i − p_j|²/2sxy²) on features (x/sxy, y/sxy), x = column, y = row
    /// (pydensecrf's `addPairwiseGaussian(sxy, compat)`).
    public mutating func addGaussian(sxy: Float, compat: Float) throws {
        try checkDeviation("Gaussian sxy", sxy)
        let n = pixelCount, w = width
        var f = [Float](repeating: 0, count: 2 * n)
        for i in 0..<n {
            f[2 * i] = Float(i % w) / sxy
            f[2 * i + 1] = Float(i / w) / sxy
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
        var f = [Float](repeating: 0, count: 5 * n)
        for i in 0..<n {
            f[5 * i] = Float(i % w) / sxy
            f[5 * i + 1] = Float(i / w) / sxy
            for c in 0..<3 { f[5 * i + 2 + c] = Float(image[3 * i + c]) / srgb }
        }
        try addPairwise(features: f, dimension: 5, compat: compat)
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
        // D = K·1 through densecrf's one-channel (scalar) path; D^{−½} = 1/√(D + 1e-20) in double, stored as float.
        let ones = [Float](repeating: 1, count: pixelCount)
        let norm = lattice.filter(ones, channels: 1, threads: threads).map { Float(1.0 / (Double($0) + 1e-20).squareRoot()) }
        terms.append(PairwiseTerm(lattice: lattice, normalization: norm, weight: compat))
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
        let q = inferencePixelMajor(iterations: iterations)
        let n = pixelCount, l = labels
        var out = [Float](repeating: 0, count: n * l)
        q.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, o = dst.baseAddress!
                parallelRanges(l, threads: threads) { range in
                    for k in range { for i in 0..<n { o[k * n + i] = s[i * l + k] } }
                }
            }
        }
        return out
    }

    /// Q pixel-major (N × L). Per iteration: (1) each term's filter, its vector groups on the threads, adding
    /// w·K̃Q into `acc` (the first term starts from −U); (2) per pixel over the threads: Q = softmax(acc) and each
    /// term's next input Q·D^{−½}. Rows are padded to whole SIMD4 vectors (pad lanes are zero or never read).
    func inferencePixelMajor(iterations: Int) -> [Float] {
        let n = pixelCount, l = labels, threads = self.threads
        let vectors = PermutohedralLattice.paddedWidth(l) / 4
        var q = [Float](repeating: 0, count: n * l)
        var acc = [F4](repeating: .zero, count: n * vectors)
        // Each term's input Q·D^{−½} (pad lanes zero).
        let inputs = terms.map { _ in UnsafeMutablePointer<F4>.allocate(capacity: n * vectors) }
        for input in inputs { input.initialize(repeating: .zero, count: n * vectors) }
        defer { for input in inputs { input.deallocate() } }
        var workspaces = terms.map { PermutohedralLattice.Workspace(lattice: $0.lattice, vectors: vectors, threads: threads) }
        let norms = terms.map(\.normalization)

        /// Q = softmax(x) for the pixels `range` (x: rows of `vectors` SIMD4), then either Q into `q` (the result)
        /// or Q·D^{−½} into each term's input (densecrf: `in * norm_.asDiagonal()`).
        func update(_ x: UnsafePointer<F4>, final: Bool, _ qp: UnsafeMutablePointer<Float>,
                    _ inputs: UnsafeBufferPointer<UnsafeMutablePointer<F4>>, _ normPointers: UnsafeBufferPointer<UnsafePointer<Float>>,
                    range: Range<Int>) {
            withUnsafeTemporaryAllocation(of: F4.self, capacity: vectors) { tmp in
                let t = tmp.baseAddress!
                t.initialize(repeating: .zero, count: vectors)      // pad lanes stay zero
                let tf = UnsafeMutableRawPointer(t).assumingMemoryBound(to: Float.self)
                for i in range {
                    let xf = UnsafeRawPointer(x + i * vectors).assumingMemoryBound(to: Float.self)
                    if final {
                        softmax(xf, into: qp + i * l, count: l)
                        continue
                    }
                    softmax(xf, into: tf, count: l)
                    for (input, norm) in zip(inputs, normPointers) {
                        let s = F4(repeating: norm[i]), row = input + i * vectors
                        withConstantVectors(vectors) { vn in
                            for k in 0..<vn { row[k] = t[k] * s }
                        }
                    }
                }
            }
        }

        do {
            withPointers(norms) { normPointerArray in
              normPointerArray.withUnsafeBufferPointer { normPointers in
              inputs.withUnsafeBufferPointer { inputPointers in
                negUnary.withUnsafeBufferPointer { nu in
                    q.withUnsafeMutableBufferPointer { qb in
                        acc.withUnsafeMutableBufferPointer { ab in
                            let negU = nu.baseAddress!, qp = qb.baseAddress!, ap = ab.baseAddress!
                            let done = terms.isEmpty || iterations == 0
                            parallelRanges(n, threads: threads, minimum: 1024) { range in
                                update(negU, final: done, qp, inputPointers, normPointers, range: range)
                            }
                            if done { return }
                            for it in 0..<iterations {
                                var fusedLast = false
                                for (t, term) in terms.enumerated() {
                                    let w = F4(repeating: term.weight), norm = normPointers[t]
                                    let first = t == 0, last = t == terms.count - 1, final = it == iterations - 1
                                    // With one group covering the whole row (one thread), each block of pixels is
                                    // complete after the last term's slice: update it at once, while it is in cache.
                                    let fused = last && workspaces[t].rounds.count == 1 && workspaces[t].rounds[0].count == 1
                                    if fused { fusedLast = true }
                                    term.lattice.filter(input: UnsafePointer(inputs[t]), inputVectors: vectors, channels: l,
                                                        workspace: &workspaces[t]) { rows, sliced, group in
                                        // acc = (first ? −U : acc) + w·(sliced·D^{−½}): densecrf's
                                        // `out * norm_.asDiagonal()`, `−w·out`, `tmp1 −= out`, in that order.
                                        let vn = group.count
                                        for i in rows {
                                            let src = sliced + (i - rows.lowerBound) * vn
                                            let row = i * vectors + group.lowerBound
                                            let base = first ? negU + row : UnsafePointer(ap + row)
                                            let dst = ap + row
                                            let s = F4(repeating: norm[i])
                                            for k in 0..<vn { dst[k] = base[k] + w * (src[k] * s) }
                                        }
                                        if fused { update(UnsafePointer(ap), final: final, qp, inputPointers, normPointers, range: rows) }
                                    }
                                }
                                if !fusedLast {
                                    let final = it == iterations - 1
                                    parallelRanges(n, threads: threads, minimum: 1024) { range in
                                        update(UnsafePointer(ap), final: final, qp, inputPointers, normPointers, range: range)
                                    }
                                }
                            }
                        }
                    }
                }
              }
              }
            }
        }
        return q
    }

    /// The argmax label of each pixel of a label-major Q (the first maximum, as numpy's argmax). Needs L ≤ 256.
    public static func argmax(_ q: [Float], labels l: Int) -> [UInt8] {
        precondition(l >= 1 && l <= 256, "DenseCRF.argmax: label count \(l) does not fit in UInt8")
        precondition(q.count % l == 0, "DenseCRF.argmax: \(q.count) values are not L × N with L = \(l)")
        let n = q.count / l
        var best = [UInt8](repeating: 0, count: n)
        var top = Array(q[0..<n])
        for k in 1..<max(l, 1) {
            let row = k * n
            for i in 0..<n where q[row + i] > top[i] {
                top[i] = q[row + i]
                best[i] = UInt8(k)
            }
        }
        return best
    }
}

/// Calls `body` with the base addresses of `arrays`.
private func withPointers<R>(_ arrays: [[Float]], _ body: ([UnsafePointer<Float>]) -> R) -> R {
    func step(_ index: Int, _ acc: [UnsafePointer<Float>]) -> R {
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
        return argmax(q, labels: labels)
    }

    /// The CRF's argmax labels for a probability map (L × N label-major).
    public static func labels(image: [UInt8], width: Int, height: Int, probabilities: [Float], labels: Int,
                              parameters: CRFParameters, threads: Int = 1) throws -> [UInt8] {
        try checkArgmaxRange(labels)
        let q = try inference(image: image, width: width, height: height, probabilities: probabilities, labels: labels,
                              parameters: parameters, threads: threads)
        return argmax(q, labels: labels)
    }

    private static func checkArgmaxRange(_ labels: Int) throws {
        guard labels >= 1 && labels <= 256 else {
            throw DenseCRFError.invalidParameter(name: "label count", value: "\(labels)", requirement: "in 1...256 for a uint8 label map")
        }
    }
}
