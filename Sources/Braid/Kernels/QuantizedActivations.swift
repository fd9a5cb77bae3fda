#if AVX2
import _Builtin_intrinsics.intel
#endif

/// Activations quantised to 8 bits per 32-value block, as llama.cpp does before its Q4/Q8
/// products: int8 values, the block scale d and d·Σq (the Q8_1 sum used by Q4_1 weights),
/// both rounded through fp16 as ggml stores them (and the sum unrounded). Holds up to `capacity` columns of `width`.
/// @unchecked Sendable: part of one model's scratch; filled before a parallel job, read-only during it.
public final class QuantizedActivations: @unchecked Sendable {
    public let width: Int
    public let capacity: Int
    public let blocksPerColumn: Int
    let qs: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Float>
    let exactSums: UnsafeMutablePointer<Float>
    /// d·Σq over each half block of 16 (the min terms of formats with a min per 16 elements).
    let halves: UnsafeMutablePointer<Float>
    /// Σq over each half block of 16, exact (formats whose codes carry an offset subtract it in integers).
    let halfCounts: UnsafeMutablePointer<Int32>
    /// The same columns quantised as llama.cpp's Q8_K, which its K-quant products use: one
    /// float scale per 256 values (d = max/−127 of the value of largest magnitude), kept per
    /// block of 32 so that kernels index it like `d`; and d·Σq per 16 values. Made only when
    /// `superBlocks` (the model has K-quant matrices reading these activations).
    public let superBlocks: Bool
    let superQs: UnsafeMutablePointer<Int8>
    let superScales: UnsafeMutablePointer<Float>
    let superHalves: UnsafeMutablePointer<Float>
    let superHalfCounts: UnsafeMutablePointer<Int32>
    /// The float activations the blocks were made from (F16/F32 weights multiply these).
    public private(set) var floats: UnsafePointer<Float>?
    /// Lookup tables of the same columns for 1-bit products, made by `buildSignTables`.
    public let signTables: SignTables
    public private(set) var columns = 0

    public init(width: Int, capacity: Int, superBlocks: Bool = false) {
        precondition(width % 32 == 0, "activation width must be a multiple of 32")
        self.superBlocks = superBlocks && width % 256 == 0
        let superCount = self.superBlocks ? capacity : 0
        superQs = .allocate(capacity: width * superCount)
        superScales = .allocate(capacity: width / 32 * superCount)
        superHalves = .allocate(capacity: width / 16 * superCount)
        superHalfCounts = .allocate(capacity: width / 16 * superCount)
        self.width = width
        self.capacity = capacity
        blocksPerColumn = width / 32
        qs = .allocate(capacity: width * capacity)
        scales = .allocate(capacity: blocksPerColumn * capacity)
        sums = .allocate(capacity: blocksPerColumn * capacity)
        exactSums = .allocate(capacity: blocksPerColumn * capacity)
        halves = .allocate(capacity: 2 * blocksPerColumn * capacity)
        halfCounts = .allocate(capacity: 2 * blocksPerColumn * capacity)
        signTables = SignTables(width: width, capacity: capacity)
    }

    deinit {
        qs.deallocate()
        scales.deallocate()
        sums.deallocate()
        exactSums.deallocate()
        halves.deallocate()
        halfCounts.deallocate()
        superQs.deallocate()
        superScales.deallocate()
        superHalves.deallocate()
        superHalfCounts.deallocate()
    }

    @inline(__always) func q(_ column: Int) -> UnsafePointer<Int8> { UnsafePointer(qs + column * width) }
    @inline(__always) func d(_ column: Int) -> UnsafePointer<Float> { UnsafePointer(scales + column * blocksPerColumn) }
    @inline(__always) func s(_ column: Int) -> UnsafePointer<Float> { UnsafePointer(sums + column * blocksPerColumn) }
    /// d·Σq without the fp16 rounding (for Q4_0, whose llama.cpp product has no sum term).
    @inline(__always) func exactS(_ column: Int) -> UnsafePointer<Float> { UnsafePointer(exactSums + column * blocksPerColumn) }

