import Foundation
import Imaging
import Storage

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

        // A mask or saliency map must decode and have the image's size; its file bytes are stored as they are.
        func sidecar(_ path: String?, _ what: String, _ decode: ([UInt8], String) throws -> PixelImage) throws -> [UInt8]? {
            guard let path else { return nil }
            let bytes = try attempt(path) { try ImageFile.readBytes(path) }
            let decoded = try attempt(path) { try decode(bytes, path) }
            guard decoded.width == image.width, decoded.height == image.height else {
                throw reject(path, "\(what) is \(decoded.width)x\(decoded.height), image is \(image.width)x\(image.height)")
            }
            return bytes
        }
        let maskBytes = try sidecar(maskPath, "mask", PNGCodec.decodeIndices)
        let saliencyBytes = try sidecar(saliencyPath, "saliency map", PNGCodec.decodeGray)
        return DatasetRecord(id: id, image: bytes, imageFormat: format.rawValue, width: image.width, height: image.height,
                             label: label, mask: maskBytes, saliency: saliencyBytes)
    }
}
