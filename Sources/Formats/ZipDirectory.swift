import Foundation

/// The table of contents of a zip archive held in memory (normally a memory-mapped file), read from its central
/// directory, with the byte range of each member's contents.
///
/// Written for the archives `torch.save` produces (PyTorch ≥ 1.6): members are STORED (uncompressed) and their
/// data is aligned, so a member's contents can be used in place without copying. Compressed or encrypted members
/// are refused with an error rather than decoded: PyTorch never writes them, and a reader that silently returned
/// deflated bytes as tensor data would be worse than one that stops. ZIP64 records (end-of-central-directory
/// record, locator and the per-member extra field) are read, because checkpoints larger than 4 GB use them.
/// Multi-disk archives are not supported.
struct ZipDirectory {
    /// One member of the archive.
    struct Entry {
        var name: String
        /// Offset of the member's local file header in the archive.
        var localHeaderOffset: Int
        var compressedSize: Int
        var uncompressedSize: Int
        /// 0 = stored, 8 = deflated, ...
        var method: UInt16
        var flags: UInt16
    }

    /// The file the archive came from, for error messages.
    let source: String
    /// Members in central-directory order.
    let entries: [Entry]
    private let entryIndex: [String: Int]

    /// The four bytes every zip archive (and every `torch.save` file since PyTorch 1.6) starts with.
    static let localHeaderSignature: [UInt8] = [0x50, 0x4B, 0x03, 0x04]

    private static let endOfCentralDirectorySignature: UInt32 = 0x0605_4B50
    private static let zip64EndOfCentralDirectorySignature: UInt32 = 0x0606_4B50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    private static let centralHeaderSignature: UInt32 = 0x0201_4B50
    private static let localHeaderSignatureValue: UInt32 = 0x0403_4B50
    /// Header ID of the ZIP64 extended-information extra field.
    private static let zip64ExtraID: UInt16 = 0x0001

    /// Reads the central directory of the archive in `bytes`; `source` names the file in errors.
    init(bytes: UnsafeRawBufferPointer, source: String) throws {
        self.source = source
        var reader = ByteCursor(bytes: bytes, source: source)
        let end = try Self.findEndOfCentralDirectory(in: bytes, source: source)

        reader.position = end + 10
        var entryCount = Int(try reader.uint16())
        var directorySize = Int(try reader.uint32())
        var directoryOffset = Int(try reader.uint32())

        // A saturated field means "see the ZIP64 record"; its locator sits immediately before the classic record.
        if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            guard end >= 20 else { throw reader.failure("ZIP64 fields are saturated but there is no ZIP64 locator") }
            reader.position = end - 20
            guard try reader.uint32() == Self.zip64LocatorSignature else {
                throw reader.failure("ZIP64 fields are saturated but there is no ZIP64 locator")
            }
            reader.position += 4  // disk holding the ZIP64 record
            reader.position = try reader.offset(try reader.uint64())
            guard try reader.uint32() == Self.zip64EndOfCentralDirectorySignature else {
                throw reader.failure("ZIP64 end-of-central-directory record is missing or corrupt")
            }
            reader.position += 8 + 2 + 2 + 4 + 4 + 8  // record size, versions, disk numbers, entries on this disk
            entryCount = try reader.offset(try reader.uint64())
            directorySize = try reader.offset(try reader.uint64())
            directoryOffset = try reader.offset(try reader.uint64())
        }
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset else {
            throw reader.failure("the central directory lies outside the file (truncated?)")
        }

