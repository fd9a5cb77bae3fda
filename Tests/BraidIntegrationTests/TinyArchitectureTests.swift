import Foundation
import Testing
import Braid

/// Qwen2 and Llama 3 against llama.cpp, on tiny random-weight GGUFs (Q4_K_M mixes: Q4_K and Q6_K
/// matrices) made, with llama.cpp's references, by scripts/reference/tiny_models.py.
/// qwen2: Q/K/V biases, NeoX RoPE, 4:1 GQA, tied head; llama3: RoPE frequency factors, 2:1 GQA,
/// untied head.
@Suite(.serialized)
struct TinyArchitectureTests {
    static let fixtures = Fixtures.root.appendingPathComponent("Tests/BraidIntegrationTests/Fixtures")
    static let names = ["qwen2", "llama3"]

    static func path(_ name: String) -> String { fixtures.appendingPathComponent("tiny-\(name).gguf").path }

    struct Case: Decodable {
        let text: String
        let promptTokens: Int
        let ids: [Int32]
        let top1: [Int]
        let margin: [Float]
        enum CodingKeys: String, CodingKey { case text, promptTokens = "prompt_tokens", ids, top1, margin }
    }

    static func cases(_ name: String) throws -> [Case] {
        try JSONDecoder().decode([Case].self, from: Data(contentsOf: fixtures.appendingPathComponent("tiny-\(name).json")))
    }

    @Test func qwen2ConfigIsReadFromTheFile() throws {
        let model = try LlamaModel(path: Self.path("qwen2"), threads: 2)
        let c = model.config
        #expect(c.architecture == "qwen2" && c.blockCount == 3 && c.embeddingLength == 256 && c.feedForwardLength == 512)
        #expect(c.headCount == 8 && c.headCountKV == 2 && c.headDim == 32 && c.vocabularySize == 3072 && c.contextLength == 512)
        #expect(c.ropeNeoX && c.ropeFreqBase == 1_000_000 && c.rmsEpsilon == 1e-6 && c.activation == .silu)
        #expect(model.weights.tiedOutput && model.weights.ropeFactors == nil)
        #expect(model.weights.layers.allSatisfy { $0.vectors[.queryBias]?.count == 256 && $0.vectors[.keyBias]?.count == 64 && $0.vectors[.valueBias]?.count == 64 })
    }

    @Test func llama3ConfigIsReadFromTheFile() throws {
        let model = try LlamaModel(path: Self.path("llama3"), threads: 2)
        let c = model.config
        #expect(c.architecture == "llama" && c.blockCount == 2 && c.embeddingLength == 256 && c.feedForwardLength == 512)
        #expect(c.headCount == 4 && c.headCountKV == 2 && c.headDim == 64 && c.ropeDimensions == 64 && c.vocabularySize == 3072)
        #expect(!c.ropeNeoX && c.ropeFreqBase == 500_000 && c.rmsEpsilon == 1e-5)
        #expect(!model.weights.tiedOutput && model.weights.layers.allSatisfy { $0.vectors[.queryBias] == nil })
        // Llama 3's factors: 1 for the fastest pairs, 8 for the slowest, smoothed between.
        let factors = try #require(model.weights.ropeFactors)
        #expect(factors.count == 32 && factors.first == 1 && factors.last == 8)
    }

    /// braid's tokenizer reads the files' vocabulary (SmolLM2's first 3,072 tokens) and encodes
    /// each prompt as llama.cpp did.
    @Test(arguments: names)
    func promptsTokenizeAsInLlamaCpp(name: String) throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: Self.path(name)))
        for c in try Self.cases(name) {
            #expect(tokenizer.encode(c.text) == Array(c.ids.prefix(c.promptTokens)))
        }
    }

    /// Teacher-forced over each prompt and llama.cpp's 24 greedy tokens: the prompt in batches,
    /// then one token per decode step. braid's top-1 equals llama.cpp's at every position
    /// where llama.cpp's margin over its runner-up is ≥ 0.5.
    @Test(arguments: names)
    func teacherForcedTop1MatchesLlamaCpp(name: String) throws {
        let model = try LlamaModel(path: Self.path(name), threads: 2)
        for (n, c) in try Self.cases(name).enumerated() {
            let cache = model.makeCache(capacity: c.ids.count)
            var top: [Int] = []
            while top.count < c.promptTokens {
                let chunk = (top.count..<min(c.promptTokens, top.count + model.maxBatch)).map { BatchEntry(token: c.ids[$0], position: $0, cache: cache) }
                try model.forward(chunk, outputs: Array(chunk.indices))
                top += chunk.indices.map { Ops.argmax(model.logits($0)) }
            }
            for p in c.promptTokens..<c.ids.count {
                top.append(Ops.argmax(try model.decode(c.ids[p], cache: cache)))
            }
            let checked = c.ids.indices.filter { c.margin[$0] >= 0.5 }
            let wrong = checked.filter { top[$0] != c.top1[$0] }
            let smallest = checked.map { c.margin[$0] }.min() ?? 0
            print("\(name) prompt \(n): \(c.ids.count) positions, \(checked.count) with margin ≥ 0.5 (smallest \(smallest)), \(wrong.count) differ")
            #expect(checked.count * 3 >= c.ids.count * 2, "most positions are checked")
            #expect(wrong.isEmpty, "prompt \(n): positions \(wrong)")
        }
    }

    static func rms(_ logits: [Float], against file: String) throws -> Double {
        let data = try Data(contentsOf: fixtures.appendingPathComponent(file))
        let ref: [Float] = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(ref.count == logits.count)
        let sq = zip(ref, logits).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        return (sq / Double(ref.count)).squareRoot()
    }

    /// The whole last-position logits of the first prompt (and its greedy tokens) against
    /// llama.cpp's, both ways each runs it: in one batch, and one token per call.
    @Test(arguments: names)
    func lastLogitsRMSWithinTolerance(name: String) throws {
        let model = try LlamaModel(path: Self.path(name), threads: 2)
        let ids = try Self.cases(name)[0].ids
        let batched = Array(try model.prefill(ids, cache: model.makeCache(capacity: ids.count)))
        let cache = model.makeCache(capacity: ids.count)
        var single: [Float] = []
        for id in ids { single = Array(try model.decode(id, cache: cache)) }
        let rmsBatched = try Self.rms(batched, against: "tiny-\(name)-last.f32")
        let rmsSingle = try Self.rms(single, against: "tiny-\(name)-last-ubatch1.f32")
        print("\(name) last-position logits rms vs llama.cpp: batched \(rmsBatched), one token per call \(rmsSingle)")
        #expect(rmsBatched <= 0.15 && rmsSingle <= 0.15)
    }
}
