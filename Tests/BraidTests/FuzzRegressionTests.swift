import Foundation
import Testing
import Braid
import BraidServer

/// Inputs the fuzzers found (scripts/fuzz.sh; each reproducer is also kept in
/// Fuzz/corpus/TARGET/crash-*), and their siblings: each is now the error that names the problem,
/// not a trap, an allocation of gigabytes or a hang.
struct FuzzRegressionTests {
    /// The tests' tiny model with some metadata replaced.
    func model(_ overrides: [String: GGUFValue]) throws -> String {
        let original = try GGUFFile(path: try TinyModel.write())
        var w = GGUFWriter()
        for k in original.metadataKeys { w.set(k, original.metadata[k]!) }
        for (k, v) in overrides { w.set(k, v) }
        for t in original.tensorList {
            try w.addTensor(t.name, shape: t.shape, type: t.type, data: Data(bytes: original.data(t), count: t.byteCount))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-fuzzed-\(UUID().uuidString).gguf").path
        try w.write(to: path)
        return path
    }

    // MARK: gguf: sizes from the metadata (Fuzz/corpus/gguf/crash-block-count)

    /// llama.block_count = 2^29 reserved room for 2^29 layers (4.4 GB) before the first missing tensor.
    @Test func blockCountBeyondTheTensorsIsRefused() throws {
        let path = try model(["llama.block_count": .uint32(1 << 29)])
        let tensors = try GGUFFile(path: path).tensorList.count
        #expect(throws: BraidError.outOfRange(what: "llama.block_count of \(path)", value: "536870912", allowed: "1…\(tensors)")) {
            try LlamaModel(path: path, threads: 1)
        }
    }

