import Formats
import Foundation
import NN

/// What `pcs-mpi forward` does: runs a Conformer on a tensor read from HDF5 and writes what it computed, and with
/// labels the loss and every parameter's gradient under its state-dict name. The conformance and debugging tool.
///
/// Input file: `input` (B, 3, H, W) float32, H and W multiples of 16; for `train`, `label` (B, C − 1) (the
/// foreground classes, background excluded) and, for SP networks, `sub_label` (B, subClasses).
/// Output file: `conv_logits`, `trans_logits` (B, C); `cam` (B, C, H/16, W/16) with attribute `method`; SP:
/// `sub_conv_logits`, `sub_trans_logits`, `pooled_feature`; train: `loss` (1) and `grad/<key>` per parameter.
public struct ForwardTool {
    public var model: Conformer
    public var method: CAMMethod?
    /// Compute the loss and gradients (needs labels in the input file).
    public var train: Bool
    /// Drop path during a `train` pass (off by default, so the pass is deterministic).
    public var dropPath: Bool
    /// Weight of the sub-category loss for SP networks (spec §6.3: w = 1).
    public var subLossWeight: Float
    /// Names of the label datasets in the input file.
    public var labelDataset = "label", subLabelDataset = "sub_label"

    public init(model: Conformer, method: CAMMethod?, train: Bool, dropPath: Bool = false, subLossWeight: Float = 1) {
        self.model = model
        self.method = method
        self.train = train
        self.dropPath = dropPath
        self.subLossWeight = subLossWeight
    }

    public func run(input inputPath: String, output outputPath: String) throws {
        let file = try HDF5File.open(inputPath)
        guard file.exists("/input") else { throw HDF5Error(file: inputPath, what: "no dataset `input` (B, 3, H, W)") }
        let (values, shape) = try file.read("/input", as: Float.self)
        guard shape.count == 4, shape[1] == 3, shape[2] % 16 == 0, shape[3] % 16 == 0, shape[2] > 0, shape[3] > 0 else {
            throw HDF5Error(file: inputPath, what: "input is \(shape); expected (B, 3, H, W) with H and W multiples of 16")
        }
        let x = Tensor(values, shape: shape)
        let c = model.config.numClasses
        func labels(_ name: String, width: Int) throws -> Tensor {
            guard file.exists("/\(name)") else { throw HDF5Error(file: inputPath, what: "--train needs dataset `\(name)` (\(shape[0]), \(width))") }
            let (v, s) = try file.read("/\(name)", as: Float.self)
            guard s == [shape[0], width] else { throw HDF5Error(file: inputPath, what: "`\(name)` is \(s); expected [\(shape[0]), \(width)]") }
            return Tensor(v, shape: s)
        }
        let label = train ? try labels(labelDataset, width: c - 1) : nil
        let subLabel = train && model.config.subClasses > 0 ? try labels(subLabelDataset, width: model.config.subClasses) : nil

        for p in model.parameters { p.grad = nil }
        let out: ConformerOutput
        var loss: Tensor?
        if train, let label {
            out = model(x, training: dropPath, cam: method)
            let total = subLabel.map { SPTrainingStage.loss(out, labels: label, subLabels: $0, subLossWeight: subLossWeight) }
                ?? PCSformerLoss.classification(convLogits: out.convLogits, transLogits: out.transLogits, labels: label)
            total.backward()
            loss = total
        } else {
            out = Autograd.noGrad { model(x, cam: method) }
        }

        try HDF5File.writeAtomically(to: URL(fileURLWithPath: outputPath)) { result in
            func put(_ name: String, _ t: Tensor?) throws {
                if let t { try result.write(name, t.toArray(), shape: t.shape) }
            }
            try put("/conv_logits", out.convLogits)
            try put("/trans_logits", out.transLogits)
            try put("/cam", out.cam)
            if let method, out.cam != nil { try result.setAttribute("method", method.rawValue, on: "/cam") }
            try put("/sub_conv_logits", out.subConvLogits)
            try put("/sub_trans_logits", out.subTransLogits)
            try put("/pooled_feature", out.pooledFeature)
            try put("/loss", loss)
            if loss != nil {
                for case let .parameter(name, p) in model.state("") {
                    if let g = p.grad { try result.write("/grad/\(name)", g.toArray(), shape: p.shape) }
                }
            }
            try result.setAttribute("config", String(decoding: try JSONEncoder().encode(model.config), as: UTF8.self))
        }
    }
}

/// The PC classification loss (spec §3.4): multilabel soft margin of the summed heads' foreground logits
/// (background slot 0 dropped) against the (B, C − 1) image labels.
public enum PCSformerLoss {
    public static func classification(convLogits: Tensor, transLogits: Tensor, labels: Tensor) -> Tensor {
        let c = convLogits.shape[1]
        return multilabelSoftMarginLoss(slice(add(convLogits, transLogits), axis: 1, range: 1..<c), labels)
    }
}
