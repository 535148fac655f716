import Foundation

extension StateDict {
    /// Saves as a PyTorch checkpoint in `torch.save`'s default zip format, so that `torch.load(path)` (including the
    /// default `weights_only=True`) returns a `collections.OrderedDict` of CPU tensors with these keys in this order:
    /// float32 entries as `torch.float32`, int64 entries (`num_batches_tracked`) as `torch.int64`, shapes as given
    /// (`[]` is a scalar), contiguous. With `wrapInModelKey` the file holds `{"model": OrderedDict}` instead, the
    /// layout of training checkpoints. `PthReader` reads either back.
    ///
    /// The archive holds, under a folder named after the file's stem (as torch names it): `data.pkl` (pickle
    /// protocol 2), `byteorder` ("little"), one member `data/<i>` of raw little-endian values per tensor, and
    /// `version` ("3\n"). Members are stored uncompressed, with correct CRC-32s, and each member's data starts on
    /// a 64-byte boundary (padded with an extra field, as torch does), so loaders can map storages in place.
    /// `.format_version` is deliberately not written: with it, torch may compute storage offsets by assuming its own
    /// writer's record layout (data descriptors) instead of reading the headers. Archives beyond 4 GB would need
    /// ZIP64, which this writer does not write; it refuses them before writing anything.
    ///
    /// The file is written under a temporary name in the same folder and renamed into place, so a crash never leaves
    /// a half-written checkpoint under `path`. Errors are one-line `CheckpointError`s naming `path`.
    public func savePth(to path: String, wrapInModelKey: Bool = false) throws {
        try PthWriter.write(self, to: path, wrapInModelKey: wrapInModelKey)
    }
}

/// The zip container and torch pickle for `StateDict.savePth`.
enum PthWriter {
    /// The boundary each member's data starts on (torch's default `storage_alignment`).
    static let alignment = 64
    /// Header ID of the padding extra field torch writes ("FB").
    static let paddingExtraID: UInt16 = 0x4246
    /// General-purpose flag bit 11: names are UTF-8.
    static let utf8Flag: UInt16 = 0x0800
    /// MS-DOS date 1980-01-01 (day 1, month 1, year 0), time 00:00; fixed so that equal state dicts give equal files.
    static let dosDate: UInt16 = 0x0021

    /// The contents of one archive member.
    enum Payload {
        case bytes([UInt8])
        case storage(StateStorage)

        var count: Int {
            switch self {
            case .bytes(let bytes): return bytes.count
            case .storage(.float32(let values)): return values.count * 4
            case .storage(.int64(let values)): return values.count * 8
            }
        }

