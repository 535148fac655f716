import CHDF5
import Foundation

/// An error from an HDF5 file, naming the file and what could not be done. One line, for users.
public struct HDF5Error: FileProblem {
    public let file: String
    public let what: String
    public init(file: String, what: String) {
        self.file = file
        self.what = what
    }
}

/// Numbers HDF5 stores natively.
public protocol HDF5Scalar: Numeric {
    static var hdf5Type: hid_t { get }
}
extension Float: HDF5Scalar { public static var hdf5Type: hid_t { chdf5_t_native_float() } }
extension Double: HDF5Scalar { public static var hdf5Type: hid_t { chdf5_t_native_double() } }
extension UInt8: HDF5Scalar { public static var hdf5Type: hid_t { chdf5_t_native_uint8() } }
extension Int32: HDF5Scalar { public static var hdf5Type: hid_t { chdf5_t_native_int32() } }
extension Int64: HDF5Scalar { public static var hdf5Type: hid_t { chdf5_t_native_int64() } }

/// A thin, safe wrapper over one HDF5 file: groups, n-d numeric datasets, string lists and attributes.
///
/// Files are written in the HDF5 1.10 format so that a dataset stored as one checksummed chunk needs no B-tree
/// (small per-item overhead), and every dataset carries a Fletcher-32 checksum that HDF5 — and h5py — verify on
/// read: a flipped byte in a shard is reported, not silently decoded. HDF5's own error stack printing is turned
/// off; failures become `HDF5Error`s that name the file.
public final class HDF5File {
    public let path: String
    private var id: hid_t

    private init(path: String, id: hid_t) {
        self.path = path
        self.id = id
    }

    deinit { close() }

    /// Before the library starts: no atexit clean-up. After a failed write (a full disk) HDF5's own exit handler
    /// closes the broken file again and crashes; every file this project writes is flushed and closed before it
    /// is renamed, so nothing is lost by skipping it.
    private static let library: Void = { H5dont_atexit() }()

    /// HDF5 prints its error stack unless told not to, and (in Debian's thread-safe build) that setting is per
    /// thread: every thread that touches a file turns it off once. Errors reach the user through HDF5Error.
    private static var silenceErrorStack: Void {
        _ = library
        let key = "pcs-mpi.hdf5.silenced"
        guard Thread.current.threadDictionary[key] == nil else { return }
        H5Eset_auto2(chdf5_e_default(), nil, nil)
        Thread.current.threadDictionary[key] = true
    }

