/// The sizes of DeepLab-v2 (spec §10.1): ResNet-101 as deeplab-pytorch builds it, and `tiny`, the same code at
/// 1/16 of the widths with one block per layer, for tests and the synthetic demo.
public struct DeepLabConfig: Sendable, Equatable {
    /// The stem's width; the layers' outputs are 4×, 8×, 16×, 32× it (256, 512, 1024, 2048 for ResNet-101).
    public var stem: Int
    /// Bottlenecks per layer (layer2 … layer5): 3, 4, 23, 3.
    public var blocks: [Int]
    /// The ASPP dilations: 6, 12, 18, 24.
    public var rates: [Int]
    /// Output classes, background included (21 VOC, 81 COCO).
    public var classes: Int
    /// The MSC input scales besides 1 (0.5 and 0.75).
    public var scales: [Double]

    public static let resNet101 = DeepLabConfig(stem: 64, blocks: [3, 4, 23, 3], rates: [6, 12, 18, 24], classes: 21, scales: [0.5, 0.75])
    public static let tiny = DeepLabConfig(stem: 4, blocks: [1, 1, 1, 1], rates: [6, 12, 18, 24], classes: 21, scales: [0.5, 0.75])

    /// The layer widths, layer2 … layer5.
    public var widths: [Int] { [4, 8, 16, 32].map { $0 * stem } }

    /// `--model` names: `deeplab` (VOC, 21), `deeplab-coco` (81), `tiny-deeplab` (the test size, 21 unless the data
    /// says otherwise).
    public static func named(_ name: String, classes: Int? = nil) -> DeepLabConfig? {
        var config: DeepLabConfig
        switch name {
        case "deeplab": config = .resNet101
        case "deeplab-coco": config = .resNet101; config.classes = 81
        case "tiny-deeplab": config = .tiny
        default: return nil
        }
        if let classes { config.classes = classes }
        return config
    }

    public static let names = ["deeplab", "deeplab-coco", "tiny-deeplab"]
}
