import Formats
import Foundation
import Imaging
import Storage

/// Where CSE reads an image's attention maps (spec §9.1): a CAM set (`infer-cam`'s output; each map quantised as
/// upstream's attention PNG, `CAMAttention`), or a folder of upstream's `<id>_<c>.png` files. A class without a
/// map is absent from the result, as upstream skips a missing file.
public enum AttentionSource {
    case cams(ShardedDataset)
    case pngFolder(URL)

    /// The maps of the classes `classes` (0-based foreground indices) of `id`, each width · height 8-bit values.
    public func maps(_ id: String, classes: [Int], width: Int, height: Int) throws -> [Int: [UInt8]] {
        var result: [Int: [UInt8]] = [:]
        switch self {
        case let .cams(set):
            guard set.contains(id) else { return [:] }
            let cams = try set.camRecord(id).maps
            for (k, c) in cams.classes.enumerated() where classes.contains(c) {
                result[c] = CAMAttention.quantize(cams.map(k), width: cams.width, height: cams.height).pixels
            }
        case let .pngFolder(folder):
            for c in classes {
                let path = folder.appendingPathComponent("\(id)_\(c).png").path
                guard FileManager.default.fileExists(atPath: path) else { continue }
                result[c] = try PNGCodec.decodeGray(try ImageFile.readBytes(path), name: path).pixels
            }
        }
        return result
    }
}

/// Where CSE reads an image's random-walk labels (0…C, 255): a label set (`--rw-map` names its map) or a folder
/// of upstream's `out_rw/<id>.png`.
public enum LabelSource {
    case labelSet(ShardedDataset, map: String)
    case pngFolder(URL)

    public func labels(_ id: String) throws -> PixelImage {
        switch self {
        case let .labelSet(set, map):
            guard set.contains(id) else {
                throw FileError(path: set.directory.path, what: "no random-walk labels for image \(id)")
            }
            let found = try set.labelMap(id, name: map)
            return PixelImage(width: found.width, height: found.height, channels: 1, pixels: found.pixels)
        case let .pngFolder(folder):
            let path = folder.appendingPathComponent("\(id).png").path
            guard FileManager.default.fileExists(atPath: path) else { throw FileError(path: path, what: "no random-walk labels for image \(id)") }
            return try PNGCodec.decodeIndices(try ImageFile.readBytes(path), name: path)
        }
    }
}

/// Upstream's attention PNG of one normalised CAM (spec §4.3): uint8(255 · N / (max N + 1e-8)), truncated toward
/// zero; values ≤ −1 (only possible in the lo > 0 case of §4.2) wrap modulo 256 as numpy's float→uint8 cast does
/// on x86. The denominator is formed in double (numpy 1.x scalar promotion) and applied in float.
public enum CAMAttention {
    public static func quantize(_ map: ArraySlice<Float>, width: Int, height: Int) -> PixelImage {
        let peak = map.max() ?? 0
        let denominator = Float(Double(peak) + 1e-8)
        var out = PixelImage(width: width, height: height, channels: 1)
        for (i, v) in map.enumerated() {
            let scaled = v / denominator * 255
            out.pixels[i] = UInt8(truncatingIfNeeded: Int(scaled.isFinite ? scaled.rounded(.towardZero) : 0))
        }
        return out
    }
}

/// CSE for one image of a dataset: the saliency map from the shards, attention and random-walk labels from their
/// sources, the listed classes from the image-level labels. Returns the pseudo labels (0…C, 255).
public struct PseudoLabeler {
    public var cse: ConflictSelfElimination
    public var attention: AttentionSource
    public var randomWalk: LabelSource

    public init(cse: ConflictSelfElimination, attention: AttentionSource, randomWalk: LabelSource) {
        self.cse = cse
        self.attention = attention
        self.randomWalk = randomWalk
    }

