import Foundation

/// The test hosts of `scripts/hosts/` for benchmarks that cross a network: N network namespaces on one bridge,
/// brought up here, their links shaped per measurement, and the `mpirun` that spreads ranks over them.
public struct TestHostBed {
    /// A link setting: a rate and a one-way delay for `tc netem` (`10gbit:0.05ms`), or none (the veth's own speed).
    public struct LinkShape: CustomStringConvertible {
        public var rate: String?, delay: String?

        /// Parses `none` or `RATE:DELAY`.
        public init?(_ text: String) {
            if text == "none" { return }
            let parts = text.split(separator: ":").map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
            (rate, delay) = (parts[0], parts[1])
        }

        public var description: String { rate.map { "\($0) \(delay ?? "")" } ?? "unshaped" }
    }

    public struct BedError: Error, CustomStringConvertible, LocalizedError {
        public let description: String
        public var errorDescription: String? { description }
    }

    /// The folder holding up.sh, shape.sh and mpirun.
    public let scripts: URL
    public let count: Int

    /// Finds `scripts/hosts` (under the current folder, or the checkout the executable was built in) and brings up
    /// `count` hosts.
    public init(count: Int) throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
                          executable.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()]
            .map { $0.appendingPathComponent("scripts/hosts") }
        guard let scripts = candidates.first(where: { FileManager.default.fileExists(atPath: $0.appendingPathComponent("up.sh").path) }) else {
            throw BedError(description: "--hosts: scripts/hosts/up.sh not found under \(candidates.map(\.path).joined(separator: " or ")); run from the checkout")
        }
        self.scripts = scripts
        self.count = count
        try Self.bash(scripts.appendingPathComponent("up.sh"), ["\(count)"])
    }

    /// Shapes every host's link (or removes the shaping).
    public func shape(_ shape: LinkShape) throws {
        try Self.bash(scripts.appendingPathComponent("shape.sh"), shape.rate.map { [$0, shape.delay ?? "0ms"] } ?? ["off"])
    }

    /// `MPILauncher.run`'s launcher for these hosts.
    public var launcher: [String] { [scripts.appendingPathComponent("mpirun").path] }

    private static func bash(_ script: URL, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path] + arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BedError(description: "\(script.path) \(arguments.joined(separator: " ")) exited with status \(process.terminationStatus)")
        }
    }
}
