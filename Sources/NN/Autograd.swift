/// Reverse-mode automatic differentiation with a tape.
///
/// Every differentiable op, when one of its inputs requires a gradient and recording is on, appends a node
/// holding a closure that maps the gradient of its output to gradients of its inputs (accumulated with
/// `Tensor.accumulateGrad`). `backward(loss)` walks the tape from the end; each node is dropped once it has run,
/// which releases the activations it saved, and the gradient of every intermediate output is released after
/// use, so peak memory falls as backward proceeds. Leaves (parameters, inputs created with `requiresGrad`) keep
/// their `.grad`. Inference runs inside `Autograd.noGrad { }` and records nothing.
public enum Autograd {
    struct Node {
        /// The output's gradient slot (not the output: its data is freed when nothing else needs it).
        let output: GradSlot
        let backward: (Tensor) -> Void
        /// The op's family for `OpProfile` (empty unless profiling).
        let family: String
    }

    nonisolated(unsafe) private static var tape: [Node] = []
    nonisolated(unsafe) private static var recordingDepth = 0

    /// Whether ops currently record themselves.
    public static var isRecording: Bool { recordingDepth == 0 }

    /// Number of nodes waiting for a backward pass.
    public static var pendingNodes: Int { tape.count }

    /// Runs `body` without recording (inference, optimiser updates).
    public static func noGrad<R>(_ body: () throws -> R) rethrows -> R {
        recordingDepth += 1
        defer { recordingDepth -= 1 }
        return try body()
    }

    /// Whether an op on `inputs` must record: recording is on and some input requires a gradient. Every op asks
    /// this once, right before it records, so it also counts the gradient each such input will receive
    /// (`GradSlot.pendingUses`, which tells the gradient reducer when a parameter's gradient is complete).
    public static func needsGrad(_ inputs: Tensor?...) -> Bool { needsGrad(inputs) }

    /// `needsGrad` over an array of inputs.
    public static func needsGrad(_ inputs: [Tensor?]) -> Bool {
        guard isRecording, inputs.contains(where: { $0?.requiresGrad == true }) else { return false }
        countUses(inputs)
        return true
    }

    /// Counts one gradient delivery for each input that requires a gradient; for an op that decides on its own
    /// whether to record (BatchNorm: frozen mode gives its weights nothing) and calls this when it does.
    public static func countUses(_ inputs: [Tensor?]) {
        for case let input? in inputs where input.requiresGrad { input.slot.pendingUses += 1 }
    }

    /// Records that `output` was computed; `backward` receives the output's gradient. `file` and `function` (or
    /// `label`, for one function that serves several ops) name the op's family for `OpProfile`.
    public static func record(_ output: Tensor, label: String? = nil, file: StaticString = #fileID,
                              function: StaticString = #function, backward: @escaping (Tensor) -> Void) {
        output.requiresGrad = true
        var family = ""
        if OpProfile.isEnabled {
            family = OpProfile.family(file: file, function: function, label: label)
            OpProfile.chargeForward(family)
        }
        tape.append(Node(output: output.slot, backward: backward, family: family))
    }

    /// Back-propagates from a scalar `loss` (seeded with gradient 1, or `seed` if given) through every recorded op.
    public static func backward(_ loss: Tensor, seed: Tensor? = nil) {
        precondition(seed != nil || loss.elementCount == 1, "backward() from a non-scalar \(loss.shape) needs a seed gradient")
        loss.accumulateGrad(seed ?? Tensor.filled(1, shape: loss.shape))
        while let node = tape.popLast() {
            guard let g = node.output.grad else { continue }
            node.output.grad = nil
            // Backward computes with primitives directly; nothing it does is itself recorded.
            if OpProfile.isEnabled && !node.family.isEmpty {
                OpProfile.chargeBackward(node.family) { noGrad { node.backward(g) } }
            } else {
                noGrad { node.backward(g) }
            }
        }
    }

    /// Drops everything recorded (e.g. after a forward pass whose gradients are not wanted).
    public static func reset() { tape.removeAll() }
}

extension Tensor {
    /// Back-propagates from this scalar; see `Autograd.backward`.
    public func backward() { Autograd.backward(self) }
}
