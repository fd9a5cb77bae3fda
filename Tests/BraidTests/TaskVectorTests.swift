import Foundation
import Testing
import Braid

/// Compression, the file format's checks and fitted scales, on tiny random models.
struct TaskVectorTests {
    func compressTiny(baseSeed: UInt64 = 1, tunedSeed: UInt64 = 9, sha: String = "base-sha",
                      options: CompressionOptions = CompressionOptions(), architecture: String = "llama") throws -> (LlamaModel, String) {
        let base = try LlamaModel(path: try TinyModel.write(seed: baseSeed, architecture: architecture), threads: 1)
        let tuned = try TinyModel.write(seed: tunedSeed, architecture: architecture)
        let source = try DeltaSource.fineTunedGGUF(tuned, base: base)
        let writer = try Compressor.compress(source, base: base, baseSHA256: sha, task: "tiny", description: "a test", options: options)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-tv-\(UUID().uuidString).tv.gguf").path
        try writer.write(to: path)
        return (base, path)
    }

    @Test(arguments: TinyModel.architectures)
    func compressedVectorLoadsWithEveryMatrixAsBits(architecture: String) throws {
        let (base, path) = try compressTiny(architecture: architecture)
        let tv = try TaskVector(path: path, base: base, baseSHA256: "base-sha")
        #expect(tv.name == "tiny" && tv.description == "a test")
        #expect(tv.matrices.allSatisfy { $0.allSatisfy { if case .bits = $0 { true } else { false } } })
        // A delta for every norm and bias of every block (Gemma's six norms, Qwen2's two and three
        // biases, Llama's two norms) and the output norm.
        #expect(tv.outputNorm != nil)
        for (l, layer) in base.weights.layers.enumerated() {
            #expect(Set(tv.vectors[l].keys) == Set(layer.vectors.kinds), "block \(l)")
        }
        #expect(base.weights.layers[0].vectors.kinds.count == ["llama": 2, "qwen2": 5, "gemma3": 6][architecture])
        // 1 bit per weight plus an fp16 scale per row.
        for m in tv.matrices.joined() {
            #expect(m!.byteCount == m!.rows * m!.columns / 8 + m!.rows * 2)
        }
    }

    /// `rowDensity` 0.5 keeps, per matrix, the half of the rows with the largest mean |Δ_r| (the
    /// error their 1-bit term removes is n·α_r²); the others decode as zero.
    @Test func rowDensityKeepsTheRowsThatMatterMost() throws {
        var options = CompressionOptions()
        options.rowDensity = 0.5
        let (base, path) = try compressTiny(options: options)
        let tv = try TaskVector(path: path, base: base, baseSHA256: "base-sha")
        let source = try DeltaSource.fineTunedGGUF(try TinyModel.write(seed: 9), base: base)
        #expect(try GGUFFile(path: path).string("braid.task_vector.fidelity") == "1bit-row rows:0.5")
        for (l, layer) in base.weights.layers.enumerated() {
            for (k, (kind, w)) in layer.matrices.enumerated() {
                guard case .bits(let m) = tv.matrices[l][k]! else { Issue.record("\(kind) not 1-bit"); continue }
                #expect(m.storedRows == w.rows / 2)
                #expect(m.byteCount == w.rows / 2 * (w.columns / 8 + 2) + w.rows / 8)
                let delta = try source.delta("blk.\(l).\(kind).weight")!
                let meanAbs = Compressor.meanAbsoluteRows(delta, rows: w.rows, columns: w.columns)
                let threshold = meanAbs.sorted(by: >)[w.rows / 2 - 1]
                var row = [Float](repeating: 9, count: w.columns)
                for r in 0..<w.rows {
                    tv.matrices[l][k]!.decodeRow(r, into: &row)
                    if meanAbs[r] >= threshold {
                        let alpha = Float(Float16(meanAbs[r]))  // stored as fp16
                        #expect(row.map(abs) == [Float](repeating: alpha, count: w.columns), "\(kind) row \(r)")
                    } else {
                        #expect(row.allSatisfy { $0 == 0 }, "\(kind) row \(r)")
                    }
                }
            }
        }
    }

