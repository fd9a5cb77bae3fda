import Braid
import BraidFuzzKit
import Foundation

/// braid-fuzz's targets: the readers of the Braid library (`braid serve`'s request decoder is
/// braid-fuzz-server's, so this binary needs no HTTP stack and builds in a few minutes).
enum Targets {
    static let all: [FuzzTarget] = [
        FuzzTarget(name: "gguf", summary: "GGUFFile, then the model config, weights, tokenizer and chat template it holds, and one forward step",
               run: gguf),
        FuzzTarget(name: "taskvector", summary: "TaskVector for a tiny base, every row decoded, a forward step on its route, its router",
               prepare: { _ = Fixtures.tinyBaseSHA; _ = Fixtures.tinyTokenizer }, run: taskVector),
        FuzzTarget(name: "router", summary: "a task vector's router data (braid.router JSON): loaded, a query routed in every mode",
               prepare: { _ = Fixtures.routerlessVector; _ = Fixtures.tinyVectors; _ = Fixtures.tinyTokenizer }, run: router),
        FuzzTarget(name: "gate", summary: "LearnedGate for a tiny task vector, and one gate evaluation",
               prepare: { _ = Fixtures.tinyVectors }, run: gate),
        FuzzTarget(name: "safetensors", summary: "SafetensorsFile (every tensor read), then a Hugging Face delta against a tiny base",
               prepare: { _ = Fixtures.tinyBase; _ = Fixtures.inputFD }, run: safetensors),
        FuzzTarget(name: "lora", summary: "a PEFT adapter_config.json beside a tiny adapter's factors: every update, then served as factors for a forward step",
               prepare: { _ = Fixtures.loraDir; _ = Fixtures.tinyBaseSHA }, run: lora),
        FuzzTarget(name: "merge-yaml", summary: "MergeConfig from YAML", run: mergeYAML),
        FuzzTarget(name: "jsonl", summary: "a braid run / task-suite / calibration JSONL file, its prompts templated, tokenised and scored",
               prepare: { _ = Fixtures.realTokenizer; _ = Fixtures.inputFD }, run: jsonl),
        FuzzTarget(name: "tokenizer", summary: "SmolLM2's tokenizer: valid UTF-8 round-trips; any bytes (text or token ids) never crash",
               prepare: { _ = Fixtures.realTokenizer; _ = Fixtures.tinySentencePiece; _ = TokenizerProperty.covered }, run: tokenizer),
    ]

    // MARK: GGUF

    static func gguf(_ data: UnsafeRawBufferPointer) {
        guard let file = attempt("GGUFFile", { try GGUFFile(map: MappedFile(copying: data, path: "fuzz.gguf")) }) else { return }
        for key in file.metadataKeys {
            _ = try? file.int(key)
            _ = try? file.float(key)
            _ = try? file.string(key)
            _ = try? file.stringArray(key)
            _ = try? file.intArray(key)
        }
        var sink: UInt8 = 0
        for t in file.tensorList where t.byteCount > 0 {
            let p = file.data(t).assumingMemoryBound(to: UInt8.self)
            sink ^= p[0] ^ p[t.byteCount - 1]
            if t.type != .i8, t.elementCount <= 1 << 16 {
                var out = [Float](repeating: 0, count: t.elementCount)
                out.withUnsafeMutableBufferPointer { BlockCodec.decode(t.type, file.data(t), into: $0.baseAddress!, count: t.elementCount) }
            }
        }
        blackHole(sink)
        _ = ChatTemplate.detect(fromTemplate: file.metadata["tokenizer.chat_template"]?.stringValue)
        if let tok = attempt("Tokenizer", { try Tokenizer(gguf: file) }) {
            let ids = tok.encode("<|im_start|>user\nAdd 250 and 317, then the rest.<|im_end|>")
            blackHole(tok.decode(ids + [-1, Int32.max]))
        }
        guard attempt("LlamaConfig", { try LlamaConfig(gguf: file) }) != nil,
              let model = attempt("LlamaModel", { try LlamaModel(gguf: file, threads: 1, maxBatch: 2) }) else { return }
        let cache = model.makeCache(capacity: 4)
        _ = attempt("prefill") { try model.prefill([0, Int32(model.config.vocabularySize - 1)], cache: cache) }
    }

    // MARK: task vectors and gates