    public func callAsFunction(_ id: String, dataset: ShardedDataset) throws -> LabelMapRecord {
        let record = try dataset.record(id)
        guard let saliencyBytes = record.saliency else {
            throw FileError(path: dataset.directory.path, what: "image \(id) has no saliency map in the shards (ingest with --saliency)")
        }
        let saliency = try PNGCodec.decodeGray(saliencyBytes, name: "\(dataset.index.name)/\(id) saliency")
        let classes = record.label.indices.filter { record.label[$0] == 1 }
        let walk = try randomWalk.labels(id)
        guard walk.width == saliency.width, walk.height == saliency.height else {
            throw FileError(path: id, what: "random-walk labels are \(walk.width)x\(walk.height), the saliency map \(saliency.width)x\(saliency.height)")
        }
        let maps = try attention.maps(id, classes: classes, width: saliency.width, height: saliency.height)
        do {
            let labels = try cse.labels(saliency: saliency.pixels, width: saliency.width, height: saliency.height, attention: maps,
                                        randomWalk: walk.pixels, classes: dataset.classNames.count)
            return LabelMapRecord(id: id, width: saliency.width, height: saliency.height, maps: [Self.mapName: labels])
        } catch {
            throw FileError(path: id, what: "\(error)")
        }
    }

    /// The map name of a pseudo-label set.
    public static let mapName = "labels"
}

/// CSE in upstream's own folder layout (`SP_2/CSE_voc.py`), for dropping into an upstream workflow: the ids and
/// classes of `voc12/trainaug_cls.txt`, `VOC2012/saliency_map_DRS/<id>.png`, `save/attention/train_aug/<id>_<c>.png`,
/// `save/out_rw/<id>.png`; the result goes to `save/pseudo_label/<id>.png` (VOC palette). The class list is split
/// on whitespace (upstream drops each line's last character, which eats a digit when the file does not end with a
/// newline).
public struct CSEUpstreamLayout {
    public let root: URL
    public let classes: Int
    public let entries: [(id: String, classes: [Int])]

    public init(root: URL, classes: Int = 20) throws {
        self.root = root
        self.classes = classes
        let list = root.appendingPathComponent("voc12/trainaug_cls.txt")
        guard let data = FileManager.default.contents(atPath: list.path), let text = String(data: data, encoding: .utf8) else {
            throw FileError(path: list.path, what: "cannot read the id and class list")
        }
        entries = try text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let id = fields.first else { return nil }
            let listed = try fields.dropFirst().map { field -> Int in
                guard let c = Int(field), (0..<classes).contains(c) else {
                    throw FileError(path: list.path, what: "\(id): class '\(field)' is not one of 0…\(classes - 1)")
                }
                return c
            }
            return (id, listed)
        }
    }

    public var output: URL { root.appendingPathComponent("save/pseudo_label") }

    /// CSE of entry `position`, written as `save/pseudo_label/<id>.png`.
    public func run(_ position: Int, cse: ConflictSelfElimination) throws {
        let (id, listed) = entries[position]
        let salPath = root.appendingPathComponent("VOC2012/saliency_map_DRS/\(id).png").path
        guard FileManager.default.fileExists(atPath: salPath) else { throw FileError(path: salPath, what: "no saliency map for \(id)") }
        let saliency = try PNGCodec.decodeGray(try ImageFile.readBytes(salPath), name: salPath)
        let attention = try AttentionSource.pngFolder(root.appendingPathComponent("save/attention/train_aug"))
            .maps(id, classes: listed, width: saliency.width, height: saliency.height)
        let walk = try LabelSource.pngFolder(root.appendingPathComponent("save/out_rw")).labels(id)
        let labels: [UInt8]
        do {
            labels = try cse.labels(saliency: saliency.pixels, width: saliency.width, height: saliency.height, attention: attention,
                                    randomWalk: walk.pixels, classes: classes)
        } catch {
            throw FileError(path: salPath, what: "\(error)")
        }
        let png = try PNGCodec.encodeIndexed(PixelImage(width: saliency.width, height: saliency.height, channels: 1, pixels: labels))
        try AtomicFile.write(Data(png), to: output.appendingPathComponent("\(id).png"))
    }
}
