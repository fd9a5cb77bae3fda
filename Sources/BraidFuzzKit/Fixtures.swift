import Braid
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the targets share, built once per process (before the first input, so no input pays
/// for it): a tiny random Llama base (2 blocks, width 32, vocabulary 128) with a byte-level
/// tokenizer of its own, task vectors and a gate made for it, and the real SmolLM2 vocabulary.
public enum Fixtures {
    /// A private folder for the files the fixtures write, removed at exit.
    static let workDir: String = {
        let dir = NSTemporaryDirectory() + "braid-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir + "/catalog", withIntermediateDirectories: true)
        // BaseIdentity remembers each base's digest on disk: keep this process's tiny bases out of ~/.cache.
        setenv("XDG_CACHE_HOME", dir + "/cache", 1)
        atexit { try? FileManager.default.removeItem(atPath: Fixtures.workDir) }
        return dir
    }()

    // MARK: the real vocabulary

    /// models/SmolLM2-135M-Instruct.Q4_1.gguf (or $BRAID_MODEL): its tokenizer, loaded once.
    static let modelPath = ProcessInfo.processInfo.environment["BRAID_MODEL"] ?? "models/SmolLM2-135M-Instruct.Q4_1.gguf"

    public static let realTokenizer: Tokenizer = {
        do {
            return try Tokenizer(gguf: GGUFFile(path: modelPath))
        } catch {
            fatal("the tokenizer targets need the base model's vocabulary: \(error) (run scripts/setup.sh, or set BRAID_MODEL)")
        }
    }()

    public static let realTemplate: ChatTemplate = {
        let f = try? GGUFFile(path: modelPath)
        return ChatTemplate.detect(fromTemplate: f?.metadata["tokenizer.chat_template"]?.stringValue)
    }()

    // MARK: the tiny base

    public static let tinyConfig = LlamaConfig(blockCount: 2, embeddingLength: 32, feedForwardLength: 64, headCount: 2,
                                        headCountKV: 1, ropeFreqBase: 10_000, rmsEpsilon: 1e-5, contextLength: 64, vocabularySize: 128)

    public static let tinyBasePath: String = {
        let path = workDir + "/tiny-base.gguf"
        write(tinyModel(config: tinyConfig, seed: 1), to: path)
        return path
    }()

    public static let tinyBase: LlamaModel = {
        do { return try LlamaModel(path: tinyBasePath, threads: 1, maxBatch: 8) } catch { fatal("tiny base: \(error)") }
    }()

    public static let tinyBaseSHA: String = {
        do { return try BaseIdentity.sha256(of: tinyBase) } catch { fatal("tiny base sha256: \(error)") }
    }()

    public static let tinyTokenizer: Tokenizer = {
        let (tokens, types, merges) = tinyVocabulary(count: tinyConfig.vocabularySize)
        do {
            return try Tokenizer(tokens: tokens, tokenTypes: types, merges: merges, bosID: nil, eosID: 2, addBOS: false)
        } catch { fatal("tiny tokenizer: \(error)") }
    }()

    /// A SentencePiece vocabulary (GGUF `llama`, as Gemma's): control tokens, a user-defined
    /// "\n\n", the 256 byte-fallback tokens, then a few pieces with "▁" for a space and scores
    /// with ties.
    public static let tinySentencePiece: Tokenizer = {
        var tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "\n\n"]
        var types = [3, 3, 3, 2, 3, 3, 4]
        tokens += (0..<256).map { String(format: "<0x%02X>", $0) }
        types += [Int](repeating: 6, count: 256)
        let pieces = ["▁", "e", "t", "a", "o", "n", "h", "s", "▁t", "he", "▁the", "in", "er", "an", "▁a", "on", "re",
                      "▁th", "at", "en", "▁s", "es", "or", "▁o", "ti", "▁w", "is", "▁▁", "▁▁▁▁", "é", "日本"]
        tokens += pieces
        types += [Int](repeating: 1, count: pieces.count)
        let scores = [Float](repeating: 0, count: 263) + pieces.indices.map { -Float($0 / 3) }
        do {
            return try Tokenizer(tokens: tokens, scores: scores, tokenTypes: types, bosID: 2, eosID: 1, unknownID: 3,
                                 addBOS: true, addSpacePrefix: false)
        } catch { fatal("tiny SentencePiece tokenizer: \(error)") }
    }()

    /// Task vectors for the tiny base, written into `catalogDir` as TASK.tv.gguf (with router data).
    static let catalogDir = workDir + "/catalog"

    public static let tinyVectors: [TaskVector] = {
        ["arith", "json"].enumerated().map { i, task in
            let path = "\(catalogDir)/\(task).tv.gguf"
            write(taskVectorFile(task: task, tunedSeed: UInt64(9 + i)), to: path)
            do { return try TaskVector(path: path, base: tinyBase, baseSHA256: tinyBaseSHA) } catch { fatal("tiny vector \(task): \(error)") }
        }
    }()

    /// A task vector for the tiny base without router data (the router target adds its input as
    /// `braid.router`).
    nonisolated(unsafe) public static let routerlessVector: GGUFWriter = taskVectorFile(task: "sentiment", tunedSeed: 11, router: false)

    public static let tinyCatalog: TaskCatalog = {
        _ = tinyVectors
        do { return try TaskCatalog(directory: catalogDir, model: tinyBase) } catch { fatal("tiny catalog: \(error)") }
    }()

    // MARK: files

    /// A random Llama GGUF with `config`'s shapes and the tiny byte-level vocabulary in its metadata.
    static func tinyModel(config c: LlamaConfig, seed: UInt64, matrixType: GGMLType = .q4_1) -> GGUFWriter {
        var rng = Xoshiro256(seed: seed)
        func random(_ n: Int, _ scale: Float) -> [Float] {
            (0..<n).map { _ in (Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1) * scale }
        }
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("llama.block_count", .uint32(UInt32(c.blockCount)))
        w.set("llama.embedding_length", .uint32(UInt32(c.embeddingLength)))
        w.set("llama.feed_forward_length", .uint32(UInt32(c.feedForwardLength)))
        w.set("llama.attention.head_count", .uint32(UInt32(c.headCount)))
        w.set("llama.attention.head_count_kv", .uint32(UInt32(c.headCountKV)))
        w.set("llama.rope.freq_base", .float32(c.ropeFreqBase))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(c.rmsEpsilon))
        w.set("llama.context_length", .uint32(UInt32(c.contextLength)))
        w.set("llama.vocab_size", .uint32(UInt32(c.vocabularySize)))
        let (tokens, types, merges) = tinyVocabulary(count: c.vocabularySize)
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("smollm"))
        w.set("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(.int32, types.map { .int32(Int32($0)) }))
        w.set("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))
        w.set("tokenizer.ggml.eos_token_id", .uint32(2))
        w.set("tokenizer.chat_template", .string("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"))
        func matrix(_ name: String, rows: Int, cols: Int, type: GGMLType) {
            let values = random(rows * cols, 2 / Float(cols).squareRoot())
            try! w.addTensor(name, shape: [cols, rows], type: type, data: Data(BlockCodec.encode(type, values)))
        }
        let d = c.embeddingLength
        matrix("token_embd.weight", rows: c.vocabularySize, cols: d, type: .q8_0)
        try! w.addTensor("output_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
        for l in 0..<c.blockCount {
            let p = "blk.\(l)."
            try! w.addTensor(p + "attn_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
            try! w.addTensor(p + "ffn_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
            matrix(p + "attn_q.weight", rows: c.queryDim, cols: d, type: matrixType)
            matrix(p + "attn_k.weight", rows: c.kvDim, cols: d, type: matrixType)
            matrix(p + "attn_v.weight", rows: c.kvDim, cols: d, type: matrixType)
            matrix(p + "attn_output.weight", rows: d, cols: c.queryDim, type: matrixType)
            matrix(p + "ffn_gate.weight", rows: c.feedForwardLength, cols: d, type: matrixType)
            matrix(p + "ffn_up.weight", rows: c.feedForwardLength, cols: d, type: matrixType)
            matrix(p + "ffn_down.weight", rows: d, cols: c.feedForwardLength, type: matrixType)
        }
        return w
    }

    /// A byte-level BPE vocabulary of `count` tokens: <|endoftext|>, <|im_start|>, <|im_end|>
    /// (control), "\n", " " and the printable ASCII bytes (GPT-2's byte characters), then merges.
    static func tinyVocabulary(count: Int) -> (tokens: [String], types: [Int], merges: [String]) {
        var tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "\u{010A}", "\u{0120}"]
        var types = [3, 3, 3, 1, 1]
        for b in 0x21...0x7E where tokens.count < count {
            tokens.append(String(Unicode.Scalar(UInt8(b))))
            types.append(1)
        }
        let pairs = ["\u{0120} t", "\u{0120} a", "t h", "h e", "i n", "e r", "a n", "r e", "o n", "\u{0120} s", "e n", "a t",
                     "o r", "e s", "\u{0120} w", "i s", "\u{0120} c", "\u{0120} o", "\u{0120} i", "\u{0120} b", "\u{0120} m",
                     "\u{0120} d", "\u{0120} f", "\u{0120} p", "\u{0120}t h", "\u{0120}th e", "i t", "a r", "s t", "d d", "\u{0120} 2"]
        var merges: [String] = []
        for p in pairs where tokens.count < count {
            merges.append(p)
            tokens.append(p.replacingOccurrences(of: " ", with: ""))
            types.append(1)
        }
        while tokens.count < count {
            tokens.append("<unused\(tokens.count)>")
            types.append(5)
        }
        return (tokens, types, merges)
    }

    /// A 1-bit task vector for the tiny base (the fine-tune: the same shapes, another seed),
    /// carrying router data as `braid router fit` stores it.
    static func taskVectorFile(task: String, tunedSeed: UInt64, rowDensity: Double = 1, router: Bool = true) -> GGUFWriter {
        let tunedPath = workDir + "/tuned-\(tunedSeed).gguf"
        write(tinyModel(config: tinyConfig, seed: tunedSeed), to: tunedPath)
        do {
            let source = try DeltaSource.fineTunedGGUF(tunedPath, base: tinyBase)
            var options = CompressionOptions()
            options.rowDensity = rowDensity
            var w = try Compressor.compress(source, base: tinyBase, baseSHA256: tinyBaseSHA, task: task,
                                            description: "fuzz fixture", options: options)
            if router { w.set(RouterData.metadataKey, .string(routerJSON(seed: tunedSeed))) }
            return w
        } catch { fatal("tiny task vector: \(error)") }
    }

    /// Router data over the tiny base's features (a centroid router with an early stage after block 1).
    static func routerJSON(seed: UInt64, classifier: String = "centroid", early: Bool = true) -> String {
        var rng = Xoshiro256(seed: seed)
        let d = tinyConfig.embeddingLength
        func v() -> String { "[" + (0..<d).map { _ in String(format: "%.2f", Float(rng.next() >> 40) / Float(1 << 24) - 0.5) }.joined(separator: ",") + "]" }
        let ones = "[" + [String](repeating: "1", count: d).joined(separator: ",") + "]"
        return """
        {"shared":{"featureMean":\(v()),"featureScale":\(ones),"noneCentroid":\(v()),"noneWeight":\(v()),"noneBias":0,\
        "threshold":0.4,"temperature":0.1,"classifier":"\(classifier)","featureLayers":2\
        \(early ? #","early":{"featureLayers":1,"featureMean":\#(v()),"featureScale":\#(ones),"noneWeight":\#(v()),"noneBias":0,"confidence":0.9}"# : "")},\
        "centroid":\(v()),"weight":\(v()),"bias":0.1\(early ? #","earlyWeight":\#(v()),"earlyBias":0"# : "")}
        """
    }

    /// A learned gate for `tinyVectors[0]`.
    static func gateFile() -> Data {
        let v = tinyVectors[0]
        var g = LearnedGate(dim: tinyConfig.embeddingLength, rank: 2, task: v.name, taskVectorSHA256: v.weightsSHA256)
        for i in g.b.indices { g.b[i] = Float(i % 7) / 7 - 0.5 }
        let path = workDir + "/arith.gate.gguf"
        do { try g.write(to: path) } catch { fatal("gate: \(error)") }
        return FileManager.default.contents(atPath: path)!
    }

    static func write(_ w: GGUFWriter, to path: String) {
        do { try w.write(to: path) } catch { fatal("writing \(path): \(error)") }
    }

    // MARK: a LoRA adapter

    /// A PEFT adapter folder for the tiny base: random rank-2 factors of q, k and ffn_down in
    /// both blocks, and an adapter_config.json that is a link to the input file.
    public static let loraDir: String = {
        let dir = workDir + "/lora"
        let c = tinyConfig, rank = 2
        let modules = [("self_attn.q_proj", c.queryDim, c.embeddingLength), ("self_attn.k_proj", c.kvDim, c.embeddingLength),
                       ("mlp.down_proj", c.embeddingLength, c.feedForwardLength)]
        var header: [String: Any] = [:], body = Data(), rng = Xoshiro256(seed: 5)
        for l in 0..<c.blockCount {
            for (module, rows, columns) in modules {
                for (factor, shape) in [("lora_A", [rank, columns]), ("lora_B", [rows, rank])] {
                    let values = (0..<(shape[0] * shape[1])).map { _ in rng.nextUnit() - 0.5 }
                    header["base_model.model.model.layers.\(l).\(module).\(factor).weight"] =
                        ["dtype": "F32", "shape": shape, "data_offsets": [body.count, body.count + 4 * values.count]]
                    values.withUnsafeBytes { body.append(contentsOf: $0) }
                }
            }
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let json = try JSONSerialization.data(withJSONObject: header)
            var file = Data()
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
            try (file + json + body).write(to: URL(fileURLWithPath: dir + "/adapter_model.safetensors"))
            _ = inputFD
            try FileManager.default.createSymbolicLink(atPath: dir + "/adapter_config.json", withDestinationPath: inputPath)
        } catch {
            fatal("LoRA fixture: \(error)")
        }
        return dir
    }()

    // MARK: an input as a file

    /// One file the path-only readers (safetensors, JSONL files) read each input from,
    /// rewritten in place (it stays in the page cache).
    static let inputPath = workDir + "/input"
    public static let inputFD: CInt = {
        let fd = open(inputPath, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { fatal("\(inputPath): \(String(cString: strerror(errno)))") }
        return fd
    }()

    /// `data` as the whole contents of the input file; returns its path.
    public static func inputFile(holding data: UnsafeRawBufferPointer) -> String {
        ftruncate(inputFD, 0)
        var written = 0
        while written < data.count {
            let n = pwrite(inputFD, data.baseAddress! + written, data.count - written, off_t(written))
            guard n > 0 else { fatal("writing \(inputPath): \(String(cString: strerror(errno)))") }
            written += n
        }
        return inputPath
    }
}

