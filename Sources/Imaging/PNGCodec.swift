import CPNG

/// PNG through libpng's simplified `png_image` API (the classic API reports errors with longjmp, which Swift
/// cannot use).
///
/// Three kinds of PNG matter here: RGB photos, 8-bit grey maps (saliency, grey label files such as
/// `SegmentationClassAug`) and palette label maps (VOC `SegmentationClass`). For label maps the stored *indices* are
/// the data: `decodeIndices` returns them untouched whether the file is palette or grey, and `encodeIndexed`
/// writes them with a palette, so a label PNG round-trips exactly (including index 255, even where the file's
/// palette is shorter, as upstream's 28-colour palettes are).
public enum PNGCodec {
    /// Decodes any PNG to RGB (grey is expanded, alpha composited on black, palette looked up).
    public static func decodeRGB(_ bytes: [UInt8], name: String) throws -> PixelImage {
        try decode(bytes, name: name) { _ in (cpng_format_rgb(), 3) }.image
    }

    /// Decodes any PNG to 8-bit grey (colour converted with libpng's luminance weights).
    public static func decodeGray(_ bytes: [UInt8], name: String) throws -> PixelImage {
        try decode(bytes, name: name) { _ in (cpng_format_gray(), 1) }.image
    }

    /// Decodes a label map: the palette indices of a palette PNG, or the values of a grey PNG, as one channel.
    /// An RGB file is refused, because its colours would have to be guessed back into classes.
    public static func decodeIndices(_ bytes: [UInt8], name: String) throws -> PixelImage {
        try decode(bytes, name: name) { fileFormat in
            if fileFormat & cpng_format_flag_colormap() != 0 { return (cpng_format_rgb_colormap(), 1) }
            if fileFormat & cpng_format_flag_color() == 0 { return (cpng_format_gray(), 1) }
            return nil
        }.image
    }

    /// Whether the PNG stores a palette, and the palette as RGB triples when it does.
    public static func palette(of bytes: [UInt8], name: String) throws -> [UInt8]? {
        let result = try decode(bytes, name: name) { fileFormat in
            fileFormat & cpng_format_flag_colormap() != 0 ? (cpng_format_rgb_colormap(), 1) : (cpng_format_rgb(), 3)
        }
        return result.colormap
    }

    /// The shared read path. `choose` picks the output format (and its channel count) from the file's format,
    /// or returns nil to refuse the file.
    private static func decode(_ bytes: [UInt8], name: String,
                               choose: (UInt32) -> (format: UInt32, channels: Int)?) throws -> (image: PixelImage, colormap: [UInt8]?) {
        var png = png_image()
        png.version = cpng_image_version()
        let begun = bytes.withUnsafeBufferPointer { png_image_begin_read_from_memory(&png, $0.baseAddress, $0.count) }
        guard begun != 0 else {
            let reason = message(of: &png)
            png_image_free(&png)
            throw ImageCodecError(file: name, what: "not a readable PNG (\(reason))")
        }
        guard let (format, channels) = choose(png.format) else {
            png_image_free(&png)
            throw ImageCodecError(file: name, what: "an RGB PNG cannot be read as a label map; expected a palette or greyscale PNG")
        }
        png.format = format
        let width = Int(png.width), height = Int(png.height)
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let isColormap = format & cpng_format_flag_colormap() != 0
        var colormap = [UInt8](repeating: 0, count: isColormap ? 256 * 3 : 0)
        if isColormap { png.colormap_entries = 256 }
        let finished = pixels.withUnsafeMutableBytes { dst in
            colormap.withUnsafeMutableBytes { map in
                png_image_finish_read(&png, nil, dst.baseAddress, 0, isColormap ? map.baseAddress : nil)
            }
        }
        guard finished != 0 else {
            let reason = message(of: &png)
            png_image_free(&png)
            throw ImageCodecError(file: name, what: "corrupt or truncated PNG (\(reason))")
        }
        let entries = Int(png.colormap_entries)
        return (PixelImage(width: width, height: height, channels: channels, pixels: pixels),
                isColormap ? Array(colormap[0..<(entries * 3)]) : nil)
    }

    /// Encodes an RGB (3 channels) or grey (1 channel) image.
    public static func encode(_ image: PixelImage) throws -> [UInt8] {
        precondition(image.channels == 1 || image.channels == 3, "PNG encode needs 1 or 3 channels, got \(image.channels)")
        return try encode(image, format: image.channels == 3 ? cpng_format_rgb() : cpng_format_gray(), palette: nil)
    }

    /// Encodes a one-channel index image with a palette (RGB triples, up to 256 entries; default the VOC palette).
    public static func encodeIndexed(_ image: PixelImage, palette: [UInt8] = VOCPalette.rgb) throws -> [UInt8] {
        precondition(image.channels == 1, "an indexed PNG needs a 1-channel image, got \(image.channels) channels")
        precondition(palette.count % 3 == 0 && palette.count <= 768, "a palette is up to 256 RGB triples, got \(palette.count) bytes")
        return try encode(image, format: cpng_format_rgb_colormap(), palette: palette)
    }

    private static func encode(_ image: PixelImage, format: UInt32, palette: [UInt8]?) throws -> [UInt8] {
        var png = png_image()
        png.version = cpng_image_version()
        png.width = UInt32(image.width)
        png.height = UInt32(image.height)
        png.format = format
        var map = palette ?? []
        if palette != nil {
            // libpng refuses indices beyond the palette, so a short palette is padded to 256 entries.
            if map.count < 768 { map += [UInt8](repeating: 0, count: 768 - map.count) }
            png.colormap_entries = 256
        }
        var size = 0
        func write(_ memory: UnsafeMutableRawPointer?) -> Int32 {
            image.pixels.withUnsafeBytes { src in
                map.withUnsafeBytes { cmap in
                    png_image_write_to_memory(&png, memory, &size, 0, src.baseAddress, 0, palette != nil ? cmap.baseAddress : nil)
                }
            }
        }
        guard write(nil) != 0, size > 0 else {
            let reason = message(of: &png)
            throw ImageCodecError(file: "<memory>", what: "PNG encoding failed (\(reason))")
        }
        var output = [UInt8](repeating: 0, count: size)
        let ok = output.withUnsafeMutableBytes { write($0.baseAddress) }
        guard ok != 0 else { throw ImageCodecError(file: "<memory>", what: "PNG encoding failed (\(message(of: &png)))") }
        return Array(output[0..<size])
    }

    private static func message(of png: inout png_image) -> String {
        withUnsafeBytes(of: &png.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