    /// The attention scratch holds a context's scores per thread: 2^40 of them is no model.
    @Test func contextLengthBeyondAnyModelIsRefused() throws {
        let path = try model(["llama.context_length": .uint64(1 << 40)])
        #expect(throws: BraidError.outOfRange(what: "llama.context_length of \(path)", value: "1099511627776", allowed: "1…16777216")) {
            try LlamaModel(path: path, threads: 1)
        }
    }

    /// head_count × key_length overflowed Int in queryDim.
    @Test func keyLengthThatWouldOverflowIsRefused() throws {
        let path = try model(["llama.attention.key_length": .uint64(1 << 62)])
        #expect(throws: BraidError.outOfRange(what: "llama.attention.key_length of \(path)", value: "4611686018427387904", allowed: "1…262144")) {
            try LlamaModel(path: path, threads: 1)
        }
    }

    @Test func zeroHeadsAreRefused() throws {
        let path = try model(["llama.attention.head_count": .uint32(0)])
        #expect(throws: BraidError.outOfRange(what: "llama.attention.head_count of \(path)", value: "0", allowed: "1…4096")) {
            try LlamaModel(path: path, threads: 1)
        }
    }

    /// A GGUF holding only a three-token vocabulary and the given token ids.
    func tokenizerFile(eos: GGUFValue, bos: GGUFValue? = nil) throws -> String {
        var w = GGUFWriter()
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("smollm"))
        w.set("tokenizer.ggml.tokens", .array(.string, ["a", "b", "ab"].map { .string($0) }))
        w.set("tokenizer.ggml.merges", .array(.string, [.string("a b")]))
        w.set("tokenizer.ggml.eos_token_id", eos)
        if let bos { w.set("tokenizer.ggml.bos_token_id", bos) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-fuzzed-\(UUID().uuidString).gguf").path
        try w.write(to: path)
        return path
    }

    /// eos_token_id 0xE5000002 (a uint32) trapped in Int32(_:) (Fuzz/corpus/gguf/crash-eos-token-id):
    /// token ids from the file must name a token.
    @Test func tokenIDsOutsideTheVocabularyAreRefused() throws {
        let eos = try tokenizerFile(eos: .uint32(0xE500_0002))
        #expect(throws: BraidError.outOfRange(what: "tokenizer.ggml.eos_token_id of \(eos)", value: "3841982466", allowed: "0…2")) {
            try Tokenizer(gguf: GGUFFile(path: eos))
        }
        let bos = try tokenizerFile(eos: .uint32(2), bos: .int64(-1))
        #expect(throws: BraidError.outOfRange(what: "tokenizer.ggml.bos_token_id of \(bos)", value: "-1", allowed: "0…2")) {
            try Tokenizer(gguf: GGUFFile(path: bos))
        }
        let good = try Tokenizer(gguf: GGUFFile(path: try tokenizerFile(eos: .uint32(2), bos: .int32(0))))
        #expect(good.eosID == 2 && good.bosID == 0 && good.encode("ab", addBOS: false) == [2])
    }

    // MARK: router data (Fuzz/corpus/router/crash-*-layers-negative)

    /// A task vector for a tiny base carrying `router` (fitted on random features, then edited) as braid.router.
    func routedVector(_ edit: (inout RouterData) -> Void) throws -> (LlamaModel, TaskVector, String) {
        let base = try LlamaModel(path: try TinyModel.write(), threads: 1)
        let source = try DeltaSource.fineTunedGGUF(try TinyModel.write(seed: 9), base: base)
        var w = try Compressor.compress(source, base: base, baseSHA256: "base-sha", task: "tiny", description: "", options: CompressionOptions())
        var rng = Xoshiro256(seed: 3)
        let d = TinyModel.config.embeddingLength
        let features = (0..<8).map { _ in (0..<d).map { _ in rng.nextUnit() } }
        var data = RouterFitter.fit(features: features, labels: [0, 1, 0, 1, 0, 1, 0, 1], taskCount: 1, featureLayers: 2, epochs: 5)
        data = RouterFitter.addEarlyStage(to: data, features: features, labels: [0, 1, 0, 1, 0, 1, 0, 1], featureLayers: 1, confidence: 0.9, epochs: 5)
        edit(&data[0])
        w.set(RouterData.metadataKey, .string(String(decoding: try JSONEncoder().encode(data[0]), as: UTF8.self)))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-fuzzed-\(UUID().uuidString).tv.gguf").path
        try w.write(to: path)
        return (base, try TaskVector(path: path, base: base, baseSHA256: "base-sha"), path)
    }

    /// "featureLayers": -1 trapped in the base's forward pass (a prefix of negative length) at the first query.
    @Test func routerBlockCountsBelowOneAreRefused() throws {
        let (_, full, fullPath) = try routedVector { $0.shared.featureLayers = -1 }
        #expect(throws: BraidError.invalidArgument("\(fullPath): router data takes features after -1 blocks (run braid router fit)")) {
            try Router(tasks: [full])
        }
        let (_, early, earlyPath) = try routedVector { $0.shared.early!.featureLayers = -3 }
        #expect(throws: BraidError.invalidArgument("\(earlyPath): router data takes early features after -3 blocks (run braid router fit)")) {
            try Router(tasks: [early])
        }
    }

    /// Vectors of another width were zipped short: a silently wrong route.
    @Test func routerVectorsOfAnotherWidthAreRefused() throws {
        let (_, v, path) = try routedVector { $0.centroid = [1, 2, 3] }
        #expect(throws: BraidError.invalidArgument("\(path): router data centroid has 3 values, not 64 (run braid router fit)")) {
            try Router(tasks: [v])
        }
    }

    /// Data fitted on another model (more blocks than this one) is refused when it would route.
    @Test func routerForAnotherModelIsRefusedAtTheFirstQuery() throws {
        let (base, v, _) = try routedVector { $0.shared.featureLayers = 5 }
        let router = try Router(tasks: [v])
        let tokens = ["<|im_start|>", "<|im_end|>"] + (0x21...0x7E).map { String(Unicode.Scalar(UInt8($0))) }
        let tokenizer = try Tokenizer(tokens: tokens, tokenTypes: [3, 3], merges: [], bosID: nil, eosID: 1, addBOS: false)
        let features = QueryFeatures(model: base, tokenizer: tokenizer, template: ChatTemplate(), layers: router.featureLayers)
        #expect(throws: BraidError.invalidArgument("the router was fitted on features of width 64 after 5 blocks; this model has width 64 and 2 blocks (run braid router fit)")) {
            try router.probabilities(of: "hi", features: features)
        }
    }

    // MARK: chat (Fuzz/corpus/chat/crash-max-tokens-int-max)

    /// max_tokens = Int.max overflowed prompt + max_tokens: one request stopped `braid serve`.
    @Test func maxTokensOfIntMaxIsAContextError() throws {
        let base = try LlamaModel(path: try TinyModel.write(), threads: 1)
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("braid-empty-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let tokens = ["<|im_start|>", "<|im_end|>", "\u{010A}", "\u{0120}"] + (0x21...0x7E).map { String(Unicode.Scalar(UInt8($0))) }
        let tokenizer = try Tokenizer(tokens: tokens, tokenTypes: [3, 3], merges: [], bosID: nil, eosID: 1, addBOS: false)
        let translation = RequestTranslation(tokenizer: tokenizer, template: ChatTemplate(), catalog: try TaskCatalog(directory: empty, model: base),
                                             defaults: SamplingParameters(), contextSize: 512, timeout: 10)
        let body = #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":9223372036854775807}"#
        let request = try BraidServer.decodeJSON(Data(body.utf8), as: ChatCompletionRequest.self)
        let prompt = tokenizer.encode(ChatTemplate().render([.user("hi")])).count
        var message = "no error"
        do { _ = try translation.chat(request) } catch { message = "\(error)" }
        #expect(message == "400 the prompt (\(prompt) tokens) and max_tokens (9223372036854775807) are over the context of 512 tokens")
    }

    // MARK: merge-yaml (Fuzz/corpus/merge-yaml/crash-complex-key)

    /// Yams.load force-unwraps a key as a string: a sequence as a key (`? [a, b]`) trapped.
    @Test func yamlKeyThatIsNotAStringIsRefused() {
        #expect(throws: BraidError.invalidArgument("config: a key must be a plain string")) {
            try MergeConfig(yaml: "merge_method: ties\n? [a, b]\n: 1\n")
        }
        // The fuzzer's input: a mergekit config whose last line became an explicit key.
        #expect(throws: BraidError.invalidArgument("config.models[1]: a key must be a plain string")) {
            try MergeConfig(yaml: "merge_method: ties\nmodels:\n  - model: a.gguf\n  - model: b.gguf\n    ? {type: q8_0}\n    : 1\n")
        }
    }

    /// Ten levels of aliases, ten each: 10^10 values once expanded (Yams.load never returned).
    @Test func yamlAliasBombIsRefusedAtOnce() {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<10 { yaml += "a\(i): &a\(i) [" + [String](repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let start = Date()
        #expect(errorText { _ = try MergeConfig(yaml: yaml) }
            == "config.a3[7][8][8][9]: too large for a config (over 10000 values once its aliases are expanded)")
        #expect(Date().timeIntervalSince(start) < 1)
    }

    @Test func yamlNestedTooDeeplyIsRefused() {
        let yaml = "merge_method: " + String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(errorText { _ = try MergeConfig(yaml: yaml) } == "config.merge_method" + String(repeating: "[0]", count: 31) + " nests deeper than 32 levels")
    }

    /// Keys Yams tells apart (an integer and a string) are one key to the config: refused, not a trap.
    @Test func yamlKeysEqualAsTextAreRefused() {
        #expect(throws: BraidError.invalidArgument("config.parameters has the key 1 twice")) {
            try MergeConfig(yaml: "merge_method: ties\nparameters: {1: a, \"1\": b}\n")
        }
    }
}
