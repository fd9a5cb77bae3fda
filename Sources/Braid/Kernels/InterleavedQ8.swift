import CPrefetch
#if AVX2
import _Builtin_intrinsics.intel
#endif

/// A Q8_0 matrix (the LM head) repacked eight rows at a time, as `InterleavedNibbles` does for
/// Q4: one `maddubs` takes four weights of each of eight rows against four broadcast
/// activations, the block scale applies to eight rows in one FMA, no row needs a horizontal
/// sum. Weights and activations are both signed, so the weights' signs move onto the
/// activations (`sign`) and `maddubs` sees |w|; a pair sum reaches 2·127·127, so each `maddubs`
/// is widened to 32 bits before the next is added.
///
/// Per group of 8 rows and block of 32 columns, 272 bytes (as many as the 8 blocks it replaces):
/// d of the 8 rows (fp16), then eight 32-byte vectors; in vector j, byte 4r + i is weight 4j + i
/// of row r.
/// @unchecked Sendable: a view of read-only packed memory owned by PackedWeightStorage.
public struct InterleavedQ8: @unchecked Sendable {
    static let groupBlockBytes = 272

    let bytes: UnsafeRawPointer
    let groups: Int
    let blocks: Int
    /// How the kernels sum byte products (the fastest this CPU has; tests try each).
    public var dot: ByteDotKind = .best

    /// Bytes of the repacked form of a Q8_0 matrix (nil for other matrices or a row count that
    /// is not a multiple of 8).
    static func byteCount(_ w: WeightMatrix) -> Int? {
        guard w.type == .q8_0, w.rows % InterleavedNibbles.groupRows == 0, w.columns % 32 == 0 else { return nil }
        return w.rows / InterleavedNibbles.groupRows * (w.columns / 32) * groupBlockBytes
    }

    /// Repacks `w` into `out` (`byteCount(w)` bytes, which its owner keeps alive), releasing
    /// the rows already copied from `map` as it goes (the copy and the original never both
    /// resident in full).
    init(packing w: WeightMatrix, into out: UnsafeMutableRawPointer, releasing map: MappedFile? = nil) {
        let rowsPerGroup = InterleavedNibbles.groupRows
        bytes = UnsafeRawPointer(out)
        groups = w.rows / rowsPerGroup
        blocks = w.columns / 32
        for g in 0..<groups {
            if g > 0, g % 128 == 0 { map?.release(w.row((g - 128) * 8), count: 128 * 8 * w.rowBytes) }
            for b in 0..<blocks {
                let out = out + (g * blocks + b) * Self.groupBlockBytes
                for r in 0..<rowsPerGroup {
                    let blk = w.row(g * rowsPerGroup + r) + b * 34
                    out.storeBytes(of: blk.loadUnaligned(as: UInt16.self), toByteOffset: 2 * r, as: UInt16.self)
                    for j in 0..<8 {
                        out.storeBytes(of: blk.loadUnaligned(fromByteOffset: 2 + 4 * j, as: UInt32.self), toByteOffset: 16 + 32 * j + 4 * r, as: UInt32.self)
                    }
                }
            }
        }
    }

