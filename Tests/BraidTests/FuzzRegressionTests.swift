import Foundation
import Testing
import Braid

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
            try BPETokenizer(gguf: GGUFFile(path: eos))
        }
        let bos = try tokenizerFile(eos: .uint32(2), bos: .int64(-1))
        #expect(throws: BraidError.outOfRange(what: "tokenizer.ggml.bos_token_id of \(bos)", value: "-1", allowed: "0…2")) {
            try BPETokenizer(gguf: GGUFFile(path: bos))
        }
        let good = try BPETokenizer(gguf: GGUFFile(path: try tokenizerFile(eos: .uint32(2), bos: .int32(0))))
        #expect(good.eosID == 2 && good.bosID == 0 && good.encode("ab", addBOS: false) == [2])
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
