import CDNNL

/// `big op small` for two broadcasts oneDNN 2.6 has no optimised binary kernel for: `small` of shape (B, 1, …, 1), a
/// value per sample (drop path's mask), and (B, C, 1, 1), a value per sample and channel (channel dropout's mask on
/// a blocked activation). Its reference kernel ran these ~50× slower than a plain product, a fifth of the
/// Conformer's training step. Here each value is applied to its part of `big`'s storage in `big`'s layout: any
/// `ChannelChunks` layout (plain, nChw8c / nChw16c whose padding channels stay 0, NHWC). Every element gets the same
/// single float operation as in the primitive. nil when the shapes or the layout do not fit: the caller runs the
/// primitive. `padded` is small's shape left-padded to big's rank; `small` is read plain.
func blockwiseBinary(_ op: BinaryOperation, _ big: Tensor, _ small: Tensor, padded: [Int]) -> Tensor? {
    guard let layout = ChannelChunks(big), padded.count >= 2, padded[0] == big.shape[0] else { return nil }
    let perSample = padded.dropFirst().allSatisfy { $0 == 1 }
    let perChannel = padded.count == 4 && padded[1] == big.shape[1] && padded[2] == 1 && padded[3] == 1
    guard perSample || perChannel else { return nil }
    let small = small.plain()
    let values = small.storage.floats
    let y = Tensor(shape: big.shape, desc: big.desc)
    let (src, dst) = (big.storage.floats, y.storage.floats)
    let (b, c, block) = (big.shape[0], big.shape[1], layout.block)
    ComputeThreads.parallelRanges(b * layout.channelBlocks, minimumPerThread: 1) { range in
        var operand = [Float](repeating: 0, count: block)
        for task in range {
            let (n, cb) = (task / layout.channelBlocks, task % layout.channelBlocks)
            let channels = min(block, c - cb * block)      // lanes past them are padding, kept 0
            for k in 0..<channels { operand[k] = perSample ? values[n] : values[n * c + cb * block + k] }
            let chunk = task * layout.chunk
            for i in Swift.stride(from: chunk, to: chunk + layout.chunk, by: block) {
                for k in 0..<block {
                    dst[i + k] = k >= channels ? 0 : op == .mul ? src[i + k] * operand[k] : src[i + k] + operand[k]
                }
            }
        }
    }
    return withExtendedLifetime(small) { y }
}
