import Foundation

/// Writes what `np.save(path, {key: float32 array, ...})` writes: a `.npy` file holding a 0-d object array whose
/// one element is a dict of int keys to float32 arrays, so `np.load(path, allow_pickle=True).item()` gives the
/// dict back. This is upstream's `out_cam/<id>.npy` layout (spec §4.3), for people who keep using its tools.
///
/// The pickle (protocol 3, as `np.save` uses) replays numpy's `ndarray.__reduce__`:
/// `_reconstruct(ndarray, (0,), b'b')` then `__setstate__((1, shape, dtype, False, data))`, where `data` is the raw
/// little-endian bytes for float32 and a list of objects for the outer object array; a dtype is
/// `dtype(name, False, True)` with state `(3, byteorder, None, None, None, -1, -1, flags)`.
public enum NumpyDictFile {
    /// The file's bytes. Arrays are C-ordered float32 with the given shapes.
    public static func encode(_ entries: [(key: Int, shape: [Int], values: [Float])]) -> [UInt8] {
        var p = Pickler(protocol: 3)
        array(&p, shape: [], dtype: ("O8", "|", 63)) { p in
            p.emptyList()
            p.emptyDict()
            for entry in entries {
                precondition(entry.values.count == entry.shape.reduce(1, *),
                             "NumpyDictFile: key \(entry.key) has \(entry.values.count) values for shape \(entry.shape)")
                p.integer(Int64(entry.key))
                array(&p, shape: entry.shape, dtype: ("f4", "<", 0)) { p in
                    entry.values.withUnsafeBytes { p.binaryBytes($0) }
                }
                p.setItem()
            }
            p.append()
        }
        p.stop()
        let header = "{'descr': '|O', 'fortran_order': False, 'shape': (), }"
        // Magic, version 1.0, header length; the header is space-padded so the data starts on a 64-byte boundary.
        let prefix = 10
        let padded = header + String(repeating: " ", count: (64 - (prefix + header.utf8.count + 1) % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        out += [UInt8(padded.utf8.count & 0xFF), UInt8(padded.utf8.count >> 8)]
        return out + Array(padded.utf8) + p.bytes
    }

    /// Writes the file atomically.
    public static func write(_ entries: [(key: Int, shape: [Int], values: [Float])], to url: URL) throws {
        try AtomicFile.write(Data(encode(entries)), to: url)
    }

    /// One ndarray: the reconstruct call, then BUILD with (1, shape, dtype, False, data pushed by `data`).
    private static func array(_ p: inout Pickler, shape: [Int], dtype: (name: String, order: String, flags: Int64),
                              data: (inout Pickler) -> Void) {
        p.global("numpy.core.multiarray", "_reconstruct")
        p.global("numpy", "ndarray")
        p.tuple([0])
        withUnsafeBytes(of: UInt8(ascii: "b")) { p.binaryBytes($0) }
        p.endTuple(count: 3)
        p.reduce()
        p.mark()
        p.integer(1)
        p.tuple(shape)
        p.global("numpy", "dtype")
        p.string(dtype.name)
        p.bool(false)
        p.bool(true)
        p.endTuple(count: 3)
        p.reduce()
        p.mark()
        p.integer(3)
        p.string(dtype.order)
        p.none()
        p.none()
        p.none()
        p.integer(-1)
        p.integer(-1)
        p.integer(dtype.flags)
        p.endTuple(count: 8)
        p.build()
        p.bool(false)
        data(&p)
        p.endTuple(count: 5)
        p.build()
    }
}
