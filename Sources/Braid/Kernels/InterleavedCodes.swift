import CPrefetch
#if AVX2
import _Builtin_intrinsics.intel
#endif

/// What a format tells the 8-row repacking beyond `unpack`: its codes' width and the integers
/// its scales are made of, so that the kernel can rebuild each float scale exactly as ggml's
/// dequantiser computes it (fp16 d times a small integer) instead of storing floats.
protocol InterleavableFormat: UnpackedFormat {
    /// Bits per code (4…6): a nibble plane plus codeBits − 4 planes of one bit.
    static var codeBits: Int { get }
    /// Added to a signed code to make it unsigned (Q5_0: 16, Q6_K: 32); w = scale·(u − offset).
    static var codeOffset: Int { get }
    /// K-quants: an integer scale (and min) per 16 elements under one fp16 d (and dmin) per
    /// super-block; otherwise the block's d (and m) are the scale (and min) themselves.
    static var subScales: Bool { get }
    /// The block's fp16 d and dmin (0 without mins) and, with `subScales`, each 16 elements'
    /// integer scale and min.
    static func scaleIntegers(_ blk: UnsafeRawPointer) -> (d: UInt16, dmin: UInt16, sc: SIMD16<Int8>, m: SIMD16<UInt8>)

    #if AVX2
    // A requirement with the shared implementation below, so that each format's witness is
    // specialised (its layout constants folded) when called through the matrix's format.
    static func interleavedMultiply(_ w: InterleavedCodes, _ x: QuantizedActivations, _ groups: Range<Int>,
                                    _ y: UnsafeMutablePointer<Float>, _ ldy: Int)
    #endif
}

/// A matrix of a 5-bit or K-quant format repacked eight rows at a time, as
/// `InterleavedNibbles` does for Q4: one `maddubs` multiplies four codes of each of eight rows
/// by four broadcast activations, and scales apply to eight rows in one FMA. Codes are stored
/// unsigned (signed ones plus `codeOffset`, taken off again in the integer sums).
///
/// Per group of 8 rows and super-block (the format's block: 32 or 256 elements): d of the 8
/// rows (fp16); with mins, dmin (fp16); with sub-scales, per 16 elements the 8 rows' integer
/// scales, then with mins their integer mins; then per 32 elements a nibble plane laid out as
/// `InterleavedNibbles`' four vectors and codeBits − 4 planes of 32 bytes in which bit v of
/// byte p is the high bit of code vector v's byte p (code vector 2j: the low nibbles of
/// vector j; 2j + 1: its high nibbles). Q5_0 and Q6_K take exactly their original bytes.
/// @unchecked Sendable: a view of read-only packed memory owned by PackedWeightStorage.
public struct InterleavedCodes: @unchecked Sendable {
    let bytes: UnsafeRawPointer
    let groups: Int
    let superBlocks: Int
    let layout: Layout
    let format: any InterleavableFormat.Type
    /// How the kernels sum byte products (the fastest this CPU has; tests try each).
    public var dot: ByteDotKind = .best

    /// Byte offsets inside one group's super-block.
    struct Layout {
        let superSize: Int, bits: Int, offset: Int, subScales: Bool, mins: Bool
        var subs: Int { superSize / 16 }
        var dmin: Int { 16 }
        var sc: Int { mins ? 32 : 16 }
        var m: Int { sc + (subScales ? 8 * subs : 0) }
        var codes: Int { m + (subScales && mins ? 8 * subs : 0) }
        var blockBytes: Int { 32 * (bits - 4) + 128 }
        var superBytes: Int { codes + superSize / 32 * blockBytes }
    }

    static func layout(_ type: GGMLType) -> Layout? {
        (type.unpackedFormat as? any InterleavableFormat.Type)?.layout
    }

    /// Bytes of the repacked form (nil for a format without one or rows not a multiple of 8).
    static func byteCount(_ w: WeightMatrix) -> Int? {
        guard let l = layout(w.type), w.rows % 8 == 0, w.columns % l.superSize == 0 else { return nil }
        return w.rows / 8 * (w.columns / l.superSize) * l.superBytes
    }