    @inline(__always) func halfSums(_ column: Int) -> UnsafePointer<Float> { UnsafePointer(halves + column * 2 * blocksPerColumn) }

    @inline(__always) func halfCounts(_ column: Int) -> UnsafePointer<Int32> { UnsafePointer(halfCounts + column * 2 * blocksPerColumn) }

    /// Column `c`'s Q8_K values, scales (per 32) and d·Σq per 16 (requires `superBlocks`).
    @inline(__always) func superColumn(_ c: Int) -> (q: UnsafePointer<Int8>, d: UnsafePointer<Float>, halves: UnsafePointer<Float>) {
        (UnsafePointer(superQs + c * width), UnsafePointer(superScales + c * blocksPerColumn), UnsafePointer(superHalves + c * 2 * blocksPerColumn))
    }

    /// Column `c`'s Q8_K Σq per 16 (requires `superBlocks`).
    @inline(__always) func superHalfCounts(_ c: Int) -> UnsafePointer<Int32> { UnsafePointer(superHalfCounts + c * 2 * blocksPerColumn) }

    /// Quantises `columns` vectors stored one after another (stride `width`) at `x`.
    public func quantize(_ x: UnsafePointer<Float>, columns: Int) {
        begin(x, columns: columns)
        for c in 0..<columns { quantizeColumn(c) }
    }

    /// Names the float columns that `quantizeColumn` and `buildSignTables` then read (the
    /// columns may be written between this call and those).
    public func begin(_ x: UnsafePointer<Float>, columns: Int) {
        precondition(columns <= capacity)
        self.columns = columns
        floats = x
    }

    /// Quantises column `c` of the floats named by `begin` (columns are independent: threads
    /// may take different ones).
    public func quantizeColumn(_ c: Int) {
        let x = floats!
        for b in 0..<blocksPerColumn {
            let i = c * blocksPerColumn + b
            let (d, sum) = Self.quantizeBlock(x + c * width + b * 32, into: qs + c * width + b * 32)
            scales[i] = Float(Float16(d))
            sums[i] = Float(Float16(d * Float(sum)))
            exactSums[i] = scales[i] * Float(sum)
            let q = qs + c * width + b * 32
            var first: Int32 = 0
            for j in 0..<16 { first &+= Int32(q[j]) }
            halves[2 * i] = scales[i] * Float(first)
            halves[2 * i + 1] = scales[i] * Float(sum &- first)
            halfCounts[2 * i] = first
            halfCounts[2 * i + 1] = sum &- first
        }
        if superBlocks { quantizeSuperBlocks(c) }
    }

    /// Column `c` as Q8_K, the way ggml's quantize_row_q8_K_ref does it.
    private func quantizeSuperBlocks(_ c: Int) {
        let x = floats! + c * width
        for b in 0..<width / 256 {
            let v = x + b * 256, q = superQs + c * width + b * 256
            var amax: Float = 0, signedMax: Float = 0
            for j in 0..<256 where abs(v[j]) > amax { amax = abs(v[j]); signedMax = v[j] }
            var d: Float = 0
            if amax == 0 {
                q.update(repeating: 0, count: 256)
            } else {
                let iscale = -127 / signedMax
                for j in 0..<256 { q[j] = Int8(min(127, (iscale * v[j]).rounded(.toNearestOrEven))) }
                d = 1 / iscale
            }
            for g in 0..<8 { superScales[c * blocksPerColumn + b * 8 + g] = d }
            for h in 0..<16 {
                var sum: Int32 = 0
                for j in 0..<16 { sum &+= Int32(q[16 * h + j]) }
                superHalves[c * 2 * blocksPerColumn + b * 16 + h] = d * Float(sum)
                superHalfCounts[c * 2 * blocksPerColumn + b * 16 + h] = sum
            }
        }
    }

