import Foundation

/// Reading images from disk by content, with errors that name the file.
public enum ImageFile {
    /// The bytes of a file, or an error naming it when it is missing or unreadable.
    public static func readBytes(_ path: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw ImageCodecError(file: path, what: "no such file") }
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageCodecError(file: path, what: "cannot read file") }
        return [UInt8](data)
    }

    /// Decodes JPEG or PNG bytes (sniffed from the content) to RGB.
    public static func decodeRGB(_ bytes: [UInt8], name: String) throws -> PixelImage {
        switch ImageFormat(sniffing: bytes) {
        case .jpeg: return try JPEGCodec.decodeRGB(bytes, name: name)
        case .png: return try PNGCodec.decodeRGB(bytes, name: name)
        case nil: throw ImageCodecError(file: name, what: bytes.isEmpty ? "empty file" : "neither JPEG nor PNG")
        }
    }

    /// Reads and decodes an image file to RGB.
    public static func loadRGB(_ path: String) throws -> PixelImage {
        try decodeRGB(try readBytes(path), name: path)
    }
}
