import CPrefetch
#if AVX2
import _Builtin_intrinsics.intel
#endif

/// A Q4_1 or Q4_0 matrix repacked eight rows at a time, so that one `maddubs` multiplies four
/// codes of each of the eight rows by the same four activations (broadcast) and the lanes of
/// the result stay per row: the block scales then apply to eight rows in one FMA, and no row
/// needs a horizontal sum. The row-major kernel spends ~13 vector operations per row, block
/// and column; this one ~2.5 per row and column plus ~1.5 per row shared by the columns
/// (the idea of llama.cpp's repacked Q4_0x8 layout, with Q4_1's minimum kept).
///
/// Per group of 8 rows and block of 32 columns, 160 bytes (as many as the 8 blocks it replaces):
/// d of the 8 rows (fp16), m of the 8 rows (fp16; Q4_0: m = −8d), then four 32-byte vectors;
/// in vector j, byte 4r + i holds code 8j + i of row r in its low nibble and code 8j + 4 + i in
/// its high nibble.
/// @unchecked Sendable: a view of read-only packed memory owned by PackedWeightStorage.
public struct InterleavedNibbles: @unchecked Sendable {
    public static let groupRows = 8
    static let groupBlockBytes = 160

    let bytes: UnsafeRawPointer
    let groups: Int
    let blocks: Int
    let roundedSums: Bool
    /// How the kernels sum byte products (the fastest this CPU has; tests try each).
    public var dot: ByteDotKind = .best

    /// Bytes of the repacked form of a Q4_1 or Q4_0 matrix (nil for other matrices or a row
    /// count that is not a multiple of 8).
    static func byteCount(_ w: WeightMatrix) -> Int? {
        guard w.type == .q4_1 || w.type == .q4_0, w.rows % groupRows == 0, w.columns % 32 == 0 else { return nil }
        return w.rows / groupRows * (w.columns / 32) * groupBlockBytes
    }

    /// Repacks `w` into `out` (`byteCount(w)` bytes, which its owner keeps alive), releasing
    /// the rows already copied from `map` as it goes (the copy and the original never both
    /// resident in full).
    init(packing w: WeightMatrix, into out: UnsafeMutableRawPointer, releasing map: MappedFile? = nil) {
        bytes = UnsafeRawPointer(out)
        groups = w.rows / Self.groupRows
        blocks = w.columns / 32
        roundedSums = w.type == .q4_1
        let (stride, codes) = w.type == .q4_1 ? (20, 4) : (18, 2)
        for g in 0..<w.rows / Self.groupRows {
            if g > 0, g % 128 == 0 { map?.release(w.row((g - 128) * 8), count: 128 * 8 * w.rowBytes) }
            for b in 0..<blocks {
                let out = out + (g * blocks + b) * Self.groupBlockBytes
                for r in 0..<Self.groupRows {
                    let blk = w.row(g * Self.groupRows + r) + b * stride
                    let d = blk.loadUnaligned(as: UInt16.self)
                    let m = w.type == .q4_1 ? blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
                        : (-8 * Float16(bitPattern: d)).bitPattern  // exact: a power of two
                    out.storeBytes(of: d, toByteOffset: 2 * r, as: UInt16.self)
                    out.storeBytes(of: m, toByteOffset: 16 + 2 * r, as: UInt16.self)
                    func code(_ k: Int) -> UInt8 {
                        let byte = blk.load(fromByteOffset: codes + k % 16, as: UInt8.self)
                        return k < 16 ? byte & 15 : byte >> 4
                    }
                    for j in 0..<4 {
                        for i in 0..<4 {
                            out.storeBytes(of: code(8 * j + i) | code(8 * j + 4 + i) << 4, toByteOffset: 32 + 32 * j + 4 * r + i, as: UInt8.self)
                        }
                    }
                }
            }
        }
    }

    /// y[c·ldy + r] = W[r]·x[c] for the rows of `groups` (groups of 8 rows) and every column of `x`.
    public func multiply(_ x: QuantizedActivations, groups: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        #if AVX2
        switch dot {
        case .vnni: multiply(x, groups, y, ldy, VNNIDot.self)
        case .maddubs: multiply(x, groups, y, ldy, MaddubsDot.self)
        }
        #else
        preconditionFailure("interleaved matrices are built only with the AVX2 trait")
        #endif
    }

