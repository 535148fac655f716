import Foundation
import Imaging
import NN
import Storage

/// A PNG grid to look at seeds or predictions at a glance: one row per image; for seeds four cells, left to right:
/// the image, its ground truth (VOC palette), the CAM overlay (jet colours of the largest class CAM at each pixel,
/// on the image) and the seeds at the evaluation threshold (VOC palette); for a label set the image, the ground
/// truth and each map. Cells are scaled to fit `cell` (PIL bilinear for the
/// image and overlay, nearest for label maps so no colours are invented), on a white canvas with a gap.
public struct ContactSheet {
    public var cell: (width: Int, height: Int) = (160, 120)
    public var gap = 4

    public init() {}

    /// The sheet of `ids` (in order) from the dataset, its CAM set and the threshold.
    public func render(ids: [String], dataset: ShardedDataset, cams: ShardedDataset, threshold: Float) throws -> PixelImage {
        try grid(ids.map { id in
            let (image, truth) = try imageAndTruth(id, dataset)
            let cam = try cams.camRecord(id).maps
            let seeds = CAMSeeds(cam)
            var strongest = seeds.best
            for i in strongest.indices where !strongest[i].isFinite { strongest[i] = 0 }
            return [(image, true), (truth, false), (Self.overlay(strongest, on: image), true),
                    (Self.colour(PixelImage(width: cam.width, height: cam.height, channels: 1, pixels: seeds.prediction(threshold: threshold))), false)]
        })
    }

    /// The sheet of a label set (DeepLab's predictions, pseudo labels): per image, the image, its ground truth and
    /// each of `maps` (VOC palette), left to right.
    public func render(ids: [String], dataset: ShardedDataset, labelSet: ShardedDataset, maps: [String]) throws -> PixelImage {
        try grid(ids.map { id in
            let (image, truth) = try imageAndTruth(id, dataset)
            return try [(image, true), (truth, false)] + maps.map { name in
                let m = try labelSet.labelMap(id, name: name)
                return (Self.colour(PixelImage(width: m.width, height: m.height, channels: 1, pixels: m.pixels)), false)
            }
        })
    }

    /// The decoded image and its ground truth in colour (black without a mask).
    private func imageAndTruth(_ id: String, _ dataset: ShardedDataset) throws -> (PixelImage, PixelImage) {
        let record = try dataset.record(id)
        let image = try ImageFile.decodeRGB(record.image, name: "\(dataset.index.name)/\(id)")
        let truth = try record.mask.map { try PNGCodec.decodeIndices($0, name: "\(dataset.index.name)/\(id) mask") }
        return (image, truth.map(Self.colour) ?? PixelImage(width: image.width, height: image.height, channels: 3))
    }

    /// Rows of cells on a white canvas; a cell marked smooth is scaled bilinearly, a label map by nearest.
    private func grid(_ rows: [[(picture: PixelImage, smooth: Bool)]]) throws -> PixelImage {
        let columns = rows.map(\.count).max() ?? 0
        var sheet = PixelImage(width: gap + columns * (cell.width + gap), height: gap + rows.count * (cell.height + gap), channels: 3)
        sheet.pixels = [UInt8](repeating: 255, count: sheet.pixels.count)
        for (row, cells) in rows.enumerated() {
            for (column, item) in cells.enumerated() {
                paste(item.picture, into: &sheet, x: gap + column * (cell.width + gap), y: gap + row * (cell.height + gap),
                      filter: item.smooth ? .bilinear : nil)
            }
        }
        return sheet
    }

    /// Label indices to VOC palette colours (RGB).
    static func colour(_ labels: PixelImage) -> PixelImage {
        var out = PixelImage(width: labels.width, height: labels.height, channels: 3)
        let palette = VOCPalette.rgb
        for (i, v) in labels.pixels.enumerated() {
            for ch in 0..<3 { out.pixels[i * 3 + ch] = palette[Int(v) * 3 + ch] }
        }
        return out
    }

    /// The map in jet colours blended half and half with the image.
    static func overlay(_ map: [Float], on image: PixelImage) -> PixelImage {
        var out = image
        for i in 0..<(image.width * image.height) {
            let level = UInt8(clamping: Int((255 * max(0, min(1, map[i]))).rounded(.towardZero)))
            let jet = JetColormap.rgb(level)
            for ch in 0..<3 { out.pixels[i * 3 + ch] = UInt8((Float(image.pixels[i * 3 + ch]) + 255 * jet[ch]) / 2) }
        }
        return out
    }


    /// Scales `picture` to fit the cell (keeping its aspect ratio) and copies it in at (x, y).
    func paste(_ picture: PixelImage, into sheet: inout PixelImage, x: Int, y: Int, filter: PILResize.Filter?) {
        let scale = min(Double(cell.width) / Double(picture.width), Double(cell.height) / Double(picture.height))
        let w = max(1, Int(Double(picture.width) * scale)), h = max(1, Int(Double(picture.height) * scale))
        let fitted: PixelImage
        if let filter {
            fitted = PILResize.resize(picture, width: w, height: h, filter: filter)
        } else {
            var nearest = PixelImage(width: w, height: h, channels: 3)
            for yy in 0..<h {
                for xx in 0..<w {
                    let sx = min(picture.width - 1, xx * picture.width / w), sy = min(picture.height - 1, yy * picture.height / h)
                    for ch in 0..<3 { nearest.pixels[(yy * w + xx) * 3 + ch] = picture.pixels[(sy * picture.width + sx) * 3 + ch] }
                }
            }
            fitted = nearest
        }
        for yy in 0..<h {
            for xx in 0..<w {
                for ch in 0..<3 { sheet.pixels[((y + yy) * sheet.width + x + xx) * 3 + ch] = fitted.pixels[(yy * w + xx) * 3 + ch] }
            }
        }
    }
}
