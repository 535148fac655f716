import Foundation

/// One reader under the fuzzer. `read` gets the input's bytes and a temporary file holding them (for readers that
/// take a path); it may throw, which is the right answer to bad input, but a thrown error must be the project's one
/// line naming the file, and anything else (a trap, an out-of-bounds access, a runaway allocation) is a finding.
struct FuzzTarget {
    let name: String
    /// The temporary file's extension (some readers look at it).
    let fileExtension: String
    let read: (_ bytes: [UInt8], _ path: String) throws -> Void

    static let all: [FuzzTarget] = [jpeg, png, pth, mxnet, coco, voc, yaml, shard]

    func feed(_ data: UnsafeBufferPointer<UInt8>) {
        let bytes = Array(data)
        let path = FuzzScratch.write(bytes, extension: fileExtension)
        do { try read(bytes, path) } catch { FuzzScratch.checkOneLine(error, naming: path) }
    }
}

/// The temporary file the inputs are written to: one per process, in memory (`/dev/shm`) where there is one.
enum FuzzScratch {
    private static let folder: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let path = "\(base)/pcs-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: "/dev/shm/pcs-fuzz-\(getpid())") }
        return path
    }()

    static func write(_ bytes: [UInt8], extension ext: String) -> String {
        let path = "\(folder)/input.\(ext)"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    /// Stops the run (a finding) when an error is not one line naming `path`, the project's rule for bad input.
    static func checkOneLine(_ error: Error, naming path: String) {
        let text = error.localizedDescription
        let name = URL(fileURLWithPath: path).lastPathComponent
        guard !text.contains("\n"), text.contains(name) else {
            fatalError("error is not one line naming the file: \(String(reflecting: error)): \(text)")
        }
    }
}
