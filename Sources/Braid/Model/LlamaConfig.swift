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
        // Every size becomes an allocation, a loop bound or a factor of one: each is checked
        // against what a model can have before it is used (a block per tensor at most; widths
        // and counts far above today's largest models, small enough that products cannot overflow).
        func size(_ k: String, _ value: Int, _ range: ClosedRange<Int>) throws -> Int {
            try CheckedInt.int(value, "\(k) of \(gguf.path)", in: range)
        }
        func size(_ k: String, _ range: ClosedRange<Int>) throws -> Int { try size(key(k), try gguf.int(key(k)), range) }
        func optionalSize(_ k: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard gguf.metadata[key(k)] != nil else { return nil }
            return try size(k, range)
        }
        let heads = try size("attention.head_count", 1...Self.maxHeads)
        let dim = try size("embedding_length", 1...Self.maxWidth)
        let vocab: Int
        if let v = try optionalSize("vocab_size", 1...Self.maxVocabulary) {
            vocab = v
        } else {
            vocab = try size("token_embd.weight rows", gguf.tensor("token_embd.weight").rows, 1...Self.maxVocabulary)
        }
        let headDim = try optionalSize("attention.key_length", 1...Self.maxWidth) ?? dim / heads
        self.init(
            architecture: arch,
            blockCount: try size("block_count", 1...max(1, gguf.tensorList.count)),
            embeddingLength: dim,
            feedForwardLength: try size("feed_forward_length", 1...Self.maxWidth),
            headCount: heads,
            headCountKV: try optionalSize("attention.head_count_kv", 1...Self.maxHeads) ?? heads,
            headDim: headDim,
            ropeDimensions: try optionalSize("rope.dimension_count", 0...Self.maxWidth) ?? headDim,
            ropeFreqBase: Float(gguf.metadata[key("rope.freq_base")]?.floatValue ?? 10_000),
            rmsEpsilon: Float(try gguf.float(key("attention.layer_norm_rms_epsilon"))),
            contextLength: try size("context_length", 1...Self.maxContext),
            vocabularySize: vocab)
        try validate()
    }

    /// Bounds on sizes read from a file (LlamaConfig(gguf:)).
    static let maxWidth = 1 << 18, maxHeads = 1 << 12, maxVocabulary = 1 << 24, maxContext = 1 << 24

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