    /// Row `r` as floats (the tied embedding's lookups read the copy, not the released original).
    func decodeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        let lane = r % InterleavedNibbles.groupRows
        let group = bytes + r / InterleavedNibbles.groupRows * blocks * Self.groupBlockBytes
        for b in 0..<blocks {
            let blk = group + b * Self.groupBlockBytes
            let d = Float(Float16(bitPattern: blk.loadUnaligned(fromByteOffset: 2 * lane, as: UInt16.self)))
            for k in 0..<32 {
                dst[32 * b + k] = d * Float(blk.load(fromByteOffset: 16 + 32 * (k / 4) + 4 * lane + k % 4, as: Int8.self))
            }
        }
    }

    /// y[c·ldy + r] = W[r]·x[c] for the rows of `groups` (groups of 8 rows) and every column of `x`.
    public func multiply(_ x: QuantizedActivations, groups range: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        #if AVX2
        switch dot {
        case .vnni: multiply(x, range, y, ldy, VNNIDot.self)
        case .maddubs: multiply(x, range, y, ldy, MaddubsDot.self)
        }
        #else
        preconditionFailure("interleaved matrices are built only with the AVX2 trait")
        #endif
    }

    #if AVX2
    @inline(__always)
    private func multiply<K: ByteDot>(_ x: QuantizedActivations, _ range: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _: K.Type) {
        let n = x.columns
        let groupBytes = blocks * Self.groupBlockBytes
        for g in range {
            let group = bytes + g &* groupBytes
            if g + 1 < groups {
                var offset = groupBytes
                while offset < 2 * groupBytes { braid_prefetch(group + offset); offset &+= 64 }
            }
            let out = y + g * InterleavedNibbles.groupRows
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

    /// acc + Σ w·x over 4 weights of each of 8 rows (vector `j` of a block), in 32-bit lanes.
    @inline(__always)
    static func products<K: ByteDot>(_ acc: __m256i, _ w: __m256i, _ magnitude: __m256i, _ x: UnsafePointer<Int8>, _ j: Int, _: K.Type) -> __m256i {
        let four = _mm256_set1_epi32(UnsafeRawPointer(x).loadUnaligned(fromByteOffset: 4 &* j, as: Int32.self))
        return K.dot4(acc, magnitude, _mm256_sign_epi8(four, w))
    }

    @inline(__always)
    private func columns4<K: ByteDot>(_ group: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int, _ out: UnsafeMutablePointer<Float>, _ ldy: Int, _: K.Type) {
        let q0 = x.q(c), q1 = x.q(c + 1), q2 = x.q(c + 2), q3 = x.q(c + 3)
        let d0 = x.d(c), d1 = x.d(c + 1), d2 = x.d(c + 2), d3 = x.d(c + 3)
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        for b in 0..<blocks {
            let blk = group + b &* Self.groupBlockBytes
            let o = b &* 32
            var s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0
            for j in 0..<8 {
                let w = blk.loadUnaligned(fromByteOffset: 16 &+ 32 &* j, as: __m256i.self)
                let m = _mm256_sign_epi8(w, w)
                s0 = Self.products(s0, w, m, q0 + o, j, K.self)
                s1 = Self.products(s1, w, m, q1 + o, j, K.self)
                s2 = Self.products(s2, w, m, q2 + o, j, K.self)
                s3 = Self.products(s3, w, m, q3 + o, j, K.self)
            }
            let d = _mm256_cvtph_ps(blk.loadUnaligned(as: __m128i.self))
            a0 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(d0[b])), _mm256_cvtepi32_ps(s0), a0)
            a1 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(d1[b])), _mm256_cvtepi32_ps(s1), a1)
            a2 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(d2[b])), _mm256_cvtepi32_ps(s2), a2)
            a3 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(d3[b])), _mm256_cvtepi32_ps(s3), a3)
        }
        UnsafeMutableRawPointer(out).storeBytes(of: a0, as: __m256.self)
        UnsafeMutableRawPointer(out + ldy).storeBytes(of: a1, as: __m256.self)
        UnsafeMutableRawPointer(out + 2 &* ldy).storeBytes(of: a2, as: __m256.self)
        UnsafeMutableRawPointer(out + 3 &* ldy).storeBytes(of: a3, as: __m256.self)
    }

    /// The 8 rows of a group times column c.
    @inline(__always)
    private func column<K: ByteDot>(_ group: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int, _: K.Type) -> __m256 {
        let q = x.q(c), dx = x.d(c)
        var a = _mm256_setzero_ps()
        for b in 0..<blocks {
            let blk = group + b &* Self.groupBlockBytes
            var s = _mm256_setzero_si256()
            for j in 0..<8 {
                let w = blk.loadUnaligned(fromByteOffset: 16 &+ 32 &* j, as: __m256i.self)
                s = Self.products(s, w, _mm256_sign_epi8(w, w), q + b &* 32, j, K.self)
            }
            a = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtph_ps(blk.loadUnaligned(as: __m128i.self)), _mm256_set1_ps(dx[b])), _mm256_cvtepi32_ps(s), a)
        }
        return a
    }
    #endif
}
