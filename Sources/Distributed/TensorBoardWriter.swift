import Formats
import Foundation
import NN

/// Scalar curves for TensorBoard, written by rank 0 without TensorFlow or a protobuf library.
///
/// A writer creates one file `events.out.tfevents.<unix time>.<hostname>` in its run folder (TensorBoard reads every
/// such file in a folder, so a resumed run adds a new file beside the old ones). The file is a sequence of TFRecords
/// (`TFRecord.frame`), each holding one `tensorflow.Event` protobuf encoded by hand (`EventProto`): first the
/// `file_version` event `"brain.Event:2"`, then one event per scalar with a one-value `Summary`.
///
/// Records are buffered in memory and written when a scalar for a new step arrives, on `flush()` and on `close()`;
/// the loop calls `flush()` after each step's scalars, so a killed run keeps its curves up to its last logged step.
/// Writing never throws: a failed write is reported once as a warning and later writes are dropped, so a full disk
/// does not stop training.
public final class TensorBoardWriter {
    /// The event file being written.
    public let fileURL: URL
    private var fd: Int32
    private var buffer = Data()
    private var bufferedStep: Int?
    private var failed = false

    /// Creates the run folder if needed and a new event file in it, and writes the file-version record.
    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let now = Date().timeIntervalSince1970
        let base = "events.out.tfevents.\(Int(now)).\(Self.hostname())"
        // Two writers started in the same second in one folder get distinct names (O_EXCL refuses to reuse one).
        var attempt = 0
        while true {
            let name = attempt == 0 ? base : "\(base).\(attempt)"
            let url = directory.appendingPathComponent(name)
            let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 {
                fileURL = url
                self.fd = fd
                break
            }
            guard errno == EEXIST, attempt < 1000 else {
                throw FileError(path: url.path, what: "cannot create event file: \(String(cString: strerror(errno)))")
            }
            attempt += 1
        }
        buffer.append(TFRecord.frame(EventProto.fileVersion(wallTime: now)))
        flush()
        if failed { throw FileError(path: fileURL.path, what: "cannot write event file") }
    }

    deinit { close() }

    /// Records `value` under `tag` (e.g. "train/loss") at `step`. Values are stored as 32-bit floats, as TensorBoard's
    /// `simple_value` is. A scalar for a step other than the buffered one first writes the buffered records out.
    public func addScalar(_ tag: String, _ value: Double, step: Int) {
        guard fd >= 0 else { return }
        if let bufferedStep, bufferedStep != step { flush() }
        bufferedStep = step
        let event = EventProto.scalar(wallTime: Date().timeIntervalSince1970, step: Int64(step), tag: tag, value: Float(value))
        buffer.append(TFRecord.frame(event))
    }

    /// Writes the buffered records to the file (the kernel keeps them if the process is killed).
    public func flush() {
        bufferedStep = nil
        guard fd >= 0, !buffer.isEmpty else { return }
        defer { buffer.removeAll(keepingCapacity: true) }
        guard !failed else { return }
        let error = writeFully(fd, buffer)
        if error != 0 {
            failed = true
            Log.warning("\(fileURL.path): cannot write TensorBoard events (\(String(cString: strerror(error)))); no more scalars are written there")
        }
    }

    /// Flushes and closes the file; later calls do nothing.
    public func close() {
        guard fd >= 0 else { return }
        flush()
        Foundation.close(fd)
        fd = -1
    }

    static func hostname() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        let host = String(cString: name).filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" }
        return host.isEmpty ? "localhost" : host
    }
}

/// Writes all of `data` to a file descriptor, retrying short and interrupted writes; returns 0 or the `errno`.
func writeFully(_ fd: Int32, _ data: Data) -> Int32 {
    data.withUnsafeBytes { raw -> Int32 in
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        return 0
    }
}

/// The TFRecord container: each record is `uint64 length (little-endian)`, `uint32 masked CRC32C of the length bytes`,
/// the data, `uint32 masked CRC32C of the data`.
enum TFRecord {
    /// One framed record.
    static func frame(_ data: [UInt8]) -> Data {
        var length = [UInt8]()
        appendLittleEndian(UInt64(data.count), to: &length)
        var out = [UInt8]()
        out.reserveCapacity(data.count + 16)
        out += length
        appendLittleEndian(maskedCRC(length), to: &out)
        out += data
        appendLittleEndian(maskedCRC(data), to: &out)
        return Data(out)
    }

    /// TensorFlow's masked CRC: rotate right by 15 bits, then add a constant (so CRCs of CRCs are not degenerate).
    static func maskedCRC(_ bytes: [UInt8]) -> UInt32 {
        let crc = CRC32C.checksum(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven one byte at a time.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CRC-32C of `bytes` (initial value and final XOR 0xFFFFFFFF); "123456789" gives 0xE3069283.
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}

/// The few `tensorflow.Event` messages TensorBoard needs, in protobuf wire format:
/// `Event { double wall_time = 1; int64 step = 2; oneof { string file_version = 3; Summary summary = 5; } }`,
/// `Summary { repeated Value value = 1; }`, `Summary.Value { string tag = 1; float simple_value = 2; }`.
enum EventProto {
    /// The first event of every file.
    static func fileVersion(wallTime: Double) -> [UInt8] {
        var event = [UInt8]()
        double(1, wallTime, &event)
        bytes(3, Array("brain.Event:2".utf8), &event)
        return event
    }

    /// An event holding one scalar summary value.
    static func scalar(wallTime: Double, step: Int64, tag: String, value: Float) -> [UInt8] {
        var summaryValue = [UInt8]()
        bytes(1, Array(tag.utf8), &summaryValue)
        key(2, wire: 5, &summaryValue)
        TFRecord.appendLittleEndian(value.bitPattern, to: &summaryValue)
        var summary = [UInt8]()
        bytes(1, summaryValue, &summary)
        var event = [UInt8]()
        double(1, wallTime, &event)
        key(2, wire: 0, &event)
        varint(UInt64(bitPattern: step), &event)
        bytes(5, summary, &event)
        return event
    }

    static func varint(_ value: UInt64, _ out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// A field key: field number and wire type (0 varint, 1 64-bit, 2 length-delimited, 5 32-bit).
    static func key(_ field: UInt64, wire: UInt64, _ out: inout [UInt8]) { varint(field << 3 | wire, &out) }

    static func double(_ field: UInt64, _ value: Double, _ out: inout [UInt8]) {
        key(field, wire: 1, &out)
        TFRecord.appendLittleEndian(value.bitPattern, to: &out)
    }

    static func bytes(_ field: UInt64, _ value: [UInt8], _ out: inout [UInt8]) {
        key(field, wire: 2, &out)
        varint(UInt64(value.count), &out)
        out += value
    }
}
