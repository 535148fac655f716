import Foundation

/// The multi-host test bed of `scripts/hosts/` (network namespaces joined by a bridge, each a host with its own TCP
/// stack and name): bringing hosts up, running a program under `scripts/hosts/mpirun`, cutting a host's link.
/// Tests skip, with the reason printed, only where namespaces cannot be made (not root, or a sandbox refusing them).
public enum TestHosts {
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/hosts")

    /// Brings up `count` hosts (idempotent). Returns nil when they are up, else why they cannot be (the skip reason).
    public static func up(_ count: Int) -> String? {
        guard getuid() == 0 else { return "network namespaces need root (CI runs as root)" }
        guard let result = try? TestSupport.run("/bin/bash", [scripts.appendingPathComponent("up.sh").path, "\(count)"], timeout: 60) else {
            return "scripts/hosts/up.sh could not be started"
        }
        return result.status == 0 ? nil : "scripts/hosts/up.sh \(count) failed: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
    }

    /// Removes every test host.
    public static func down() {
        _ = try? TestSupport.run("/bin/bash", [scripts.appendingPathComponent("down.sh").path], timeout: 60)
    }

    /// Runs `executable arguments…` under `scripts/hosts/mpirun -n ranks` (rank r on host r mod N, TCP only).
    /// `environment` reaches every rank (each variable also named with `-x`, as a real cluster needs).
    public static func mpirun(_ ranks: Int, _ executable: String, _ arguments: [String], timeout: TimeInterval = 300,
                              environment: [String: String] = [:]) throws -> TestSupport.Result {
        try start(ranks, executable, arguments, environment: environment).finish(timeout: timeout)
    }

    /// `mpirun` that returns at once; `finish` waits.
    public static func start(_ ranks: Int, _ executable: String, _ arguments: [String],
                             environment: [String: String] = [:]) throws -> TestSupport.Running {
        let forward = environment.keys.sorted().flatMap { ["-x", $0] }
        return try TestSupport.start(scripts.appendingPathComponent("mpirun").path,
                                     ["-n", "\(ranks)"] + forward + [executable] + arguments, environment: environment)
    }

    /// The pids of the processes running `executable` inside host `index` (its ranks, not Open MPI's daemon).
    public static func processes(host index: Int, running executable: String) -> [pid_t] {
        guard let result = try? TestSupport.run("/usr/sbin/ip", ["netns", "pids", "pcs-h\(index)"], timeout: 30) else { return [] }
        return result.stdout.split(separator: "\n").compactMap { pid_t($0) }.filter { pid in
            guard let command = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
            return command.split(separator: 0).first.map { String(decoding: $0, as: UTF8.self) } == executable
        }
    }

    /// Takes host `index`'s link down (`up: false`, as a pulled cable or a dead switch port) or back up.
    public static func setLink(host index: Int, up: Bool) throws {
        let result = try TestSupport.run("/usr/sbin/ip", ["-n", "pcs-h\(index)", "link", "set", "eth0", up ? "up" : "down"], timeout: 30)
        guard result.status == 0 else { throw TestHostsError(what: "ip link set on pcs-h\(index): \(result.stderr)") }
    }

    public struct TestHostsError: Error, CustomStringConvertible {
        public let what: String
        public var description: String { what }
    }
}
