import Foundation
import Testing
import Braid

/// Every encoding's fast product against the scalar reference on random blocks.
struct KernelTests {
    func randomFloats(_ n: Int, _ rng: inout Xoshiro256, scale: Float = 1) -> [Float] {
        (0..<n).map { _ in (rng.nextUnit() * 2 - 1) * scale }
    }

    @Test(arguments: BlockCodec.encodable.sorted { $0.rawValue < $1.rawValue })
    func encodeDecodeErrorIsBounded(type: GGMLType) {
        var rng = Xoshiro256(seed: 1)
        let x = randomFloats(32 * 16, &rng)
        let y = BlockCodec.decode(type, BlockCodec.encode(type, x), count: x.count)
        let bound: Float = switch type {
        case .f32: 0
        case .f16: 1e-3
        case .bf16: 1.0 / 128
        case .q8_0: 1.0 / 127
        case .q4_0, .q4_1: 1.0 / 7.5
        case .i8: 0.5
        default: 0
        }
        for i in x.indices { #expect(abs(x[i] - y[i]) <= bound * 1.01, "\(type) element \(i)") }
    }

    /// y = W·x for 1…9 columns (exercising the 4-column tile and the remainder) equals the
    /// dot products of the decoded weights with the decoded 8-bit activations.
    @Test(arguments: BlockCodec.encodable.sorted { $0.rawValue < $1.rawValue })
    func multiplyMatchesScalarReference(type: GGMLType) {
        var rng = Xoshiro256(seed: UInt64(type.rawValue) + 3)
        let rows = 13, cols = 96
        let wf = randomFloats(rows * cols, &rng)
        let bytes = BlockCodec.encode(type, wf)
        let decoded = BlockCodec.decode(type, bytes, count: wf.count)
        for n in [1, 2, 4, 5, 9] {
            let x = randomFloats(n * cols, &rng, scale: 3)
            let acts = QuantizedActivations(width: cols, capacity: n)
            var y = [Float](repeating: .nan, count: n * rows)
            bytes.withUnsafeBytes { b in
                x.withUnsafeBufferPointer { xp in
                    acts.quantize(xp.baseAddress!, columns: n)
                    let w = WeightMatrix(type: type, rows: rows, columns: cols, data: b.baseAddress!)
                    y.withUnsafeMutableBufferPointer { w.multiply(acts, rows: 0..<rows, into: $0.baseAddress!, ldy: rows) }
                }
            }
            for c in 0..<n {
                // Quantised weights meet 8-bit activations; float weights meet the floats.
                let xa = type.isFloat ? Array(x[c * cols..<(c + 1) * cols]) : acts.dequantized(column: c)
                for r in 0..<rows {
                    var ref: Double = 0
                    for j in 0..<cols { ref += Double(decoded[r * cols + j]) * Double(xa[j]) }
                    var tolerance = 1e-3 * max(1, abs(ref))
                    if type == .q4_1 {
                        // llama.cpp's Q8_1 keeps d·Σq in fp16, so the m term carries one fp16
                        // rounding of the block sum.
                        for b in 0..<cols / 32 {
                            let block = (r * cols / 32 + b) * 20
                            let m = Float(Float16(bitPattern: UInt16(bytes[block + 2]) | UInt16(bytes[block + 3]) << 8))
                            let sum = xa[b * 32..<(b + 1) * 32].reduce(0, +)
                            tolerance += Double(abs(m) * abs(sum)) / 1024
                        }
                    }
                    #expect(abs(Double(y[c * rows + r]) - ref) <= tolerance, "\(type) n=\(n) c=\(c) r=\(r)")
                }
            }
        }
    }

    /// Every encoding with an 8-row repacking.
    static let interleavedTypes: [GGMLType] = [.q4_1, .q4_0, .q8_0, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K]

    /// The 8-row interleaved kernel gives the row-major kernel's products (same integer sums,
    /// float rounding aside) for every column count and for row ranges on and off its groups,
    /// with K-quants against both kinds of activations; a dense delta adds coefficient × the
    /// same product. Both ways of summing byte products (AVX2's maddubs, AVX-VNNI's vpdpbusd
    /// where the CPU has it).
    @Test(arguments: interleavedTypes)
    func interleavedRowsMatchRowMajorWithMaddubs(type: GGMLType) throws {
        try checkInterleavedRows(type: type, dot: .maddubs)
    }

    /// The same with AVX-VNNI; reported as skipped (not passed) on a CPU without it.
    @Test(.enabled(if: ByteDotKind.isAvailable(.vnni), "this CPU has no AVX-VNNI"), arguments: interleavedTypes)
    func interleavedRowsMatchRowMajorWithVNNI(type: GGMLType) throws {
        try checkInterleavedRows(type: type, dot: .vnni)
    }

    /// Random blocks of `type`: encoded random floats where braid has an encoder, otherwise
    /// random bytes (every code and integer scale) with small finite fp16 scales.
    func randomMatrixBytes(_ type: GGMLType, rows: Int, columns: Int, _ rng: inout Xoshiro256) -> [UInt8] {
        if BlockCodec.encodable.contains(type) { return BlockCodec.encode(type, randomFloats(rows * columns, &rng)) }
        var bytes = (0..<type.rowBytes(columns) * rows).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let halfOffsets: [Int] = switch type {
        case .q6_K: [208]
        case .q5_1, .q4_K, .q5_K: [0, 2]
        default: [0]
        }
        for b in 0..<bytes.count / type.bytesPerBlock {
            for o in halfOffsets {
                let h = Float16(Float.random(in: 0.001...0.02, using: &rng)).bitPattern
                bytes[b * type.bytesPerBlock + o] = UInt8(h & 0xFF)
                bytes[b * type.bytesPerBlock + o + 1] = UInt8(h >> 8)
            }
        }
        return bytes
    }

    func checkInterleavedRows(type: GGMLType, dot: ByteDotKind) throws {
        #if AVX2
        var rng = Xoshiro256(seed: UInt64(type.rawValue) + 11)
        let rows = 40, cols = type.blockSize == 256 ? 512 : 96
        let bytes = randomMatrixBytes(type, rows: rows, columns: cols, &rng)
        let storage = PackedWeightStorage()
        try bytes.withUnsafeBytes { b in
            let plain = WeightMatrix(type: type, rows: rows, columns: cols, data: b.baseAddress!)
            var groups = try #require(plain.withInterleavedRows(storage).rowGroups, "\(type) has no repacking")
            groups.dot = dot
            let packed = WeightMatrix(type: type, rows: rows, columns: cols, data: b.baseAddress!, rowGroups: groups)
            #expect(plain.rowGroups == nil)
            #expect((packed.interleaved != nil) == (type == .q4_1 || type == .q4_0))
            for (n, superBlocks) in [(1, false), (2, false), (3, false), (4, false), (5, false), (9, false), (1, true), (6, true)] {
                if superBlocks && type.blockSize != 256 { continue }
                let x = randomFloats(n * cols, &rng, scale: 3)
                let acts = QuantizedActivations(width: cols, capacity: n, superBlocks: superBlocks)
                x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, columns: n) }
                var expected = [Float](repeating: .nan, count: n * rows)
                expected.withUnsafeMutableBufferPointer { plain.multiply(acts, rows: 0..<rows, into: $0.baseAddress!, ldy: rows) }
                let magnitude = expected.map(abs).max()!
                for range in [0..<rows, 3..<37, 8..<16, 5..<7, 16..<40] {
                    var y = [Float](repeating: .nan, count: n * rows)
                    y.withUnsafeMutableBufferPointer { packed.multiply(acts, rows: range, into: $0.baseAddress!, ldy: rows) }
                    for c in 0..<n {
                        for r in 0..<rows {
                            let got = y[c * rows + r], want = expected[c * rows + r]
                            if range.contains(r) {
                                // Sums in another order: relative to the products' size.
                                #expect(abs(got - want) <= 1e-5 * max(1, abs(want), magnitude), "\(type) n=\(n) \(range) c=\(c) r=\(r): \(got) vs \(want)")
                            } else {
                                #expect(got.isNaN, "row \(r) outside \(range) was written")
                            }
                        }
                    }
                }
                if case .q8 = groups {
                    // A repacked Q8_0 matrix (a tied embedding) decodes its rows as the original does.
                    var a = [Float](repeating: 0, count: cols), b = a
                    for r in [0, 13, 39] {
                        a.withUnsafeMutableBufferPointer { plain.decodeRow(r, into: $0.baseAddress!) }
                        b.withUnsafeMutableBufferPointer { packed.decodeRow(r, into: $0.baseAddress!) }
                        #expect(a == b, "row \(r)")
                    }
                }
                guard let kernel = packed.interleaved else { continue }
                let c = n - 1
                var y = [Float](repeating: 1, count: n * rows)
                y.withUnsafeMutableBufferPointer { kernel.addProduct(acts, column: c, coefficient: 0.5, groups: 1..<4, into: $0.baseAddress!, ldy: rows) }
                for r in 0..<rows {
                    let want: Float = (8..<32).contains(r) ? 1 + 0.5 * expected[c * rows + r] : 1
                    #expect(abs(y[c * rows + r] - want) <= 1e-5 * max(1, abs(want)), "addProduct r=\(r)")
                }
            }
        }
        #endif
    }

    /// GEGLU through the fp16 table equals the tanh formula evaluated per element (every fp16
    /// input in (−10, 10), and the clamps outside).
    @Test func gegluTableEqualsTheFormula() {
        var inputs: [Float] = [-12, -10, 10, 11.5, 1e4, -1e4]
        for bits in 0..<UInt16.max {
            let x = Float(Float16(bitPattern: bits))
            if x.isFinite, abs(x) < 10 { inputs.append(x) }
        }
        var gate = inputs
        let up = [Float](repeating: 1, count: inputs.count)
        gate.withUnsafeMutableBufferPointer { g in up.withUnsafeBufferPointer { Ops.geglu(g.baseAddress!, $0.baseAddress!, count: inputs.count) } }
        var mismatches = 0
        for (i, x) in inputs.enumerated() {
            let want: Float
            if x <= -10 { want = 0 } else if x >= 10 { want = x } else {
                let inner: Float = 0.797_884_560_802_865_4 * x * (1 + 0.044715 * x * x)
                want = Float(Float16(0.5 * x * (1 + tanhf(inner))))
            }
            if gate[i].bitPattern != want.bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(inputs.count > 30_000)
    }

    /// The repacked kernels at a real projection's shape (Gemma 3's ffn_up: 2,048 rows of 640;
    /// ffn_down: 640 rows of 2,048) with activations that have a few large outliers, as real
    /// hidden states do: one column (decode) and 64 (prefill) equal the row-major products.
    @Test(arguments: [GGMLType.q5_0, .q4_K, .q6_K, .q8_0])
    func interleavedRowsMatchAtModelShapes(type: GGMLType) throws {
        #if AVX2
        var rng = Xoshiro256(seed: UInt64(type.rawValue) + 77)
        let (rows, cols) = type.blockSize == 256 ? (640, 2048) : (2048, 640)
        let bytes = randomMatrixBytes(type, rows: rows, columns: cols, &rng)
        let storage = PackedWeightStorage()
        try bytes.withUnsafeBytes { b in
            let plain = WeightMatrix(type: type, rows: rows, columns: cols, data: b.baseAddress!)
            let packed = plain.withInterleavedRows(storage)
            try #require(packed.rowGroups != nil)
            for n in [1, 64] {
                var x = randomFloats(n * cols, &rng)
                for _ in 0..<n * 4 { x[Int.random(in: 0..<x.count, using: &rng)] *= 300 }
                let acts = QuantizedActivations(width: cols, capacity: n, superBlocks: type.blockSize == 256)
                x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, columns: n) }
                var want = [Float](repeating: .nan, count: n * rows), got = want
                want.withUnsafeMutableBufferPointer { plain.multiply(acts, rows: 0..<rows, into: $0.baseAddress!, ldy: rows) }
                got.withUnsafeMutableBufferPointer { packed.multiply(acts, rows: 0..<rows, into: $0.baseAddress!, ldy: rows) }
                var worst: Float = 0, scale: Float = 0
                for i in 0..<n * rows {
                    worst = max(worst, abs(got[i] - want[i]))
                    scale = max(scale, abs(want[i]))
                }
                print("\(type.name) n=\(n): largest difference \(worst), largest product \(scale)")
                #expect(worst <= 1e-5 * scale, "\(type.name) n=\(n)")
            }
        }
        #endif
    }

    @Test func activationQuantizationIsRoundToNearest() {
        var rng = Xoshiro256(seed: 9)
        let x = randomFloats(64, &rng, scale: 5)
        let acts = QuantizedActivations(width: 64, capacity: 1)
        x.withUnsafeBufferPointer { acts.quantize($0.baseAddress!, columns: 1) }
        let back = acts.dequantized(column: 0)
        for b in 0..<2 {
            let amax = x[b * 32..<(b + 1) * 32].map(abs).max()!
            for j in b * 32..<(b + 1) * 32 { #expect(abs(back[j] - x[j]) <= amax / 127 * 0.51 + 1e-3 * amax) }
        }
    }

    @Test func threadPoolRunsEverySliceOnce() {
        let pool = ThreadPool(threads: 3)
        let n = 1000
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: n)
        hits.initialize(repeating: 0, count: n)
        defer { hits.deallocate() }
        for _ in 0..<50 {
            pool.run { t in
                for i in ThreadPool.slice(n, t, pool.threadCount) { hits[i] += 1 }
            }
        }
        #expect((0..<n).allSatisfy { hits[$0] == 50 })
    }

    @Test func ropeRotatesAdjacentPairs() {
        var v: [Float] = [1, 0, 0, 1]
        v.withUnsafeMutableBufferPointer { Ops.rope($0.baseAddress!, heads: 1, headDim: 4, ropeDims: 4, position: 1, base: 10_000) }
        #expect(abs(v[0] - cosf(1)) < 1e-6 && abs(v[1] - sinf(1)) < 1e-6)
        // second pair angle = 1 · 10000^(-2/4) = 0.01
        #expect(abs(v[2] + sinf(0.01)) < 1e-6 && abs(v[3] - cosf(0.01)) < 1e-6)
    }
}
