/// Sizes of a Llama-family model, all read from GGUF metadata.
public struct LlamaConfig: Sendable, Equatable {
    public var architecture: String
    public var blockCount: Int
    public var embeddingLength: Int
    public var feedForwardLength: Int
    public var headCount: Int
    public var headCountKV: Int
    public var headDim: Int
    public var ropeDimensions: Int
    public var ropeFreqBase: Float
    public var rmsEpsilon: Float
    public var contextLength: Int
    public var vocabularySize: Int

    public var kvDim: Int { headCountKV * headDim }
    public var queryDim: Int { headCount * headDim }

    public init(architecture: String = "llama", blockCount: Int, embeddingLength: Int, feedForwardLength: Int,
                headCount: Int, headCountKV: Int, headDim: Int? = nil, ropeDimensions: Int? = nil,
                ropeFreqBase: Float = 10_000, rmsEpsilon: Float = 1e-5, contextLength: Int, vocabularySize: Int) {
        self.architecture = architecture
        self.blockCount = blockCount
        self.embeddingLength = embeddingLength
        self.feedForwardLength = feedForwardLength
        self.headCount = headCount
        self.headCountKV = headCountKV
        self.headDim = headDim ?? embeddingLength / headCount
        self.ropeDimensions = ropeDimensions ?? self.headDim
        self.ropeFreqBase = ropeFreqBase
        self.rmsEpsilon = rmsEpsilon
        self.contextLength = contextLength
        self.vocabularySize = vocabularySize
    }

    public init(gguf: GGUFFile) throws {
        let arch = try gguf.string("general.architecture")
        guard arch == "llama" else { throw BraidError.unsupportedArchitecture(arch) }
        func key(_ k: String) -> String { "\(arch).\(k)" }
        let heads = try gguf.int(key("attention.head_count"))
        let dim = try gguf.int(key("embedding_length"))
        let vocab: Int
        if let v = gguf.metadata[key("vocab_size")]?.intValue {
            vocab = v
        } else {
            vocab = try gguf.tensor("token_embd.weight").rows
        }
        let headDim = gguf.metadata[key("attention.key_length")]?.intValue ?? (heads > 0 ? dim / heads : 0)
        self.init(
            architecture: arch,
            blockCount: try gguf.int(key("block_count")),
            embeddingLength: dim,
            feedForwardLength: try gguf.int(key("feed_forward_length")),
            headCount: heads,
            headCountKV: gguf.metadata[key("attention.head_count_kv")]?.intValue ?? heads,
            headDim: headDim,
            ropeDimensions: gguf.metadata[key("rope.dimension_count")]?.intValue ?? headDim,
            ropeFreqBase: Float(gguf.metadata[key("rope.freq_base")]?.floatValue ?? 10_000),
            rmsEpsilon: Float(try gguf.float(key("attention.layer_norm_rms_epsilon"))),
            contextLength: try gguf.int(key("context_length")),
            vocabularySize: vocab)
        try validate()
    }

    func validate() throws {
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw BraidError.invalidArgument("unsupported model shape: \(what)") }
        }
        try check(blockCount > 0 && embeddingLength > 0 && feedForwardLength > 0 && vocabularySize > 0, "empty dimensions")
        try check(headCount > 0 && headCountKV > 0 && headCount % headCountKV == 0, "\(headCount) heads over \(headCountKV) KV heads")
        try check(headDim % 2 == 0 && ropeDimensions <= headDim && ropeDimensions % 2 == 0, "head size \(headDim), rope dims \(ropeDimensions)")
        try check(embeddingLength % 32 == 0 && feedForwardLength % 32 == 0 && queryDim % 32 == 0, "widths must be multiples of 32")
        try check(contextLength > 0, "context length \(contextLength)")
    }
}
