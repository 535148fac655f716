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

    /// Moves a finished temporary file into place, replacing an older `url`: the file is synced to disk first and
    /// the folder after, so what carries the final name is complete even after a power loss.
    public static func commit(_ temporary: URL, to url: URL) throws {
        CrashPoint.reach("commit", file: url.lastPathComponent)
        try synchronize(temporary)
        guard rename(temporary.path, url.path) == 0 else {
            throw FileError(path: url.path, what: "cannot rename \(temporary.lastPathComponent) into place: \(String(cString: strerror(errno)))")
        }
        // The rename itself is durable only once the folder's entry is on disk.
        try synchronize(url.deletingLastPathComponent(), directory: true)
    }

    /// `fsync` of a file (or a folder's entries): the data is on disk when it returns, so a power loss or a node
    /// crash after the rename cannot leave a file that looks complete and is not.
    public static func synchronize(_ url: URL, directory: Bool = false) throws {
        let fd = open(url.path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY)
        guard fd >= 0 else { throw FileError(path: url.path, what: "cannot open to sync: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // Some file systems cannot sync a folder (EINVAL); the file's own sync is what matters most there.
        guard fsync(fd) == 0 || (directory && errno == EINVAL) else {
            throw FileError(path: url.path, what: "cannot sync to disk: \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the temporary files an interrupted writer left in `folder` (`.NAME.partial-PID`, see
    /// `temporaryURL`) for the final names `matching` accepts, and returns how many. A run calls it on the folders
    /// it writes before it starts: those files were never complete and nothing reads them.
    @discardableResult
    public static func removeStaleTemporaries(in folder: URL, matching: (String) -> Bool = { _ in true }) -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        var removed = 0
        for name in names where name.hasPrefix(".") {
            guard let range = name.range(of: ".partial-", options: .backwards) else { continue }
            let final = String(name[name.index(after: name.startIndex)..<range.lowerBound])
            guard matching(final), (try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))) != nil else { continue }
            removed += 1
        }
        return removed
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
    /// One line even when the problem quotes the file (a zip member's name, an item id): control characters in
    /// `what` are escaped (found by fuzzing the `.pth` reader: a member name with a newline split the message).
    public var description: String { "\(file): \(oneLine(what))" }
    public var errorDescription: String? { description }
}

/// `text` with its control characters (newlines, tabs, escape sequences) written as Swift escapes: every error
/// type that quotes user input (a YAML value, a JSON string, a zip member's name) passes its text through this.
public func oneLine(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
    return text.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
}