    static func taskVector(_ data: UnsafeRawBufferPointer) {
        let base = Fixtures.tinyBase
        guard let vector = attempt("TaskVector", {
            try TaskVector(file: GGUFFile(map: MappedFile(copying: data, path: "fuzz.tv.gguf")), base: base, baseSHA256: Fixtures.tinyBaseSHA)
        }) else { return }
        // Every row of every matrix, as serving would read them.
        var row = [Float](repeating: 0, count: 4 * Fixtures.tinyConfig.feedForwardLength)
        for case let m? in vector.matrices.joined() {
            for r in 0..<m.rows { m.decodeRow(r, into: &row) }
        }
        blackHole(vector.weightsSHA256)
        blackHole(vector.byteCount)
        // One step on the vector's route: the kernels read its signs and scales from the file.
        let cache = base.makeCache(capacity: 8)
        _ = attempt("prefill") { try base.prefill([1, 5, 40], cache: cache, route: Route([(vector, 0.75)])) }
        route([vector])
    }

    /// Router data: the JSON a task vector carries as braid.router, in a vector for the tiny base,
    /// routed beside a vector whose data is sound.
    static func router(_ data: UnsafeRawBufferPointer) {
        var w = Fixtures.routerlessVector
        w.set(RouterData.metadataKey, .string(String(decoding: data, as: UTF8.self)))
        let file = w.encoded()
        guard let vector = attempt("TaskVector", {
            try file.withUnsafeBytes { try TaskVector(file: GGUFFile(map: MappedFile(copying: $0, path: "fuzz.tv.gguf")), base: Fixtures.tinyBase, baseSHA256: Fixtures.tinyBaseSHA) }
        }) else { return }
        route([vector, Fixtures.tinyVectors[1]])
    }

    /// The router the vectors carry, as `braid generate` and `braid serve` use it.
    static func route(_ vectors: [TaskVector]) {
        let base = Fixtures.tinyBase
        guard let router = attempt("Router", { try Router(tasks: vectors) }) else { return }
        let features = QueryFeatures(model: base, tokenizer: Fixtures.tinyTokenizer, template: ChatTemplate(defaultSystemPrompt: "Be brief."),
                                     layers: router.featureLayers)
        guard let (p, _) = attempt("routing", { try router.probabilities(of: "Add 2 and 3.", features: features) }) else { return }
        for mode in RoutingMode.allCases { blackHole(router.route(p, mode: mode).label) }
        blackHole(router.labels)
    }

    static func gate(_ data: UnsafeRawBufferPointer) {
        let vector = Fixtures.tinyVectors[0]
        let d = Fixtures.tinyConfig.embeddingLength
        guard let gate = attempt("LearnedGate", {
            try LearnedGate(file: GGUFFile(map: MappedFile(copying: data, path: "fuzz.gate.gguf")), for: vector, dim: d)
        }) else { return }
        let x = (0..<d).map { Float($0) / Float(d) - 0.5 }
        var g = [Float](repeating: 0, count: d)
        gate.gate(queryBase: x, base: x, tuned: x, queryTuned: x, into: &g)
        blackHole(g)
    }

    // MARK: safetensors

    static func safetensors(_ data: UnsafeRawBufferPointer) {
        let path = Fixtures.inputFile(holding: data)
        guard let file = attempt("SafetensorsFile", { try SafetensorsFile(path: path) }) else { return }
        for (name, entry) in file.tensors {
            blackHole(HuggingFaceLlama.ggufName(name))
            if entry.count <= 1 << 16 { blackHole(file.floats(entry)) }
        }
        guard let source = attempt("DeltaSource", { try DeltaSource.safetensors(path, base: Fixtures.tinyBase) }) else { return }
        for t in Fixtures.tinyBase.gguf.tensorList where source.contains(t.name) {
            _ = attempt("delta \(t.name)") { try source.delta(t.name) }
        }
    }

    // MARK: LoRA adapters

    static func lora(_ data: UnsafeRawBufferPointer) {
        _ = Fixtures.inputFile(holding: data)
        let base = Fixtures.tinyBase
        guard let adapter = attempt("LoRAAdapter", { try LoRAAdapter(directory: Fixtures.loraDir, base: base) }) else { return }
        for name in adapter.matrices { blackHole(adapter.delta(name)) }
        guard let vector = attempt("taskVector", { try adapter.taskVector(base: base, baseSHA256: Fixtures.tinyBaseSHA) }) else { return }
        _ = attempt("prefill") { try base.prefill([1, 2], cache: base.makeCache(capacity: 4), route: Route([(vector, 1)])) }
    }

    // MARK: merge config

    static func mergeYAML(_ data: UnsafeRawBufferPointer) {
        guard let config = attempt("MergeConfig", { try MergeConfig(yaml: String(decoding: data, as: UTF8.self), source: "fuzz.yaml") }) else { return }
        for i in config.models.indices {
            blackHole(config.weight(of: i, tensor: "blk.0.attn_q.weight"))
            blackHole(config.density(of: i))
        }
    }

