/// The PASCAL VOC colour palette (PIPELINE.md §11.2): index i's colour takes bits 0, 1, 2 of `i >> 3j` to bit
/// `7 − j` of red, green and blue, for j = 0 … 7. Index 0 is black, 1 is (128, 0, 0), 255 is (224, 224, 192).
public enum VOCPalette {
    /// 256 RGB triples, 768 bytes.
    public static let rgb: [UInt8] = (0..<256).flatMap { color(of: $0) }

    /// The colour of one index.
    public static func color(of index: Int) -> [UInt8] {
        var r = 0, g = 0, b = 0
        var c = index
        for j in 0..<8 {
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        }
        return [UInt8(r), UInt8(g), UInt8(b)]
    }
}
