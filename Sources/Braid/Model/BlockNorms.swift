/// The RMS-norm weights a transformer block may have, with their GGUF tensor names. Llama has
/// the first two; Gemma all six. Task vectors, merges and routes treat them alike by kind.
public enum NormKind: Int, CaseIterable, Sendable {
    case attention, ffn, query, key, postAttention, postFFN

    /// The middle part of the tensor name: `blk.N.<suffix>.weight`.
    public var tensorSuffix: String {
        switch self {
        case .attention: "attn_norm"
        case .ffn: "ffn_norm"
        case .query: "attn_q_norm"
        case .key: "attn_k_norm"
        case .postAttention: "post_attention_norm"
        case .postFFN: "post_ffw_norm"
        }
    }

    public init?(tensorSuffix: some StringProtocol) {
        guard let kind = Self.allCases.first(where: { $0.tensorSuffix == tensorSuffix }) else { return nil }
        self = kind
    }

    public func tensorName(layer: Int) -> String { "blk.\(layer).\(tensorSuffix).weight" }
}

/// One block's norm weights by kind: attention and FFN always, the others where the
/// architecture has them (query and key norms hold headDim values, the rest d).
public struct BlockNorms: Sendable {
    private var weights: [[Float]?]

    public init(attention: [Float], ffn: [Float]) {
        weights = [attention, ffn] + Array(repeating: nil, count: NormKind.allCases.count - 2)
    }

    public subscript(kind: NormKind) -> [Float]? {
        get { weights[kind.rawValue] }
        set {
            precondition(newValue != nil || (kind != .attention && kind != .ffn), "a block always has attention and FFN norms")
            weights[kind.rawValue] = newValue
        }
    }

    public var attention: [Float] { weights[NormKind.attention.rawValue]! }
    public var ffn: [Float] { weights[NormKind.ffn.rawValue]! }

    /// The kinds this block has.
    public var kinds: [NormKind] { NormKind.allCases.filter { weights[$0.rawValue] != nil } }

    /// These norms with each weight passed through `transform`.
    public func mapped(_ transform: (NormKind, [Float]) throws -> [Float]) rethrows -> BlockNorms {
        var out = self
        for kind in kinds { out.weights[kind.rawValue] = try transform(kind, weights[kind.rawValue]!) }
        return out
    }
}
