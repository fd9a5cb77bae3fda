import CPrefetch
#if AVX2
import _Builtin_intrinsics.intel
#endif

/// Block layouts whose weights are 4-bit unsigned codes q with w = d·q + m
/// (Q4_1 directly; Q4_0 as m = −8d). One integer kernel serves both.
protocol NibbleBlock {
    static var stride: Int { get }
    static var codesOffset: Int { get }
    /// Whether the m term uses the fp16-rounded activation sum (Q8_1, as llama.cpp does for
    /// Q4_1) or the exact one (Q4_0, whose llama.cpp product is exact in integers).
    static var roundedSums: Bool { get }
    /// (d, m) of the block at `p`.
    static func scales(_ p: UnsafeRawPointer) -> (Float, Float)
}

enum Q4_0Block: NibbleBlock {
    static var stride: Int { 18 }
    static var codesOffset: Int { 2 }
    static var roundedSums: Bool { false }
    @inline(__always) static func scales(_ p: UnsafeRawPointer) -> (Float, Float) {
        let d = blockHalves(p).0
        return (d, -8 * d)
    }
}

enum Q4_1Block: NibbleBlock {
    static var stride: Int { 20 }
    static var codesOffset: Int { 4 }
    static var roundedSums: Bool { true }
    @inline(__always) static func scales(_ p: UnsafeRawPointer) -> (Float, Float) { blockHalves(p) }
}

