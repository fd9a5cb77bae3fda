import Foundation
import Testing
import Braid

/// Packing, the lookup tables and the 1-bit kernel against the dense product of α ⊙ S.
struct BitMatrixTests {
    /// 45 rows: one full tile of 32 and a short one of 13.
    @Test func packingRoundTripsInTiles() {
        var rng = Xoshiro256(seed: 4)
        let rows = 45, cols = 64
        let v = (0..<rows * cols).map { _ in rng.nextUnit() * 2 - 1 }
        let packed = v.withUnsafeBufferPointer { BitMatrix.pack($0.baseAddress!, rows: rows, columns: cols) }
        #expect(packed.count == rows * cols / 8)
        // The documented layout: in a tile, byte k of each row in turn.
        func byte(_ r: Int, _ k: Int) -> UInt8 {
            (0..<8).reduce(UInt8(0)) { v[r * cols + 8 * k + $1] >= 0 ? $0 | 1 << UInt8($1) : $0 }
        }
        #expect(packed[3 * 32 + 5] == byte(5, 3))
        #expect(packed[32 * 8 + 2 * 13 + 7] == byte(39, 2))
        let scales = [Float](repeating: 1, count: rows)
        packed.withUnsafeBytes { p in
            scales.withUnsafeBufferPointer { s in
                let m = BitMatrix(rows: rows, columns: cols, signs: p.baseAddress!, scales: s.baseAddress!, perRowScales: true)
                for r in 0..<rows {
                    #expect(m.signs(storedRow: r) == (0..<cols).map { v[r * cols + $0] >= 0 ? 1 : -1 })
                }
            }
        }
    }

    /// Tables hold every ±q0 ±q1 ±q2 ±q3 of their group, and q·e is within half a step of x —
    /// also next to an outlier, which only coarsens its own block.
    @Test(arguments: [160, 192])
    func tablesQuantiseEachBlock(width: Int) {
        var rng = Xoshiro256(seed: UInt64(width))
        var x = (0..<width).map { _ in rng.nextUnit() * 2 - 1 }
        x[7] = 40
        let acts = QuantizedActivations(width: width, capacity: 1)
        // The activations keep a pointer to x: build the tables while it is in scope.
        x.withUnsafeBufferPointer {
            acts.quantize($0.baseAddress!, columns: 1)
            acts.buildSignTables()
        }
        let tables = acts.signTables
        #expect(tables.blockColumns == (width % 64 == 0 ? 64 : 32))
        let xq = tables.dequantized(column: 0)
        for i in 0..<width {
            let block = i / tables.blockColumns
            let step = (block * tables.blockColumns..<(block + 1) * tables.blockColumns).map { abs(x[$0]) }.max()! * 4 / 125
            #expect(abs(xq[i] - x[i]) <= step / 2 + 1e-5, "i=\(i)")
        }
        // Away from the outlier's block, values keep their detail.
        let far = width - 1
        #expect(abs(xq[far] - x[far]) < 0.02)
        for g in 0..<width / 4 {
            for p in 0..<16 {
                let entry = tables.entry(column: 0, group: g, index: p)
                let sum = (0..<4).reduce(Float(0)) { $0 + (p >> $1 & 1 == 1 ? 1 : -1) * xq[4 * g + $1] }
                let e = tables.scaleOf(column: 0, value: 4 * g)
                #expect(abs(Float(entry) * e - sum) <= 1e-4 * max(1, abs(sum)), "g=\(g) p=\(p)")
            }
        }
    }

    /// y += c·α⊙(S·x) for 1…5 columns, full tiles (vector kernel) and a short one (scalar), per-row
    /// and per-matrix scales, equals the float product with S unpacked on the tables' activations.
    @Test(arguments: [(true, 192), (false, 192), (true, 160)])
    func kernelEqualsDenseProduct(perRow: Bool, cols: Int) {
        var rng = Xoshiro256(seed: perRow ? 11 : 12)
        let rows = 77
        let v = (0..<rows * cols).map { _ in rng.nextUnit() * 2 - 1 }
        let packed = v.withUnsafeBufferPointer { BitMatrix.pack($0.baseAddress!, rows: rows, columns: cols) }
        let scales: [Float] = perRow ? (0..<rows).map { _ in rng.nextUnit() * 0.1 } : [0.05]
        for n in [1, 2, 5] {
            let x = (0..<n * cols).map { _ in (rng.nextUnit() * 2 - 1) * 4 }
            let acts = QuantizedActivations(width: cols, capacity: n)
            // The activations keep a pointer to x: build the tables while it is in scope.
            x.withUnsafeBufferPointer {
                acts.quantize($0.baseAddress!, columns: n)
                acts.buildSignTables()
            }
            let start = (0..<n * rows).map { _ in rng.nextUnit() }
            var y = start
            let coefficients = (0..<n).map { Float($0 % 3) * 0.5 + 0.25 }
            packed.withUnsafeBytes { p in
                scales.withUnsafeBufferPointer { s in
                    let m = BitMatrix(rows: rows, columns: cols, signs: p.baseAddress!, scales: s.baseAddress!, perRowScales: perRow)
                    y.withUnsafeMutableBufferPointer { yb in
                        // Two row ranges as the threads claim them: whole tiles, then the rest.
                        for range in [0..<64, 64..<rows] {
                            for c in 0..<n {
                                DeltaMatrix.bits(m).addProduct(acts, acts.signTables.view, column: c, coefficient: coefficients[c],
                                                               rows: range, into: yb.baseAddress!, ldy: rows)
                            }
                        }
                    }
                }
            }
            for c in 0..<n {
                let xa = acts.signTables.dequantized(column: c)
                for r in 0..<rows {
                    var dot: Double = 0
                    for j in 0..<cols { dot += (v[r * cols + j] >= 0 ? 1 : -1) * Double(xa[j]) }
                    let alpha = Double(perRow ? scales[r] : scales[0])
                    let expected = Double(start[c * rows + r]) + Double(coefficients[c]) * alpha * dot
                    #expect(abs(Double(y[c * rows + r]) - expected) <= 1e-4 * max(1, abs(expected)), "n=\(n) c=\(c) r=\(r)")
                }
            }
        }
    }

