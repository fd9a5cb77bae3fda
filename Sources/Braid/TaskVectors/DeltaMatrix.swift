/// One matrix of a task vector: 1-bit signs with scales, a denser encoding kept where a
/// policy buys accuracy with bytes (or a full fine-tune's delta, served as is), or a LoRA
/// update's two factors.
/// @unchecked Sendable: a value over memory its TaskVector owns read-only.
public enum DeltaMatrix: @unchecked Sendable {
    case bits(BitMatrix)
    case dense(WeightMatrix)
    case lowRank(LowRankMatrix)

    public var rows: Int {
        switch self {
        case .bits(let b): return b.rows
        case .dense(let w): return w.rows
        case .lowRank(let l): return l.rows
        }
    }

    public var columns: Int {
        switch self {
        case .bits(let b): return b.columns
        case .dense(let w): return w.columns
        case .lowRank(let l): return l.columns
        }
    }

    public var byteCount: Int {
        switch self {
        case .bits(let b): return b.byteCount
        case .dense(let w): return w.byteCount
        case .lowRank(let l): return l.byteCount
        }
    }

    /// A 1-bit matrix that keeps only some of its rows.
    public var dropsRows: Bool {
        if case .bits(let b) = self { return b.keptRows != nil }
        return false
    }

    /// Row `r` of D as floats.
    public func decodeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        switch self {
        case .bits(let b):
            guard let k = b.storedIndex(ofRow: r) else {
                dst.update(repeating: 0, count: b.columns)  // a dropped row
                return
            }
            let a = b.scale(k)
            for j in 0..<b.columns {
                dst[j] = (b.signByte(k, j / 8) >> UInt8(j % 8)) & 1 == 1 ? a : -a
            }
        case .dense(let w):
            w.decodeRow(r, into: dst)
        case .lowRank(let l):
            l.decodeRow(r, into: dst)
        }
    }

    /// Starts loading the 1-bit signs `addProduct` over `rows` will read.
    @inline(__always)
    public func prefetch(rows: Range<Int>) {
        if case .bits(let b) = self { b.prefetch(rows: rows) }
    }

    /// y[c·ldy + r] += coefficient · (D·x_c)_r for `rows` (a thread's chunk, see
    /// `BitMatrix.addProduct`); 1-bit matrices read x's sign tables.
    @inline(__always)
    public func addProduct(_ x: QuantizedActivations, _ tables: SignTables.View, column c: Int, coefficient: Float,
                           rows: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        switch self {
        case .bits(let b):
            b.addProduct(tables, column: c, coefficient: coefficient, rows: rows, into: y, ldy: ldy)
        case .dense(let w):
            guard let packed = w.interleaved else {
                for r in rows { y[c &* ldy &+ r] += coefficient * w.dot(r, x, c) }
                return
            }
            let g = InterleavedNibbles.groupRows
            let lo = min(rows.upperBound, (rows.lowerBound + g - 1) / g * g)
            let hi = max(lo, rows.upperBound / g * g)
            for r in rows.lowerBound..<lo { y[c &* ldy &+ r] += coefficient * w.dot(r, x, c) }
            packed.addProduct(x, column: c, coefficient: coefficient, groups: lo / g..<hi / g, into: y, ldy: ldy)
            for r in hi..<rows.upperBound { y[c &* ldy &+ r] += coefficient * w.dot(r, x, c) }
        case .lowRank(let l):
            l.addProduct(x, column: c, coefficient: coefficient, rows: rows, into: y, ldy: ldy)
        }
    }
}
