/// The networks the pipeline uses (spec §2.1), by the names `--model` takes.
public enum ModelVariant: String, CaseIterable, Sendable {
    /// `Net_sm21`: Conformer-S, 21-way heads (PC stage, VOC).
    case pc
    /// `Net_sm_sub`: Conformer-S with the extra (C − 1)·k-way heads (SP stage, VOC).
    case sp
    /// `Net_sm81`, `Net_sm_sub81`: the COCO forms (81 classes).
    case pcCOCO = "pc-coco"
    case spCOCO = "sp-coco"
    /// The same code at the tiny size, for tests and the synthetic demo.
    case tinyPC = "tiny-pc"
    case tinySP = "tiny-sp"

    /// The configuration, for `classes` classes including background (default: 21, or 81 for COCO) and k
    /// sub-prototypes per class.
    public func config(classes: Int? = nil, k: Int = 10) -> ConformerConfig {
        var config: ConformerConfig = (self == .tinyPC || self == .tinySP) ? .tiny : .small
        config.numClasses = classes ?? ((self == .pcCOCO || self == .spCOCO) ? 81 : 21)
        if self == .sp || self == .spCOCO || self == .tinySP { config.subClasses = (config.numClasses - 1) * k }
        return config
    }
}
