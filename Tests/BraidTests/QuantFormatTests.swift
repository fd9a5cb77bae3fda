import Foundation
import Testing
import Braid

/// The 5-bit and K-quant formats and BF16: decoders against an independent implementation
/// (the `gguf` package's numpy dequantisers: scripts/reference/quant_blocks.py), products
/// against the scalar reference.
struct QuantFormatTests {
    struct Case: Decodable {
        let bytes: String
        let bits: [UInt32]
    }

    static let cases: [String: Case] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/quant_blocks.json")
        return (try? JSONDecoder().decode([String: Case].self, from: Data(contentsOf: url))) ?? [:]
    }()

    static let types: [GGMLType] = [.q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .bf16]

    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// Every element bit for bit as gguf's numpy decodes it (random codes, finite scales).
    @Test(arguments: types)
    func decoderEqualsGGUFPackage(type: GGMLType) throws {
        let c = try #require(Self.cases[type.name], "no reference blocks for \(type.name) (run scripts/reference/quant_blocks.py)")
        let raw = Self.bytes(c.bytes)
        #expect(raw.count == type.rowBytes(c.bits.count))
        let decoded = BlockCodec.decode(type, raw, count: c.bits.count)
        var mismatches = 0
        for (i, bits) in c.bits.enumerated() where decoded[i].bitPattern != bits {
            if mismatches < 5 { Issue.record("\(type.name) element \(i): \(decoded[i]) != \(Float(bitPattern: bits))") }
            mismatches += 1
        }
        #expect(mismatches == 0, "\(mismatches) of \(c.bits.count) elements differ")
    }

    /// y = W·x for 1…9 columns equals the decoded weights times the decoded 8-bit activations
    /// (BF16: times the float activations), on random blocks with finite scales.
    @Test(arguments: types)
    func multiplyMatchesScalarReference(type: GGMLType) throws {
        var rng = Xoshiro256(seed: UInt64(type.rawValue) + 101)
        let rows = 11, cols = 512
        // The reference blocks (random codes, finite scales) repeated, shifted per row.
        let c = try #require(Self.cases[type.name])
        let template = Self.bytes(c.bytes)
        let block = type.bytesPerBlock, available = template.count / block
        var raw: [UInt8] = []
        for b in 0..<rows * cols / type.blockSize {
            let src = (b * 5 + b / 7) % available * block
            raw += template[src..<src + block]
        }
        let decoded = BlockCodec.decode(type, raw, count: rows * cols)
        #expect(decoded.allSatisfy { $0.isFinite })
        // K-quants also with their Q8_K activations (what a model with K-quant matrices uses).
        for (n, superBlocks) in [(1, false), (2, false), (4, false), (5, false), (9, false), (1, true), (5, true)] {
            if superBlocks && type.blockSize != 256 { continue }
            let x = (0..<n * cols).map { _ in (rng.nextUnit() * 2 - 1) * 3 }
            let acts = QuantizedActivations(width: cols, capacity: n, superBlocks: superBlocks)
            var y = [Float](repeating: .nan, count: n * rows)
            raw.withUnsafeBytes { b in
                x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, columns: n) }
                let w = WeightMatrix(type: type, rows: rows, columns: cols, data: b.baseAddress!)
                y.withUnsafeMutableBufferPointer { w.multiply(acts, rows: 2..<rows, into: $0.baseAddress!, ldy: rows) }
                for col in 0..<n {
                    let xa = type.isFloat ? Array(x[col * cols..<(col + 1) * cols])
                        : superBlocks ? acts.dequantizedSuperBlocks(column: col) : acts.dequantized(column: col)
                    #expect(y[col * rows].isNaN && y[col * rows + 1].isNaN, "rows outside the range were written")
                    for r in 2..<rows {
                        var ref: Double = 0, magnitude: Double = 0
                        for j in 0..<cols {
                            ref += Double(decoded[r * cols + j]) * Double(xa[j])
                            magnitude += abs(Double(decoded[r * cols + j]) * Double(xa[j]))
                        }
                        let got = y[col * rows + r]
                        #expect(abs(Double(got) - ref) <= 1e-5 * max(1, magnitude), "\(type.name) n=\(n) c=\(col) r=\(r): \(got) vs \(ref)")
                        #expect(abs(Double(w.dot(r, acts, col)) - ref) <= 1e-5 * max(1, magnitude), "dot r=\(r)")
                    }
                }
            }
        }
    }
}
