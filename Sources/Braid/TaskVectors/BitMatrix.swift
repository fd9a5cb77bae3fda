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

    /// s_r · x_c over the 8-bit activations (their block scales applied).
    @inline(__always)
    public func signDot(_ r: Int, _ x: QuantizedActivations, _ c: Int) -> Float {
        let bits = signs + r &* rowBytes
        let xq = x.q(c), xd = x.d(c)
        #if AVX2
        // Each block's 32 bits become 32 bytes of ±1 (−1 where the bit is set), applied to q
        // with sign_epi8; the sum is negated at the end.
        let spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                      2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)
        let select = unsafeBitCast(SIMD32<UInt8>(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128,
                                                 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128), to: __m256i.self)
        let ones8 = _mm256_set1_epi8(1)
        let ones16 = _mm256_set1_epi16(1)
        var acc = _mm256_setzero_ps()
        for b in 0..<x.blocksPerColumn {
            let word = bits.loadUnaligned(fromByteOffset: 4 &* b, as: Int32.self)
            let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(word), spread)
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select)
            let q = UnsafeRawPointer(xq + b &* 32).loadUnaligned(as: SIMD4<Int64>.self)
            let signed = _mm256_sign_epi8(q, _mm256_or_si256(set, ones8))
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ones8, signed), ones16))
            acc = _mm256_fmadd_ps(_mm256_set1_ps(xd[b]), sums, acc)
        }
        return -DotKernels.horizontalSum(acc)
        #else
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
        #endif
    }

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
