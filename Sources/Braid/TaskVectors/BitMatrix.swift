#if AVX2
import _Builtin_intrinsics.intel
#endif

/// A 1-bit matrix: signs S ∈ {−1, +1} packed 8 per byte along each row (bit j of byte k is
/// column 8k + j; 1 means +1) and a scale per row (or one for the matrix): D ≈ α ⊙ S.
public struct BitMatrix: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    public let signs: UnsafeRawPointer
    public let scales: UnsafePointer<Float>
    public let perRowScales: Bool

    public init(rows: Int, columns: Int, signs: UnsafeRawPointer, scales: UnsafePointer<Float>, perRowScales: Bool) {
        self.rows = rows
        self.columns = columns
        self.signs = signs
        self.scales = scales
        self.perRowScales = perRowScales
    }

    public var rowBytes: Int { columns / 8 }
    /// Bytes read per product: the bits and the scales.
    public var byteCount: Int { rows * rowBytes + (perRowScales ? rows : 1) * 4 }

    @inline(__always) public func scale(_ r: Int) -> Float { perRowScales ? scales[r] : scales[0] }

    /// y[c·ldy + r] += coefficient_c · α_r · (s_r · x_c) for `rows` and each (column, coefficient).
    @inline(__always)
    public func addProduct(_ x: QuantizedActivations, columns: [(Int, Float)], rows: Range<Int>,
                           into y: UnsafeMutablePointer<Float>, ldy: Int) {
        #if AVX2
        let k = SignConstants()
        // s·q = 2·Σ_{bit set} q − Σq; the Σq part (d-weighted) is one number per column.
        var i = 0
        while i + 4 <= columns.count {
            let c0 = columns[i].0, c1 = columns[i + 1].0, c2 = columns[i + 2].0, c3 = columns[i + 3].0
            let coef = SIMD4(columns[i].1, columns[i + 1].1, columns[i + 2].1, columns[i + 3].1)
            let t = SIMD4(x.total(c0), x.total(c1), x.total(c2), x.total(c3))
            for r in rows {
                let v = coef * scale(r) * (2 * setDot4(r, x, c0, c1, c2, c3, k) - t)
                y[c0 &* ldy &+ r] += v[0]; y[c1 &* ldy &+ r] += v[1]
                y[c2 &* ldy &+ r] += v[2]; y[c3 &* ldy &+ r] += v[3]
            }
            i += 4
        }
        while i < columns.count {
            let (c, coefficient) = columns[i]
            for r in rows { y[c &* ldy &+ r] += coefficient * scale(r) * (2 * setDot(r, x, c, k) - x.total(c)) }
            i += 1
        }
        #else
        for (c, coefficient) in columns {
            for r in rows { y[c &* ldy &+ r] += coefficient * scale(r) * signDot(r, x, c) }
        }
        #endif
    }

    #if AVX2
    /// Masks that turn 32 sign bits into 32 bytes of 0/1, built once per call of `addProduct`.
    struct SignConstants {
        let spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                      2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)
        let select = unsafeBitCast(SIMD32<UInt8>(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128,
                                                 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128), to: __m256i.self)
        let ones8 = _mm256_set1_epi8(1)
        let ones16 = _mm256_set1_epi16(1)
    }

    /// 32 bytes of 0/1 from the 32 sign bits of block `b` (and, then min with 1: no compare).
    @inline(__always)
    func mask(_ bits: UnsafeRawPointer, _ b: Int, _ k: SignConstants) -> __m256i {
        let word = bits.loadUnaligned(fromByteOffset: 4 &* b, as: Int32.self)
        return _mm256_min_epu8(_mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(word), k.spread), k.select), k.ones8)
    }

    @inline(__always)
    func maskedSum(_ m: __m256i, _ q: UnsafePointer<Int8>, _ k: SignConstants) -> __m256 {
        let v = UnsafeRawPointer(q).loadUnaligned(as: SIMD4<Int64>.self)
        return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(m, v), k.ones16))
    }

    /// Σ_b d_b Σ_{bits set} q — the "+1" half of s_r · x_c.
    @inline(__always)
    func setDot(_ r: Int, _ x: QuantizedActivations, _ c: Int, _ k: SignConstants) -> Float {
        let bits = signs + r &* rowBytes
        let xq = x.q(c), xd = x.d(c)
        var acc = _mm256_setzero_ps()
        for b in 0..<x.blocksPerColumn {
            acc = _mm256_fmadd_ps(_mm256_set1_ps(xd[b]), maskedSum(mask(bits, b, k), xq + b &* 32, k), acc)
        }
        return DotKernels.horizontalSum(acc)
    }

    /// `setDot` for four columns, expanding each block's bits once.
    @inline(__always)
    func setDot4(_ r: Int, _ x: QuantizedActivations, _ c0: Int, _ c1: Int, _ c2: Int, _ c3: Int, _ k: SignConstants) -> SIMD4<Float> {
        let bits = signs + r &* rowBytes
        let q0 = x.q(c0), q1 = x.q(c1), q2 = x.q(c2), q3 = x.q(c3)
        let d0 = x.d(c0), d1 = x.d(c1), d2 = x.d(c2), d3 = x.d(c3)
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        for b in 0..<x.blocksPerColumn {
            let m = mask(bits, b, k)
            let o = b &* 32
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(d0[b]), maskedSum(m, q0 + o, k), a0)
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(d1[b]), maskedSum(m, q1 + o, k), a1)
            a2 = _mm256_fmadd_ps(_mm256_set1_ps(d2[b]), maskedSum(m, q2 + o, k), a2)
            a3 = _mm256_fmadd_ps(_mm256_set1_ps(d3[b]), maskedSum(m, q3 + o, k), a3)
        }
        return SIMD4(DotKernels.horizontalSum(a0), DotKernels.horizontalSum(a1), DotKernels.horizontalSum(a2), DotKernels.horizontalSum(a3))
    }

    /// s_r · x_c over the 8-bit activations (their block scales applied).
    public func signDot(_ r: Int, _ x: QuantizedActivations, _ c: Int) -> Float {
        let k = SignConstants()
        return 2 * setDot(r, x, c, k) - x.total(c)
    }
    #else
    /// s_r · x_c over the 8-bit activations (their block scales applied).
    public func signDot(_ r: Int, _ x: QuantizedActivations, _ c: Int) -> Float {
        let bits = signs + r &* rowBytes
        let xq = x.q(c), xd = x.d(c)
        var total: Float = 0
        for b in 0..<x.blocksPerColumn {
            var sum: Int32 = 0
            for j in 0..<32 {
                let bit = (bits.load(fromByteOffset: b * 4 + j / 8, as: UInt8.self) >> UInt8(j % 8)) & 1
                let q = Int32(xq[b * 32 + j])
                sum &+= bit == 1 ? q : -q
            }
            total += xd[b] * Float(sum)
        }
        return total
    }
    #endif

    /// Packs the signs of a rows × columns matrix (row-major floats); zero counts as +1.
    public static func pack(_ values: UnsafePointer<Float>, rows: Int, columns: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rows * columns / 8)
        for r in 0..<rows {
            for j in 0..<columns where values[r * columns + j] >= 0 {
                out[r * columns / 8 + j / 8] |= 1 << UInt8(j % 8)
            }
        }
        return out
    }

    /// Unpacks row `r` into ±1 floats.
    public func signs(row r: Int) -> [Float] {
        (0..<columns).map { j in
            (signs.load(fromByteOffset: r * rowBytes + j / 8, as: UInt8.self) >> UInt8(j % 8)) & 1 == 1 ? 1 : -1
        }
    }
}
