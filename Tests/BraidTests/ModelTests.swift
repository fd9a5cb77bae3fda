import Foundation
import Testing
import Braid

/// The forward pass on a tiny random model: config from metadata, batch = sequential decode,
/// KV-cache truncation, limits.
struct ModelTests {
    @Test(arguments: TinyModel.architectures)
    func configComesFromMetadata(architecture: String) throws {
        let model = try LlamaModel(path: try TinyModel.write(architecture: architecture), threads: 2)
        #expect(model.config == TinyModel.config(architecture))
        #expect(model.weights.tiedOutput)
    }

    /// Prefilling N tokens gives the same last logits as N single-token decodes (the same
    /// kernels on 4-column tiles and single columns), for several encodings.
    @Test(arguments: [GGMLType.q4_1, .q4_0, .q8_0, .f16, .f32], TinyModel.architectures)
    func prefillEqualsSequentialDecode(type: GGMLType, architecture: String) throws {
        let model = try LlamaModel(path: try TinyModel.write(seed: 5, matrixType: type, architecture: architecture), threads: 2, maxBatch: 8)
        let tokens: [Int32] = [3, 17, 42, 8, 95, 0, 61, 23, 7, 11, 50]  // > maxBatch: chunked
        let a = model.makeCache(capacity: 32)
        let batched = Array(try model.prefill(tokens, cache: a))
        let b = model.makeCache(capacity: 32)
        var sequential: [Float] = []
        for t in tokens { sequential = Array(try model.decode(t, cache: b)) }
        #expect(a.count == tokens.count && b.count == tokens.count)
        let maxDiff = zip(batched, sequential).map { abs($0 - $1) }.max()!
        #expect(maxDiff < 1e-4, "max logit difference \(maxDiff)")
    }

    @Test func truncatedCacheRecomputesTheSameLogits() throws {
        let model = try LlamaModel(path: try TinyModel.write(seed: 2), threads: 1)
        let cache = model.makeCache(capacity: 16)
        try model.prefill([1, 2, 3, 4, 5], cache: cache)
        let first = Array(try model.decode(6, cache: cache))
        cache.truncate(to: 5)
        let again = Array(try model.decode(6, cache: cache))
        #expect(first == again)
    }

    @Test func promptLongerThanTheContextIsAnError() throws {
        let model = try LlamaModel(path: try TinyModel.write(), threads: 1)
        let cache = model.makeCache(capacity: 8)
        #expect(throws: BraidError.promptTooLong(tokens: 9, context: 8)) {
            try model.prefill(Array(repeating: 1, count: 9), cache: cache)
        }
        #expect(errorText { try model.decode(500, cache: cache) } == "token id 500 is outside the vocabulary")
    }

    /// A copy of the tiny model's file: `architecture` renames it and its `llama.` keys,
    /// `adding` appends F32 vectors, `dropping` leaves a tensor out.
    static func rewritten(architecture: String? = nil, adding: [(String, [Float])] = [], dropping: String? = nil) throws -> String {
        var w = GGUFWriter()
        let tiny = try GGUFFile(path: try TinyModel.write())
        for k in tiny.metadataKeys {
            let renamed = architecture.map { k.replacingOccurrences(of: "llama.", with: "\($0).") } ?? k
            w.set(renamed, tiny.metadata[k]!)
        }
        if let architecture { w.set("general.architecture", .string(architecture)) }
        for t in tiny.tensorList where t.name != dropping {
            try w.addTensor(t.name, shape: t.shape, type: t.type, data: Data(bytes: tiny.data(t), count: t.byteCount))
        }
        for (name, values) in adding { try w.addTensor(name, shape: [values.count], floats: values) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-rewritten-\(UUID().uuidString).gguf").path
        try w.write(to: path)
        return path
    }

    @Test func missingTensorIsAClearError() throws {
        let path = try Self.rewritten(dropping: "blk.1.ffn_up.weight")
        #expect(throws: BraidError.missingTensor("blk.1.ffn_up.weight")) { _ = try LlamaModel(path: path, threads: 1) }
    }

    @Test func unsupportedArchitectureIsRefused() throws {
        let path = try Self.rewritten(architecture: "phi3")
        #expect(throws: BraidError.unsupportedArchitecture("phi3")) { _ = try LlamaModel(path: path, threads: 1) }
        #expect(errorText { _ = try LlamaModel(path: path, threads: 1) } == "architecture phi3 is not supported (braid runs gemma3, llama, qwen2)")
    }

    /// Hyper-parameters are read under the file's architecture name, and the architecture
    /// decides what the file does not say (qwen2: NeoX RoPE).
    @Test func keysAreReadUnderTheArchitectureName() throws {
        let qwen = try LlamaConfig(gguf: GGUFFile(path: try Self.rewritten(architecture: "qwen2")))
        var expected = TinyModel.config
        expected.architecture = "qwen2"
        expected.ropeNeoX = true
        #expect(qwen == expected)
        // A qwen2 file with llama's keys is missing its own.
        var w = GGUFWriter()
        let tiny = try GGUFFile(path: try TinyModel.write())
        for k in tiny.metadataKeys { w.set(k, tiny.metadata[k]!) }
        w.set("general.architecture", .string("qwen2"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-keys-\(UUID().uuidString).gguf").path
        try w.write(to: path)
        #expect(throws: BraidError.missingKey("qwen2.attention.head_count")) { _ = try LlamaConfig(gguf: GGUFFile(path: path)) }
    }

    /// A tensor the forward pass would not read (here an output-projection bias, which neither
    /// Llama nor Qwen2 files have) is refused instead of silently left out.
    @Test func tensorTheForwardPassWouldIgnoreIsRefused() throws {
        let d = TinyModel.config.embeddingLength
        let path = try Self.rewritten(adding: [("blk.0.attn_output.bias", [Float](repeating: 0.5, count: d))])
        #expect(errorText { _ = try LlamaModel(path: path, threads: 1) }
                == "\(path): braid's llama forward pass has no use for tensor blk.0.attn_output.bias; running without it would give wrong results")
    }

    /// Q/K/V biases are read when present and change the logits; zero biases change nothing.
    @Test func attentionBiasesAreAdded() throws {
        let c = TinyModel.config
        func lastLogits(_ bias: Float) throws -> [Float] {
            let biases = [("attn_q", c.queryDim), ("attn_k", c.kvDim), ("attn_v", c.kvDim)].flatMap { kind, n in
                (0..<c.blockCount).map { ("blk.\($0).\(kind).bias", (0..<n).map { Float($0 % 7) * bias }) }
            }
            let model = try LlamaModel(path: try Self.rewritten(adding: biases), threads: 1)
            #expect(model.weights.layers.allSatisfy { $0.vectors[.queryBias] != nil && $0.vectors[.keyBias] != nil && $0.vectors[.valueBias] != nil })
            return Array(try model.prefill([1, 2, 3, 4, 5], cache: model.makeCache(capacity: 8)))
        }
        let plain = try LlamaModel(path: try TinyModel.write(), threads: 1)
        let without = Array(try plain.prefill([1, 2, 3, 4, 5], cache: plain.makeCache(capacity: 8)))
        #expect(try lastLogits(0) == without)
        #expect(try lastLogits(0.3) != without)
    }
}