    /// Creates (or truncates) a file for writing.
    public static func create(_ path: String) throws -> HDF5File {
        _ = silenceErrorStack
        let fapl = H5Pcreate(chdf5_p_file_access())
        defer { H5Pclose(fapl) }
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, chdf5_libver_latest())
        let id = H5Fcreate(path, chdf5_f_acc_trunc(), chdf5_p_default(), fapl)
        guard id >= 0 else { throw HDF5Error(file: path, what: "cannot create HDF5 file") }
        return HDF5File(path: path, id: id)
    }

    /// Opens an existing file; a missing, truncated or non-HDF5 file is an error naming it.
    public static func open(_ path: String, writable: Bool = false) throws -> HDF5File {
        _ = silenceErrorStack
        guard FileManager.default.fileExists(atPath: path) else { throw HDF5Error(file: path, what: "no such file") }
        guard H5Fis_hdf5(path) > 0 else { throw HDF5Error(file: path, what: "not an HDF5 file (or its header is corrupt)") }
        let id = H5Fopen(path, writable ? chdf5_f_acc_rdwr() : chdf5_f_acc_rdonly(), chdf5_p_default())
        guard id >= 0 else { throw HDF5Error(file: path, what: "cannot open: the file is truncated or corrupt") }
        return HDF5File(path: path, id: id)
    }

    /// Flushes and closes; further use is a programming error.
    public func close() {
        if id >= 0 {
            H5Fclose(id)
            id = -1
        }
    }

    /// Creates the file `url` under a temporary name, lets `body` fill it, then flushes, closes and renames it into
    /// place (see `AtomicFile`): a file with the final name is always complete, and the temporary file is removed
    /// if anything fails.
    public static func writeAtomically(to url: URL, _ body: (HDF5File) throws -> Void) throws {
        let temporary = AtomicFile.temporaryURL(for: url)
        defer { try? FileManager.default.removeItem(at: temporary) } // gone once renamed
        do {
            let file = try create(temporary.path)
            defer { file.close() }
            try body(file)
            try file.flush()
            file.close()
            try AtomicFile.commit(temporary, to: url)
        } catch let error as HDF5Error where error.file == temporary.path {
            // Name the file the user asked for, not its temporary.
            throw HDF5Error(file: url.path, what: "\(error.what) while writing it")
        }
    }

    /// Writes buffered data to disk.
    public func flush() throws {
        guard H5Fflush(id, H5F_SCOPE_LOCAL) >= 0 else { throw fail("flush failed") }
    }

    /// An error naming the file; a failed write says why when the system told (no space left, quota, I/O error).
    private func fail(_ what: String) -> HDF5Error {
        let code = errno
        guard [ENOSPC, EDQUOT, EIO, EROFS, EFBIG].contains(code) else { return HDF5Error(file: path, what: what) }
        return HDF5Error(file: path, what: "\(String(cString: strerror(code)).lowercased()) (\(what))")
    }

    // MARK: groups and links

    /// Creates a group and any missing parents.
    public func createGroup(_ name: String) throws {
        let lcpl = H5Pcreate(chdf5_p_link_create())
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        let g = H5Gcreate2(id, name, lcpl, chdf5_p_default(), chdf5_p_default())
        guard g >= 0 else { throw fail("cannot create group \(name)") }
        H5Gclose(g)
    }

    /// Whether an object exists at `name` (every component of the path is checked).
    public func exists(_ name: String) -> Bool {
        var prefix = ""
        for component in name.split(separator: "/") {
            prefix += "/" + component
            guard H5Lexists(id, prefix, chdf5_p_default()) > 0 else { return false }
        }
        return true
    }

    // MARK: numeric datasets

    /// Writes an n-d dataset (row-major `values`, `shape` as in numpy; `[]` for a scalar) with a Fletcher-32 checksum.
    public func write<T: HDF5Scalar>(_ name: String, _ values: [T], shape: [Int]? = nil) throws {
        let dims = (shape ?? [values.count]).map { hsize_t($0) }
        precondition(dims.reduce(1, *) == hsize_t(values.count), "dataset \(name): shape \(dims) does not hold \(values.count) values")
        // Shape [] is a scalar (e.g. `num_batches_tracked`); HDF5 cannot chunk or checksum a scalar.
        let space = dims.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), dims, nil)
        defer { H5Sclose(space) }
        let dcpl = H5Pcreate(chdf5_p_dataset_create())
        defer { H5Pclose(dcpl) }
        if values.count > 0, !dims.isEmpty {
            H5Pset_chunk(dcpl, Int32(dims.count), dims)
            H5Pset_fletcher32(dcpl)
        }
        let lcpl = H5Pcreate(chdf5_p_link_create())
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        let d = H5Dcreate2(id, name, T.hdf5Type, space, lcpl, dcpl, chdf5_p_default())
        guard d >= 0 else { throw fail("cannot create dataset \(name)") }
        defer { H5Dclose(d) }
        let status = values.withUnsafeBytes { H5Dwrite(d, T.hdf5Type, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress) }
        guard status >= 0 else { throw fail("cannot write dataset \(name)") }
    }

    private func shape(ofOpen d: hid_t, _ name: String) throws -> [Int] {
        let space = H5Dget_space(d)
        defer { H5Sclose(space) }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0 else { throw fail("cannot read the shape of \(name)") }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        H5Sget_simple_extent_dims(space, &dims, nil)
        return dims.map { Int($0) }
    }

    /// Reads a whole numeric dataset, converting to `T`; returns the values (row-major) and the shape.
    public func read<T: HDF5Scalar>(_ name: String, as: T.Type = T.self) throws -> (values: [T], shape: [Int]) {
        let d = H5Dopen2(id, name, chdf5_p_default())
        guard d >= 0 else { throw fail("no dataset \(name)") }
        defer { H5Dclose(d) }
        let dims = try shape(ofOpen: d, name)
        let count = dims.reduce(1, *)
        var values = [T](repeating: 0, count: count)
        if count > 0 {
            let status = values.withUnsafeMutableBytes { H5Dread(d, T.hdf5Type, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress) }
            guard status >= 0 else { throw fail("dataset \(name) is corrupt (checksum or read failure)") }
        }
        return (values, dims)
    }

    // MARK: strings

    private static func utf8StringType() -> hid_t {
        let t = H5Tcopy(chdf5_t_c_s1())
        H5Tset_size(t, chdf5_t_variable())
        H5Tset_cset(t, H5T_CSET_UTF8)
        return t
    }

    /// Writes a 1-d dataset of UTF-8 strings (h5py reads it with `.asstr()`).
    public func writeStrings(_ name: String, _ strings: [String]) throws {
        let type = Self.utf8StringType()
        defer { H5Tclose(type) }
        var dims = [hsize_t(strings.count)]
        let space = H5Screate_simple(1, &dims, nil)
        defer { H5Sclose(space) }
        let lcpl = H5Pcreate(chdf5_p_link_create())
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        let d = H5Dcreate2(id, name, type, space, lcpl, chdf5_p_default(), chdf5_p_default())
        guard d >= 0 else { throw fail("cannot create dataset \(name)") }
        defer { H5Dclose(d) }
        let status = withCStringArray(strings) { H5Dwrite(d, type, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0) }
        guard status >= 0 else { throw fail("cannot write dataset \(name)") }
    }

    /// Reads a 1-d dataset of strings (variable- or fixed-length).
    public func readStrings(_ name: String) throws -> [String] {
        let d = H5Dopen2(id, name, chdf5_p_default())
        guard d >= 0 else { throw fail("no dataset \(name)") }
        defer { H5Dclose(d) }
        let count = try shape(ofOpen: d, name).reduce(1, *)
        let type = Self.utf8StringType()
        defer { H5Tclose(type) }
        var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
        guard count == 0 || H5Dread(d, type, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), &pointers) >= 0 else {
            throw fail("dataset \(name) is corrupt")
        }
        defer { for p in pointers { H5free_memory(p) } }
        return pointers.map { $0.map { String(cString: $0) } ?? "" }
    }

    // MARK: attributes

    /// Sets a string attribute on the object at `path` ("/" for the file), replacing an old one.
    public func setAttribute(_ name: String, _ value: String, on path: String = "/") throws {
        let type = Self.utf8StringType()
        defer { H5Tclose(type) }
        try writeAttribute(name, on: path, type: type, dims: []) { attr in
            withCStringArray([value]) { H5Awrite(attr, type, $0) }
        }
    }

    /// Sets a numeric attribute (a scalar when `values` has one element) on the object at `path`.
    public func setAttribute<T: HDF5Scalar>(_ name: String, _ values: [T], on path: String = "/") throws {
        try writeAttribute(name, on: path, type: T.hdf5Type, dims: values.count == 1 ? [] : [hsize_t(values.count)]) { attr in
            values.withUnsafeBytes { H5Awrite(attr, T.hdf5Type, $0.baseAddress) }
        }
    }

    private func writeAttribute(_ name: String, on path: String, type: hid_t, dims: [hsize_t], write: (hid_t) throws -> herr_t) throws {
        if H5Aexists_by_name(id, path, name, chdf5_p_default()) > 0 {
            H5Adelete_by_name(id, path, name, chdf5_p_default())
        }
        let space = dims.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), dims, nil)
        defer { H5Sclose(space) }
        let attr = H5Acreate_by_name(id, path, name, type, space, chdf5_p_default(), chdf5_p_default(), chdf5_p_default())
        guard attr >= 0 else { throw fail("cannot create attribute \(name) on \(path)") }
        defer { H5Aclose(attr) }
        guard try write(attr) >= 0 else { throw fail("cannot write attribute \(name) on \(path)") }
    }

    /// Reads a string attribute, or nil when it is absent.
    public func stringAttribute(_ name: String, on path: String = "/") throws -> String? {
        guard H5Aexists_by_name(id, path, name, chdf5_p_default()) > 0 else { return nil }
        let attr = H5Aopen_by_name(id, path, name, chdf5_p_default(), chdf5_p_default())
        guard attr >= 0 else { throw fail("cannot open attribute \(name) on \(path)") }
        defer { H5Aclose(attr) }
        let type = Self.utf8StringType()
        defer { H5Tclose(type) }
        var pointer: UnsafeMutablePointer<CChar>? = nil
        guard H5Aread(attr, type, &pointer) >= 0 else { throw fail("attribute \(name) on \(path) is not a string") }
        defer { H5free_memory(pointer) }
        return pointer.map { String(cString: $0) }
    }

    /// Reads a numeric attribute as `T`, or nil when it is absent.
    public func numericAttribute<T: HDF5Scalar>(_ name: String, on path: String = "/", as: T.Type = T.self) throws -> [T]? {
        guard H5Aexists_by_name(id, path, name, chdf5_p_default()) > 0 else { return nil }
        let attr = H5Aopen_by_name(id, path, name, chdf5_p_default(), chdf5_p_default())
        guard attr >= 0 else { throw fail("cannot open attribute \(name) on \(path)") }
        defer { H5Aclose(attr) }
        let space = H5Aget_space(attr)
        defer { H5Sclose(space) }
        let count = Int(H5Sget_simple_extent_npoints(space))
        var values = [T](repeating: 0, count: count)
        let status = values.withUnsafeMutableBytes { H5Aread(attr, T.hdf5Type, $0.baseAddress) }
        guard status >= 0 else { throw fail("attribute \(name) on \(path) is not numeric") }
        return values
    }
}

/// Calls `body` with a C array of NUL-terminated copies of `strings`, valid only during the call.
private func withCStringArray<R>(_ strings: [String], _ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { for p in pointers { free(p) } }
    return try pointers.withUnsafeMutableBytes { try body($0.baseAddress!) }
}