        reader.position = directoryOffset
        var entries: [Entry] = []
        entries.reserveCapacity(min(entryCount, 1 << 16))
        for _ in 0..<entryCount {
            entries.append(try Self.readCentralHeader(&reader))
        }
        self.entries = entries
        var index: [String: Int] = [:]
        for (i, entry) in entries.enumerated() where index[entry.name] == nil { index[entry.name] = i }
        self.entryIndex = index
    }

    /// Whether `bytes` starts like a zip archive.
    static func looksLikeZip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && zip(bytes.prefix(4), localHeaderSignature).allSatisfy { $0 == $1 }
    }

    /// The member called `name`, if any.
    func entry(named name: String) -> Entry? {
        entryIndex[name].map { entries[$0] }
    }

    /// The byte range of a member's contents within the archive. Throws for compressed or encrypted members and for
    /// ranges that run past the end of the file.
    func contentRange(of entry: Entry, in bytes: UnsafeRawBufferPointer) throws -> Range<Int> {
        var reader = ByteCursor(bytes: bytes, source: source)
        guard entry.method == 0 else {
            throw reader.failure("zip member \(entry.name) is compressed (method \(entry.method)); only stored members are supported, as torch.save writes them")
        }
        guard entry.flags & 1 == 0 else { throw reader.failure("zip member \(entry.name) is encrypted") }
        reader.position = entry.localHeaderOffset
        guard try reader.uint32() == Self.localHeaderSignatureValue else {
            throw reader.failure("zip member \(entry.name) has no local header at offset \(entry.localHeaderOffset)")
        }
        // The local header's name and extra lengths can differ from the central directory's (PyTorch pads the local
        // extra field so that data is 64-byte aligned), so the data offset must come from the local header.
        reader.position += 22
        let nameLength = Int(try reader.uint16())
        let extraLength = Int(try reader.uint16())
        let start = reader.position + nameLength + extraLength
        guard start <= bytes.count, entry.uncompressedSize <= bytes.count - start else {
            throw reader.failure("zip member \(entry.name) runs past the end of the file (truncated?)")
        }
        return start..<(start + entry.uncompressedSize)
    }

    /// Finds the classic end-of-central-directory record by scanning back over at most a maximal comment.
    private static func findEndOfCentralDirectory(in bytes: UnsafeRawBufferPointer, source: String) throws -> Int {
        let recordSize = 22
        guard bytes.count >= recordSize else {
            throw CheckpointError(file: source, what: "truncated zip archive: no end-of-central-directory record")
        }
        let lowest = max(0, bytes.count - recordSize - 0xFFFF)
        var position = bytes.count - recordSize
        while position >= lowest {
            if UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self)) == endOfCentralDirectorySignature {
                let commentLength = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: position + 20, as: UInt16.self)))
                if position + recordSize + commentLength == bytes.count { return position }
            }
            position -= 1
        }
        throw CheckpointError(file: source, what: "truncated or corrupt zip archive: no end-of-central-directory record")
    }

    private static func readCentralHeader(_ reader: inout ByteCursor) throws -> Entry {
        guard try reader.uint32() == centralHeaderSignature else {
            throw reader.failure("corrupt zip central directory at offset \(reader.position - 4)")
        }
        reader.position += 4  // versions
        let flags = try reader.uint16()
        let method = try reader.uint16()
        reader.position += 8  // time, date, CRC-32
        var compressedSize = UInt64(try reader.uint32())
        var uncompressedSize = UInt64(try reader.uint32())
        let nameLength = Int(try reader.uint16())
        let extraLength = Int(try reader.uint16())
        let commentLength = Int(try reader.uint16())
        reader.position += 8  // disk, internal and external attributes
        var localHeaderOffset = UInt64(try reader.uint32())
        let name = try reader.string(count: nameLength)
        let extraEnd = reader.position + extraLength

        // The ZIP64 extra field holds, in this order, only those of the three values whose 32-bit field is saturated.
        while reader.position + 4 <= extraEnd {
            let id = try reader.uint16()
            let size = Int(try reader.uint16())
            let fieldEnd = reader.position + size
            guard fieldEnd <= extraEnd else { throw reader.failure("corrupt extra field for zip member \(name)") }
            if id == zip64ExtraID {
                if uncompressedSize == 0xFFFF_FFFF, reader.position + 8 <= fieldEnd { uncompressedSize = try reader.uint64() }
                if compressedSize == 0xFFFF_FFFF, reader.position + 8 <= fieldEnd { compressedSize = try reader.uint64() }
                if localHeaderOffset == 0xFFFF_FFFF, reader.position + 8 <= fieldEnd { localHeaderOffset = try reader.uint64() }
            }
            reader.position = fieldEnd
        }
        reader.position = extraEnd + commentLength
        return Entry(name: name, localHeaderOffset: try reader.offset(localHeaderOffset),
                     compressedSize: try reader.offset(compressedSize), uncompressedSize: try reader.offset(uncompressedSize),
                     method: method, flags: flags)
    }
}

/// A bounds-checked little-endian reader over bytes: every read past the end throws a "truncated" error naming
/// the file, so corrupt input can never crash the process.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let source: String
    var position = 0

    init(bytes: UnsafeRawBufferPointer, source: String, position: Int = 0) {
        self.bytes = bytes
        self.source = source
        self.position = position
    }

    func failure(_ what: String) -> CheckpointError { CheckpointError(file: source, what: what) }

    /// Checks that `count` bytes are available at the current position and returns where they start.
    mutating func take(_ count: Int) throws -> Int {
        guard count >= 0, position >= 0, position <= bytes.count, count <= bytes.count - position else {
            throw failure("truncated: needed \(count) bytes at offset \(position) but the file has \(bytes.count)")
        }
        defer { position += count }
        return position
    }

    mutating func uint8() throws -> UInt8 { bytes[try take(1)] }
    mutating func uint16() throws -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(2), as: UInt16.self)) }
    mutating func uint32() throws -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self)) }
    mutating func uint64() throws -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self)) }

    /// The next `count` bytes, without copying.
    mutating func slice(_ count: Int) throws -> UnsafeRawBufferPointer {
        let start = try take(count)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<(start + count)])
    }

    /// The next `count` bytes decoded as UTF-8 (invalid sequences become U+FFFD).
    mutating func string(count: Int) throws -> String {
        String(decoding: try slice(count), as: UTF8.self)
    }

    /// A file offset or size read from the file, checked to be representable (a corrupt 64-bit field can exceed Int).
    func offset(_ value: UInt64) throws -> Int {
        guard value <= UInt64(Int.max) else { throw failure("corrupt size or offset \(value)") }
        return Int(value)
    }
}
