/// The one-dimensional weights a transformer block may have: RMS-norm weights (Llama has the
/// first two, Gemma all six) and the q/k/v biases (Qwen2). Task vectors, merges and routes
/// treat them alike by kind.
public enum VectorKind: Int, CaseIterable, Sendable {
    case attention, ffn, query, key, postAttention, postFFN, queryBias, keyBias, valueBias

    /// The tensor's name after `blk.N.`.
    public var tensorStem: String {
        switch self {
        case .attention: "attn_norm.weight"
        case .ffn: "ffn_norm.weight"
        case .query: "attn_q_norm.weight"
        case .key: "attn_k_norm.weight"
        case .postAttention: "post_attention_norm.weight"
        case .postFFN: "post_ffw_norm.weight"
        case .queryBias: "attn_q.bias"
        case .keyBias: "attn_k.bias"
        case .valueBias: "attn_v.bias"
        }
    }

    public init?(tensorStem: some StringProtocol) {
        guard let kind = Self.allCases.first(where: { $0.tensorStem == tensorStem }) else { return nil }
        self = kind
    }

    public func tensorName(layer: Int) -> String { "blk.\(layer).\(tensorStem)" }
}

/// One block's vectors by kind: the attention and FFN norms always, the others where the
/// architecture or the file has them (q/k norms hold headDim values, biases their projection's
/// width, the rest d).
public struct BlockVectors: Sendable {
    private var weights: [[Float]?]

    public init(attention: [Float], ffn: [Float]) {
        weights = [attention, ffn] + Array(repeating: nil, count: VectorKind.allCases.count - 2)
    }

    public subscript(kind: VectorKind) -> [Float]? {
        get { weights[kind.rawValue] }
        set {
            precondition(newValue != nil || (kind != .attention && kind != .ffn), "a block always has attention and FFN norms")
            weights[kind.rawValue] = newValue
        }
    }

    public var attention: [Float] { weights[VectorKind.attention.rawValue]! }
    public var ffn: [Float] { weights[VectorKind.ffn.rawValue]! }

    /// The kinds this block has.
    public var kinds: [VectorKind] { VectorKind.allCases.filter { weights[$0.rawValue] != nil } }

    /// These vectors with each passed through `transform`.
    public func mapped(_ transform: (VectorKind, [Float]) throws -> [Float]) rethrows -> BlockVectors {
        var out = self
        for kind in kinds { out.weights[kind.rawValue] = try transform(kind, weights[kind.rawValue]!) }
        return out
    }
}
