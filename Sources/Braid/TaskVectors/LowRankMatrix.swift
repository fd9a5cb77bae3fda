/// A LoRA update served as its two factors, D = B·A (the adapter's scale folded into B):
/// A is rank × columns as the file stores it (f32 or f16), B rows × rank in floats. A column
/// costs rank·(columns + rows) multiply-adds instead of rows·columns, in float activations.
/// @unchecked Sendable: a value over memory its TaskVector owns read-only.
public struct LowRankMatrix: @unchecked Sendable {
    public let a: WeightMatrix
    public let b: UnsafePointer<Float>
    public var rank: Int { a.rows }
    public var rows: Int
    public var columns: Int { a.columns }
    public var byteCount: Int { a.byteCount + rows * rank * 4 }

    public init(a: WeightMatrix, b: UnsafePointer<Float>, rows: Int) {
        self.a = a
        self.b = b
        self.rows = rows
    }

    /// Row `r` of B·A.
    public func decodeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        dst.update(repeating: 0, count: columns)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: columns) { row in
            for k in 0..<rank {
                a.decodeRow(k, into: row.baseAddress!)
                let bk = b[r * rank + k]
                for j in 0..<columns { dst[j] += bk * row[j] }
            }
        }
    }

    /// y[c·ldy + r] += coefficient · (B·(A·x_c))_r for `rows`. A·x_c (rank values) is recomputed
    /// by each thread's chunk: rank·columns work, small next to the chunk's rows.
    @inline(__always)
    public func addProduct(_ x: QuantizedActivations, column c: Int, coefficient: Float, rows: Range<Int>,
                           into y: UnsafeMutablePointer<Float>, ldy: Int) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: rank) { u in
            for k in 0..<rank { u[k] = coefficient * a.dot(k, x, c) }
            for r in rows {
                let br = b + r * rank
                var s: Float = 0
                for k in 0..<rank { s += br[k] * u[k] }
                y[c &* ldy &+ r] += s
            }
        }
    }
}