    @Test func vectorForAnotherBaseIsRefused() throws {
        let (base, path) = try compressTiny(sha: "some-other-base")
        #expect(errorText { _ = try TaskVector(path: path, base: base, baseSHA256: "base-sha") }.hasSuffix(".tv.gguf was made for another base model (base sha256 some-other-b…, the loaded base is base-sha…)"))
        // Same file, a base of another shape: refused on shapes even without a hash.
        var w = GGUFWriter()
        let other = try GGUFFile(path: try TinyModel.write())
        for k in other.metadataKeys { w.set(k, other.metadata[k]!) }
        w.set("llama.feed_forward_length", .uint32(96))
        for t in other.tensorList {
            var shape = t.shape
            var type = t.type
            var data = Data(bytes: other.data(t), count: t.byteCount)
            if t.name.contains("ffn_gate") || t.name.contains("ffn_up") { shape = [shape[0], 96] }
            if t.name.contains("ffn_down") { shape = [96, shape[1]] }
            if shape != t.shape {
                type = .f32
                data = Data(count: shape.reduce(1, *) * 4)
            }
            try w.addTensor(t.name, shape: shape, type: type, data: data)
        }
        let otherPath = FileManager.default.temporaryDirectory.appendingPathComponent("braid-other-\(UUID().uuidString).gguf").path
        try w.write(to: otherPath)
        let otherModel = try LlamaModel(path: otherPath, threads: 1)
        #expect(errorText { _ = try TaskVector(path: path, base: otherModel, baseSHA256: nil) } == "tensor blk.0.ffn_gate.weight.signs has shape [8, 128], expected [8, 96]")
    }

