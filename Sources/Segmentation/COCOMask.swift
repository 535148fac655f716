import Foundation

/// A binary mask as COCO run lengths.
///
/// The `height × width` mask is read in column-major (Fortran) order, pixel `(row, col)` at `col·height + row`,
/// and `counts` alternates runs of 0s and 1s starting with 0s (so a mask whose first pixel is set starts with a 0
/// count). Counts should add up to `height·width`; readers here clip longer ones and treat missing pixels as 0.
public struct COCORLE: Equatable, Sendable {
    public var height: Int
    public var width: Int
    public var counts: [UInt32]

    public init(height: Int, width: Int, counts: [UInt32]) {
        self.height = height
        self.width = width
        self.counts = counts
    }

    /// Number of set pixels (the sum of the odd-indexed runs).
    public var area: Int {
        stride(from: 1, to: counts.count, by: 2).reduce(0) { $0 + Int(counts[$1]) }
    }
}

/// Mask decoding and polygon rasterisation that reproduce pycocotools bit for bit.
public enum COCOMask {
    /// Unpacks a compressed RLE `counts` string, as pycocotools' `rleFrString` does.
    ///
    /// Each character `c` carries 6 bits `c − 48`: 5 data bits (least significant group first) and a continuation
    /// bit `0x20`. A value ends at the first character without continuation; if that character's bit `0x10` is set
    /// the value is negative (sign-extended from the last data bit). Values from index 3 on are deltas:
    /// `counts[i] = value[i] + counts[i−2]` for `i > 2` (indices 0, 1, 2 are stored as they are).
    ///
    /// Malformed input is not rejected (pycocotools does not check either): a final value cut off mid-way is kept
    /// as read, and counts wrap to `UInt32` like the C code's cast.
    public static func decodeCompressedCounts(_ string: String) -> [UInt32] {
        var counts: [UInt32] = []
        counts.reserveCapacity(string.utf8.count)
        var value: Int64 = 0
        var shift: Int64 = 0
        for byte in string.utf8 {
            let c = Int64(byte) &- 48
            value |= (c & 0x1f) << shift
            shift += 5
            if c & 0x20 != 0, shift < 60 { continue }
            if c & 0x10 != 0 { value |= -1 << shift }
            if counts.count > 2 { value &+= Int64(counts[counts.count - 2]) }
            counts.append(UInt32(truncatingIfNeeded: value))
            value = 0
            shift = 0
        }
        if shift > 0 {
            if counts.count > 2 { value &+= Int64(counts[counts.count - 2]) }
            counts.append(UInt32(truncatingIfNeeded: value))
        }
        return counts
    }

    /// Rasterises one polygon part `[x0, y0, x1, y1, …]` as pycocotools' `rleFrPoly` does.
    ///
    /// The rule, in pixel coordinates where pixel `(row, col)` is centred at `(col, row)`:
    /// 1. Scale the vertices by 5 and round each to the nearest integer (`Int(5v + 0.5)`, truncating toward 0).
    /// 2. Walk the closed outline through every integer point, stepping one unit along the major axis of each edge
    ///    (from its lower endpoint along that axis, so the rounding `Int(a + s·t + 0.5)` is the same either way).
    /// 3. Wherever consecutive points change the x coordinate, the crossing sits at `x = min(u, u′)` (or `u′ − 1`
    ///    going right); keep it only if `(x + 0.5)/5 − 0.5` is a whole pixel column `c` in `0…width−1`, at
    ///    row `r = ceil(clamp((min(v, v′) + 0.5)/5 − 0.5, 0, height))`.
    /// 4. Each kept `(c, r)` toggles the column-major mask at `c·height + r`; sorting those positions and taking
    ///    differences (repeated positions cancel in pairs) gives the run lengths, ending at `height·width`.
    ///
    /// A part with fewer than 3 vertices has no area and gives an empty mask, as it does in pycocotools.
    public static func rle(polygon xy: [Double], height h: Int, width w: Int) -> COCORLE {
        let vertexCount = xy.count / 2
        let total = UInt32(truncatingIfNeeded: h * w)
        guard vertexCount > 0 else { return COCORLE(height: h, width: w, counts: [total]) }
        // Clamped only so that absurd coordinates cannot trap the Int conversion; COCO's are within the image.
        func upsample(_ v: Double) -> Int { Int(max(-1e9, min(1e9, 5 * v + 0.5))) }

        var toggles: [UInt32] = []
        toggles.reserveCapacity(2 * w + 8)
        var previous = (u: 0, v: 0)
        var havePrevious = false
        let lastColumn = Double(w - 1)
        // Step 3 on the fly: only consecutive points matter, so the dense outline is never stored.
        func visit(_ u: Int, _ v: Int) {
            defer { previous = (u, v); havePrevious = true }
            guard havePrevious, u != previous.u else { return }
            let x = (Double(u < previous.u ? u : u - 1) + 0.5) / 5 - 0.5
            guard x.rounded(.down) == x, x >= 0, x <= lastColumn else { return }
            var y = (Double(min(v, previous.v)) + 0.5) / 5 - 0.5
            y = y < 0 ? 0 : (y > Double(h) ? Double(h) : y)
            toggles.append(UInt32(truncatingIfNeeded: Int(x) * h + Int(y.rounded(.up))))
        }

        for j in 0..<vertexCount {
            let k = j + 1 == vertexCount ? 0 : j + 1
            var (xs, ys) = (upsample(xy[2 * j]), upsample(xy[2 * j + 1]))
            var (xe, ye) = (upsample(xy[2 * k]), upsample(xy[2 * k + 1]))
            let dx = abs(xe - xs), dy = abs(ye - ys)
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye)
            if flip { swap(&xs, &xe); swap(&ys, &ye) }
            if dx == 0 && dy == 0 {
                // A repeated vertex (C divides 0 by 0 here; the point's v is never used since u does not change).
                visit(xs, ys)
            } else if dx >= dy {
                let s = Double(ye - ys) / Double(dx)
                for d in 0...dx {
                    let t = flip ? dx - d : d
                    visit(t + xs, Int(Double(ys) + s * Double(t) + 0.5))
                }
            } else {
                let s = Double(xe - xs) / Double(dy)
                for d in 0...dy {
                    let t = flip ? dy - d : d
                    visit(Int(Double(xs) + s * Double(t) + 0.5), t + ys)
                }
            }
        }