    /// Repacks `w` into `out` (`byteCount(w)` bytes, which its owner keeps alive), releasing
    /// the rows already copied from `map` as it goes.
    init(packing w: WeightMatrix, into out: UnsafeMutableRawPointer, releasing map: MappedFile? = nil) {
        format = w.type.unpackedFormat as! any InterleavableFormat.Type
        layout = Self.layout(w.type)!
        bytes = UnsafeRawPointer(out)
        groups = w.rows / 8
        superBlocks = w.columns / layout.superSize
        let l = layout, format = format
        withUnpackBuffers(l.superSize) { codes, scales, mins in
            for g in 0..<groups {
                if g > 0, g % 128 == 0 { map?.release(w.row((g - 128) * 8), count: 128 * 8 * w.rowBytes) }
                for s in 0..<superBlocks {
                    let dst = out + (g * superBlocks + s) * l.superBytes
                    for r in 0..<8 {
                        let blk = w.row(g * 8 + r) + s * format.blockBytes
                        let ints = format.scaleIntegers(blk)
                        dst.storeBytes(of: ints.d, toByteOffset: 2 * r, as: UInt16.self)
                        if l.mins { dst.storeBytes(of: ints.dmin, toByteOffset: l.dmin + 2 * r, as: UInt16.self) }
                        if l.subScales {
                            for h in 0..<l.subs {
                                dst.storeBytes(of: ints.sc[h], toByteOffset: l.sc + 8 * h + r, as: Int8.self)
                                if l.mins { dst.storeBytes(of: ints.m[h], toByteOffset: l.m + 8 * h + r, as: UInt8.self) }
                            }
                        }
                        format.unpack(blk, codes: codes, scales: scales, mins: mins)
                        for b in 0..<l.superSize / 32 {
                            Self.storeCodes(codes + 32 * b, row: r, offset: UInt8(l.offset), planes: l.bits - 4,
                                            into: dst + l.codes + b * l.blockBytes)
                        }
                    }
                }
            }
        }
    }

    /// Stores row r's 32 codes of a block (signed ones made unsigned) in the block's nibble
    /// vectors and high planes: code 8j + i in the low nibble of byte 32j + 4r + i of the
    /// nibbles, code 8j + 4 + i in its high nibble; their bits 4 + p as bits 2j and 2j + 1 of
    /// byte 4r + i of plane p.
    static func storeCodes(_ codes: UnsafePointer<UInt8>, row r: Int, offset: UInt8, planes: Int, into block: UnsafeMutableRawPointer) {
        for i in 0..<4 {
            var high: (UInt8, UInt8) = (0, 0)
            for j in 0..<4 {
                let lo = codes[8 * j + i] &+ offset, hi = codes[8 * j + 4 + i] &+ offset
                block.storeBytes(of: lo & 15 | (hi & 15) << 4, toByteOffset: 32 * j + 4 * r + i, as: UInt8.self)
                high.0 |= (lo >> 4 & 1) << (2 * j) | (hi >> 4 & 1) << (2 * j + 1)
                high.1 |= (lo >> 5 & 1) << (2 * j) | (hi >> 5 & 1) << (2 * j + 1)
            }
            if planes > 0 { block.storeBytes(of: high.0, toByteOffset: 128 + 4 * r + i, as: UInt8.self) }
            if planes > 1 { block.storeBytes(of: high.1, toByteOffset: 160 + 4 * r + i, as: UInt8.self) }
        }
    }

    /// y[c·ldy + r] = W[r]·x[c] for the rows of `groups` (groups of 8 rows) and every column of `x`.
    public func multiply(_ x: QuantizedActivations, groups range: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        #if AVX2
        format.interleavedMultiply(self, x, range, y, ldy)
        #else
        preconditionFailure("interleaved matrices are built only with the AVX2 trait")
        #endif
    }

}

extension InterleavableFormat {
    static var layout: InterleavedCodes.Layout {
        InterleavedCodes.Layout(superSize: blockSize, bits: codeBits, offset: codeOffset, subScales: subScales, mins: hasMins)
    }
}

#if AVX2
extension InterleavableFormat {

    static func interleavedMultiply(_ w: InterleavedCodes, _ x: QuantizedActivations, _ range: Range<Int>,
                                    _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        switch w.dot {
        case .vnni: multiply(w, x, range, y, ldy, VNNIDot.self)
        case .maddubs: multiply(w, x, range, y, ldy, MaddubsDot.self)
        }
    }

