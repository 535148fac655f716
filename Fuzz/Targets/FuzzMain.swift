import Foundation

/// libFuzzer's driver, from its `fuzzer_no_main` runtime (scripts/fuzz.sh links it). SwiftPM gives every executable
/// its own entry point, which clashes with the `main` of `-sanitize=fuzzer`'s runtime, so this program keeps its own
/// `main` and hands the loop to libFuzzer.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The target libFuzzer's callback runs (a C callback cannot capture it).
nonisolated(unsafe) var selectedTarget: FuzzTarget?

/// `PCS_FUZZ_TARGET=jpeg pcs-fuzz [libFuzzer flags] [corpus dirs]`: runs one target under libFuzzer. The target is
/// named in the environment, not the arguments, because libFuzzer passes its own arguments on to the processes it
/// starts (`-jobs`, `-merge`) and reads any word that is not a flag as a corpus folder.
@main
enum FuzzMain {
    static func main() {
        let name = ProcessInfo.processInfo.environment["PCS_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget.all.first(where: { $0.name == name }) else {
            FileHandle.standardError.write(Data("pcs-fuzz: set PCS_FUZZ_TARGET to one of \(FuzzTarget.all.map(\.name).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        selectedTarget = target
        var arguments: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
        var argc = Int32(arguments.count - 1)
        let status = arguments.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
            return LLVMFuzzerRunDriver(&argc, &argv) { data, count in
                selectedTarget!.feed(UnsafeBufferPointer(start: data, count: count))
                return 0
            }
        }
        exit(status)
    }
}