        toggles.append(total)
        toggles.sort()
        // Differences; a zero difference means two toggles at one position, which cancel: drop the zero and fold
        // the next difference into the previous run.
        var counts: [UInt32] = []
        counts.reserveCapacity(toggles.count)
        var last: UInt32 = 0
        var pendingMerge = false
        for (j, position) in toggles.enumerated() {
            let delta = position &- last
            last = position
            if j == 0 { counts.append(delta) } else if pendingMerge {
                counts[counts.count - 1] &+= delta
                pendingMerge = false
            } else if delta > 0 { counts.append(delta) } else { pendingMerge = true }
        }
        return COCORLE(height: h, width: w, counts: counts)
    }

    /// The run-length masks of a segmentation: one per polygon part, or the single RLE (which keeps its own
    /// `size`, as pycocotools does; `height`/`width` are used for polygons only).
    public static func rles(for segmentation: COCOSegmentation, height: Int, width: Int) -> [COCORLE] {
        switch segmentation {
        case .polygons(let parts):
            return parts.map { rle(polygon: $0, height: height, width: width) }
        case .rle(let counts, let h, let w):
            return [COCORLE(height: h, width: w, counts: counts)]
        case .compressedRLE(let string, let h, let w):
            return [COCORLE(height: h, width: w, counts: decodeCompressedCounts(string))]
        }
    }

    /// Calls `body` with the row-major index `row·width + col` of every set pixel of `rle` that falls inside a
    /// `height × width` image (pixels outside it, or past `rle.height·rle.width`, are skipped).
    @inline(__always)
    static func forEachSetPixel(of rle: COCORLE, height: Int, width: Int, _ body: (Int) -> Void) {
        let rh = rle.height
        let end = rh * min(rle.width, width)
        guard rh > 0 else { return }
        var position = 0
        for (j, count) in rle.counts.enumerated() {
            let runEnd = min(position + Int(count), end)
            if j & 1 == 1 {
                // One division per column the run touches, not per pixel.
                var p = position
                while p < runEnd {
                    let col = p / rh
                    let row0 = p - col * rh
                    let row1 = min(rh, row0 + (runEnd - p))
                    var index = row0 * width + col
                    var row = row0
                    while row < row1, row < height {
                        body(index)
                        index += width
                        row += 1
                    }
                    p += row1 - row0
                }
            }
            position = runEnd
            if position >= end { break }
        }
    }

    /// Encodes a row-major `height × width` mask (non-zero is set) as run lengths, pycocotools' `encode`.
    public static func rle(mask: [UInt8], height: Int, width: Int) -> COCORLE {
        precondition(mask.count == height * width, "COCOMask.rle: \(mask.count) pixels for \(height)x\(width)")
        var counts: [UInt32] = []
        var current: UInt8 = 0
        var run: UInt32 = 0
        for col in 0..<width {
            for row in 0..<height {
                let bit: UInt8 = mask[row * width + col] != 0 ? 1 : 0
                if bit != current {
                    counts.append(run)
                    (current, run) = (bit, 0)
                }
                run += 1
            }
        }
        counts.append(run)
        return COCORLE(height: height, width: width, counts: counts)
    }

    /// Packs run lengths into the compressed `counts` string, pycocotools' `rleToString`: the inverse of
    /// ``decodeCompressedCounts(_:)`` (values from index 3 on as deltas to `counts[i−2]`, 5 bits a character).
    public static func compressedCounts(_ counts: [UInt32]) -> String {
        var bytes: [UInt8] = []
        for i in counts.indices {
            var x = Int64(counts[i])
            if i > 2 { x -= Int64(counts[i - 2]) }
            var more = true
            while more {
                var c = x & 0x1f
                x >>= 5
                more = c & 0x10 != 0 ? x != -1 : x != 0
                if more { c |= 0x20 }
                bytes.append(UInt8(c + 48))
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Polygon parts whose pycocotools rasterisation is exactly `mask` (row-major, non-zero set): one rectangle per
    /// run of set pixels in a row, with corners on the pixel edges (`(c ± 0.5, r ± 0.5)`), taller where rows repeat.
    /// For generated COCO-format data; real annotations trace outlines instead.
    public static func rectanglePolygons(mask: [UInt8], height: Int, width: Int) -> [[Double]] {
        var open: [Int: (top: Int, c0: Int, c1: Int)] = [:]   // by c0, the rectangles still growing downwards
        var parts: [[Double]] = []
        func close(_ r: (top: Int, c0: Int, c1: Int), bottom: Int) {
            let (x0, x1, y0, y1) = (Double(r.c0) - 0.5, Double(r.c1) + 0.5, Double(r.top) - 0.5, Double(bottom) + 0.5)
            parts.append([x0, y0, x1, y0, x1, y1, x0, y1])
        }
        for row in 0...height {
            var runs: [(Int, Int)] = []
            if row < height {
                var col = 0
                while col < width {
                    guard mask[row * width + col] != 0 else { col += 1; continue }
                    let start = col
                    while col < width, mask[row * width + col] != 0 { col += 1 }
                    runs.append((start, col - 1))
                }
            }
            var next: [Int: (top: Int, c0: Int, c1: Int)] = [:]
            for (c0, c1) in runs {
                if let r = open[c0], r.c1 == c1 { next[c0] = r; open[c0] = nil } else { next[c0] = (row, c0, c1) }
            }
            for r in open.values.sorted(by: { $0.c0 < $1.c0 }) { close(r, bottom: row - 1) }
            open = next
        }
        return parts
    }

    /// Decodes `rle` into a row-major `rle.height × rle.width` array of 0/1.
    public static func binaryMask(_ rle: COCORLE) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: rle.height * rle.width)
        forEachSetPixel(of: rle, height: rle.height, width: rle.width) { mask[$0] = 1 }
        return mask
    }

    /// The row-major `height × width` 0/1 mask of a segmentation: the union of its polygon parts, or its RLE
    /// clipped/padded to `height × width` (pycocotools' `annToMask`).
    public static func binaryMask(for segmentation: COCOSegmentation, height: Int, width: Int) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: height * width)
        for rle in rles(for: segmentation, height: height, width: width) {
            forEachSetPixel(of: rle, height: height, width: width) { mask[$0] = 1 }
        }
        return mask
    }
}

