import Foundation
import Testing
import Braid

/// The LLM-Modules bridge on the real base (Sources/Braid/Bridge): what an untrained bridge
/// changes, that braid's forward is the training script's, which pairs of models it accepts,
/// and that it writes nothing before the user's turn.
@Suite(.enabled(if: Fixtures.haveModel, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh)"), .serialized)
struct BridgeTests {
    static let dir = Fixtures.root.appendingPathComponent("Tests/BraidIntegrationTests/Fixtures/bridge")

    /// What scripts/bridge/train.py fixture wrote beside the bridge.
    struct Case: Decodable {
        let tokens: [Int32]
        let from: Int
        let source_count: Int
        let source_width: Int
    }

    static func floats(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: dir.appendingPathComponent(name))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    static func fixtureCase() throws -> Case {
        try JSONDecoder().decode(Case.self, from: Data(contentsOf: dir.appendingPathComponent("case.json")))
    }

    static func lastLogits(_ model: LlamaModel, _ tokens: [Int32], memory: BridgeMemory?) throws -> [Float] {
        let cache = model.makeCache(capacity: 256)
        cache.bridge = memory
        return Array(try model.prefill(tokens, cache: cache))
    }

    static func rms(_ a: [Float], _ b: [Float]) -> Float {
        (zip(a, b).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Float(a.count)).squareRoot()
    }

    func untrained(_ model: LlamaModel) throws -> Bridge {
        Bridge(width: model.config.embeddingLength, sourceWidth: 64, blocks: [0, 7, 29], heads: 4, attentionWidth: 64,
               adapterWidth: 16, eps: 1e-5, smallSHA256: try BaseIdentity.sha256(of: model), sourceSHA256: "", sourceFile: "")
    }

    @Test func untrainedBridgeLeavesTheModelExactlyAsItWas() throws {
        let model = try Fixtures.model()
        let c = try Self.fixtureCase()
        let bridge = try untrained(model)
        var rng = Xoshiro256(seed: 3)
        let states = (0..<(5 * 64)).map { _ in Float(rng.next() >> 40) / Float(1 << 24) * 4 - 2 }
        let memory = try bridge.memory(states: states, count: 5, from: 0)
        let plain = try Self.lastLogits(model, c.tokens, memory: nil)
        #expect(try Self.lastLogits(model, c.tokens, memory: memory) == plain)
        // The same bridge with an output moves them: the comparison above can fail.
        bridge.layers[1].output = (0..<bridge.layers[1].output.count).map { _ in Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        #expect(Self.rms(try Self.lastLogits(model, c.tokens, memory: bridge.memory(states: states, count: 5, from: 0)), plain) > 0.01)
    }

    @Test func forwardEqualsTheTrainingImplementation() throws {
        let model = try Fixtures.model()
        let c = try Self.fixtureCase()
        let bridge = try Bridge(path: Self.dir.appendingPathComponent("random.bridge.gguf").path, smallSHA256: BaseIdentity.sha256(of: model))
        let memory = try bridge.memory(states: Self.floats("source_states.f32"), count: c.source_count, from: c.from)
        let reference = try Self.floats("logits_with_bridge.f32"), referencePlain = try Self.floats("logits_without_bridge.f32")
        let bridged = try Self.lastLogits(model, c.tokens, memory: memory)
        let plain = try Self.lastLogits(model, c.tokens, memory: nil)
        // braid's 8-bit activations against PyTorch's float32 on the same dequantised weights:
        // the bridge may add no more than a little to the error the base alone already has.
        let baseError = Self.rms(plain, referencePlain), error = Self.rms(bridged, reference)
        let effect = Self.rms(reference, referencePlain)
        #expect(error < 1.5 * baseError + 0.05, "rms \(error) with the bridge, \(baseError) without")
        #expect(effect > 4 * error, "the bridge moves the logits by rms \(effect); braid's error \(error)")
        #expect(bridged.withUnsafeBufferPointer(Ops.argmax) == reference.withUnsafeBufferPointer(Ops.argmax))
    }

    @Test func positionsBeforeTheUserTurnAreNotWritten() throws {
        let model = try Fixtures.model()
        let c = try Self.fixtureCase()
        let bridge = try Bridge(path: Self.dir.appendingPathComponent("random.bridge.gguf").path, smallSHA256: BaseIdentity.sha256(of: model))
        let memory = try bridge.memory(states: Self.floats("source_states.f32"), count: c.source_count, from: c.from)
        let system = Array(c.tokens[..<c.from])
        #expect(try Self.lastLogits(model, system, memory: memory) == Self.lastLogits(model, system, memory: nil))
        #expect(try Self.lastLogits(model, Array(c.tokens[...c.from]), memory: memory) != Self.lastLogits(model, Array(c.tokens[...c.from]), memory: nil))
    }

    @Test func bridgeForAnotherPairOfModelsIsRefused() throws {
        let model = try Fixtures.model()
        let path = Self.dir.appendingPathComponent("random.bridge.gguf").path
        #expect(throws: BraidError.self) { try Bridge(path: path, smallSHA256: String(repeating: "0", count: 64)) }
        let bridge = try Bridge(path: path, smallSHA256: BaseIdentity.sha256(of: model))
        let d = model.config.embeddingLength, blocks = model.config.blockCount
        try bridge.check(smallWidth: d, smallBlocks: blocks, sourceSHA256: bridge.sourceSHA256, sourceWidth: bridge.sourceWidth)
        #expect(throws: BraidError.self) {
            try bridge.check(smallWidth: d, smallBlocks: blocks, sourceSHA256: String(repeating: "f", count: 64), sourceWidth: bridge.sourceWidth)
        }
        #expect(throws: BraidError.self) { try bridge.check(smallWidth: d, smallBlocks: blocks, sourceSHA256: bridge.sourceSHA256, sourceWidth: 1152) }
        #expect(throws: BraidError.self) { try bridge.check(smallWidth: d + 64, smallBlocks: blocks, sourceSHA256: bridge.sourceSHA256, sourceWidth: bridge.sourceWidth) }
        #expect(throws: BraidError.self) { try bridge.memory(states: [1, 2, 3], count: 1, from: 0) }
    }

    @Test(.enabled(if: Fixtures.haveGemma3, "needs models/gemma-3-270m-q4_k_m.gguf (scripts/setup.sh --model gemma3-270m)"))
    func sourceStatesAreTheSourcesFinalNormOverTheMessageAlone() throws {
        let gguf = try GGUFFile(path: Fixtures.gemma3Path)
        let source = try SourceModel(model: LlamaModel(gguf: gguf, threads: 2), tokenizer: Tokenizer(gguf: gguf))
        let (tokens, states) = try source.states(of: "What is the capital of Japan?")
        #expect(tokens.first == source.tokenizer.bosID && states.count == tokens.count * source.width)
        // The last state through the source's own head is its next-token prediction.
        let cache = source.model.makeCache()
        let logits = Array(try source.model.prefill(tokens, cache: cache, head: true))
        let last = Array(states[((tokens.count - 1) * source.width)...])
        last.withUnsafeBufferPointer { source.model.hidden(0).update(from: $0.baseAddress!, count: source.width) }
        source.model.head(columns: 1)
        #expect(Array(source.model.logits(0)) == logits)
        // A longer message does not change the states of the words before it (the source is causal).
        let (more, longer) = try source.states(of: "What is the capital of Japan? Tokyo")
        #expect(Array(more.prefix(tokens.count)) == tokens)
        #expect(Self.rms(Array(longer.prefix(states.count)), states) < 1e-3)
    }
}
