import NN
import Storage

/// Steps 2–3 of `RandomWalkLabels` (spec §8.6 after AffinityNet): from one image's pair affinities and CAMs to the
/// argmax of the walked scores at the padded size, what upstream's `infer_aff.py` computes from `aff_mat` on:
///
///     V = avgpool₈(pad([s_bg; N_c])),   V_rw = V · T^(2^logT),   labels = argmax_l bilinear(V_rw)_l
///
/// with s_bg the constant background score inside the image (0 in the padding, as upstream pads after filling).
///
/// Only the background and the image's classes are computed: upstream's other rows of V are zero, stay zero
/// through the walk and the upsampling, and take part in the argmax only as the value 0 at the lowest absent
/// label (torch.max returns the first maximum), which `argmax` keeps as a candidate.
public struct RandomWalkArgmax: Sendable {
    public var walk: RandomWalk
    public var backgroundScore: Float

    public init(walk: RandomWalk = RandomWalk(), backgroundScore: Float = 0.46) {
        self.walk = walk
        self.backgroundScore = backgroundScore
    }

    /// Labels 0 … `labels` − 1 on the padded plane (hp × wp = 8·Hf × 8·Wf, row-major) from the affinities
    /// (direction-major, `pairs.directionCount` × `pairs.fromCount`; nil: no pairs, the walk is the identity) and
    /// the CAMs at the image size (≤ the padded size).
    public func callAsFunction(affinity: [Float], pairs: AffinityPairs?, featureHeight hf: Int, featureWidth wf: Int,
                               cams: ClassActivationMaps, labels: Int, threads: Int = 1) -> [UInt8] {
        let (hp, wp, h, w) = (hf * 8, wf * 8, cams.height, cams.width)
        precondition(h <= hp && w <= wp, "RandomWalkArgmax: CAMs \(w)x\(h) exceed the padded \(wp)x\(hp)")
        let plane = hp * wp, n = hf * wf
        var edges: [RandomWalk.Edge] = []
        if let pairs {
            precondition(pairs.height == hf && pairs.width == wf && affinity.count == pairs.directionCount * pairs.fromCount,
                         "RandomWalkArgmax: \(affinity.count) affinities for the \(pairs.width)x\(pairs.height) pair layout on \(wf)x\(hf)")
            edges.reserveCapacity(affinity.count)
            for d in 0..<pairs.directionCount {
                for p in 0..<pairs.fromCount {
                    let from = pairs.from(p)
                    edges.append(.init(Int32(from), Int32(from + pairs.offset(d)), affinity[d * pairs.fromCount + p]))
                }
            }
        }
        // Channel 0 the background, then each class present in the CAMs (label c + 1).
        let active = [0] + cams.classes.map { $0 + 1 }
        let k = active.count
        var scores = [Float](repeating: 0, count: k * plane)
        for y in 0..<h { for x in 0..<w { scores[y * wp + x] = backgroundScore } }
        for a in 1..<k {
            let map = cams.map(a - 1)
            for y in 0..<h { for x in 0..<w { scores[a * plane + y * wp + x] = map[map.startIndex + y * w + x] } }
        }
        let pooled = Autograd.noGrad { avgPool2d(Tensor(scores, shape: [1, k, hp, wp]), kernel: 8) }.toArray()
        var nodeMajor = [Float](repeating: 0, count: n * k)
        for a in 0..<k { for i in 0..<n { nodeMajor[i * k + a] = pooled[a * n + i] } }
        let walked = walk.propagate(nodeMajor, channels: k, nodes: n, edges: edges, threads: threads)
        var channelMajor = [Float](repeating: 0, count: n * k)
        for a in 0..<k { for i in 0..<n { channelMajor[a * n + i] = walked[i * k + a] } }
        let up = Autograd.noGrad { interpolate(Tensor(channelMajor, shape: [1, k, hf, wf]), size: (hp, wp), mode: .bilinear) }.toArray()
        return Self.argmax(up, active: active, labels: labels, plane: plane)
    }

    /// The first maximum over `labels` channels per pixel, where channel `active[a]` holds `values[a·plane …]` and
    /// every other channel is 0.
    static func argmax(_ values: [Float], active: [Int], labels: Int, plane: Int) -> [UInt8] {
        let firstAbsent = (0..<labels).first { !active.contains($0) }
        // Candidates in ascending label order: the computed channels, and the first absent one (value 0).
        var candidates = active.enumerated().map { (label: $0.element, channel: Optional($0.offset)) }
        if let firstAbsent { candidates.append((firstAbsent, nil)) }
        candidates.sort { $0.label < $1.label }
        var out = [UInt8](repeating: 0, count: plane)
        values.withUnsafeBufferPointer { v in
            for i in 0..<plane {
                var best = -Float.infinity, label = 0
                for c in candidates {
                    let value = c.channel.map { v[$0 * plane + i] } ?? 0
                    if value > best {
                        best = value
                        label = c.label
                    }
                }
                out[i] = UInt8(label)
            }
        }
        return out
    }
}