/// The two fp16 values at the start of a block (Q4_0: d and its first codes), read as one 32-bit
/// word into a zeroed register (`braid_load32`). Converting a lone fp16 compiles to a `vpinsrw`
/// that merges into whichever register the allocator picks; in a dot product's loop that was
/// once the scalar accumulator, chaining every block behind the one before (arith's Q4_0 delta
/// term ran 1.3× slower in one build).
@inline(__always)
func blockHalves(_ p: UnsafeRawPointer) -> (Float, Float) {
    #if AVX2
    let v = _mm_cvtph_ps(braid_load32(p))
    return (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
    #else
    let word = p.loadUnaligned(as: UInt32.self)
    return (Float(Float16(bitPattern: UInt16(truncatingIfNeeded: word))), Float(Float16(bitPattern: UInt16(truncatingIfNeeded: word >> 16))))
    #endif
}

/// Integer dot products of one weight row with 8-bit activation columns, on 1 or 4 columns at
/// a time (4 when several tokens share the weights: prefill, batches, two streams).
/// Σ_blocks d_w·d_x·Σ(q_w·q_x) + m_w·(d_x·Σq_x) — the same arithmetic as llama.cpp.
enum DotKernels {
    #if AVX2
    @inline(__always)
    static func nibbles<B: NibbleBlock>(_ blk: UnsafeRawPointer, _: B.Type) -> __m256i {
        let raw = blk.loadUnaligned(fromByteOffset: B.codesOffset, as: SIMD2<Int64>.self)
        let both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw)
        return _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    @inline(__always)
    static func products(_ w: __m256i, _ x: UnsafePointer<Int8>) -> __m256 {
        let xv = UnsafeRawPointer(x).loadUnaligned(as: SIMD4<Int64>.self)
        return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w, xv), _mm256_set1_epi16(1)))
    }

    /// Signed × signed: maddubs wants an unsigned left side, so move w's sign onto x.
    @inline(__always)
    static func signedProducts(_ w: __m256i, _ x: UnsafePointer<Int8>) -> __m256 {
        let xv = UnsafeRawPointer(x).loadUnaligned(as: SIMD4<Int64>.self)
        let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w))
        return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }
    #endif

    @inline(__always)
    static func nibbleDot<B: NibbleBlock>(_ row: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int, _: B.Type) -> Float {
        let nb = x.blocksPerColumn
        let xq = x.q(c), xd = x.d(c), xs = B.roundedSums ? x.s(c) : x.exactS(c)
        var mins: Float = 0
        #if AVX2
        var acc = _mm256_setzero_ps()
        for b in 0..<nb {
            let blk = row + b &* B.stride
            let (d, m) = B.scales(blk)
            let p = products(nibbles(blk, B.self), xq + b &* 32)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * xd[b]), p, acc)
            mins += m * xs[b]
        }
        return horizontalSum(acc) + mins
        #else
        var total: Float = 0
        for b in 0..<nb {
            let blk = row + b &* B.stride
            let (d, m) = B.scales(blk)
            var sum: Int32 = 0
            let qx = xq + b &* 32
            for j in 0..<16 {
                let v = blk.load(fromByteOffset: B.codesOffset + j, as: UInt8.self)
                sum &+= Int32(v & 15) &* Int32(qx[j]) &+ Int32(v >> 4) &* Int32(qx[j + 16])
            }
            total += d * xd[b] * Float(sum)
            mins += m * xs[b]
        }
        return total + mins
        #endif
    }

    /// Four consecutive columns c..c+3 against one row: the weight block is unpacked once.
    @inline(__always)
    static func nibbleDot4<B: NibbleBlock>(_ row: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int, _: B.Type) -> SIMD4<Float> {
        #if AVX2
        let nb = x.blocksPerColumn
        let q0 = x.q(c), q1 = x.q(c + 1), q2 = x.q(c + 2), q3 = x.q(c + 3)
        let d0 = x.d(c), d1 = x.d(c + 1), d2 = x.d(c + 2), d3 = x.d(c + 3)
        let s0 = B.roundedSums ? x.s(c) : x.exactS(c), s1 = B.roundedSums ? x.s(c + 1) : x.exactS(c + 1)
        let s2 = B.roundedSums ? x.s(c + 2) : x.exactS(c + 2), s3 = B.roundedSums ? x.s(c + 3) : x.exactS(c + 3)
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        var mins = SIMD4<Float>()
        for b in 0..<nb {
            let blk = row + b &* B.stride
            let (d, m) = B.scales(blk)
            let w = nibbles(blk, B.self)
            let o = b &* 32
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(d * d0[b]), products(w, q0 + o), a0)
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(d * d1[b]), products(w, q1 + o), a1)
            a2 = _mm256_fmadd_ps(_mm256_set1_ps(d * d2[b]), products(w, q2 + o), a2)
            a3 = _mm256_fmadd_ps(_mm256_set1_ps(d * d3[b]), products(w, q3 + o), a3)
            mins += m * SIMD4(s0[b], s1[b], s2[b], s3[b])
        }
        return SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3)) + mins
        #else
        return SIMD4(nibbleDot(row, x, c, B.self), nibbleDot(row, x, c + 1, B.self),
                     nibbleDot(row, x, c + 2, B.self), nibbleDot(row, x, c + 3, B.self))
        #endif
    }

    /// Two consecutive columns c, c+1 (an interweaved pair: base and tuned stream).
    @inline(__always)
    static func nibbleDot2<B: NibbleBlock>(_ row: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int, _: B.Type) -> SIMD2<Float> {
        #if AVX2
        let nb = x.blocksPerColumn
        let q0 = x.q(c), q1 = x.q(c + 1), d0 = x.d(c), d1 = x.d(c + 1)
        let s0 = B.roundedSums ? x.s(c) : x.exactS(c), s1 = B.roundedSums ? x.s(c + 1) : x.exactS(c + 1)
        var a0 = _mm256_setzero_ps(), a1 = a0
        var mins = SIMD2<Float>()
        for b in 0..<nb {
            let blk = row + b &* B.stride
            let (d, m) = B.scales(blk)
            let w = nibbles(blk, B.self)
            let o = b &* 32
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(d * d0[b]), products(w, q0 + o), a0)
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(d * d1[b]), products(w, q1 + o), a1)
            mins += m * SIMD2(s0[b], s1[b])
        }
        return SIMD2(horizontalSum(a0), horizontalSum(a1)) + mins
        #else
        return SIMD2(nibbleDot(row, x, c, B.self), nibbleDot(row, x, c + 1, B.self))
        #endif
    }

    @inline(__always)
    static func q8Dot(_ row: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int) -> Float {
        let nb = x.blocksPerColumn
        let xq = x.q(c), xd = x.d(c)
        #if AVX2
        var acc = _mm256_setzero_ps()
        for b in 0..<nb {
            let blk = row + b &* 34
            let w = blk.loadUnaligned(fromByteOffset: 2, as: SIMD4<Int64>.self)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(blockHalves(blk).0 * xd[b]), signedProducts(w, xq + b &* 32), acc)
        }
        return horizontalSum(acc)
        #else
        var total: Float = 0
        for b in 0..<nb {
            let blk = row + b &* 34
            var sum: Int32 = 0
            let qx = xq + b &* 32
            for j in 0..<32 { sum &+= Int32(blk.load(fromByteOffset: 2 + j, as: Int8.self)) &* Int32(qx[j]) }
            total += BlockCodec.half(blk, 0) * xd[b] * Float(sum)
        }
        return total
        #endif
    }

    @inline(__always)
    static func q8Dot4(_ row: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int) -> SIMD4<Float> {
        #if AVX2
        let nb = x.blocksPerColumn
        let q0 = x.q(c), q1 = x.q(c + 1), q2 = x.q(c + 2), q3 = x.q(c + 3)
        let d0 = x.d(c), d1 = x.d(c + 1), d2 = x.d(c + 2), d3 = x.d(c + 3)
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        for b in 0..<nb {
            let blk = row + b &* 34
            let d = blockHalves(blk).0
            let w = blk.loadUnaligned(fromByteOffset: 2, as: SIMD4<Int64>.self)
            let o = b &* 32
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(d * d0[b]), signedProducts(w, q0 + o), a0)
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(d * d1[b]), signedProducts(w, q1 + o), a1)
            a2 = _mm256_fmadd_ps(_mm256_set1_ps(d * d2[b]), signedProducts(w, q2 + o), a2)
            a3 = _mm256_fmadd_ps(_mm256_set1_ps(d * d3[b]), signedProducts(w, q3 + o), a3)
        }
        return SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3))
        #else
        return SIMD4(q8Dot(row, x, c), q8Dot(row, x, c + 1), q8Dot(row, x, c + 2), q8Dot(row, x, c + 3))
        #endif
    }

    @inline(__always)
    static func q8Dot2(_ row: UnsafeRawPointer, _ x: QuantizedActivations, _ c: Int) -> SIMD2<Float> {
        #if AVX2
        let nb = x.blocksPerColumn
        let q0 = x.q(c), q1 = x.q(c + 1), d0 = x.d(c), d1 = x.d(c + 1)
        var a0 = _mm256_setzero_ps(), a1 = a0
        for b in 0..<nb {
            let blk = row + b &* 34
            let d = blockHalves(blk).0
            let w = blk.loadUnaligned(fromByteOffset: 2, as: SIMD4<Int64>.self)
            let o = b &* 32
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(d * d0[b]), signedProducts(w, q0 + o), a0)
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(d * d1[b]), signedProducts(w, q1 + o), a1)
        }
        return SIMD2(horizontalSum(a0), horizontalSum(a1))
        #else
        return SIMD2(q8Dot(row, x, c), q8Dot(row, x, c + 1))
        #endif
    }

    /// Float path for F16/F32 weights: the activations stay float32.
    @inline(__always)
    static func floatDot(_ row: UnsafeRawPointer, _ type: GGMLType, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        let xr = UnsafeRawPointer(x)
        var i = 0
        if type == .i8 {
            var total: Float = 0
            for j in 0..<n { total += Float(row.load(fromByteOffset: j, as: Int8.self)) * x[j] }
            return total
        }
        if type == .bf16 {
            while i + 8 <= n {
                let h = SIMD8<UInt32>(truncatingIfNeeded: row.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD8<UInt16>.self)) &<< 16
                acc += unsafeBitCast(h, to: SIMD8<Float>.self) * xr.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
                i += 8
            }
        } else if type == .f32 {
            while i + 8 <= n {
                acc += row.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self) * xr.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
                i += 8
            }
        } else {
            while i + 8 <= n {
                let h = row.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD8<Float16>.self)
                acc += SIMD8<Float>(h) * xr.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
                i += 8
            }
        }
        var total = acc.sum()
        while i < n {
            let w = type == .f32 ? row.loadUnaligned(fromByteOffset: 4 &* i, as: Float.self)
                : type == .bf16 ? Float(bitPattern: UInt32(row.loadUnaligned(fromByteOffset: 2 &* i, as: UInt16.self)) << 16)
                : BlockCodec.half(row, 2 &* i)
            total += w * x[i]
            i += 1
        }
        return total
    }

    #if AVX2
    @inline(__always)
    static func horizontalSum(_ v: __m256) -> Float {
        let h = SIMD4<Float>(v[0], v[1], v[2], v[3]) + SIMD4<Float>(v[4], v[5], v[6], v[7])
        let q = SIMD2<Float>(h[0], h[1]) + SIMD2<Float>(h[2], h[3])
        return q[0] + q[1]
    }
    #endif
}
