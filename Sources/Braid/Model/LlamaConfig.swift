/// Sizes and architecture choices of a Llama-family model (llama, qwen2, gemma3), all read from
/// GGUF metadata and `traits`: everything the forward pass does differently per architecture is a
/// field here or an optional tensor of LlamaWeights.
public struct LlamaConfig: Sendable, Equatable {
    public enum Activation: Sendable, Equatable {
        /// silu(gate) ⊙ up (Llama, SmolLM2, Qwen)
        case silu
        /// gelu(gate) ⊙ up with the tanh approximation (Gemma)
        case geluTanh
    }

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
    public var activation: Activation = .silu
    /// RoPE rotates (x[i], x[i + dims/2]) (GPT-NeoX layout: Gemma, Qwen) rather than adjacent pairs.
    public var ropeNeoX = false
    /// The token embedding is multiplied by this (Gemma: √d).
    public var embeddingScale: Float = 1
    /// Keys a local layer's query sees: positions p − window + 1 … p (0: every layer is global).
    public var slidingWindow = 0
    /// Per block: local (sliding window, `ropeFreqBaseLocal`) or global.
    public var localLayers: [Bool] = []
    public var ropeFreqBaseLocal: Float = 10_000
    /// Positions are multiplied by this on global layers (linear RoPE scaling; 1: none).
    public var ropeScale: Float = 1
    /// Gemma's norms: per-head RMS norm of q and k, and RMS norms after attention and after the FFN.
    public var hasQKNorm = false
    public var hasPostNorms = false

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
        localLayers = Array(repeating: false, count: max(0, blockCount))
    }

    public init(gguf: GGUFFile) throws {
        let arch = try gguf.string("general.architecture")
        guard let traits = Self.traits[arch] else { throw BraidError.unsupportedArchitecture(arch) }
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
        if let scaling = gguf.metadata[key("rope.scaling.type")] {
            let type = (try? gguf.string(key("rope.scaling.type"))) ?? "\(scaling)"
            switch type {
            case "none": break
            case "linear":
                let factor = Float(gguf.metadata[key("rope.scaling.factor")]?.floatValue ?? 1)
                guard factor.isFinite, factor >= 1 else { throw BraidError.invalidArgument("unsupported model shape: rope scaling factor \(factor)") }
                ropeScale = 1 / factor
            default:
                throw BraidError.invalidArgument("unsupported model shape: rope scaling \(type) (braid has none and linear)")
            }
        }
        activation = traits.activation
        ropeNeoX = traits.ropeNeoX
        if traits.scalesEmbedding { embeddingScale = Float(embeddingLength).squareRoot() }
        hasQKNorm = traits.hasQKNorm
        hasPostNorms = traits.hasPostNorms
        if traits.slidingWindowPattern > 0 {
            // With a sliding window, every pattern-th block is global and the others local with
            // their own RoPE base (10,000 unless the file says otherwise).
            slidingWindow = try optionalSize("attention.sliding_window", 0...Self.maxContext) ?? 0
            if slidingWindow > 0 {
                let pattern = try optionalSize("attention.sliding_window_pattern", 0...Self.maxContext) ?? traits.slidingWindowPattern
                localLayers = (0..<blockCount).map { pattern == 0 || $0 % pattern < pattern - 1 }
                ropeFreqBaseLocal = Float(gguf.metadata[key("rope.freq_base_swa")]?.floatValue ?? 10_000)
            }
        }
        if let cap = gguf.metadata[key("final_logit_softcapping")]?.floatValue, cap != 0 {
            throw BraidError.invalidArgument("unsupported model shape: final logit soft-capping \(cap)")
        }
        // Keys and values share one head size in braid's cache and attention.
        if let v = try optionalSize("attention.value_length", 1...Self.maxWidth), v != headDim {
            throw BraidError.invalidArgument("unsupported model shape: value heads of \(v) next to key heads of \(headDim)")
        }
        try validate()
    }

    /// What an architecture's graph fixes beyond the sizes its file gives (as llama.cpp builds
    /// it). Tensors an architecture may have or not (biases, RoPE factors, an untied head) are
    /// read where the file has them (LlamaWeights).
    struct Traits {
        var activation = Activation.silu
        var ropeNeoX = false
        /// The embedding is multiplied by √d.
        var scalesEmbedding = false
        var hasQKNorm = false
        var hasPostNorms = false
        /// With `attention.sliding_window` in the file, every n-th block is global unless
        /// `attention.sliding_window_pattern` says otherwise (0: no sliding window).
        var slidingWindowPattern = 0
    }

    static let traits: [String: Traits] = [
        "llama": Traits(),
        "qwen2": Traits(ropeNeoX: true),
        "gemma3": Traits(activation: .geluTanh, ropeNeoX: true, scalesEmbedding: true, hasQKNorm: true, hasPostNorms: true,
                         slidingWindowPattern: 6),
    ]

    /// Architectures whose forward pass braid has.
    public static var architectures: [String] { traits.keys.sorted() }

    /// The RoPE base and position scale of block `l`.
    @inline(__always)
    func rope(layer l: Int) -> (base: Float, scale: Float) {
        localLayers[l] ? (ropeFreqBaseLocal, 1) : (ropeFreqBase, ropeScale)
    }

    /// Bounds on sizes read from a file (LlamaConfig(gguf:)).
    static let maxWidth = 1 << 18, maxHeads = 1 << 12, maxVocabulary = 1 << 24, maxContext = 1 << 24

    func validate() throws {
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw BraidError.invalidArgument("unsupported model shape: \(what)") }
        }
        try check(blockCount > 0 && embeddingLength > 0 && feedForwardLength > 0 && vocabularySize > 0, "empty dimensions")
        try check(headCount > 0 && headCountKV > 0 && headCount % headCountKV == 0, "\(headCount) heads over \(headCountKV) KV heads")
        // Attention reads heads 8 values at a time.
        try check(headDim % 8 == 0 && ropeDimensions <= headDim && ropeDimensions % 2 == 0, "head size \(headDim), rope dims \(ropeDimensions)")
        try check(embeddingLength % 32 == 0 && feedForwardLength % 32 == 0 && queryDim % 32 == 0, "widths must be multiples of 32")
        try check(contextLength > 0, "context length \(contextLength)")
    }
}
