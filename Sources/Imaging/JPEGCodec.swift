import CJPEG

/// JPEG through libjpeg-turbo's TurboJPEG API, which reports errors instead of exiting.
///
/// Decoding uses libjpeg's defaults (accurate integer DCT, fancy upsampling), which is what Pillow uses, so pixels
/// match Python's `PIL.Image.open(...).convert("RGB")` on the same file.
public enum JPEGCodec {
    /// The most pixels a decoded JPEG may have (Pillow's decompression-bomb limit, 2 × 89,478,485).
    public static let maxPixels = 178_956_970

    /// Decodes a JPEG (colour or greyscale) to RGB. `name` is used in error messages.
    public static func decodeRGB(_ bytes: [UInt8], name: String) throws -> PixelImage {
        guard let handle = tjInitDecompress() else { throw ImageCodecError(file: name, what: "cannot start the JPEG decoder") }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let header = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsampling, &colorspace)
        }
        guard header == 0, width > 0, height > 0 else {
            throw ImageCodecError(file: name, what: "not a readable JPEG (\(errorText(handle)))")
        }
        // A damaged header can declare 65,500 × 65,500 pixels: refuse before allocating (found by fuzzing), at the
        // size where Pillow stops too (twice its MAX_IMAGE_PIXELS, a "decompression bomb").
        guard Int(width) * Int(height) <= maxPixels else {
            throw ImageCodecError(file: name, what: "the JPEG header declares \(width)×\(height) pixels, more than \(maxPixels) (a corrupt header?)")
        }
        var image = PixelImage(width: Int(width), height: Int(height), channels: 3)
        let status = bytes.withUnsafeBufferPointer { src in
            image.pixels.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(src.count), dst.baseAddress, width, 0, height,
                              Int32(TJPF_RGB.rawValue), 0)
            }
        }
        // A truncated file decodes with a warning (grey bottom rows); treat any warning as corruption.
        guard status == 0 else {
            throw ImageCodecError(file: name, what: "corrupt or truncated JPEG (\(errorText(handle)))")
        }
        return image
    }

    /// Encodes an RGB or grey image; `quality` 1…100.
    public static func encode(_ image: PixelImage, quality: Int = 95) throws -> [UInt8] {
        precondition(image.channels == 1 || image.channels == 3, "JPEG needs 1 or 3 channels, got \(image.channels)")
        guard let handle = tjInitCompress() else { throw ImageCodecError(file: "<memory>", what: "cannot start the JPEG encoder") }
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let format = image.channels == 3 ? Int32(TJPF_RGB.rawValue) : Int32(TJPF_GRAY.rawValue)
        let sampling = image.channels == 3 ? Int32(TJSAMP_420.rawValue) : Int32(TJSAMP_GRAY.rawValue)
        let status = image.pixels.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(image.width), 0, Int32(image.height), format, &output, &size,
                        sampling, Int32(quality), 0)
        }
        defer { tjFree(output) }
        guard status == 0, let output else { throw ImageCodecError(file: "<memory>", what: "JPEG encoding failed (\(errorText(handle)))") }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }

    private static func errorText(_ handle: tjhandle) -> String {
        guard let text = tjGetErrorStr2(handle) else { return "unknown error" }
        return String(cString: text)
    }
}
