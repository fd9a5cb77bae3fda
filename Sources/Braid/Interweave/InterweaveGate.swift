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
    /// Per token from the router's probability, both streams' confidence and their agreement:
    /// one stream writes, or a hidden-space mix does (issue 18; `GuardedGate`).
    case guarded(GuardedGate)

    public enum BlendSpace: String, Sendable {
        case hidden, logits
    }

    /// Parses `fixed:λ`, `fixed-logits:λ`, `adaptive`, `guarded` (also `on`: the default gate) and
    /// `guarded:ρ/τ/β/λ` (its rule with other numbers; `/`, since mode lists are comma-separated); learned gates are loaded by the caller.
    public static func parse(_ spec: String) throws -> InterweaveGate? {
        if spec == "off" { return nil }
        if spec == "adaptive" { return .adaptive }
        if spec == "guarded" || spec == "on" { return .guarded(.selected) }
        if spec.hasPrefix("guarded:") {
            let parts = spec.dropFirst("guarded:".count).split(separator: "/", omittingEmptySubsequences: false)
            let v = parts.compactMap { Float($0) }
            guard parts.count == 4, v.count == 4, v[3] >= 0, v[3] <= 1 else {
                throw BraidError.invalidArgument("--interweave \(spec): guarded:ROUTER_SURE/TUNED_SURE/BASE_SURE/MIX (four numbers, MIX in [0, 1])")
            }
            return .guarded(GuardedGate(routerSure: v[0], tunedSure: v[1], baseSure: v[2], disagreementMix: v[3]))
        }
        for (prefix, space) in [("fixed:", BlendSpace.hidden), ("fixed-logits:", .logits)] where spec.hasPrefix(prefix) {
            guard let l = Float(spec.dropFirst(prefix.count)), l >= 0, l <= 1 else {
                throw BraidError.invalidArgument("--interweave \(spec): λ must be a number in [0, 1]")
            }
            return .fixed(l, space: space)
        }
        throw BraidError.invalidArgument("--interweave must be off, on, guarded, fixed:λ, fixed-logits:λ, adaptive or learned (got \(spec))")
    }

    /// Whether the streams are mixed before the LM head (one head column per sequence).
    var blendsHidden: Bool {
        switch self {
        case .fixed(_, let space): return space == .hidden
        case .adaptive, .guarded: return false
        case .learned: return true
        }
    }

    /// Whether the gate reads the base stream beside the tuned one (a guarded rule that the
    /// router's probability alone decides does not: its sequences run as one stream).
    public var needsBaseStream: Bool {
        if case .guarded(let rule) = self { return !rule.decidesByRouterAlone }
        return true
    }

    /// Whether the gate reads the router's probability of the route.
    public var needsPrior: Bool {
        switch self {
        case .adaptive, .guarded: return true
        case .fixed, .learned: return false
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
        case .guarded(let g):
            return g == .selected ? "guarded" : "guarded:\(g.routerSure)/\(g.tunedSure)/\(g.baseSure)/\(g.disagreementMix)"
        }
    }
}