        /// Calls `body` with the member's bytes; tensor values are little-endian whatever the host.
        func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            switch self {
            case .bytes(let bytes): return try bytes.withUnsafeBytes(body)
            case .storage(.float32(let values)):
                if 1.littleEndian == 1 { return try values.withUnsafeBytes(body) }
                return try values.map { $0.bitPattern.littleEndian }.withUnsafeBytes(body)
            case .storage(.int64(let values)):
                if 1.littleEndian == 1 { return try values.withUnsafeBytes(body) }
                return try values.map { $0.littleEndian }.withUnsafeBytes(body)
            }
        }
    }

    struct Member {
        var name: String
        var payload: Payload
    }

    /// The folder name torch gives the archive: the file name without directories and without its last extension
    /// (`/ckpt/model.best.pth` → `model.best`), or "archive" (torch's name for in-memory saves) when that is empty.
    static func archiveName(for path: String) -> String {
        var name = Substring(path)
        if let slash = name.lastIndex(where: { $0 == "/" || $0 == "\\" }) { name = name[name.index(after: slash)...] }
        if let dot = name.lastIndex(of: ".") { name = name[..<dot] }
        return name.isEmpty ? "archive" : String(name)
    }

    /// The archive's members, in the order torch writes them.
    static func members(_ stateDict: StateDict, archive: String, wrapInModelKey: Bool) -> [Member] {
        let entries = stateDict.entries
        var pickler = Pickler()
        if wrapInModelKey {
            pickler.emptyDict()
            pickler.string("model")
        }
        pickler.orderedDict()
        if !entries.isEmpty {
            pickler.mark()
            for (i, entry) in entries.enumerated() {
                pickler.string(entry.key)
                let storageType: String
                switch entry.tensor.storage {
                case .float32: storageType = "FloatStorage"
                case .int64: storageType = "LongStorage"
                }
                pickler.tensor(storageType: storageType, key: String(i), shape: entry.tensor.shape)
            }
            pickler.setItems()
        }
        if wrapInModelKey { pickler.setItem() }
        pickler.stop()

        var members = [Member(name: "\(archive)/data.pkl", payload: .bytes(pickler.bytes)),
                       Member(name: "\(archive)/byteorder", payload: .bytes(Array("little".utf8)))]
        for (i, entry) in entries.enumerated() {
            members.append(Member(name: "\(archive)/data/\(i)", payload: .storage(entry.tensor.storage)))
        }
        members.append(Member(name: "\(archive)/version", payload: .bytes(Array("3\n".utf8))))
        return members
    }

    /// Where everything goes in the archive, computed before a byte is written so that oversize archives are refused
    /// up front.
    struct Layout {
        /// Per member: the offset of its local header and the length of its padding extra field (0 or at least 4).
        var headerOffsets: [Int] = []
        var extraLengths: [Int] = []
        var directoryOffset = 0
        var directorySize = 0
        var totalSize = 0

        /// The largest archive without ZIP64: every offset and size must fit in 32 bits below the 0xFFFFFFFF
        /// that means "see the ZIP64 record".
        static let maximumSize = Int(UInt32.max) - 1

        init(nameLengths: [Int], sizes: [Int], source: String) throws {
            var offset = 0
            for (nameLength, size) in zip(nameLengths, sizes) {
                let unpadded = offset + 30 + nameLength
                var padding = (alignment - unpadded % alignment) % alignment
                if padding > 0 && padding < 4 { padding += alignment }  // an extra field needs 4 bytes of header
                headerOffsets.append(offset)
                extraLengths.append(padding)
                offset = unpadded + padding + size
            }
            directoryOffset = offset
            directorySize = nameLengths.reduce(0) { $0 + 46 + $1 }
            totalSize = directoryOffset + directorySize + 22
            guard nameLengths.count < 0xFFFF else {
                throw CheckpointError(file: source, what: "\(nameLengths.count) archive members need ZIP64, which this writer does not write")
            }
            guard totalSize <= Self.maximumSize else {
                let gigabytes = String(format: "%.2f", Double(totalSize) / 1e9)
                throw CheckpointError(file: source, what: "the checkpoint would be \(totalSize) bytes (\(gigabytes) GB), beyond the 4 GB a zip archive holds without ZIP64, which this writer does not write")
            }
        }
    }

    static func write(_ stateDict: StateDict, to path: String, wrapInModelKey: Bool) throws {
        let members = Self.members(stateDict, archive: archiveName(for: path), wrapInModelKey: wrapInModelKey)
        let names = members.map { Array($0.name.utf8) }
        let layout = try Layout(nameLengths: names.map(\.count), sizes: members.map(\.payload.count), source: path)
        let url = URL(fileURLWithPath: path)
        let temporary = AtomicFile.temporaryURL(for: url)
        do {
            let sink = try FileSink(path: temporary.path)
            try writeArchive(members, names, layout, into: sink)
            try sink.finish()
            try AtomicFile.commit(temporary, to: url)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            switch error {
            case let error as CheckpointError: throw CheckpointError(file: path, what: error.what)
            case let error as FileError: throw CheckpointError(file: path, what: error.what)
            default: throw CheckpointError(file: path, what: "cannot write: \(error.localizedDescription)")
            }
        }
    }

    private static func writeArchive(_ members: [Member], _ names: [[UInt8]], _ layout: Layout, into sink: FileSink) throws {
        var checksums: [UInt32] = []
        for (i, member) in members.enumerated() {
            let crc = member.payload.withBytes { CRC32.checksum($0) }
            checksums.append(crc)
            let size = UInt32(member.payload.count)
            precondition(sink.written == layout.headerOffsets[i], "zip layout out of step at \(member.name)")
            sink.append32(0x0403_4B50)
            for field: UInt16 in [20, utf8Flag, 0, 0, dosDate] { sink.append16(field) }  // version, flags, stored, time, date
            for field in [crc, size, size] { sink.append32(field) }
            sink.append16(UInt16(names[i].count))
            sink.append16(UInt16(layout.extraLengths[i]))
            sink.append(names[i])
            if layout.extraLengths[i] > 0 {
                sink.append16(paddingExtraID)
                sink.append16(UInt16(layout.extraLengths[i] - 4))
                sink.append([UInt8](repeating: 0, count: layout.extraLengths[i] - 4))
            }
            try member.payload.withBytes { try sink.append(contentsOf: $0) }
        }
        precondition(sink.written == layout.directoryOffset, "zip layout out of step at the central directory")
        for (i, member) in members.enumerated() {
            let size = UInt32(member.payload.count)
            sink.append32(0x0201_4B50)
            for field: UInt16 in [20, 20, utf8Flag, 0, 0, dosDate] { sink.append16(field) }  // made by, needed, ...
            for field in [checksums[i], size, size] { sink.append32(field) }
            for field: UInt16 in [UInt16(names[i].count), 0, 0, 0, 0] { sink.append16(field) }  // name, extra, comment, disk, internal
            sink.append32(0)  // external attributes
            sink.append32(UInt32(layout.headerOffsets[i]))
            sink.append(names[i])
        }
        sink.append32(0x0605_4B50)
        for field: UInt16 in [0, 0, UInt16(members.count), UInt16(members.count)] { sink.append16(field) }
        sink.append32(UInt32(layout.directorySize))
        sink.append32(UInt32(layout.directoryOffset))
        sink.append16(0)  // comment length
        precondition(sink.written == layout.totalSize, "zip layout out of step at the end")
    }
}

