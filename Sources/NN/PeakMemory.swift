import Foundation

/// The peak resident memory (`getrusage`'s `ru_maxrss`) of this process and of its largest finished child, in MiB.
/// `StoragePool.peakLiveBytes` counts only tensor storage; this is what the kernel saw, allocator and libraries
/// included, and what a Slurm memory limit is checked against.
public enum PeakMemory {
    public static func residentMiB() -> (own: Double, children: Double) {
        var own = rusage(), children = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &own)
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &children)
        return (Double(own.ru_maxrss) / 1024, Double(children.ru_maxrss) / 1024)
    }
}