    #if AVX2
    @inline(__always)
    private func multiply<K: ByteDot>(_ x: QuantizedActivations, _ groups: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _: K.Type) {
        let n = x.columns
        let groupBytes = blocks * Self.groupBlockBytes
        for g in groups {
            let group = bytes + g &* groupBytes
            // The next group, in or past the range: a routed projection asks for a tile at a time.
            if g + 1 < self.groups {
                var offset = groupBytes
                while offset < 2 * groupBytes { braid_prefetch(group + offset); offset &+= 64 }
            }
            let out = y + g * Self.groupRows
            var c = 0
            while c + 4 <= n {
                columns4(group, x, c, out + c * ldy, ldy, K.self)
                c += 4
            }
            while c < n {
                UnsafeMutableRawPointer(out + c * ldy).storeBytes(of: column(group, x, c, K.self), as: __m256.self)
                c += 1
            }
        }
    }
    #endif

    /// y[c·ldy + r] += coefficient · W[r]·x[c] for the rows of `groups` and one column (a dense
    /// task-vector matrix's term).
    @inline(__always)
    public func addProduct(_ x: QuantizedActivations, column c: Int, coefficient: Float, groups: Range<Int>,
                           into y: UnsafeMutablePointer<Float>, ldy: Int) {
        #if AVX2
        switch dot {
        case .vnni: addProduct(x, c, coefficient, groups, y, ldy, VNNIDot.self)
        case .maddubs: addProduct(x, c, coefficient, groups, y, ldy, MaddubsDot.self)
        }
        #else
        preconditionFailure("interleaved matrices are built only with the AVX2 trait")
        #endif
    }

    #if AVX2
    @inline(__always)
    private func addProduct<K: ByteDot>(_ x: QuantizedActivations, _ c: Int, _ coefficient: Float, _ groups: Range<Int>,
                                        _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _: K.Type) {
        let groupBytes = blocks * Self.groupBlockBytes
        for g in groups {
            let out = y + (c &* ldy &+ g &* Self.groupRows)
            let sum = column(bytes + g &* groupBytes, x, c, K.self)
            let o = UnsafeMutableRawPointer(out)
            o.storeBytes(of: _mm256_fmadd_ps(_mm256_set1_ps(coefficient), sum, o.loadUnaligned(as: __m256.self)), as: __m256.self)
        }
    }

    /// Block b of a group: its scales and its 32 codes per row, unpacked to one byte each.
    struct Block {
        var d, m: __m256
        var c0, c1, c2, c3, c4, c5, c6, c7: __m256i

        @inline(__always)
        init(_ p: UnsafeRawPointer) {
            d = _mm256_cvtph_ps(p.loadUnaligned(as: __m128i.self))
            m = _mm256_cvtph_ps(p.loadUnaligned(fromByteOffset: 16, as: __m128i.self))
            let mask = _mm256_set1_epi8(0x0F)
            let r0 = p.loadUnaligned(fromByteOffset: 32, as: __m256i.self), r1 = p.loadUnaligned(fromByteOffset: 64, as: __m256i.self)
            let r2 = p.loadUnaligned(fromByteOffset: 96, as: __m256i.self), r3 = p.loadUnaligned(fromByteOffset: 128, as: __m256i.self)
            c0 = _mm256_and_si256(r0, mask); c1 = _mm256_and_si256(_mm256_srli_epi16(r0, 4), mask)
            c2 = _mm256_and_si256(r1, mask); c3 = _mm256_and_si256(_mm256_srli_epi16(r1, 4), mask)
            c4 = _mm256_and_si256(r2, mask); c5 = _mm256_and_si256(_mm256_srli_epi16(r2, 4), mask)
            c6 = _mm256_and_si256(r3, mask); c7 = _mm256_and_si256(_mm256_srli_epi16(r3, 4), mask)
        }