    /// Builds `signTables` for every column of the last `quantize` (before 1-bit products).
    public func buildSignTables() {
        for c in 0..<columns { buildSignTables(column: c) }
    }

    /// Builds `signTables` for column `c` of the floats named by `begin`.
    public func buildSignTables(column c: Int) {
        guard let x = floats else { return }
        signTables.build(x + c * width, column: c)
    }

    /// Column `c` as floats q·d (what the integer kernels effectively multiply).
    public func dequantized(column c: Int) -> [Float] {
        (0..<width).map { Float(qs[c * width + $0]) * scales[c * blocksPerColumn + $0 / 32] }
    }

    /// Column `c` of the Q8_K copy as floats (requires `superBlocks`).
    public func dequantizedSuperBlocks(column c: Int) -> [Float] {
        let (q, d, _) = superColumn(c)
        return (0..<width).map { Float(q[$0]) * d[$0 / 32] }
    }

    /// One block: d = max|x|/127, q = round-half-even(x·127/max|x|). Returns d and Σq.
    @inline(__always)
    static func quantizeBlock(_ x: UnsafePointer<Float>, into q: UnsafeMutablePointer<Int8>) -> (Float, Int32) {
        #if AVX2
        let raw = UnsafeRawPointer(x)
        let v0 = raw.loadUnaligned(as: SIMD8<Float>.self)
        let v1 = raw.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
        let v2 = raw.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
        let v3 = raw.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
        let signBit = _mm256_set1_ps(-0.0)
        var m = _mm256_max_ps(_mm256_andnot_ps(signBit, v0), _mm256_andnot_ps(signBit, v1))
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(signBit, v2), _mm256_andnot_ps(signBit, v3)))
        let amax = m.max()
        let d = amax / 127
        let id: Float = amax != 0 ? 127 / amax : 0
        return (d, roundBlock(x, times: id, into: q))
        #else
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = amax != 0 ? 127 / amax : 0
        return (d, roundBlock(x, times: id, into: q))
        #endif
    }

    #if AVX2
    /// q_j = round-half-even(x_j · m) for a block of 32 values known to fit in int8; returns Σq.
    @inline(__always)
    static func roundBlock(_ x: UnsafePointer<Float>, times m: Float, into q: UnsafeMutablePointer<Int8>) -> Int32 {
        let raw = UnsafeRawPointer(x)
        let mul = _mm256_set1_ps(m)
        // cvtps rounds to nearest-even under the default MXCSR, as ggml's _mm256_round_ps does.
        let i0 = _mm256_cvtps_epi32(_mm256_mul_ps(raw.loadUnaligned(as: __m256.self), mul))
        let i1 = _mm256_cvtps_epi32(_mm256_mul_ps(raw.loadUnaligned(fromByteOffset: 32, as: __m256.self), mul))
        let i2 = _mm256_cvtps_epi32(_mm256_mul_ps(raw.loadUnaligned(fromByteOffset: 64, as: __m256.self), mul))
        let i3 = _mm256_cvtps_epi32(_mm256_mul_ps(raw.loadUnaligned(fromByteOffset: 96, as: __m256.self), mul))
        let total = unsafeBitCast(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)), to: SIMD8<Int32>.self).wrappedSum()
        // packs interleave 128-bit lanes; permute restores element order.
        let p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3))
        let ordered = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
        UnsafeMutableRawPointer(q).storeBytes(of: unsafeBitCast(ordered, to: SIMD32<Int8>.self), as: SIMD32<Int8>.self)
        return total
    }
    #else
    /// q_j = round-half-even(x_j · m) for a block of 32 values known to fit in int8; returns Σq.
    static func roundBlock(_ x: UnsafePointer<Float>, times m: Float, into q: UnsafeMutablePointer<Int8>) -> Int32 {
        var total: Int32 = 0
        for j in 0..<32 {
            let v = Int8((x[j] * m).rounded(.toNearestOrEven))
            q[j] = v
            total += Int32(v)
        }
        return total
    }
    #endif
}
