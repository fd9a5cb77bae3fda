import Foundation
import Testing
import Braid

/// The repacked 8-row kernels against the row-major ones on every quantised matrix of real
/// files (the tiny Llama 3 and Qwen2 fixtures, and Gemma 3 where it is present), with
/// activations shaped like hidden states (a few large outliers): each output within a small
/// multiple of float rounding of the row-major product, relative to that output's own scale.
struct RealTensorKernelTests {
    static let fixtures = Fixtures.root.appendingPathComponent("Tests/BraidIntegrationTests/Fixtures")

    static var files: [String] {
        var paths = ["tiny-llama3.gguf", "tiny-qwen2.gguf"].map { fixtures.appendingPathComponent($0).path }
        if Fixtures.haveGemma3 { paths.append(Fixtures.gemma3Path) }
        return paths
    }

    @Test(arguments: files)
    func repackedMatricesMatchRowMajor(path: String) throws {
        #if AVX2
        let file = try GGUFFile(path: path)
        var rng = Xoshiro256(seed: 5)
        var checked = 0
        for t in file.tensorList where t.shape.count == 2 && t.rows % 8 == 0 && !t.type.isFloat {
            let plain = WeightMatrix(type: t.type, rows: t.rows, columns: t.columns, data: file.data(t))
            let storage = PackedWeightStorage()
            let packed = plain.withInterleavedRows(storage)
            guard packed.rowGroups != nil else { continue }
            let n = 3, cols = t.columns
            var x = (0..<n * cols).map { _ in Float(rng.nextUnit() * 2 - 1) }
            for _ in 0..<n * 2 { x[Int(rng.next() % UInt64(x.count))] *= 40 }
            let acts = QuantizedActivations(width: cols, capacity: n, superBlocks: cols % 256 == 0)
            x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, columns: n) }
            // Rows of the largest matrices sampled: the first 512.
            let rows = min(t.rows, 512)
            var want = [Float](repeating: .nan, count: n * rows), got = want
            want.withUnsafeMutableBufferPointer { plain.multiply(acts, rows: 0..<rows, into: $0.baseAddress!, ldy: rows) }
            got.withUnsafeMutableBufferPointer { packed.multiply(acts, rows: 0..<rows, into: $0.baseAddress!, ldy: rows) }
            // |w|·|x| bounds each product's rounding; use the row's decoded magnitude.
            var row = [Float](repeating: 0, count: cols)
            var worst: Double = 0
            for r in 0..<rows {
                row.withUnsafeMutableBufferPointer { plain.decodeRow(r, into: $0.baseAddress!) }
                for c in 0..<n {
                    var bound: Double = 0
                    for j in 0..<cols { bound += Double(abs(row[j]) * abs(x[c * cols + j])) }
                    let diff = Double(abs(got[c * rows + r] - want[c * rows + r]))
                    worst = max(worst, diff / max(bound, 1e-30))
                }
            }
            #expect(worst < 1e-5, "\(t.name) (\(t.type.name)): difference \(worst) of Σ|w·x|")
            checked += 1
        }
        print("\(path): \(checked) repacked matrices checked")
        #expect(checked > 0)
        #endif
    }
}