    /// Version 1 stored the signs row by row; reading it as tiles would be silently wrong.
    @Test func olderFormatIsRefused() throws {
        let (base, path) = try compressTiny()
        let file = try GGUFFile(path: path)
        var w = GGUFWriter()
        for k in file.metadataKeys { w.set(k, file.metadata[k]!) }
        w.set("braid.task_vector.version", .uint32(1))
        for t in file.tensorList { try w.addTensor(t.name, shape: t.shape, type: t.type, data: Data(bytes: file.data(t), count: t.byteCount)) }
        let old = path.replacingOccurrences(of: ".tv.gguf", with: ".v1.tv.gguf")
        try w.write(to: old)
        #expect {
            _ = try TaskVector(path: old, base: base, baseSHA256: "base-sha")
        } throws: { "\($0)".contains("format version 1") }
    }

    /// Serving the vector of a fine-tune (the base plus 20 % noise) moves the logits toward the
    /// fine-tune's; coefficient 0 is the base.
    @Test(arguments: TinyModel.architectures)
    func servingMovesTowardTheFineTune(architecture: String) throws {
        let base = try LlamaModel(path: try TinyModel.write(seed: 1, architecture: architecture), threads: 1)
        let tunedPath = try TinyModel.write(seed: 9, architecture: architecture, fineTuneOf: 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-tv-\(UUID().uuidString).tv.gguf").path
        try Compressor.compress(try DeltaSource.fineTunedGGUF(tunedPath, base: base), base: base, baseSHA256: "base-sha", task: "tiny",
                                description: "", options: CompressionOptions()).write(to: path)
        let tv = try TaskVector(path: path, base: base, baseSHA256: "base-sha")
        let tuned = try LlamaModel(path: tunedPath, threads: 1)
        let tokens: [Int32] = [5, 9, 33, 2, 71]
        func logits(_ m: LlamaModel, _ r: Route) throws -> [Float] { Array(try m.prefill(tokens, cache: m.makeCache(capacity: 16), route: r)) }
        let b = try logits(base, .base), t = try logits(tuned, .base)
        let v = try logits(base, Route([(tv, 1)]))
        let zero = try logits(base, Route([(tv, 0)]))
        #expect(zero == b)
        func dist(_ x: [Float], _ y: [Float]) -> Float { zip(x, y).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) }
        #expect(dist(v, t) < dist(b, t))
    }

    /// A fine-tune that changed only norm weights and biases (every kind the architecture has)
    /// is served exactly: their deltas are kept in float, so base + vector is the tuned model.
    @Test(arguments: TinyModel.architectures)
    func normOnlyFineTuneIsServedExactly(architecture: String) throws {
        let basePath = try TinyModel.write(seed: 1, architecture: architecture)
        let base = try LlamaModel(path: basePath, threads: 1)
        let file = try GGUFFile(path: basePath)
        var w = GGUFWriter()
        for k in file.metadataKeys { w.set(k, file.metadata[k]!) }
        var changed = 0
        for t in file.tensorList {
            var data = Data(bytes: file.data(t), count: t.byteCount)
            if t.name.hasSuffix("norm.weight") || t.name.hasSuffix(".bias") {
                var values = [Float](repeating: 0, count: t.elementCount)
                values.withUnsafeMutableBufferPointer { BlockCodec.decode(t.type, file.data(t), into: $0.baseAddress!, count: t.elementCount) }
                data = Data(BlockCodec.encode(.f32, values.enumerated().map { $1 + 0.25 * sin(Float($0 + changed)) }))
                changed += 1
                try w.addTensor(t.name, shape: t.shape, type: .f32, data: data)
            } else {
                try w.addTensor(t.name, shape: t.shape, type: t.type, data: data)
            }
        }
        #expect(changed == 1 + base.config.blockCount * base.weights.layers[0].vectors.kinds.count)
        let tunedPath = FileManager.default.temporaryDirectory.appendingPathComponent("braid-norms-\(UUID().uuidString).gguf").path
        try w.write(to: tunedPath)
        let source = try DeltaSource.fineTunedGGUF(tunedPath, base: base)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-norms-\(UUID().uuidString).tv.gguf").path
        try Compressor.compress(source, base: base, baseSHA256: "s", task: "norms", description: "", options: CompressionOptions()).write(to: path)
        let tv = try TaskVector(path: path, base: base, baseSHA256: "s")
        let tuned = try LlamaModel(path: tunedPath, threads: 1)
        let tokens: [Int32] = [5, 9, 33, 2, 71, 14, 60]
        let served = Array(try base.prefill(tokens, cache: base.makeCache(capacity: 16), route: Route([(tv, 1)])))
        let want = Array(try tuned.prefill(tokens, cache: tuned.makeCache(capacity: 16)))
        let plain = Array(try base.prefill(tokens, cache: base.makeCache(capacity: 16)))
        #expect(zip(served, want).allSatisfy { abs($0 - $1) < 1e-3 })
        #expect(zip(plain, want).contains { abs($0 - $1) > 0.05 })
    }

    /// Least-squares row scales never do worse than mean |Δ| on the layer outputs they were fitted to.
    @Test func fittedScalesReduceTheLayerError() {
        var rng = Xoshiro256(seed: 21)
        let rows = 8, cols = 32, samples = 200
        let delta = (0..<rows * cols).map { _ in (rng.nextUnit() * 2 - 1) * 0.01 }
        // Inputs with uneven per-column energy, as real activations have.
        let energy = (0..<cols).map { _ in 0.1 + 3 * rng.nextUnit() }
        let x = (0..<samples * cols).map { i in (rng.nextUnit() * 2 - 1) * energy[i % cols] }
        var gram = [Float](repeating: 0, count: cols * cols)
        for s in 0..<samples { for i in 0..<cols { for j in 0..<cols { gram[i * cols + j] += x[s * cols + i] * x[s * cols + j] } } }
        let fitted = ScaleFitter.fitRows(delta: delta, rows: rows, columns: cols, gram: gram).scales
        let mean = Compressor.meanAbsoluteRows(delta, rows: rows, columns: cols)
        func error(_ alpha: [Float]) -> Double {
            var e: Double = 0
            for s in 0..<samples {
                for r in 0..<rows {
                    var d: Double = 0
                    for j in 0..<cols {
                        let approx = alpha[r] * (delta[r * cols + j] >= 0 ? 1 : -1)
                        d += Double((delta[r * cols + j] - approx) * x[s * cols + j])
                    }
                    e += d * d
                }
            }
            return e
        }
        #expect(error(fitted) < error(mean))
    }

    @Test func badCompressOptionsAreRefused() throws {
        let base = try LlamaModel(path: try TinyModel.write(), threads: 1)
        let source = try DeltaSource.fineTunedGGUF(try TinyModel.write(seed: 3), base: base)
        var o = CompressionOptions()
        o.denseKinds = ["attn_zz"]
        #expect(errorText { _ = try Compressor.compress(source, base: base, baseSHA256: "x", task: "t", description: "", options: o) } == #"unknown matrix kinds ["attn_zz"] (known: attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down)"#)
        #expect(errorText { _ = try Compressor.compress(source, base: base, baseSHA256: "x", task: "bad name!", description: "", options: CompressionOptions()) } == #"task name "bad name!" must be letters, digits, - or _"#)
    }
}

