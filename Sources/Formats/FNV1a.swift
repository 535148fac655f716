/// A 64-bit FNV-1a hash of a sequence of strings (each followed by a 0 byte, so ["ab", "c"] ≠ ["a", "bc"]):
/// cheap, stable across runs and platforms, for fingerprints of id lists and settings. Not cryptographic.
public struct FNV1a {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func mix(_ text: String) {
        for byte in text.utf8 { mixByte(byte) }
        mixByte(0)
    }

    private mutating func mixByte(_ byte: UInt8) {
        value ^= UInt64(byte)
        value = value &* 0x100_0000_01b3
    }

    /// 16 hex digits.
    public var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
