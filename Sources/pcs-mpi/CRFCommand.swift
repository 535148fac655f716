import ArgumentParser
import Distributed
import Formats
import Foundation
import Imaging
import NN
import Segmentation

extension CRFPreset: ExpressibleByArgument {}

/// The dense-CRF parameters every CRF command takes: a preset, each parameter overridable.
struct CRFOptions: ParsableArguments {
    @Option(help: "Parameter set: psa-label (labels as unaries, gt_prob 0.7; Gaussian sxy 3 compat 3; bilateral sxy 50 srgb 5 compat 10), psa-softmax (probabilities; Gaussian 3/scale compat 3; bilateral 80/scale srgb 13 compat 10) or deeplab (probabilities; Gaussian sxy 1 compat 3; bilateral sxy 67 srgb 3 compat 4).")
    var preset: CRFPreset = .psaLabel

    @Option(help: "Mean-field iterations. Default: 10.")
    var iterations: Int?

    @Option(help: "psa-softmax's image scale (the xy deviations are divided by it). Default: 1.")
    var scale: Double = 1

    @Option(help: "Probability of a given label (label unaries). Default: 0.7.")
    var gtProb: Double?

    @Option(help: "Gaussian (appearance-free) kernel: position deviation in pixels.")
    var gaussianSxy: Float?

    @Option(help: "Gaussian kernel weight (Potts compatibility).")
    var gaussianCompat: Float?

    @Option(help: "Bilateral kernel: position deviation in pixels.")
    var bilateralSxy: Float?

    @Option(help: "Bilateral kernel: colour deviation (0–255 scale).")
    var bilateralSrgb: Float?

    @Option(help: "Bilateral kernel weight (Potts compatibility).")
    var bilateralCompat: Float?

    /// The preset with the overrides applied, checked.
    func parameters() throws -> CRFParameters {
        guard scale > 0 else { throw ValidationError("--scale must be positive; got \(scale)") }
        var p = preset.parameters(scale: scale)
        if let iterations { p.iterations = iterations }
        if let gtProb { p.gtProb = gtProb }
        if let gaussianSxy { p.gaussianSXY = gaussianSxy }
        if let gaussianCompat { p.gaussianCompat = gaussianCompat }
        if let bilateralSxy { p.bilateralSXY = bilateralSxy }
        if let bilateralSrgb { p.bilateralSRGB = bilateralSrgb }
        if let bilateralCompat { p.bilateralCompat = bilateralCompat }
        do { try p.validate() } catch { throw ValidationError("\(error)") }
        return p
    }
}

/// `pcs-mpi crf`: the dense CRF on one image, the conformance and debugging tool (like `forward`).
struct CRFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crf",
        abstract: "Dense CRF (mean field, permutohedral lattice, as pydensecrf computes it) on one image.",
        discussion: """
        Unaries from a label map (--labels, palette or grey PNG, label 0 an ordinary label) or from probabilities \
        (--probs, HDF5 dataset `probs` (L, H, W) float32, −ln(clip(p, 1e-5, 1))). Writes the argmax labels as a \
        VOC-palette PNG and, with --out-probs, the final Q as HDF5 dataset `q` (L, H, W). Threads: --threads.
        """)

    @Option(help: "The RGB image (JPEG or PNG) the bilateral kernel reads.")
    var image: String

    @Option(help: "Label map PNG (values below --classes) for label unaries.")
    var labels: String?

    @Option(help: "HDF5 file with dataset `probs` (L, H, W) float32 for probability unaries.")
    var probs: String?

    @Option(help: "Output PNG of the argmax labels (VOC palette).")
    var out: String

    @Option(help: "Also write the final Q as HDF5 dataset `q` (L, H, W).")
    var outProbs: String?

    @Option(help: "Labels (background included) for --labels. Default: 21; --probs takes L from the file.")
    var classes: Int?

    @OptionGroup var crf: CRFOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (labels == nil) != (probs == nil) else { throw ValidationError("give exactly one of --labels and --probs") }
        try requireFile(image, flag: "--image")
        if let labels { try requireFile(labels, flag: "--labels") }
        if let probs { try requireFile(probs, flag: "--probs") }
        if let classes, !(2...255).contains(classes) { throw ValidationError("--classes must be 2…255; got \(classes)") }
    }

    func run() throws {
        global.apply()
        let parameters = try crf.parameters()
        let rgb = try ImageFile.loadRGB(image)
        let (w, h) = (rgb.width, rgb.height)
        var model: DenseCRF
        let labelCount: Int
        if let labels {
            let map = try PNGCodec.decodeIndices(try ImageFile.readBytes(labels), name: labels)
            guard map.width == w, map.height == h else {
                throw FileError(path: labels, what: "the label map is \(map.width)x\(map.height), the image \(w)x\(h)")
            }
            labelCount = classes ?? CRFPreset.defaultLabels
            if let bad = map.pixels.firstIndex(where: { Int($0) >= labelCount }) {
                throw FileError(path: labels, what: "label \(map.pixels[bad]) at pixel \(bad) is not below --classes \(labelCount)")
            }
            model = try DenseCRF.model(image: rgb.pixels, width: w, height: h, labels: labelCount, parameters: parameters,
                                       threads: ComputeThreads.current)
            try model.setUnary(labelMap: map.pixels, gtProb: parameters.gtProb)
        } else {
            let file = try HDF5File.open(probs!)
            guard file.exists("/probs") else { throw HDF5Error(file: probs!, what: "no dataset `probs` (L, H, W) float32") }
            let (values, shape) = try file.read("/probs", as: Float.self)
            guard shape.count == 3, shape[1] == h, shape[2] == w, shape[0] >= 2 else {
                throw HDF5Error(file: probs!, what: "probs are \(shape); expected (L, \(h), \(w)) with L ≥ 2 for the image \(image)")
            }
            if let classes, classes != shape[0] { throw HDF5Error(file: probs!, what: "holds \(shape[0]) labels, --classes says \(classes)") }
            labelCount = shape[0]
            model = try DenseCRF.model(image: rgb.pixels, width: w, height: h, labels: labelCount, parameters: parameters,
                                       threads: ComputeThreads.current)
            try model.setUnary(probabilities: values, clip: parameters.clip)
        }
        Log.debug("crf: lattice vertices (Gaussian, bilateral) \(model.latticeVertexCounts) for \(w * h) pixels")
        let start = Date()
        let q = model.inference(iterations: parameters.iterations)
        let seconds = Date().timeIntervalSince(start)
        let argmax = DenseCRF.argmax(q, labels: labelCount, threads: ComputeThreads.current)
        try AtomicFile.write(Data(try PNGCodec.encodeIndexed(PixelImage(width: w, height: h, channels: 1, pixels: argmax))),
                             to: URL(fileURLWithPath: out))
        if let outProbs {
            try HDF5File.writeAtomically(to: URL(fileURLWithPath: outProbs)) { file in
                try file.write("/q", q, shape: [labelCount, h, w])
                try file.setAttribute("preset", crf.preset.rawValue)
            }
        }
        Log.info(String(format: "crf: %dx%d, %d labels, %@, %d iterations in %.2f s → %@", w, h, labelCount, crf.preset.rawValue,
                        parameters.iterations, seconds, out))
    }
}
