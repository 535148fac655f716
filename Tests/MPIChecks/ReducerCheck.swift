import Distributed
import NN

/// A small network to train data-parallel: conv → BN (running statistics) → ReLU → linear head.
final class CheckNet {
    let conv: Conv2d, bn = BatchNorm2d(8), head: Linear
    init() {
        var rng = SeededRandom(seed: 1)
        conv = Conv2d(3, 8, kernel: 3, padding: 1, rng: &rng)
        head = Linear(8 * 8 * 8, 4, rng: &rng)
        bn.mode = .inference
    }
    var parameters: [Tensor] { [conv.weight, conv.bias!, bn.weight, bn.bias, head.weight, head.bias!] }
    func loss(_ images: [Int]) -> Tensor {
        let n = images.count
        let x = Tensor(images.flatMap { image(seed: UInt64($0)) }, shape: [n, 3, 8, 8])
        let labels = Tensor(images.flatMap { i in (0..<4).map { Float(($0 + i) % 2) } }, shape: [n, 4])
        return multilabelSoftMarginLoss(head(relu(bn(conv(x))).plain().reshaped([n, 8 * 8 * 8])), labels)
    }
    func image(seed: UInt64) -> [Float] {
        var r = SeededRandom(seed: 100 + seed)
        return (0..<(3 * 64)).map { _ in r.nextFloat() - 0.5 }
    }
}

/// 2 ranks × 1 image against 1 rank × 2 images (computed on every rank as the reference): the reduced gradients
/// and the parameters after an AdamW step must agree. Buckets are tiny so several reductions overlap backward.
func reducerChecks(_ world: Communicator, check: (Bool, String) -> Void) {
    let n = world.size
    let distributed = CheckNet(), reference = CheckNet()
    let reducer = GradientReducer(parameters: distributed.parameters, world: world, bucketBytes: 40)
    check(reducer.bucketCount >= 3, "several buckets (\(reducer.bucketCount))")

    reducer.prepareForStep()
    distributed.loss([world.rank]).backward()
    reducer.finish()
    check(reducer.overlappedBuckets == reducer.bucketCount, "buckets started during backward (\(reducer.overlappedBuckets))")
    reference.loss(Array(0..<n)).backward()

    for (i, (a, b)) in zip(distributed.parameters, reference.parameters).enumerated() {
        let ga = a.grad?.toArray() ?? [], gb = b.grad?.toArray() ?? []
        let scale = max(1, gb.map { abs($0) }.max() ?? 1)
        let worst = zip(ga, gb).map { abs($0 - $1) }.max() ?? 1
        check(ga.count == gb.count && worst <= 1e-5 * scale, "parameter \(i): reduced gradient differs from the \(n)-image one by \(worst)")
    }
    let optA = AdamW([ParameterGroup(distributed.parameters, learningRate: 0.01, weightDecay: 0.1)])
    let optB = AdamW([ParameterGroup(reference.parameters, learningRate: 0.01, weightDecay: 0.1)])
    optA.step()
    optB.step()
    let worst = zip(distributed.parameters, reference.parameters).map { a, b in
        zip(a.toArray(), b.toArray()).map { abs($0 - $1) }.max() ?? 0
    }.max() ?? 1
    check(worst <= 1e-6, "parameters after the step differ by \(worst)")
    check(reducer.parametersInSync(), "parameters in sync across ranks")
}

/// `--grad-compression fp16`: the same reduction with half precision on the wire agrees with the N-image gradient
/// to half precision's rounding, which is relative to what each rank sent (2^-11 per value, one more per partial
/// sum: a mean that cancels keeps the absolute error of its terms), and every rank holds the same mean.
func halfPrecisionReducerChecks(_ world: Communicator, check: (Bool, String) -> Void) {
    let n = world.size
    let distributed = CheckNet(), reference = CheckNet()
    let reducer = GradientReducer(parameters: distributed.parameters, world: world, bucketBytes: 40, compression: .fp16)
    reducer.prepareForStep()
    distributed.loss([world.rank]).backward()
    reducer.finish()
    reference.loss(Array(0..<n)).backward()
    // Σ_r |g_r| / N per element: the magnitude the half-precision values carried.
    let sent = (0..<n).map { r -> [[Float]] in
        let single = CheckNet()
        single.loss([r]).backward()
        return single.parameters.map { $0.grad?.toArray() ?? [] }
    }
    for (i, (a, b)) in zip(distributed.parameters, reference.parameters).enumerated() {
        let ga = a.grad?.toArray() ?? [], gb = b.grad?.toArray() ?? []
        let excess = gb.indices.map { j -> Float in
            let carried = sent.map { abs($0[i][j]) }.reduce(0, +) / Float(n)
            return abs(ga[j] - gb[j]) - (Float(n) * 0x1p-11 * carried + 1e-7)
        }
        check(ga.count == gb.count && (excess.max() ?? 0) <= 0, "fp16: parameter \(i): reduced gradient beyond half precision's rounding by \(excess.max() ?? 0)")
    }
    let rounded = zip(distributed.parameters, reference.parameters).contains { a, b in a.grad?.toArray() != b.grad?.toArray() }
    check(rounded, "fp16: no gradient shows half precision's rounding (was float32 sent?)")
    let mine = distributed.parameters.flatMap { $0.grad?.toArray() ?? [] }.map(Double.init).reduce(0, +)
    check(world.allreduce(mine, op: .max) == mine && world.allreduce(mine, op: .min) == mine, "fp16: every rank holds the same mean")
}

/// Synchronised BatchNorm: 2 ranks × 1 image with statistics over both ranks equal 1 rank × 2 images with
/// ordinary training-mode BatchNorm (gradients, parameters after a step, running statistics).
func syncBatchNormChecks(_ world: Communicator, check: (Bool, String) -> Void) {
    let n = world.size
    let distributed = CheckNet(), reference = CheckNet()
    distributed.bn.mode = .training
    reference.bn.mode = .training
    distributed.bn.statisticsReducer = { world.allreduce(&$0) }
    let reducer = GradientReducer(parameters: distributed.parameters, world: world, bucketBytes: 40)
    reducer.prepareForStep()
    distributed.loss([world.rank]).backward()
    reducer.finish()
    reference.loss(Array(0..<n)).backward()
    for (i, (a, b)) in zip(distributed.parameters, reference.parameters).enumerated() {
        let ga = a.grad?.toArray() ?? [], gb = b.grad?.toArray() ?? []
        let scale = max(1, gb.map { abs($0) }.max() ?? 1)
        let worst = zip(ga, gb).map { abs($0 - $1) }.max() ?? 1
        check(ga.count == gb.count && worst <= 1e-5 * scale, "sync BN: parameter \(i) gradient differs by \(worst)")
    }
    let runningMean = zip(distributed.bn.runningMean.toArray(), reference.bn.runningMean.toArray()).map { abs($0 - $1) }.max() ?? 1
    let runningVar = zip(distributed.bn.runningVar.toArray(), reference.bn.runningVar.toArray()).map { abs($0 - $1) }.max() ?? 1
    check(runningMean <= 1e-6 && runningVar <= 1e-5, "sync BN: running statistics differ by \(runningMean), \(runningVar)")
}
