/// The guarded interweaving gate (issue 18): per token, from the router's probability r that the
/// query is the route's task, each stream's confidence and whether their top tokens agree, it
/// lets one stream write or mixes the two in hidden space. The rule and its numbers were selected
/// on teacher-forced evidence (`braid gate-evidence`, scripts/select-gate.py) over phrasing
/// families the task vectors never saw; other families were kept out and used only to check it.
///
/// 1. r < ½ (the router's best guess is not this task): the base writes.
/// 2. The router is sure (r ≥ `routerSure`) and the tuned stream is sure (top ≥ `tunedSure`):
///    the tuned stream writes — the base's head is never run.
/// 3. Otherwise the base's head runs too. If both streams put the same token on top, the tuned
///    stream writes; if the base is sure (top ≥ `baseSure`), the base writes; else the mix
///    `disagreementMix`·h_base + (1 − ·)·h_tuned does.
public struct GuardedGate: Sendable, Equatable {
    public var routerSure: Float
    public var tunedSure: Float
    public var baseSure: Float
    /// The base's weight in the mix written when the streams disagree and neither rule above decides.
    public var disagreementMix: Float

    public init(routerSure: Float, tunedSure: Float, baseSure: Float, disagreementMix: Float) {
        self.routerSure = routerSure
        self.tunedSure = tunedSure
        self.baseSure = baseSure
        self.disagreementMix = disagreementMix
    }

    /// The default, as selected (BENCHMARKS.md, "Interweaving that never loses"): inside the task
    /// (r ≥ ½) the tuned stream writes every token. Letting a sure base (≥ 0.8) overrule a
    /// less than near-certain tuned stream won nothing on the held-out families and cost arith
    /// answers on the test split; mixing on disagreement cost spelling answers on the dev split.
    public static let selected = GuardedGate(routerSure: 0.5, tunedSure: 0, baseSure: 1.01, disagreementMix: 0)

    /// What writes the token: one stream's logits, or the LM head of a hidden-space mix (λ: the base's weight).
    public enum Choice: Sendable, Equatable {
        case tuned, base
        case mix(Float)
    }

    /// Which stream's head runs first: the tuned one inside the task (r ≥ ½).
    public func tunedFirst(prior r: Float) -> Bool { r >= 0.5 }

    /// True when the router's probability alone decides every token (the tuned stream writes
    /// when r ≥ ½, the base otherwise): the other stream is then never read, so it is not run.
    /// The selected default is such a rule.
    public var decidesByRouterAlone: Bool { routerSure <= 0.5 && tunedSure <= 0 }

    /// The choice from the favoured stream's confidence alone, or nil when the other stream's head is needed.
    public func choose(prior r: Float, favoured: StreamConfidence) -> Choice? {
        guard tunedFirst(prior: r) else { return .base }
        return r >= routerSure && favoured.top >= tunedSure ? .tuned : nil
    }

    /// The choice once both streams' heads have run (only asked when `choose(prior:favoured:)` gave nil).
    public func choose(prior r: Float, tuned: StreamConfidence, base: StreamConfidence) -> Choice {
        if let c = choose(prior: r, favoured: tuned) { return c }
        if tuned.token == base.token { return .tuned }
        if base.top >= baseSure { return .base }
        return disagreementMix == 0 ? .tuned : disagreementMix == 1 ? .base : .mix(disagreementMix)
    }
}