    @inline(__always)
    static func multiply<K: ByteDot>(_ w: InterleavedCodes, _ x: QuantizedActivations, _ range: Range<Int>,
                                     _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _: K.Type) {
        precondition(!subScales || x.superBlocks, "K-quant rows read Q8_K activations")
        let n = x.columns
        let groupBytes = w.superBlocks &* layout.superBytes
        for g in range {
            let group = w.bytes + g &* groupBytes
            if g + 1 < w.groups {
                var offset = groupBytes
                while offset < 2 &* groupBytes { braid_prefetch(group + offset); offset &+= 64 }
            }
            let out = UnsafeMutableRawPointer(y + g &* 8)
            var c = 0
            while c + 4 <= n {
                let a = columns(group, w.superBlocks, x, c, 4, K.self)
                out.storeBytes(of: a.0, toByteOffset: 4 &* c &* ldy, as: __m256.self)
                out.storeBytes(of: a.1, toByteOffset: 4 &* (c &+ 1) &* ldy, as: __m256.self)
                out.storeBytes(of: a.2, toByteOffset: 4 &* (c &+ 2) &* ldy, as: __m256.self)
                out.storeBytes(of: a.3, toByteOffset: 4 &* (c &+ 3) &* ldy, as: __m256.self)
                c += 4
            }
            while c < n {
                out.storeBytes(of: columns(group, w.superBlocks, x, c, 1, K.self).0, toByteOffset: 4 &* c &* ldy, as: __m256.self)
                c += 1
            }
        }
    }

    /// Column `c`'s 8-bit values, d per 32, d·Σq per 16 and Σq per 16 (Q8_K for K-quants, Q8_0 otherwise).
    @inline(__always)
    static func activations(_ x: QuantizedActivations, _ c: Int) -> Column {
        if subScales {
            let s = x.superColumn(c)
            return Column(q: s.q, d: s.d, halves: s.halves, counts: x.superHalfCounts(c))
        }
        return Column(q: x.q(c), d: x.d(c), halves: x.halfSums(c), counts: x.halfCounts(c))
    }

