import Foundation

/// Writing outputs so that a crash never leaves a file that looks complete: everything is written under a
/// temporary name in the same folder and renamed into place (rename is atomic on one file system).
public enum AtomicFile {
    /// The temporary name used for `url` while it is being written.
    public static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())")
    }

    /// Writes `data` to `url` through a temporary file.
    public static func write(_ data: Data, to url: URL) throws {
        let temporary = temporaryURL(for: url)
        do {
            try data.write(to: temporary)
            try commit(temporary, to: url)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw FileError(path: url.path, what: "cannot write: \(error.localizedDescription)")
        }
    }

    /// Moves a finished temporary file into place, replacing an older `url`.
    public static func commit(_ temporary: URL, to url: URL) throws {
        CrashPoint.reach("commit", file: url.lastPathComponent)
        guard rename(temporary.path, url.path) == 0 else {
            throw FileError(path: url.path, what: "cannot rename \(temporary.lastPathComponent) into place: \(String(cString: strerror(errno)))")
        }
    }
}

/// A file-system error naming the file, one line.
public struct FileError: FileProblem {
    public let path: String
    public let what: String
    public init(path: String, what: String) {
        self.path = path
        self.what = what
    }
    public var file: String { path }
}

/// An error about one file. Every error a user sees is one line, "FILE: what"; the types differ (HDF5, image,
/// checkpoint, plain file) only so callers can catch one kind.
public protocol FileProblem: Error, CustomStringConvertible, LocalizedError {
    var file: String { get }
    var what: String { get }
}

extension FileProblem {
    public var description: String { "\(file): \(what)" }
    public var errorDescription: String? { description }
}
