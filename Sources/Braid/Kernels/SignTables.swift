#if AVX2
import _Builtin_intrinsics.intel
#endif

/// The lookup tables a 1-bit product reads instead of multiplying (T-MAC's idea): for each
/// group of four activations x0…x3, the 16 sums ±x0 ±x1 ±x2 ±x3 as int8 (entry p takes +x_j
/// where bit j of p is set). Four sign bits of a row then select their partial dot product
/// with one byte shuffle. One float scale per block of 64 values (32 where the width is no
/// multiple of 64); a block's values are quantised so that every group's |x0|+|x1|+|x2|+|x3|
/// fits in 127. (64 rather than 32 halves the kernel's int-to-float work: 3.5 vs 4.1 µs for a
/// 1536 × 576 product, BENCHMARKS.md.)
/// @unchecked Sendable: part of QuantizedActivations; written before a parallel job, read-only during it.
public final class SignTables: @unchecked Sendable {
    public let width: Int
    public let capacity: Int
    public let blockColumns: Int
    public let blocksPerColumn: Int
    let entries: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>

    public init(width: Int, capacity: Int) {
        precondition(width % 32 == 0, "activation width must be a multiple of 32")
        self.width = width
        self.capacity = capacity
        blockColumns = width % 64 == 0 ? 64 : 32
        blocksPerColumn = width / blockColumns
        entries = .allocate(capacity: width * 4 * capacity)
        scales = .allocate(capacity: blocksPerColumn * capacity)
    }

    deinit {
        entries.deallocate()
        scales.deallocate()
    }

    /// What the kernels read, without the class: no reference counting in their loops.
    /// @unchecked Sendable: a read-only view for the kernels, valid while its SignTables lives.
    public struct View: @unchecked Sendable {
        let entries: UnsafePointer<Int8>
        let scales: UnsafePointer<Float>
        let width: Int
        let blockColumns: Int
        let blocksPerColumn: Int

        /// Column `c`'s tables: 16 bytes per group of four values, groups in order.
        @inline(__always) func table(_ c: Int) -> UnsafePointer<Int8> { entries + c &* width &* 4 }
        @inline(__always) func scale(_ c: Int) -> UnsafePointer<Float> { scales + c &* blocksPerColumn }
    }

    public var view: View {
        View(entries: entries, scales: scales, width: width, blockColumns: blockColumns, blocksPerColumn: blocksPerColumn)
    }

    @inline(__always) func table(_ c: Int) -> UnsafePointer<Int8> { view.table(c) }
    @inline(__always) func scale(_ c: Int) -> UnsafePointer<Float> { view.scale(c) }

    /// Builds the tables of column `c` from its `width` float values.
    public func build(_ x: UnsafePointer<Float>, column c: Int) {
        precondition(c < capacity)
        let k = Constants()
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 32) { q in
            for b in 0..<blocksPerColumn {
                let start = b * blockColumns
                let e = Self.groupScale(x + start, count: blockColumns)
                scales[c * blocksPerColumn + b] = e
                for sub in stride(from: start, to: start + blockColumns, by: 32) {
                    _ = QuantizedActivations.roundBlock(x + sub, times: e > 0 ? 1 / e : 0, into: q.baseAddress!)
                    let out = entries + c * width * 4 + sub * 4
                    for pair in 0..<4 { Self.pairTables(q.baseAddress! + 8 * pair, into: out + 32 * pair, k) }
                }
            }
        }
    }

    /// e = (largest |x0|+…+|x3| over the groups of `count` values) / 125: q = round(x / e) then
    /// keeps every group's Σ|q| ≤ 127 (125, not 127, leaves room for the four roundings).
    @inline(__always)
    static func groupScale(_ v: UnsafePointer<Float>, count: Int) -> Float {
        var largest: Float = 0
        for g in stride(from: 0, to: count, by: 4) {
            largest = max(largest, abs(v[g]) + abs(v[g + 1]) + abs(v[g + 2]) + abs(v[g + 3]))
        }
        return largest / 125
    }

    /// The 16 sums of each of two groups (eight values at `q`): Σ_j ±q_j, + where bit j of the
    /// entry's index is set. Wrapping int8 adds are exact since every final sum fits.
    @inline(__always)
    static func pairTables(_ q: UnsafePointer<Int8>, into t: UnsafeMutablePointer<Int8>, _ k: Constants) {
        #if AVX2
        let both = _mm256_broadcastsi128_si256(_mm_loadl_epi64(UnsafeRawPointer(q).assumingMemoryBound(to: __m128i.self)))
        let s0 = _mm256_sign_epi8(_mm256_shuffle_epi8(both, k.pick0), k.sign0)
        let s1 = _mm256_sign_epi8(_mm256_shuffle_epi8(both, k.pick1), k.sign1)
        let s2 = _mm256_sign_epi8(_mm256_shuffle_epi8(both, k.pick2), k.sign2)
        let s3 = _mm256_sign_epi8(_mm256_shuffle_epi8(both, k.pick3), k.sign3)
        let sum = _mm256_add_epi8(_mm256_add_epi8(s0, s1), _mm256_add_epi8(s2, s3))
        UnsafeMutableRawPointer(t).storeBytes(of: unsafeBitCast(sum, to: SIMD32<Int8>.self), as: SIMD32<Int8>.self)
        #else
        for g in 0..<2 {
            for p in 0..<16 {
                var s: Int16 = 0
                for j in 0..<4 { s += (p >> j) & 1 == 1 ? Int16(q[4 * g + j]) : -Int16(q[4 * g + j]) }
                t[16 * g + p] = Int8(s)
            }
        }
        #endif
    }

    #if AVX2
    /// Shuffle indices picking value j of each group (lane 0 all j, lane 1 all 4 + j), and ±1
    /// per table entry p (+1 where bit j of p is set), for j = 0…3.
    struct Constants {
        let pick0 = _mm256_set_m128i(_mm_set1_epi8(4), _mm_set1_epi8(0))
        let pick1 = _mm256_set_m128i(_mm_set1_epi8(5), _mm_set1_epi8(1))
        let pick2 = _mm256_set_m128i(_mm_set1_epi8(6), _mm_set1_epi8(2))
        let pick3 = _mm256_set_m128i(_mm_set1_epi8(7), _mm_set1_epi8(3))
        let sign0 = _mm256_set1_epi16(0x01FF)
        let sign1 = _mm256_set1_epi32(0x0101_FFFF)
        let sign2 = _mm256_set1_epi64x(0x0101_0101_FFFF_FFFF)
        let sign3 = _mm256_setr_epi64x(-1, 0x0101_0101_0101_0101, -1, 0x0101_0101_0101_0101)
    }
    #else
    struct Constants {}
    #endif

    /// Entry `index` of group `group`'s table in column `c` (before the block scale).
    public func entry(column c: Int, group: Int, index: Int) -> Int8 { table(c)[group * 16 + index] }

    /// The scale of the block holding value `i` of column `c`.
    public func scaleOf(column c: Int, value i: Int) -> Float { scale(c)[i / blockColumns] }

    /// Column `c` as the floats its tables represent (q·e), for tests.
    public func dequantized(column c: Int) -> [Float] {
        // Entry p = 1 << j minus entry 0 is 2·q_j.
        (0..<width).map { i in
            let t = table(c) + (i / 4) * 16
            return Float(Int16(t[1 << (i % 4)]) - Int16(t[0])) / 2 * scale(c)[i / blockColumns]
        }
    }
}
