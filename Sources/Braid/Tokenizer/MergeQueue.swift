/// The merge loops' queue of candidate pairs, smallest key first (a key packs the pair's
/// priority above its position, so ties go to the left). The pairs of the text as given are
/// sorted once and read front to back; only the pairs that merges form later go into a heap.
/// In 1 MiB of random letters Gemma's vocabulary finds a million of the first kind and 190,000
/// of the second; a heap of all of them missed the cache at every level of every pop.
struct MergeQueue {
    private var sorted: [UInt64]
    private var nextSorted = 0
    private var later = MinHeap<UInt64>()

    /// `keys` in ascending order of position (their low 32 bits).
    init(positionOrdered keys: consuming [UInt64]) {
        sorted = keys
        Self.sortByPriority(&sorted)
    }

    mutating func push(_ key: UInt64) { later.push(key) }

    /// The sorted key `distance` pops ahead, if no later pair comes first (to prefetch what it needs).
    func upcoming(_ distance: Int) -> UInt64? {
        nextSorted + distance < sorted.count ? sorted[nextSorted + distance] : nil
    }

    mutating func pop() -> UInt64? {
        if nextSorted < sorted.count, later.top.map({ sorted[nextSorted] <= $0 }) ?? true {
            nextSorted += 1
            return sorted[nextSorted - 1]
        }
        return later.pop()
    }

    /// A stable radix sort on the high 32 bits, a byte a pass, skipping the bytes all keys share:
    /// keys already in position order come out fully sorted.
    private static func sortByPriority(_ keys: inout [UInt64]) {
        guard let first = keys.first else { return }
        let differing = keys.reduce(0) { $0 | ($1 ^ first) }
        var scratch = [UInt64](repeating: 0, count: keys.count)
        for shift in stride(from: 32, to: 64, by: 8) where (differing >> UInt64(shift)) & 0xFF != 0 {
            keys.withUnsafeBufferPointer { from in
                scratch.withUnsafeMutableBufferPointer { to in
                    var starts = [Int](repeating: 0, count: 257)
                    for k in from { starts[(Int(truncatingIfNeeded: k >> UInt64(shift)) & 0xFF) + 1] += 1 }
                    for b in 1...256 { starts[b] += starts[b - 1] }
                    for k in from {
                        let b = Int(truncatingIfNeeded: k >> UInt64(shift)) & 0xFF
                        to[starts[b]] = k
                        starts[b] += 1
                    }
                }
            }
            swap(&keys, &scratch)
        }
    }
}