    /// A 200-row matrix keeping about half its rows (tiles restart at row 192, so there are
    /// short tiles in both groups): as the model calls it (a chunk of rows per thread), every
    /// kept row's term is added once, into its own base row, and dropped rows get nothing — with
    /// chunks of whole groups or not, on the 8-row grid (spread by permutes) or off it (row by
    /// row), with short tiles read by the vector kernel (`overreadSafe`) or row by row.
    @Test(arguments: [true, false])
    func keptRowsAddEachRowOnce(overreadSafe: Bool) throws {
        var rng = Xoshiro256(seed: 31)
        let rows = 200, cols = 128
        var keptList: [Int32] = []
        for r in 0..<rows where rng.nextUnit() < 0.55 || r == 199 { keptList.append(Int32(r)) }
        let kept = try RowIndex(keptList, baseRows: rows)
        let v = (0..<keptList.count * cols).map { _ in rng.nextUnit() * 2 - 1 }
        let groups = RowIndex.groupSizes(keptList, baseRows: rows)
        #expect(groups.count == 2 && groups.allSatisfy { $0 % 32 != 0 })
        let packed = v.withUnsafeBufferPointer { BitMatrix.pack($0.baseAddress!, rows: keptList.count, columns: cols, groupSizes: groups) }
            + [UInt8](repeating: 0xA5, count: 32)
        let scales = keptList.map { _ in 0.05 + rng.nextUnit() * 0.1 }
        let x = (0..<cols).map { _ in (rng.nextUnit() * 2 - 1) * 4 }
        let acts = QuantizedActivations(width: cols, capacity: 1)
        // The activations keep a pointer to x: build the tables while it is in scope.
        x.withUnsafeBufferPointer {
            acts.quantize($0.baseAddress!, columns: 1)
            acts.buildSignTables()
        }
        let xa = acts.signTables.dequantized(column: 0)
        for chunks in [[0..<rows], [0..<192, 192..<rows], [0..<96, 96..<rows], [0..<100, 100..<136, 136..<rows]] {
            var y = [Float](repeating: 1, count: rows)
            packed.withUnsafeBytes { p in
                scales.withUnsafeBufferPointer { s in
                    let m = BitMatrix(rows: rows, columns: cols, signs: p.baseAddress!, scales: s.baseAddress!, perRowScales: true,
                                      kept: kept, overreadSafe: overreadSafe)
                    #expect(m.byteCount == keptList.count * (cols / 8 + 4) + 25)
                    for k in keptList.indices {
                        #expect(m.signs(storedRow: k) == (0..<cols).map { v[k * cols + $0] >= 0 ? 1 : -1 }, "stored row \(k)")
                    }
                    y.withUnsafeMutableBufferPointer { yb in
                        for chunk in chunks {
                            DeltaMatrix.bits(m).addProduct(acts, acts.signTables.view, column: 0, coefficient: 0.5,
                                                           rows: chunk, into: yb.baseAddress!, ldy: rows)
                        }
                    }
                    for r in 0..<rows {
                        let k = keptList.firstIndex(of: Int32(r))
                        #expect(m.storedIndex(ofRow: r) == k)
                        var dot: Double = 0
                        if let k { for j in 0..<cols { dot += (v[k * cols + j] >= 0 ? 1 : -1) * Double(xa[j]) } }
                        let expected = 1 + 0.5 * Double(k.map { scales[$0] } ?? 0) * dot
                        #expect(abs(Double(y[r]) - expected) <= 1e-4 * max(1, abs(expected)), "r=\(r) chunks=\(chunks)")
                    }
                }
            }
        }
    }

    @Test func keptRowsMustRiseWithinTheMatrix() {
        #expect(errorText { _ = try RowIndex([3, 2], baseRows: 8) } == "kept rows must rise strictly within 0..<8 (found 2 after 3)")
        #expect(errorText { _ = try RowIndex([1, 1], baseRows: 8) } == "kept rows must rise strictly within 0..<8 (found 1 after 1)")
        #expect(errorText { _ = try RowIndex([0, 8], baseRows: 8) } == "kept rows must rise strictly within 0..<8 (found 8 after 0)")
        #expect(errorText { _ = try RowIndex([-1], baseRows: 8) } == "kept rows must rise strictly within 0..<8 (found -1 after -1)")
        // A bitmap marking a row past the matrix (10 rows, bit 12 set).
        let bitmap: [UInt8] = [0b0000_0101, 0b0001_0000]
        #expect(errorText { _ = try bitmap.withUnsafeBytes { try RowIndex(bitmap: $0.baseAddress!, baseRows: 10) } } == "kept-rows bitmap marks row 12 of 10")
        let index = try? bitmap.withUnsafeBytes { try RowIndex(bitmap: $0.baseAddress!, baseRows: 13) }
        #expect(index.map { Array(UnsafeBufferPointer(start: $0.rows, count: $0.count)) } == [0, 2, 12])
        #expect(RowIndex.bitmap([0, 2, 12], baseRows: 13) == bitmap)
    }
}
