import Dispatch

/// Where a training step's time goes, per op family: while `OpProfile.isEnabled`, every op `Autograd` records is
/// charged the wall time since the previous record (its forward, with whatever framework work came before it),
/// and every backward node the time it runs; both also note how much of that time oneDNN's primitives took
/// (`Primitive.executionNanoseconds`) and how many activation reorders it ran. A family is the file and function that recorded the op
/// ("Conv2d.swift conv2d(_:weight:bias:geometry:)"). Work that records nothing (an optimiser step, inference) is
/// not seen: time it around the call. Off by default; turning it on costs two clock reads per op.
public enum OpProfile {
    /// One op family's totals.
    public struct Row {
        public var family: String
        public var calls: Int
        public var forwardNanoseconds: UInt64
        public var backwardNanoseconds: UInt64
        /// The part of forward + backward spent inside oneDNN primitives (reorders included).
        public var primitiveNanoseconds: UInt64
        /// Activation reorders (layout conversions) run in forward + backward.
        public var reorders: Int
        public var totalNanoseconds: UInt64 { forwardNanoseconds + backwardNanoseconds }
    }

    nonisolated(unsafe) public private(set) static var isEnabled = false
    nonisolated(unsafe) private static var rows: [String: Row] = [:]
    nonisolated(unsafe) private static var mark: (clock: UInt64, primitive: UInt64, reorders: Int) = (0, 0, 0)

    /// Clears the totals and starts charging ops.
    public static func start() {
        rows = [:]
        isEnabled = true
        restartClock()
    }

    /// Stops charging; returns the families, most time first.
    public static func stop() -> [Row] {
        isEnabled = false
        return rows.values.sorted { $0.totalNanoseconds > $1.totalNanoseconds }
    }

    /// Starts the forward clock afresh (after work that belongs to no op, e.g. between a backward and the next
    /// forward).
    public static func restartClock() {
        mark = (DispatchTime.now().uptimeNanoseconds, Primitive.executionNanoseconds, Reorder.count)
    }

    /// The family name of an op recorded from `function` (or with `label`) in `file` ("Module/File.swift").
    static func family(file: StaticString, function: StaticString, label: String?) -> String {
        let path = "\(file)"
        return "\(path.split(separator: "/").last ?? Substring(path)) \(label ?? "\(function)")"
    }

    /// Charges the time since the last mark to `family`'s forward (called when an op records itself).
    static func chargeForward(_ family: String) {
        let now = (DispatchTime.now().uptimeNanoseconds, Primitive.executionNanoseconds, Reorder.count)
        add(family, forward: now.0 - mark.clock, backward: 0, primitive: now.1 - mark.primitive,
            reorders: now.2 - mark.reorders, calls: 1)
        mark = now
    }

    /// Runs one backward node and charges it to `family`.
    static func chargeBackward(_ family: String, _ body: () -> Void) {
        let start = (DispatchTime.now().uptimeNanoseconds, Primitive.executionNanoseconds, Reorder.count)
        body()
        add(family, forward: 0, backward: DispatchTime.now().uptimeNanoseconds - start.0,
            primitive: Primitive.executionNanoseconds - start.1, reorders: Reorder.count - start.2, calls: 0)
    }

    private static func add(_ family: String, forward: UInt64, backward: UInt64, primitive: UInt64, reorders: Int,
                            calls: Int) {
        var row = rows[family] ?? Row(family: family, calls: 0, forwardNanoseconds: 0, backwardNanoseconds: 0,
                                      primitiveNanoseconds: 0, reorders: 0)
        row.reorders += reorders
        row.calls += calls
        row.forwardNanoseconds += forward
        row.backwardNanoseconds += backward
        row.primitiveNanoseconds += primitive
        rows[family] = row
    }
}