    /// The 8 rows of a group times `count` (1 or 4) columns from `c`, with llama.cpp's integer
    /// sums: per 32 elements for the 32-element formats, per super-block for K-quants (each 16
    /// elements' products times their integer scale, the mins' and the code offset's terms
    /// from Σx in integers), one float product per block or super-block.
    @inline(__always)
    static func columns<K: ByteDot>(_ group: UnsafeRawPointer, _ superBlocks: Int, _ x: QuantizedActivations,
                                    _ c: Int, _ count: Int, _: K.Type) -> (__m256, __m256, __m256, __m256) {
        let l = layout
        let x0 = activations(x, c)
        let x1 = count > 1 ? activations(x, c + 1) : x0
        let x2 = count > 1 ? activations(x, c + 2) : x0
        let x3 = count > 1 ? activations(x, c + 3) : x0
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        let zero = _mm256_setzero_si256()
        for s in 0..<superBlocks {
            let sb = group + s &* l.superBytes
            let d = _mm256_cvtph_ps(sb.loadUnaligned(as: __m128i.self))
            // K-quants: integer sums over the super-block (Σ scale·products, Σ min·Σx).
            var i0 = zero, i1 = zero, i2 = zero, i3 = zero
            var m0 = zero, m1 = zero, m2 = zero, m3 = zero
            for b in 0..<l.superSize / 32 {
                let block = sb + (l.codes &+ b &* l.blockBytes)
                let e = s &* l.superSize &+ b &* 32  // the block's first element in the row
                let blockIndex = e / 32
                // 32-element formats: integer sums over the block.
                var p0 = zero, p1 = zero, p2 = zero, p3 = zero
                for half in 0..<2 {
                    let sub = 2 &* b &+ half
                    let (v0, v1, v2, v3) = InterleavedCodes.codeVectors(block, half, l.bits)
                    let o = e &+ 16 &* half
                    if subScales {
                        let sc = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(sb.loadUnaligned(fromByteOffset: l.sc &+ 8 &* sub, as: Int64.self)))
                        let h = 2 &* blockIndex &+ half
                        i0 = scaledSums(i0, v0, v1, v2, v3, x0.q + o, sc, x0.counts[h], K.self)
                        if count > 1 {
                            i1 = scaledSums(i1, v0, v1, v2, v3, x1.q + o, sc, x1.counts[h], K.self)
                            i2 = scaledSums(i2, v0, v1, v2, v3, x2.q + o, sc, x2.counts[h], K.self)
                            i3 = scaledSums(i3, v0, v1, v2, v3, x3.q + o, sc, x3.counts[h], K.self)
                        }
                    } else {
                        p0 = _mm256_add_epi32(p0, sums(v0, v1, v2, v3, x0.q + o, K.self))
                        if count > 1 {
                            p1 = _mm256_add_epi32(p1, sums(v0, v1, v2, v3, x1.q + o, K.self))
                            p2 = _mm256_add_epi32(p2, sums(v0, v1, v2, v3, x2.q + o, K.self))
                            p3 = _mm256_add_epi32(p3, sums(v0, v1, v2, v3, x3.q + o, K.self))
                        }
                    }
                }
                if subScales && hasMins {
                    // One min per 32 elements (Q4_K, Q5_K): Σ m·Σx, m in the low 16 bits of each lane.
                    let m = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(sb.loadUnaligned(fromByteOffset: l.m &+ 16 &* b, as: Int64.self)))
                    m0 = minSums(m0, m, x0.counts, blockIndex)
                    if count > 1 {
                        m1 = minSums(m1, m, x1.counts, blockIndex)
                        m2 = minSums(m2, m, x2.counts, blockIndex)
                        m3 = minSums(m3, m, x3.counts, blockIndex)
                    }
                }
                if !subScales {
                    let dmin = hasMins ? _mm256_cvtph_ps(sb.loadUnaligned(fromByteOffset: l.dmin, as: __m128i.self)) : d
                    a0 = blockTerm(a0, p0, d, dmin, x0, blockIndex)
                    if count > 1 {
                        a1 = blockTerm(a1, p1, d, dmin, x1, blockIndex)
                        a2 = blockTerm(a2, p2, d, dmin, x2, blockIndex)
                        a3 = blockTerm(a3, p3, d, dmin, x3, blockIndex)
                    }
                }
            }
            if subScales {
                let dmin = hasMins ? _mm256_cvtph_ps(sb.loadUnaligned(fromByteOffset: l.dmin, as: __m128i.self)) : d
                let first = s &* (l.superSize / 32)
                a0 = superTerm(a0, i0, m0, d, dmin, x0.d[first])
                if count > 1 {
                    a1 = superTerm(a1, i1, m1, d, dmin, x1.d[first])
                    a2 = superTerm(a2, i2, m2, d, dmin, x2.d[first])
                    a3 = superTerm(a3, i3, m3, d, dmin, x3.d[first])
                }
            }
        }
        return (a0, a1, a2, a3)
    }

    /// Σ code·x over 16 elements of each of the 8 rows, in 32-bit lanes.
    @inline(__always)
    static func sums<K: ByteDot>(_ v0: __m256i, _ v1: __m256i, _ v2: __m256i, _ v3: __m256i, _ x: UnsafePointer<Int8>, _: K.Type) -> __m256i {
        let raw = UnsafeRawPointer(x)
        @inline(__always) func four(_ o: Int) -> __m256i { _mm256_set1_epi32(raw.loadUnaligned(fromByteOffset: o, as: Int32.self)) }
        if K.fused {
            let zero = _mm256_setzero_si256()
            return _mm256_add_epi32(K.dot4(K.dot4(zero, v0, four(0)), v1, four(4)), K.dot4(K.dot4(zero, v2, four(8)), v3, four(12)))
        }
        // Two maddubs lanes (four products of codes < 64 and |x| ≤ 127) stay below 2^15: 4·63·127 = 32,004.
        let ones = _mm256_set1_epi16(1)
        let s = _mm256_add_epi16(_mm256_maddubs_epi16(v0, four(0)), _mm256_maddubs_epi16(v1, four(4)))
        let t = _mm256_add_epi16(_mm256_maddubs_epi16(v2, four(8)), _mm256_maddubs_epi16(v3, four(12)))
        return _mm256_add_epi32(_mm256_madd_epi16(s, ones), _mm256_madd_epi16(t, ones))
    }

    /// acc + sc·Σ (code − offset)·x over 16 elements of each row (sc: each row's integer scale).
    @inline(__always)
    static func scaledSums<K: ByteDot>(_ acc: __m256i, _ v0: __m256i, _ v1: __m256i, _ v2: __m256i, _ v3: __m256i,
                                       _ x: UnsafePointer<Int8>, _ sc: __m256i, _ count: Int32, _: K.Type) -> __m256i {
        var p = sums(v0, v1, v2, v3, x, K.self)
        if codeOffset != 0 { p = _mm256_sub_epi32(p, _mm256_set1_epi32(Int32(codeOffset) &* count)) }
        return _mm256_add_epi32(acc, _mm256_mullo_epi32(p, sc))
    }

    /// acc + m·Σx over a block of 32 (m: each row's integer min, in the low half of its lane;
    /// |Σx| ≤ 32·127 fits the 16 bits `madd` takes).
    @inline(__always)
    static func minSums(_ acc: __m256i, _ m: __m256i, _ counts: UnsafePointer<Int32>, _ blockIndex: Int) -> __m256i {
        let total = counts[2 &* blockIndex] &+ counts[2 &* blockIndex &+ 1]
        return _mm256_add_epi32(acc, _mm256_madd_epi16(m, _mm256_set1_epi32(Int32(UInt16(truncatingIfNeeded: total)))))
    }

    /// acc + d·dx·Σ(code − offset)·x (+ m·dx·Σx) for one block of a 32-element format.
    @inline(__always)
    static func blockTerm(_ acc: __m256, _ p: __m256i, _ d: __m256, _ m: __m256, _ x: Column, _ blockIndex: Int) -> __m256 {
        var p = p
        let dx = x.d[blockIndex]
        if codeOffset != 0 {
            p = _mm256_sub_epi32(p, _mm256_set1_epi32(Int32(codeOffset) &* (x.counts[2 &* blockIndex] &+ x.counts[2 &* blockIndex &+ 1])))
        }
        let scaled = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(dx)), _mm256_cvtepi32_ps(p), acc)
        return hasMins ? _mm256_fmadd_ps(m, _mm256_set1_ps(x.halves[2 &* blockIndex] + x.halves[2 &* blockIndex &+ 1]), scaled) : scaled
    }

    /// acc + d·dx·Σ sc·Σ(code − offset)·x − dmin·dx·Σ m·Σx for one super-block.
    @inline(__always)
    static func superTerm(_ acc: __m256, _ sums: __m256i, _ minSums: __m256i, _ d: __m256, _ dmin: __m256, _ dx: Float) -> __m256 {
        let scaled = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(dx)), _mm256_cvtepi32_ps(sums), acc)
        guard hasMins else { return scaled }
        return _mm256_fnmadd_ps(_mm256_mul_ps(dmin, _mm256_set1_ps(dx)), _mm256_cvtepi32_ps(minSums), scaled)
    }
}