    // MARK: JSONL

    /// The fields `braid run` reads from a line (Sources/BraidCLI/Commands/Run.swift's `Line`,
    /// which lives in the CLI target; decoded the same way).
    struct RunLine: Decodable {
        var id: String?
        var prompt: String
        var task: String?
        var answer: String?
    }

    static func jsonl(_ data: UnsafeRawBufferPointer) {
        let tok = Fixtures.realTokenizer, template = Fixtures.realTemplate
        func use(prompt: String, task: String?, answer: String?) {
            blackHole(tok.encode(template.render([.user(prompt)])))
            if let task, let answer { blackHole(Scorer.isCorrect(task: task, output: prompt, answer: answer)) }
        }
        // `braid run`: each line on its own (as it splits its input).
        if let text = try? Tokenizer.decodeUTF8Strictly(Array(data), source: "fuzz.jsonl") {
            for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
                if let line = attempt("run line", { try JSONDecoder().decode(RunLine.self, from: Data(raw.utf8)) }) {
                    use(prompt: line.prompt, task: line.task, answer: line.answer)
                }
            }
        }
        // `braid eval`'s task suites and AIM's calibration texts read the same bytes as files.
        let path = Fixtures.inputFile(holding: data)
        if let examples = attempt("TaskSuite", { try TaskSuite.load(path, limit: 64) }) {
            for e in examples { use(prompt: e.prompt, task: e.task, answer: e.answer) }
        }
        if let texts = attempt("AIM.loadTexts", { try AIM.loadTexts(path, limit: 64) }) {
            for t in texts { blackHole(tok.encode(t, parseSpecial: false)) }
        }
    }

    // MARK: tokenizer

    static func tokenizer(_ data: UnsafeRawBufferPointer) {
        let tok = Fixtures.realTokenizer
        let bytes = Array(data)
        // Any bytes as text (invalid UTF-8 becomes U+FFFD, as for a lossy reader).
        // (String(decoding:) keeps valid UTF-8 byte for byte, so valid input is checked as is.)
        let text = String(decoding: bytes, as: UTF8.self)
        TokenizerProperty.check(text, tok)
        TokenizerProperty.checkSentencePiece(text, Fixtures.tinySentencePiece)
        // Any bytes as token ids, decoded at once and streamed.
        let ids = stride(from: 0, to: bytes.count - 3, by: 4).map { i in
            Int32(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
        }
        for t in [tok, Fixtures.tinySentencePiece] {
            blackHole(t.decode(ids))
            var stream = StreamingDetokenizer(tokenizer: t)
            var streamed = ""
            for id in ids { streamed += stream.append(id) }
            streamed += stream.flush()
            blackHole(streamed)
        }
    }
}

/// decode(encode(x)) == x for text whose every byte has a token (SmolLM2's vocabulary lacks a
/// few control bytes; like llama.cpp, the tokenizer drops them, so such text cannot round-trip).
enum TokenizerProperty {
    /// The bytes the real vocabulary has a token for (GPT-2's byte characters).
    static let covered: [Bool] = {
        var printable = Set<Int>()
        for r in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] { printable.formUnion(r) }
        var next: UInt32 = 256
        return (0..<256).map { b in
            let scalar: Unicode.Scalar
            if printable.contains(b) {
                scalar = Unicode.Scalar(UInt32(b))!
            } else {
                scalar = Unicode.Scalar(next)!
                next += 1
            }
            return Fixtures.realTokenizer.id(of: String(scalar)) != nil
        }
    }()

    static func check(_ text: String, _ tok: Tokenizer) {
        for special in [true, false] {
            let ids = tok.encode(text, parseSpecial: special, addBOS: false)
            let back = tok.decode(ids)
            if text.utf8.allSatisfy({ covered[Int($0)] }) && Array(back.utf8) != Array(text.utf8) {
                fatalError("tokenizer round trip (parseSpecial: \(special)): \(Array(text.utf8)) -> \(ids) -> \(Array(back.utf8))")
            }
        }
    }

    /// SentencePiece with byte fallback has a token for every byte: every text round-trips but
    /// one holding "▁" itself (it decodes as a space).
    static func checkSentencePiece(_ text: String, _ tok: Tokenizer) {
        for special in [true, false] {
            let ids = tok.encode(text, parseSpecial: special, addBOS: false)
            let back = tok.decode(ids)
            if !text.unicodeScalars.contains("\u{2581}") && Array(back.utf8) != Array(text.utf8) {
                fatalError("SentencePiece round trip (parseSpecial: \(special)): \(Array(text.utf8)) -> \(ids) -> \(Array(back.utf8))")
            }
        }
    }
}