/// The base's digest is remembered on disk by path, size, inode and time, and read back.
struct BaseIdentityTests {
    @Test func digestIsRememberedAndRenewedWhenTheFileChanges() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("braid-sha-\(UUID().uuidString)")
        let file = dir.appendingPathComponent("base.gguf")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        func digest(_ contents: [UInt8], cache: URL) throws -> String {
            try Data(contents).write(to: file)
            return try contents.withUnsafeBytes { try BaseIdentity.sha256(ofFile: file.path, bytes: $0, cacheDirectory: cache) }
        }
        let cache = dir.appendingPathComponent("cache")
        let a: [UInt8] = Array("first contents".utf8)
        #expect(try digest(a, cache: cache) == SHA256.hex(a))
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).count == 1)
        // Other contents (another size and time): hashed again, not taken from the cache.
        let b: [UInt8] = Array("the second, longer contents".utf8)
        #expect(try digest(b, cache: cache) == SHA256.hex(b))
        // A digest already on disk for this very file is what a new process reads.
        let c: [UInt8] = Array("third".utf8)
        try Data(c).write(to: file)
        let other = dir.appendingPathComponent("other-cache")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        let key = try BaseIdentity.fileKey(file.path)
        try String(repeating: "ab", count: 32).write(to: other.appendingPathComponent(SHA256.hex(Array(key.utf8))), atomically: true, encoding: .utf8)
        #expect(try c.withUnsafeBytes { try BaseIdentity.sha256(ofFile: file.path, bytes: $0, cacheDirectory: other) } == String(repeating: "ab", count: 32))
    }
}

/// Materialised weights (W0 + c·D built once) agree with the on-the-fly product.
struct MaterializedTests {
    /// Also for a vector keeping 60 % of its rows: the threads' chunks split its tiles of kept rows.
    @Test(arguments: [(GGMLType.f32, 1.0), (.q8_0, 1.0), (.f32, 0.6)], TinyModel.architectures)
    func materializedMatchesOnTheFly(type: (GGMLType, Double), architecture: String) throws {
        let (type, rowDensity) = type
        let base = try LlamaModel(path: try TinyModel.write(seed: 1, architecture: architecture), threads: 2)
        let source = try DeltaSource.fineTunedGGUF(try TinyModel.write(seed: 9, architecture: architecture), base: base)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-mat-\(UUID().uuidString).tv.gguf").path
        var options = CompressionOptions()
        options.rowDensity = rowDensity
        try Compressor.compress(source, base: base, baseSHA256: "s", task: "t", description: "", options: options).write(to: path)
        let route = Route([(try TaskVector(path: path, base: base, baseSHA256: "s"), 0.7)])
        let tokens: [Int32] = [4, 8, 15, 16, 23, 42]
        let onTheFly = Array(try base.prefill(tokens, cache: base.makeCache(capacity: 16), route: route))
        base.materialized = MaterializedCache(budgetBytes: 1 << 30, type: type)
        let materialized = Array(try base.prefill(tokens, cache: base.makeCache(capacity: 16), route: route))
        #expect(base.materialized!.byteCount > 0)
        let rms = (zip(onTheFly, materialized).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Float(onTheFly.count)).squareRoot()
        let scale = (onTheFly.map { $0 * $0 }.reduce(0, +) / Float(onTheFly.count)).squareRoot()
        // Two roundings differ: the copy's Q8_0 weights with 8-bit activations, against the
        // on-the-fly task term's 7-bit group sums (SignTables); on this tiny random model they
        // part by ~6 % of the logit scale.
        #expect(rms < 0.08 * scale, "rms \(rms) vs logit scale \(scale)")
    }
}
