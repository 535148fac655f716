import Distributed
import Foundation
import Imaging

/// Builds a `DatasetRecord` from files on disk, decoding each file once to prove it is sound: a missing, corrupt
/// or truncated image, or a mask or saliency map whose size differs from the image, becomes an `IngestError`
/// naming the id and the file. The record keeps the files' original bytes (no re-encoding, no quality loss).
public enum ImageRecordLoader {
    public static func load(id: String, imagePath: String, label: [Float], maskPath: String? = nil,
                            saliencyPath: String? = nil) throws -> DatasetRecord {
        func reject(_ file: String, _ reason: String) -> IngestError {
            IngestError(rejected: RejectedImage(id: id, file: file, reason: reason))
        }
        func attempt<T>(_ file: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let error as ImageCodecError {
                throw reject(file, error.what)
            }
        }
        let bytes = try attempt(imagePath) { try ImageFile.readBytes(imagePath) }
        let image = try attempt(imagePath) { try ImageFile.decodeRGB(bytes, name: imagePath) }
        let format = ImageFormat(sniffing: bytes) ?? .jpeg

        var maskBytes: [UInt8]?
        if let maskPath {
            let mask = try attempt(maskPath) { try ImageFile.readBytes(maskPath) }
            let decoded = try attempt(maskPath) { try PNGCodec.decodeIndices(mask, name: maskPath) }
            guard decoded.width == image.width, decoded.height == image.height else {
                throw reject(maskPath, "mask is \(decoded.width)x\(decoded.height), image is \(image.width)x\(image.height)")
            }
            maskBytes = mask
        }
        var saliencyBytes: [UInt8]?
        if let saliencyPath {
            let saliency = try attempt(saliencyPath) { try ImageFile.readBytes(saliencyPath) }
            let decoded = try attempt(saliencyPath) { try PNGCodec.decodeGray(saliency, name: saliencyPath) }
            guard decoded.width == image.width, decoded.height == image.height else {
                throw reject(saliencyPath, "saliency map is \(decoded.width)x\(decoded.height), image is \(image.width)x\(image.height)")
            }
            saliencyBytes = saliency
        }
        return DatasetRecord(id: id, image: bytes, imageFormat: format.rawValue, width: image.width, height: image.height,
                             label: label, mask: maskBytes, saliency: saliencyBytes)
    }
}