/// Paints an image's instance annotations into a row-major `height × width` semantic label map.
///
/// Rules:
/// - Every pixel starts as background, label 0.
/// - Each non-crowd annotation (`iscrowd = 0`) whose `category_id` is in `categoryIndex` paints its mask with
///   `categoryIndex[category_id] + 1`, in the order given (file order), so a later instance overwrites an earlier
///   one where they overlap. Non-crowd annotations with an unknown category are skipped.
/// - Then every crowd annotation (`iscrowd = 1`), whatever its category, marks its mask 255 (ignore), but only on
///   pixels that no non-crowd instance painted: a labelled instance beats a crowd region regardless of order.
///
/// Masks are those of pycocotools' `annToMask` (polygon parts united; RLE masks clipped to the image).
public func rasterizeCOCOLabelMap(annotations: [COCOAnnotation], height: Int, width: Int, categoryIndex: [Int: Int]) -> [UInt8] {
    var labels = [UInt8](repeating: COCOCategories.backgroundLabel, count: height * width)
    for annotation in annotations where !annotation.isCrowd {
        guard let index = categoryIndex[annotation.categoryID] else { continue }
        let label = UInt8(truncatingIfNeeded: index + 1)
        for rle in COCOMask.rles(for: annotation.segmentation, height: height, width: width) {
            COCOMask.forEachSetPixel(of: rle, height: height, width: width) { labels[$0] = label }
        }
    }
    for annotation in annotations where annotation.isCrowd {
        for rle in COCOMask.rles(for: annotation.segmentation, height: height, width: width) {
            COCOMask.forEachSetPixel(of: rle, height: height, width: width) { i in
                if labels[i] == COCOCategories.backgroundLabel { labels[i] = COCOCategories.ignoreLabel }
            }
        }
    }
    return labels
}

/// The image-level multi-hot label: entry `categoryIndex[category_id]` is 1 for every category among **all** the
/// image's annotations, crowd ones included (a crowd of people still means "person" is present), else 0.
/// Annotations with a category outside `categoryIndex` are ignored.
public func cocoImageLabels(annotations: [COCOAnnotation], categoryIndex: [Int: Int], classCount: Int = COCOCategories.count) -> [Float] {
    var labels = [Float](repeating: 0, count: classCount)
    for annotation in annotations {
        if let index = categoryIndex[annotation.categoryID], index >= 0, index < classCount { labels[index] = 1 }
    }
    return labels
}
