/// The rows a 1-bit matrix keeps (ascending base rows), and per group of 192 base rows where
/// its rows begin among them (`BitMatrix`'s tiles restart there). Files store it as a bitmap of the base rows (bit r of byte r/8 set:
/// row r kept), 1/8 byte per row. `BitMatrix` reads it through raw pointers (no reference
/// counting in the kernels), so whoever builds one keeps it alive as long as the matrix
/// (`TaskVector` does).
/// @unchecked Sendable: immutable after init.
public final class RowIndex: @unchecked Sendable {
    public let rows: UnsafePointer<Int32>
    public let count: Int
    let groupStarts: UnsafePointer<Int32>
    /// Bit r of byte r/8 set where row r is kept (the kernels expand a group's sums with it).
    let bits: UnsafePointer<UInt8>

    /// `kept` must rise strictly and lie in 0..<baseRows.
    public init(_ kept: [Int32], baseRows: Int) throws {
        var previous = -1
        for r in kept {
            guard Int(r) > previous, Int(r) < baseRows else {
                throw BraidError.invalidArgument("kept rows must rise strictly within 0..<\(baseRows) (found \(r) after \(previous))")
            }
            previous = Int(r)
        }
        let rows = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, kept.count))
        kept.withUnsafeBufferPointer { if let p = $0.baseAddress { rows.initialize(from: p, count: kept.count) } }
        let groups = (baseRows + BitMatrix.groupRows - 1) / BitMatrix.groupRows
        let starts = UnsafeMutablePointer<Int32>.allocate(capacity: groups + 1)
        var k = 0
        for g in 0...groups {
            while k < kept.count && Int(kept[k]) < g * BitMatrix.groupRows { k += 1 }
            starts[g] = Int32(k)
        }
        let bits = UnsafeMutablePointer<UInt8>.allocate(capacity: Self.bitmapBytes(baseRows))
        bits.initialize(from: Self.bitmap(kept, baseRows: baseRows), count: Self.bitmapBytes(baseRows))
        self.rows = UnsafePointer(rows)
        count = kept.count
        groupStarts = UnsafePointer(starts)
        self.bits = UnsafePointer(bits)
    }

    /// From a file's bitmap of `baseRows` bits; bits past the last row must be clear.
    public convenience init(bitmap: UnsafeRawPointer, baseRows: Int) throws {
        var kept: [Int32] = []
        for byte in 0..<Self.bitmapBytes(baseRows) {
            let bits = bitmap.load(fromByteOffset: byte, as: UInt8.self)
            for j in 0..<8 where bits >> UInt8(j) & 1 == 1 {
                guard byte * 8 + j < baseRows else { throw BraidError.invalidArgument("kept-rows bitmap marks row \(byte * 8 + j) of \(baseRows)") }
                kept.append(Int32(byte * 8 + j))
            }
        }
        try self.init(kept, baseRows: baseRows)
    }

    public static func bitmapBytes(_ baseRows: Int) -> Int { (baseRows + 7) / 8 }

    /// Kept rows per group of base rows (what `BitMatrix.pack` lays out).
    public static func groupSizes(_ kept: [Int32], baseRows: Int) -> [Int] {
        var sizes = [Int](repeating: 0, count: (baseRows + BitMatrix.groupRows - 1) / BitMatrix.groupRows)
        for r in kept { sizes[Int(r) / BitMatrix.groupRows] += 1 }
        return sizes
    }

    public static func bitmap(_ kept: [Int32], baseRows: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: bitmapBytes(baseRows))
        for r in kept { out[Int(r) / 8] |= 1 << UInt8(r % 8) }
        return out
    }

    deinit {
        rows.deallocate()
        groupStarts.deallocate()
        bits.deallocate()
    }
}
