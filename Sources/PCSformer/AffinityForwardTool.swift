import Formats
import Foundation
import NN

/// What `pcs-mpi forward --model aff` (or `tiny-aff`) does: runs AffinityNet (spec §8.2) on a tensor read from
/// HDF5 and writes the side outputs and the pair affinities, and with the pair masks the §8.5 loss and the gradient
/// of every trained parameter under its state-dict name. The conformance tool for upstream's `resnet38_aff.Net`.
///
/// Input file: `input` (B, 3, H, W) float32, H and W multiples of 8 (already normalised); for `train` also
/// `bg_pos`, `fg_pos`, `neg` (B, D, P) float32 0/1 masks in the pair layout of the H/8 × W/8 map (`AffinityPairs`).
/// Output file: `conv4`, `conv5`, `conv6` (the backbone's side outputs, `ResNet38Features`), `affinity` (B, D, P)
/// with attribute `radius`; train: `loss` (1) and `grad/<key>` for every parameter that takes a gradient.
///
/// The pair radius is upstream's (`AffinityPairs.fallbackRadius`): 5 when the map's smaller side is ≥ 11, so D = 34.
/// BatchNorm runs on running statistics and channel dropout is off, always: the caller sets `.inference` for a
/// plain pass; `train` applies upstream's frozen set-up (`freezeAsUpstream`: stem and b2* fixed, BatchNorm frozen),
/// so the pass is deterministic (upstream trains with Dropout2d on; a reference must `eval()` its Dropout2d modules).
public struct AffinityForwardTool {
    public var network: AffinityNet
    public var train: Bool
    public var radius: Int

    public init(network: AffinityNet, train: Bool, radius: Int = 5) {
        self.network = network
        self.train = train
        self.radius = radius
    }

    public func run(input inputPath: String, output outputPath: String) throws {
        let file = try HDF5File.open(inputPath)
        guard file.exists("/input") else { throw HDF5Error(file: inputPath, what: "no dataset `input` (B, 3, H, W)") }
        let (values, shape) = try file.read("/input", as: Float.self)
        guard shape.count == 4, shape[1] == 3, shape[2] > 0, shape[3] > 0, shape[2] % 8 == 0, shape[3] % 8 == 0 else {
            throw HDF5Error(file: inputPath, what: "input is \(shape); expected (B, 3, H, W) with H and W multiples of 8")
        }
        let x = Tensor(values, shape: shape)
        let hf = shape[2] / 8, wf = shape[3] / 8
        let r = AffinityPairs.fallbackRadius(height: hf, width: wf, radius: radius)
        guard r >= 2 else {
            throw HDF5Error(file: inputPath, what: "input is \(shape): its \(hf)×\(wf) feature map has no pixel pairs (needs ≥ 5 per side)")
        }
        let pairs = AffinityPairs(height: hf, width: wf, radius: r)
        let maskShape = [shape[0], pairs.directionCount, pairs.fromCount]
        func mask(_ name: String) throws -> Tensor {
            guard file.exists("/\(name)") else { throw HDF5Error(file: inputPath, what: "--train needs dataset `\(name)` \(maskShape)") }
            let (v, s) = try file.read("/\(name)", as: Float.self)
            guard s == maskShape else { throw HDF5Error(file: inputPath, what: "`\(name)` is \(s); expected \(maskShape) (radius \(r))") }
            return Tensor(v, shape: s)
        }
        let labels = train ? AffinityLabels(bgPos: try mask("bg_pos"), fgPos: try mask("fg_pos"), neg: try mask("neg")) : nil

        if train { network.freezeAsUpstream() }
        for p in network.parameters { p.grad = nil }
        var rng = SeededRandom(seed: 0)  // unused: dropout is off
        let features: ResNet38Features, affinity: Tensor
        var loss: Tensor?
        if let labels {
            features = network.backbone.features(x, training: false, rng: &rng)
            affinity = pairAffinity(network.embedding(features), pairs: pairs)
            let total = affinityLoss(affinity, labels: labels)
            total.backward()
            loss = total
        } else {
            (features, affinity) = Autograd.noGrad {
                let d = network.backbone.features(x, training: false, rng: &rng)
                return (d, pairAffinity(network.embedding(d), pairs: pairs))
            }
        }

        try HDF5File.writeAtomically(to: URL(fileURLWithPath: outputPath)) { result in
            func put(_ name: String, _ t: Tensor?) throws {
                if let t { try result.write(name, t.toArray(), shape: t.shape) }
            }
            try put("/conv4", features.conv4)
            try put("/conv5", features.conv5)
            try put("/conv6", features.conv6)
            try put("/affinity", affinity)
            try result.setAttribute("radius", String(r), on: "/affinity")
            try put("/loss", loss)
            if loss != nil {
                for case let .parameter(name, p) in network.state("") {
                    if let g = p.grad { try result.write("/grad/\(name)", g.toArray(), shape: p.shape) }
                }
            }
        }
    }
}
