import Distributed
import Formats
import Foundation
import Imaging
import NN
import Segmentation
import Storage

/// What upstream users look at besides the CAM arrays (spec §4.3): attention PNGs, heatmap overlays, and the
/// `out_cam/<id>.npy` dicts. All are written atomically, one file per (image, class).
public enum CAMExports {
    /// Upstream's attention PNG of one normalised map (`CAMAttention`, which CSE shares).
    public static func attention(_ map: ArraySlice<Float>, width: Int, height: Int) -> PixelImage {
        CAMAttention.quantize(map, width: width, height: height)
    }

    /// A heatmap overlay in RGB: jet(uint8(255 · N)) / 255 + image / 255, renormalised by its maximum, × 255
    /// (upstream's `show_cam_on_image`, without its RGB/BGR mix-up).
    public static func heatmap(_ map: ArraySlice<Float>, on image: PixelImage) -> PixelImage {
        precondition(image.channels == 3 && map.count == image.width * image.height,
                     "heatmap: \(map.count) values for a \(image.width)x\(image.height)x\(image.channels) image")
        var sum = [Float](repeating: 0, count: map.count * 3)
        for (i, v) in map.enumerated() {
            let level = UInt8(clamping: Int((255 * v).rounded(.towardZero)))
            let colour = JetColormap.rgb(level)
            for ch in 0..<3 { sum[i * 3 + ch] = colour[ch] + Float(image.pixels[i * 3 + ch]) / 255 }
        }
        let peak = max(sum.max() ?? 1, 1e-12)
        return PixelImage(width: image.width, height: image.height, channels: 3,
                          pixels: sum.map { UInt8(clamping: Int((255 * $0 / peak).rounded(.towardZero))) })
    }


    /// Writes the optional outputs of one image into the folders that are set.
    public static func write(_ cams: ClassActivationMaps, id: String, image: PixelImage,
                             attention attentionFolder: URL?, heatmaps heatmapFolder: URL?, npy npyFolder: URL?) throws {
        for (k, c) in cams.classes.enumerated() {
            let map = cams.map(k)
            if let attentionFolder {
                let png = try PNGCodec.encode(attention(map, width: cams.width, height: cams.height))
                try AtomicFile.write(Data(png), to: attentionFolder.appendingPathComponent("\(id)_\(c).png"))
            }
            if let heatmapFolder {
                let png = try PNGCodec.encode(heatmap(map, on: image))
                try AtomicFile.write(Data(png), to: heatmapFolder.appendingPathComponent("\(id)_\(c).png"))
            }
        }
        if let npyFolder {
            let entries = cams.classes.enumerated().map { (key: $1, shape: [cams.height, cams.width], values: Array(cams.map($0))) }
            try NumpyDictFile.write(entries, to: npyFolder.appendingPathComponent("\(id).npy"))
        }
    }
}
