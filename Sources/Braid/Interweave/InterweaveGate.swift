/// How interweaving mixes the base stream (no task term) with the tuned stream (the route)
/// before the LM head (DESIGN.md §5, METHODS.md §3). g is the weight of the base: g = 1 is the
/// base model, g = 0 the tuned one.
public enum InterweaveGate: Sendable {
    /// h = λ·h_base + (1 − λ)·h_tuned in hidden space, or the same mix of log-probabilities.
    case fixed(Float, space: BlendSpace)
    /// Training-free, per token: the stream whose top probability, weighted by the router's
    /// belief that the query is the task's, is higher writes the token (both logit vectors are made).
    case adaptive
    /// IMSM's query-aware gate g = σ([q̄_b; h_b; h_t; q̄_t]·A·B), one per task vector.
    case learned([String: LearnedGate])

    public enum BlendSpace: String, Sendable {
        case hidden, logits
    }

    /// Parses `fixed:λ`, `fixed-logits:λ`, `adaptive` (learned gates are loaded by the caller).
    public static func parse(_ spec: String) throws -> InterweaveGate? {
        if spec == "off" { return nil }
        if spec == "adaptive" { return .adaptive }
        for (prefix, space) in [("fixed:", BlendSpace.hidden), ("fixed-logits:", .logits)] where spec.hasPrefix(prefix) {
            guard let l = Float(spec.dropFirst(prefix.count)), l >= 0, l <= 1 else {
                throw BraidError.invalidArgument("--interweave \(spec): λ must be a number in [0, 1]")
            }
            return .fixed(l, space: space)
        }
        throw BraidError.invalidArgument("--interweave must be off, fixed:λ, fixed-logits:λ, adaptive or learned (got \(spec))")
    }

    /// Whether the streams are mixed before the LM head (one head column per sequence).
    var blendsHidden: Bool {
        switch self {
        case .fixed(_, let space): return space == .hidden
        case .adaptive: return false
        case .learned: return true
        }
    }

    /// The gate's prior floor: the adaptive gate never trusts the router's probability beyond
    /// [ε, 1 − ε], so a very confident stream can still win against a confident route.
    static let priorFloor: Float = 0.05

    public var label: String {
        switch self {
        case .fixed(let l, let space): return space == .hidden ? "fixed:\(l)" : "fixed-logits:\(l)"
        case .adaptive: return "adaptive"
        case .learned: return "learned"
        }
    }
}
