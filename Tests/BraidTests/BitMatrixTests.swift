import Foundation
import Testing
import Braid

/// Packing and the 1-bit kernel against the dense product of α ⊙ S.
struct BitMatrixTests {
    @Test func packingRoundTrips() {
        var rng = Xoshiro256(seed: 4)
        let rows = 3, cols = 64
        let v = (0..<rows * cols).map { _ in rng.nextUnit() * 2 - 1 }
        let packed = v.withUnsafeBufferPointer { BitMatrix.pack($0.baseAddress!, rows: rows, columns: cols) }
        #expect(packed.count == rows * cols / 8)
        let scales: [Float] = [1, 1, 1]
        packed.withUnsafeBytes { p in
            scales.withUnsafeBufferPointer { s in
                let m = BitMatrix(rows: rows, columns: cols, signs: p.baseAddress!, scales: s.baseAddress!, perRowScales: true)
                for r in 0..<rows {
                    #expect(m.signs(row: r) == (0..<cols).map { v[r * cols + $0] >= 0 ? 1 : -1 })
                }
            }
        }
    }

    /// y += c·α⊙(S·x) for 1…9 columns (4-column tiles and the rest), per-row and per-matrix
    /// scales, equals the float product with S unpacked, on the same 8-bit activations.
    @Test(arguments: [true, false])
    func kernelEqualsDenseProduct(perRow: Bool) {
        var rng = Xoshiro256(seed: perRow ? 11 : 12)
        let rows = 17, cols = 160
        let v = (0..<rows * cols).map { _ in rng.nextUnit() * 2 - 1 }
        let packed = v.withUnsafeBufferPointer { BitMatrix.pack($0.baseAddress!, rows: rows, columns: cols) }
        let scales: [Float] = perRow ? (0..<rows).map { _ in rng.nextUnit() * 0.1 } : [0.05]
        for n in [1, 3, 4, 9] {
            let x = (0..<n * cols).map { _ in (rng.nextUnit() * 2 - 1) * 4 }
            let acts = QuantizedActivations(width: cols, capacity: n)
            x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, columns: n) }
            let start = (0..<n * rows).map { _ in rng.nextUnit() }
            var y = start
            let coefficients = (0..<n).map { Float($0 % 3) * 0.5 + 0.25 }
            packed.withUnsafeBytes { p in
                scales.withUnsafeBufferPointer { s in
                    let m = BitMatrix(rows: rows, columns: cols, signs: p.baseAddress!, scales: s.baseAddress!, perRowScales: perRow)
                    y.withUnsafeMutableBufferPointer {
                        DeltaMatrix.bits(m).addProduct(acts, columns: (0..<n).map { ($0, coefficients[$0]) }, rows: 0..<rows, into: $0.baseAddress!, ldy: rows)
                    }
                }
            }
            for c in 0..<n {
                let xa = acts.dequantized(column: c)
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
}
