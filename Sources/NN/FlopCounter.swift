/// Counts the floating-point operations of the compute-bound primitives (convolutions and matrix products,
/// forward and backward; 2 per multiply-add), so benchmarks can report achieved GFLOP/s of a whole model step.
/// Element-wise and normalisation work is not counted: the figure is a lower bound of the work done.
public enum FlopCounter {
    nonisolated(unsafe) public private(set) static var count: Double = 0

    @inline(__always)
    static func add(_ flops: Double) { count += flops }
}