        /// Σ code·x over the block for each of the 8 rows (exact integers, as floats). A lane of
        /// 16-bit sums adds 16 products of at most 15·127: 30 480 fits.
        @inline(__always)
        func sums<K: ByteDot>(_ x: UnsafePointer<Int8>, _: K.Type) -> __m256 {
            let raw = UnsafeRawPointer(x)
            @inline(__always) func four(_ o: Int) -> __m256i { _mm256_set1_epi32(raw.loadUnaligned(fromByteOffset: o, as: Int32.self)) }
            if K.fused {
                // Two chains: each instruction waits for the previous one's sum.
                let zero = _mm256_setzero_si256()
                var s = K.dot4(zero, c0, four(0)), t = K.dot4(zero, c1, four(4))
                s = K.dot4(s, c2, four(8)); t = K.dot4(t, c3, four(12))
                s = K.dot4(s, c4, four(16)); t = K.dot4(t, c5, four(20))
                s = K.dot4(s, c6, four(24)); t = K.dot4(t, c7, four(28))
                return _mm256_cvtepi32_ps(_mm256_add_epi32(s, t))
            }
            var s = _mm256_maddubs_epi16(c0, four(0))
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c1, four(4)))
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c2, four(8)))
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c3, four(12)))
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c4, four(16)))
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c5, four(20)))
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c6, four(24)))
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c7, four(28)))
            return _mm256_cvtepi32_ps(_mm256_madd_epi16(s, _mm256_set1_epi16(1)))
        }

        /// acc + d·dx·Σ(code·x) + m·(dx·Σx) for one column's block.
        @inline(__always)
        func accumulate<K: ByteDot>(_ acc: __m256, _ x: UnsafePointer<Int8>, _ dx: Float, _ sx: Float, _: K.Type) -> __m256 {
            _mm256_fmadd_ps(m, _mm256_set1_ps(sx), _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(dx)), sums(x, K.self), acc))
        }
    }

    @inline(__always)
    private func sumsOf(_ x: QuantizedActivations, _ c: Int) -> UnsafePointer<Float> { roundedSums ? x.s(c) : x.exactS(c) }

    @inline(__always)
    private func columns4<K: ByteDot>(_ group: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int, _ out: UnsafeMutablePointer<Float>, _ ldy: Int, _: K.Type) {
        let q0 = x.q(c), q1 = x.q(c + 1), q2 = x.q(c + 2), q3 = x.q(c + 3)
        let d0 = x.d(c), d1 = x.d(c + 1), d2 = x.d(c + 2), d3 = x.d(c + 3)
        let s0 = sumsOf(x, c), s1 = sumsOf(x, c + 1), s2 = sumsOf(x, c + 2), s3 = sumsOf(x, c + 3)
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        for b in 0..<blocks {
            let blk = Block(group + b &* Self.groupBlockBytes)
            let o = b &* 32
            a0 = blk.accumulate(a0, q0 + o, d0[b], s0[b], K.self)
            a1 = blk.accumulate(a1, q1 + o, d1[b], s1[b], K.self)
            a2 = blk.accumulate(a2, q2 + o, d2[b], s2[b], K.self)
            a3 = blk.accumulate(a3, q3 + o, d3[b], s3[b], K.self)
        }
        UnsafeMutableRawPointer(out).storeBytes(of: a0, as: __m256.self)
        UnsafeMutableRawPointer(out + ldy).storeBytes(of: a1, as: __m256.self)
        UnsafeMutableRawPointer(out + 2 &* ldy).storeBytes(of: a2, as: __m256.self)
        UnsafeMutableRawPointer(out + 3 &* ldy).storeBytes(of: a3, as: __m256.self)
    }

    /// The 8 rows of a group times column c.
    @inline(__always)
    private func column<K: ByteDot>(_ group: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int, _: K.Type) -> __m256 {
        let q = x.q(c), d = x.d(c), s = sumsOf(x, c)
        var a = _mm256_setzero_ps()
        for b in 0..<blocks {
            a = Block(group + b &* Self.groupBlockBytes).accumulate(a, q + b &* 32, d[b], s[b], K.self)
        }
        return a
    }
    #endif
}
