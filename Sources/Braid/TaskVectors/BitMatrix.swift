import CPrefetch
#if AVX2
import _Builtin_intrinsics.intel
#endif

/// A 1-bit matrix: signs S ∈ {−1, +1} and a scale per row (or one for the matrix): D ≈ α ⊙ S.
///
/// A matrix may keep only some of its rows (`keptRows`, ascending): the others' delta is dropped,
/// which buys bytes and time below one bit per weight. Kept rows are numbered 0…storedRows−1;
/// signs and per-row scales are stored for them only.
///
/// Signs are stored in tiles of up to 32 stored rows. Tiles restart at every group of 192 base
/// rows, so the rows of one group never share a tile with another's (a thread that owns whole
/// groups owns whole tiles); with every row kept each group is six full tiles. Within a tile of
/// height h come sign byte 0 of each of its rows, then byte 1 of each, and so on; byte k holds
/// columns 8k…8k+7 (bit j is column 8k + j, 1 means +1). One 32-byte load so holds a byte of 32
/// rows, and its two nibbles index the lookup tables of two groups of four activations
/// (`SignTables`).
/// @unchecked Sendable: raw pointers into memory its TaskVector owns and never writes after loading.
public struct BitMatrix: @unchecked Sendable {
    public static let tileRows = 32
    public static let groupRows = 192
    /// Rows of the base matrix (the output).
    public let rows: Int
    public let columns: Int
    public let signs: UnsafeRawPointer
    public let scales: UnsafePointer<Float>
    public let perRowScales: Bool
    /// The base row of each stored row; nil when every row is stored.
    public let keptRows: UnsafePointer<Int32>?
    public let storedRows: Int
    /// Per group of base rows, its first stored row (`RowIndex`).
    let groupStarts: UnsafePointer<Int32>?
    /// The kept rows as a bitmap of the base rows (`RowIndex.bits`).
    let keptBits: UnsafePointer<UInt8>?
    /// At least 32 readable bytes follow the signs, so a short tile's rows can be read with the
    /// 32-row loads of a full one (the lanes past the tile are ignored).
    let overreadSafe: Bool
    /// Bytes a scale takes in the file (2: fp16, decoded to `scales` at load; 4: float).
    public let scaleBytes: Int

    public init(rows: Int, columns: Int, signs: UnsafeRawPointer, scales: UnsafePointer<Float>, perRowScales: Bool,
                kept: RowIndex? = nil, overreadSafe: Bool = false, scaleBytes: Int = 4) {
        self.rows = rows
        self.columns = columns
        self.signs = signs
        self.scales = scales
        self.perRowScales = perRowScales
        keptRows = kept?.rows
        storedRows = kept?.count ?? rows
        groupStarts = kept?.groupStarts
        keptBits = kept?.bits
        self.overreadSafe = overreadSafe
        self.scaleBytes = scaleBytes
    }

    public var rowBytes: Int { columns / 8 }
    /// Bytes of the matrix in its file: the bits, the scales and the kept rows' bitmap.
    public var byteCount: Int {
        storedRows * rowBytes + (perRowScales ? storedRows : 1) * scaleBytes + (keptRows == nil ? 0 : RowIndex.bitmapBytes(rows))
    }

    /// Scale of stored row `k`.
    @inline(__always) public func scale(_ k: Int) -> Float { perRowScales ? scales[k] : scales[0] }

    /// The base row that stored row `k` holds.
    @inline(__always) public func baseRow(_ k: Int) -> Int { keptRows.map { Int($0[k]) } ?? k }

    /// The first stored row of group `g` (g may be the group count: then `storedRows`).
    @inline(__always)
    func groupStart(_ g: Int) -> Int { groupStarts.map { Int($0[g]) } ?? min(rows, g &* Self.groupRows) }

