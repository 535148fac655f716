import Imaging

extension FuzzTarget {
    /// libjpeg-turbo through `JPEGCodec` (header, size checks, decode to RGB).
    static let jpeg = FuzzTarget(name: "jpeg", fileExtension: "jpg") { bytes, path in
        _ = try JPEGCodec.decodeRGB(bytes, name: path)
    }

    /// libpng's simplified API through `PNGCodec`: every way the project decodes a PNG.
    static let png = FuzzTarget(name: "png", fileExtension: "png") { bytes, path in
        var firstError: Error?
        for decode in [PNGCodec.decodeRGB, PNGCodec.decodeGray, PNGCodec.decodeIndices] {
            do { _ = try decode(bytes, path) } catch { firstError = firstError ?? error }
        }
        do { _ = try PNGCodec.palette(of: bytes, name: path) } catch { firstError = firstError ?? error }
        if let firstError { throw firstError }
    }
}
