import Foundation
import Formats
import NN

/// What `pcs-mpi forward --model deeplab` (or `deeplab-coco`, `tiny-deeplab`) does: runs DeepLab-v2 with MSC
/// (spec §10.1) on a tensor read from HDF5. The conformance tool for deeplab-pytorch's `DeepLabV2_ResNet101_MSC`.
///
/// Input file: `input` (B, 3, H, W) float32, any size, already Caffe-normalised (BGR, mean subtracted); with
/// `train` also `label` (B, H, W) integers (255 ignored). Output file: `logits` (the evaluation output, the MSC
/// max); train: `train/scale_1`, `train/scale_0.5`, `train/scale_0.75`, `train/max` (the four training outputs),
/// `loss` (1, the sum of the four cross-entropies, labels resized as deeplab-pytorch's `resize_labels`) and
/// `grad/<key>` for every trained parameter. BatchNorm is frozen (running statistics, affine fixed) in both.
public struct DeepLabForwardTool {
    public var network: DeepLabV2MSC
    public var train: Bool
    public var labelDataset = "label"

    public init(network: DeepLabV2MSC, train: Bool) {
        self.network = network
        self.train = train
    }

    public func run(input inputPath: String, output outputPath: String) throws {
        let file = try HDF5File.open(inputPath)
        guard file.exists("/input") else { throw HDF5Error(file: inputPath, what: "no dataset `input` (B, 3, H, W)") }
        let (values, shape) = try file.read("/input", as: Float.self)
        // The stem and layer3 halve the size three times: below 8 pixels a side there is no logit left.
        guard shape.count == 4, shape[1] == 3, shape[2] >= 8, shape[3] >= 8 else {
            throw HDF5Error(file: inputPath, what: "input is \(shape); expected (B, 3, H, W) with H, W ≥ 8")
        }
        var labels: [UInt8] = []
        if train {
            guard file.exists("/\(labelDataset)") else { throw HDF5Error(file: inputPath, what: "--train needs dataset `\(labelDataset)` (B, H, W)") }
            let (v, s) = try file.read("/\(labelDataset)", as: Int32.self)
            guard s == [shape[0], shape[2], shape[3]] else {
                throw HDF5Error(file: inputPath, what: "`\(labelDataset)` is \(s); expected \([shape[0], shape[2], shape[3]])")
            }
            if let bad = v.first(where: { $0 != 255 && !(0..<Int32(network.config.classes)).contains($0) }) {
                throw HDF5Error(file: inputPath, what: "`\(labelDataset)` holds \(bad), not a class of the \(network.config.classes)-class model nor 255")
            }
            labels = v.map { UInt8($0) }
        }
        network.freezeBatchNorm()
        for p in network.namedParameterList.map(\.tensor) { p.grad = nil }
        let x = Tensor(values, shape: shape)
        var outputs: MSCLogits?
        var loss: Double?
        if train {
            let o = network.logits(x)
            let terms = DeepLabTrainingStage.lossTerms(o, labels: labels, height: shape[2], width: shape[3])
            // Each term is a mean over its valid pixels; an output with none is left out (PyTorch would give NaN).
            let means = terms.filter { $0.count > 0 }.map { scale($0.sum, Float(1 / $0.count)) }
            if let first = means.first { means.dropFirst().reduce(first) { add($0, $1) }.backward() }
            loss = terms.filter { $0.count > 0 }.map { Double($0.sum.toArray()[0]) / $0.count }.reduce(0, +)
            outputs = o
        }
        let logits = Autograd.noGrad { network(x) }

        try HDF5File.writeAtomically(to: URL(fileURLWithPath: outputPath)) { result in
            func put(_ name: String, _ t: Tensor) throws { try result.write(name, t.toArray(), shape: t.shape) }
            try put("/logits", logits)
            if let outputs, let loss {
                let names = ["scale_1"] + network.config.scales.map { "scale_\($0)" } + ["max"]
                for (name, t) in zip(names, outputs.all) { try put("/train/\(name)", t) }
                try result.write("/loss", [Float(loss)], shape: [1])
                for (name, p) in network.namedParameterList {
                    if let g = p.grad { try result.write("/grad/\(name)", g.toArray(), shape: p.shape) }
                }
            }
        }
    }
}