    /// The first stored row whose base row is ≥ `r` (so stored rows of base rows a..<b are
    /// firstStored(a)..<firstStored(b)).
    @inline(__always)
    public func firstStored(_ r: Int) -> Int {
        guard let kept = keptRows else { return r }
        if r >= rows { return storedRows }
        var lo = groupStart(r / Self.groupRows), hi = groupStart(r / Self.groupRows + 1)
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int(kept[mid]) < r { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The stored row holding base row `r`, nil when its delta was dropped.
    public func storedIndex(ofRow r: Int) -> Int? {
        let k = firstStored(r)
        return k < storedRows && baseRow(k) == r ? k : nil
    }

    /// The tile holding stored row `k`: its first stored row and its height.
    @inline(__always)
    func tile(of k: Int) -> (start: Int, height: Int) {
        let g = baseRow(k) / Self.groupRows
        let first = groupStart(g)
        let start = first + (k - first) / Self.tileRows * Self.tileRows
        return (start, min(Self.tileRows, groupStart(g + 1) - start))
    }

    @inline(__always) func signByte(_ k: Int, _ byte: Int) -> UInt8 {
        let (start, height) = tile(of: k)
        return signs.load(fromByteOffset: start * rowBytes + byte * height + k - start, as: UInt8.self)
    }

    /// Unpacks stored row `k` into ±1 floats.
    public func signs(storedRow k: Int) -> [Float] {
        (0..<columns).map { j in (signByte(k, j / 8) >> UInt8(j % 8)) & 1 == 1 ? 1 : -1 }
    }

    /// y[c·ldy + r] += coefficient · α_r · (s_r · x_c) for the base rows `range` (a thread's
    /// chunk), reading column c of x through its lookup tables
    /// (`QuantizedActivations.buildSignTables()` must have run). With kept rows, each group's
    /// stored rows are summed tile by tile into a buffer, then spread onto their base rows eight
    /// at a time; tiles that straddle two chunks are computed by both, each adding its own rows.
    @inline(__always)
    public func addProduct(_ tables: SignTables.View, column c: Int, coefficient: Float, rows range: Range<Int>,
                           into y: UnsafeMutablePointer<Float>, ldy: Int) {
        let y = y + c &* ldy
        guard keptRows != nil else {
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
            return
        }
        guard !range.isEmpty else { return }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.groupRows + 2 * Self.tileRows) { buffer in
            let sums = buffer.baseAddress!
            for g in range.lowerBound / Self.groupRows...(range.upperBound - 1) / Self.groupRows {
                let groupEnd = min((g + 1) * Self.groupRows, rows)
                let lo = max(range.lowerBound, g * Self.groupRows), hi = min(range.upperBound, groupEnd)
                let first = groupStart(g), end = groupStart(g + 1)
                let a = lo == g * Self.groupRows ? first : firstStored(lo)
                let b = hi == groupEnd ? end : firstStored(hi)
                guard a < b else { continue }
                var start = first + (a - first) / Self.tileRows * Self.tileRows
                while start < b {
                    let height = min(Self.tileRows, end - start)
                    tileTerms(start, height, tables, c, coefficient, into: sums + (start - first))
                    start += height
                }
                spread(sums + (a - first), stored: a..<b, baseRows: lo..<hi, into: y)
            }
        }
    }

    /// coefficient · α_k · (s_k · x_c) for the stored rows of the tile at `start` (height rows) into `out`.
    @inline(__always)
    func tileTerms(_ start: Int, _ height: Int, _ tables: SignTables.View, _ c: Int, _ coefficient: Float,
                   into out: UnsafeMutablePointer<Float>) {
        #if AVX2
        if height == Self.tileRows || overreadSafe {
            let (f0, f1, f2, f3) = tileSums(signs + start &* rowBytes, height, tables, c)
            if height == Self.tileRows && perRowScales {
                let alpha = UnsafeRawPointer(scales + start)
                let k = SIMD8<Float>(repeating: coefficient)
                let o = UnsafeMutableRawPointer(out)
                o.storeBytes(of: k * alpha.loadUnaligned(as: SIMD8<Float>.self) * f0, as: SIMD8<Float>.self)
                o.storeBytes(of: k * alpha.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self) * f1, toByteOffset: 32, as: SIMD8<Float>.self)
                o.storeBytes(of: k * alpha.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self) * f2, toByteOffset: 64, as: SIMD8<Float>.self)
                o.storeBytes(of: k * alpha.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self) * f3, toByteOffset: 96, as: SIMD8<Float>.self)
                return
            }
            withUnsafeBytes(of: (f0, f1, f2, f3)) { raw in
                let s = raw.assumingMemoryBound(to: Float.self)
                for i in 0..<height { out[i] = coefficient * scale(start &+ i) * s[i] }
            }
            return
        }
        #endif
        for i in 0..<height { out[i] = coefficient * scale(start + i) * signDot(start + i, tables, c) }
    }

    /// y[r] += the terms of the stored rows `stored` (ascending, `terms` in that order) on their
    /// base rows, which lie in `baseRows`: per eight base rows, their kept bits pick the next
    /// terms (a permute by a table of prefix counts); a range off the 8-row grid goes row by row.
    @inline(__always)
    func spread(_ terms: UnsafePointer<Float>, stored: Range<Int>, baseRows: Range<Int>, into y: UnsafeMutablePointer<Float>) {
        #if AVX2
        if let bits = keptBits, baseRows.lowerBound % 8 == 0, baseRows.upperBound % 8 == 0 {
            let indices = Self.spreadIndices
            let lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128)
            var p = 0
            for o in baseRows.lowerBound / 8..<baseRows.upperBound / 8 {
                let mask = Int(bits[o])
                guard mask != 0 else { continue }
                // Reads up to 7 terms past the last: the buffer has room; they are masked off.
                let v = UnsafeRawPointer(terms + p).loadUnaligned(as: __m256.self)
                let picked = _mm256_permutevar8x32_ps(v, UnsafeRawPointer(indices + 8 &* mask).loadUnaligned(as: __m256i.self))
                let keep = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(Int32(mask)), lane), lane)
                let out = UnsafeMutableRawPointer(y + 8 &* o)
                out.storeBytes(of: _mm256_add_ps(out.loadUnaligned(as: __m256.self), _mm256_and_ps(picked, _mm256_castsi256_ps(keep))), as: __m256.self)
                p &+= mask.nonzeroBitCount
            }
            return
        }
        #endif
        for k in stored { y[baseRow(k)] += terms[k - stored.lowerBound] }
    }

    /// For each byte of kept bits, lane j's index among the kept lanes (how many bits below j are set).
    nonisolated(unsafe) static let spreadIndices: UnsafePointer<Int32> = {
        let table = UnsafeMutablePointer<Int32>.allocate(capacity: 256 * 8)
        for mask in 0..<256 {
            for j in 0..<8 { table[8 * mask + j] = Int32((mask & ((1 << j) - 1)).nonzeroBitCount) }
        }
        return UnsafePointer(table)
    }()

    /// Asks the caches for the signs of `range`'s tiles. Tiles are short streams the hardware
    /// prefetcher catches late; requested before the base rows' product, they arrive meanwhile.
    /// With kept rows, `range` lies in one group (the model walks 32 rows at a time) and its
    /// stored rows are found by interpolation: a search per step cost more than it saved.
    @inline(__always)
    public func prefetch(rows range: Range<Int>) {
        var start = range.lowerBound - range.lowerBound % Self.tileRows, end = min(rows, range.upperBound)
        if keptRows != nil {
            let g = range.lowerBound / Self.groupRows
            let first = groupStart(g), count = groupStart(g + 1) - first
            let base = g * Self.groupRows, size = min(Self.groupRows, rows - base)
            start = first + count * (range.lowerBound - base) / size
            end = first + count * (min(range.upperBound, base + size) - base) / size
        }
        start *= rowBytes
        end *= rowBytes
        var offset = start
        while offset < end {
            braid_prefetch(signs + offset)
            offset &+= 64
        }
    }

    /// s_k · x_c for stored row k from the tables: per sign byte, its low nibble indexes one group's table and its
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
    /// block's sums are scaled into float. Returns rows 0–7, 8–15, 16–23, 24–31 of the tile at
    /// `bits` with `height` rows (below 32 the loads run past the tile; those lanes are noise).
    @inline(__always)
    func tileSums(_ bits: UnsafeRawPointer, _ height: Int, _ tables: SignTables.View, _ c: Int) -> (__m256, __m256, __m256, __m256) {
        let table = UnsafeRawPointer(tables.table(c)), e = tables.scale(c)
        let low = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi8(1)
        let upper = _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7)
        var f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0
        let bytes = tables.blockColumns / 8
        for b in 0..<columns / tables.blockColumns {
            var lo = _mm256_setzero_si256(), hi = lo
            for k in b &* bytes..<(b &+ 1) &* bytes {
                let v = bits.loadUnaligned(fromByteOffset: k &* height, as: __m256i.self)
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
        return (f0, f1, f2, f3)
    }

    /// The task term of full tile `t` (every row stored) into y.
    @inline(__always)
    func addTile(_ t: Int, _ tables: SignTables.View, _ c: Int, _ coefficient: Float, _ y: UnsafeMutablePointer<Float>) {
        let (f0, f1, f2, f3) = tileSums(signs + t &* Self.tileRows &* rowBytes, Self.tileRows, tables, c)
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
    /// zero counts as +1. `groupSizes`: stored rows per group of base rows (default: every row
    /// kept, groups of 192).
    public static func pack(_ values: UnsafePointer<Float>, rows: Int, columns: Int, groupSizes: [Int]? = nil) -> [UInt8] {
        let sizes = groupSizes ?? stride(from: 0, to: rows, by: groupRows).map { min(groupRows, rows - $0) }
        precondition(sizes.reduce(0, +) == rows, "group sizes must add up to the rows")
        let rowBytes = columns / 8
        var out = [UInt8](repeating: 0, count: rows * rowBytes)
        var groupStart = 0
        for size in sizes {
            for start in stride(from: groupStart, to: groupStart + size, by: tileRows) {
                let height = min(tileRows, groupStart + size - start)
                for r in start..<start + height {
                    for k in 0..<rowBytes {
                        var byte: UInt8 = 0
                        for j in 0..<8 where values[r * columns + 8 * k + j] >= 0 { byte |= 1 << UInt8(j) }
                        out[start * rowBytes + k * height + r - start] = byte
                    }
                }
            }
            groupStart += size
        }
        return out
    }
}