/// One activation column as the kernels read it.
struct Column {
    let q: UnsafePointer<Int8>
    let d: UnsafePointer<Float>
    let halves: UnsafePointer<Float>
    let counts: UnsafePointer<Int32>
}

extension InterleavedCodes {
    /// Code vectors 4·half … 4·half + 3 of a block: the nibbles of vectors 2·half and
    /// 2·half + 1, with each high plane's bit moved into place.
    @inline(__always)
    static func codeVectors(_ block: UnsafeRawPointer, _ half: Int, _ bits: Int) -> (__m256i, __m256i, __m256i, __m256i) {
        let nibbleMask = _mm256_set1_epi8(0x0F)
        let n0 = block.loadUnaligned(fromByteOffset: 64 &* half, as: __m256i.self)
        let n1 = block.loadUnaligned(fromByteOffset: 64 &* half &+ 32, as: __m256i.self)
        var v0 = _mm256_and_si256(n0, nibbleMask), v1 = _mm256_and_si256(_mm256_srli_epi16(n0, 4), nibbleMask)
        var v2 = _mm256_and_si256(n1, nibbleMask), v3 = _mm256_and_si256(_mm256_srli_epi16(n1, 4), nibbleMask)
        for plane in 0..<bits - 4 {
            let p = block.loadUnaligned(fromByteOffset: 128 &+ 32 &* plane, as: __m256i.self)
            let bit = _mm256_set1_epi8(Int8(bitPattern: UInt8(16) << plane))
            let to = 4 &+ plane &- 4 &* half  // how far code vector 4·half's bit moves
            v0 = _mm256_or_si256(v0, _mm256_and_si256(shift(p, to), bit))
            v1 = _mm256_or_si256(v1, _mm256_and_si256(shift(p, to &- 1), bit))
            v2 = _mm256_or_si256(v2, _mm256_and_si256(shift(p, to &- 2), bit))
            v3 = _mm256_or_si256(v3, _mm256_and_si256(shift(p, to &- 3), bit))
        }
        return (v0, v1, v2, v3)
    }

    /// Each byte's bit b moved to bit b + by (left for by > 0); 16-bit shifts are safe because
    /// the kernel keeps one bit of each byte and no shift here reaches it across the byte.
    @inline(__always)
    static func shift(_ v: __m256i, _ by: Int) -> __m256i {
        by >= 0 ? _mm256_slli_epi16(v, Int32(by)) : _mm256_srli_epi16(v, Int32(-by))
    }
}
#endif
