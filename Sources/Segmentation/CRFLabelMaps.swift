import Formats
import Foundation
import Imaging
import Storage

/// The confident-foreground and confident-background label maps of spec §7.3 for one image, from its SP CAMs:
/// for each threshold t, the seeds argmax(t, N_c1, N_c2, …) (`CAMSeeds`, ties to the lower index) refined by the
/// `psa-label` dense CRF on the original RGB image (labels as unaries, gt_prob 0.7). With t = 0.60 (`la`) a pixel
/// is foreground only where some CAM exceeds 0.60; with t = 0.25 (`ha`) background only where every CAM is below
/// 0.25. AffinityNet trains on the pairs the two maps agree on.
public struct CRFLabelMaps: Codable, Equatable {
    /// The names the maps are stored under, and their thresholds.
    public static let foregroundName = "la", backgroundName = "ha"
    /// Upstream's `--la` (0.60) and `--ha` (0.25).
    public var foregroundThreshold: Float
    public var backgroundThreshold: Float
    /// Background plus the dataset's classes (VOC 21, COCO 81).
    public var labels: Int
    public var parameters: CRFParameters

    public init(labels: Int, foregroundThreshold: Float = 0.60, backgroundThreshold: Float = 0.25,
                parameters: CRFParameters = CRFPreset.psaLabel.parameters()) {
        self.labels = labels
        self.foregroundThreshold = foregroundThreshold
        self.backgroundThreshold = backgroundThreshold
        self.parameters = parameters
    }

    /// Upstream's folder for a threshold: `out_crf_0.60`.
    public static func upstreamFolder(_ threshold: Float) -> String { String(format: "out_crf_%.2f", threshold) }

    /// The `la` and `ha` maps (values 0 … labels − 1) of one image; `threads` splits each CRF's filtering.
    public func callAsFunction(image: PixelImage, cams: ClassActivationMaps, id: String, threads: Int = 1) throws -> LabelMapRecord {
        guard image.width == cams.width, image.height == cams.height, image.channels == 3 else {
            throw FileError(path: id, what: "the image is \(image.width)x\(image.height)x\(image.channels), its CAMs \(cams.width)x\(cams.height); both must be the original RGB size")
        }
        guard cams.classes.allSatisfy({ $0 + 1 < labels }) else {
            throw FileError(path: id, what: "CAM classes \(cams.classes) do not fit \(labels) labels")
        }
        let seeds = CAMSeeds(cams)
        var maps: [String: [UInt8]] = [:]
        for (name, threshold) in [(Self.foregroundName, foregroundThreshold), (Self.backgroundName, backgroundThreshold)] {
            maps[name] = try DenseCRF.labels(image: image.pixels, width: image.width, height: image.height,
                                             labelMap: seeds.prediction(threshold: threshold), labels: labels,
                                             parameters: parameters, threads: threads)
        }
        return LabelMapRecord(id: id, width: image.width, height: image.height, maps: maps)
    }
}

extension LabelMapRecord {
    /// Writes map `name` as a VOC-palette PNG `<folder>/<id>.png` (upstream's `out_crf_*`, `out_rw`, `pseudo_label`).
    public func writePalettePNG(_ name: String, into folder: URL) throws {
        guard let pixels = maps[name] else { preconditionFailure("LabelMapRecord \(id) has no map '\(name)'") }
        let png = try PNGCodec.encodeIndexed(PixelImage(width: width, height: height, channels: 1, pixels: pixels))
        try AtomicFile.write(Data(png), to: folder.appendingPathComponent("\(id).png"))
    }
}
