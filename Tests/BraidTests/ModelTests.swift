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

    @Test func missingTensorIsAClearError() throws {
        var w = GGUFWriter()
        let tiny = try GGUFFile(path: try TinyModel.write())
        for k in tiny.metadataKeys { w.set(k, tiny.metadata[k]!) }
        for t in tiny.tensorList where t.name != "blk.1.ffn_up.weight" {
            try w.addTensor(t.name, shape: t.shape, type: t.type, data: Data(bytes: tiny.data(t), count: t.byteCount))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-missing-\(UUID().uuidString).gguf").path
        try w.write(to: path)
        #expect(throws: BraidError.missingTensor("blk.1.ffn_up.weight")) { _ = try LlamaModel(path: path, threads: 1) }
    }
}
