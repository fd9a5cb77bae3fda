import CPrefetch
#if AVX2
import _Builtin_intrinsics.intel
#endif

/// A 1-bit matrix: signs S ∈ {−1, +1} and a scale per row (or one for the matrix): D ≈ α ⊙ S.
///
/// Signs are stored in tiles of 32 rows (the last tile may be shorter). Within a tile come sign
/// byte 0 of each row, then byte 1 of each row, and so on; byte k holds columns 8k…8k+7 (bit j
/// is column 8k + j, 1 means +1). One 32-byte load so holds a byte of 32 rows, and its two
/// nibbles index the lookup tables of two groups of four activations (`SignTables`).
public struct BitMatrix: @unchecked Sendable {
    public static let tileRows = 32
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

    /// Where sign byte `k` of row `r` lies.
    @inline(__always)
    static func offset(row r: Int, byte k: Int, rows: Int, rowBytes: Int) -> Int {
        let tile = r / tileRows
        let height = min(tileRows, rows - tile * tileRows)
        return tile * tileRows * rowBytes + k * height + r % tileRows
    }

    @inline(__always) func signByte(_ r: Int, _ k: Int) -> UInt8 {
        signs.load(fromByteOffset: Self.offset(row: r, byte: k, rows: rows, rowBytes: rowBytes), as: UInt8.self)
    }

    /// Unpacks row `r` into ±1 floats.
    public func signs(row r: Int) -> [Float] {
        (0..<columns).map { j in (signByte(r, j / 8) >> UInt8(j % 8)) & 1 == 1 ? 1 : -1 }
    }

    /// y[c·ldy + r] += coefficient · α_r · (s_r · x_c) for `rows`, reading column c of x through
    /// its lookup tables (`QuantizedActivations.buildSignTables()` must have run).
    @inline(__always)
    public func addProduct(_ tables: SignTables.View, column c: Int, coefficient: Float, rows range: Range<Int>,
                           into y: UnsafeMutablePointer<Float>, ldy: Int) {
        let y = y + c &* ldy
        var r = range.lowerBound
        while r < range.upperBound {
            let tileStart = r - r % Self.tileRows
            let end = min(tileStart + Self.tileRows, rows, range.upperBound)
            #if AVX2
            if r == tileStart && end - r == Self.tileRows {
                addTile(r / Self.tileRows, tables, c, coefficient, y)
                r = end
                continue
            }
            #endif
            for i in r..<end { y[i] += coefficient * scale(i) * signDot(i, tables, c) }
            r = end
        }
    }

    /// Asks the caches for the signs of `range`'s tiles. Tiles are short streams the hardware
    /// prefetcher catches late; requested before the base rows' product, they arrive meanwhile.
    @inline(__always)
    public func prefetch(rows range: Range<Int>) {
        let start = (range.lowerBound - range.lowerBound % Self.tileRows) * rowBytes
        let end = min(rows, range.upperBound) * rowBytes
        var offset = start
        while offset < end {
            braid_prefetch(signs + offset)
            offset &+= 64
        }
    }

    /// s_r · x_c from the tables: per sign byte, its low nibble indexes one group's table and its
    /// high nibble the next; block sums are exact integers, then scaled.
    public func signDot(_ r: Int, _ tables: SignTables.View, _ c: Int) -> Float {
        let table = tables.table(c), e = tables.scale(c)
        var total: Float = 0
        let bytes = tables.blockColumns / 8
        for b in 0..<columns / tables.blockColumns {
            var sum: Int32 = 0
            for k in bytes * b..<bytes * (b + 1) {
                let byte = Int(signByte(r, k))
                sum += Int32(table[(2 * k) * 16 + byte & 15]) + Int32(table[(2 * k + 1) * 16 + byte >> 4])
            }
            total += e[b] * Float(sum)
        }
        return total
    }

    #if AVX2
    /// `signDot` for the 32 rows of a full tile at once: per sign byte column, two shuffles look
    /// up the two groups' sums for all 32 rows; pairs are added into int16 per row, then each
    /// block's sums are scaled into float.
    @inline(__always)
    func addTile(_ t: Int, _ tables: SignTables.View, _ c: Int, _ coefficient: Float, _ y: UnsafeMutablePointer<Float>) {
        let bits = signs + t &* Self.tileRows &* rowBytes
        let table = UnsafeRawPointer(tables.table(c)), e = tables.scale(c)
        let low = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi8(1)
        let upper = _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7)
        var f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0
        let bytes = tables.blockColumns / 8
        for b in 0..<columns / tables.blockColumns {
            var lo = _mm256_setzero_si256(), hi = lo
            for k in b &* bytes..<(b &+ 1) &* bytes {
                let v = bits.loadUnaligned(fromByteOffset: k &* 32, as: __m256i.self)
                let pair = table + k &* 32
                let ta = _mm256_broadcastsi128_si256(pair.loadUnaligned(as: __m128i.self))
                let tb = _mm256_broadcastsi128_si256(pair.loadUnaligned(fromByteOffset: 16, as: __m128i.self))
                let sa = _mm256_shuffle_epi8(ta, _mm256_and_si256(v, low))
                let sb = _mm256_shuffle_epi8(tb, _mm256_and_si256(_mm256_srli_epi16(v, 4), low))
                // Interleaving puts a row's two sums side by side; maddubs by 1 adds them.
                lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(ones, _mm256_unpacklo_epi8(sa, sb)))
                hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(ones, _mm256_unpackhi_epi8(sa, sb)))
            }
            // lo holds rows 0–7 and 16–23, hi rows 8–15 and 24–31.
            let s = _mm256_set1_ps(e[b])
            f0 = _mm256_fmadd_ps(s, Self.floats(_mm256_castsi256_si128(lo)), f0)
            f1 = _mm256_fmadd_ps(s, Self.floats(_mm256_castsi256_si128(hi)), f1)
            f2 = _mm256_fmadd_ps(s, Self.floats(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(lo, upper))), f2)
            f3 = _mm256_fmadd_ps(s, Self.floats(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(hi, upper))), f3)
        }
        let r0 = t &* Self.tileRows
        add(f0, r0, coefficient, y)
        add(f1, r0 &+ 8, coefficient, y)
        add(f2, r0 &+ 16, coefficient, y)
        add(f3, r0 &+ 24, coefficient, y)
    }

    @inline(__always)
    static func floats(_ v: __m128i) -> __m256 { _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(v)) }

    /// y[r…r+7] += coefficient · α[r…r+7] · f
    @inline(__always)
    func add(_ f: __m256, _ r: Int, _ coefficient: Float, _ y: UnsafeMutablePointer<Float>) {
        let alpha = perRowScales ? UnsafeRawPointer(scales + r).loadUnaligned(as: SIMD8<Float>.self) : SIMD8(repeating: scales[0])
        let current = UnsafeRawPointer(y + r).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + r).storeBytes(of: current + coefficient * alpha * f, as: SIMD8<Float>.self)
    }
    #endif

    /// Packs the signs of a rows × columns matrix (row-major floats) into the tiled layout;
    /// zero counts as +1.
    public static func pack(_ values: UnsafePointer<Float>, rows: Int, columns: Int) -> [UInt8] {
        let rowBytes = columns / 8
        var out = [UInt8](repeating: 0, count: rows * rowBytes)
        for r in 0..<rows {
            for k in 0..<rowBytes {
                var byte: UInt8 = 0
                for j in 0..<8 where values[r * columns + 8 * k + j] >= 0 { byte |= 1 << UInt8(j) }
                out[offset(row: r, byte: k, rows: rows, rowBytes: rowBytes)] = byte
            }
        }
        return out
    }
}