/// Buffered writes to a new file through POSIX calls, with `errno` in every error; the file is closed when the sink
/// goes away, whether or not `finish()` was reached.
private final class FileSink {
    private var descriptor: Int32
    private let name: String
    private var buffer: [UInt8] = []
    /// Bytes handed to the sink so far (buffered or written).
    private(set) var written = 0

    init(path: String) throws {
        name = URL(fileURLWithPath: path).lastPathComponent
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw CheckpointError(file: path, what: "cannot create \(name): \(String(cString: strerror(errno)))") }
        buffer.reserveCapacity(1 << 16)
    }

    deinit { if descriptor >= 0 { _ = close(descriptor) } }

    private func failure(_ what: String) -> CheckpointError {
        CheckpointError(file: name, what: "cannot \(what) \(name): \(String(cString: strerror(errno)))")
    }

    func append(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        written += bytes.count
    }

    func append16(_ value: UInt16) { append([UInt8(value & 0xFF), UInt8(value >> 8)]) }
    func append32(_ value: UInt32) { append((0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }) }

    /// Writes `bytes` after whatever is buffered, without copying them.
    func append(contentsOf bytes: UnsafeRawBufferPointer) throws {
        try flush()
        try writeAll(bytes)
        written += bytes.count
    }

    func flush() throws {
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let result = write(descriptor, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30))
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw failure("write") }
            done += result
        }
    }

    /// Flushes, syncs to disk and closes the file.
    func finish() throws {
        try flush()
        guard fsync(descriptor) == 0 else { throw failure("sync") }
        let status = close(descriptor)
        descriptor = -1
        guard status == 0 else { throw failure("close") }
    }
}

/// CRC-32 (IEEE 802.3, as zip uses), eight bytes per step ("slicing by 8").
enum CRC32 {
    private static let table: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            table[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 { table[k * 256 + i] = (table[(k - 1) * 256 + i] >> 8) ^ table[Int(table[(k - 1) * 256 + i] & 0xFF)] }
        }
        return table
    }()

    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        table.withUnsafeBufferPointer { t in
            var crc = ~previous
            var i = 0
            while i + 8 <= bytes.count {
                let low = crc ^ UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self))
                let high = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                i += 8
            }
            while i < bytes.count {
                crc = t[Int((crc ^ UInt32(bytes[i])) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
            return ~crc
        }
    }
}
