import Foundation

/// A sequence being decoded: its routed stream and, when interweaving, the base stream beside
/// it (DESIGN.md §5). Both streams see the same tokens, each in its own KV cache.
public final class DecodeSequence {
    public let cache: KVCache
    /// The base stream's cache (nil: not interweaved).
    public let baseCache: KVCache?
    public var route: Route
    /// The router's probability that the query is the route's task: the adaptive gate's prior.
    public var prior: Float
    /// Mean final-norm hidden states of each stream over the query (the learned gate's q̄).
    var queryBase: [Float] = []
    var queryTuned: [Float] = []

    init(cache: KVCache, baseCache: KVCache?, route: Route, prior: Float) {
        self.cache = cache
        self.baseCache = baseCache
        self.route = route
        self.prior = prior
    }

    /// Two streams only when there is a task term to interweave with the base.
    public var isInterweaved: Bool { baseCache != nil && !route.isBase }
    public var count: Int { cache.count }
    public var capacity: Int { cache.capacity }

    public func truncate(to n: Int) {
        cache.truncate(to: n)
        baseCache?.truncate(to: n)
    }

    public func reset() { truncate(to: 0) }

    /// Takes the first `n` positions of both streams of `other`, computed under the same route.
    public func copyPrefix(from other: DecodeSequence, count n: Int) {
        cache.copyPrefix(from: other.cache, count: n)
        if other.isInterweaved, let b = baseCache, let o = other.baseCache { b.copyPrefix(from: o, count: n) }
    }
}

/// Turns tokens into next-token logits for one or many sequences, each single-stream or
/// interweaved. An interweaved sequence is two columns of one forward pass (base, tuned), so
/// every weight is read once for both and only the tuned column gets the task term; the gate
/// then mixes the two before the LM head (hidden space) or after it (logits).
/// @unchecked Sendable: one caller at a time (a Generator, BatchRunner or the serving engine's thread).
public final class StreamDecoder: @unchecked Sendable {
    public let model: LlamaModel
    /// nil: no interweaving.
    public let gate: InterweaveGate?
    /// Logits mixed after the head, one row per sequence.
    private let mixed: UnsafeMutablePointer<Float>
    /// Hidden states set aside while the adaptive or guarded gate runs the favoured streams' head
    /// (room for both streams of every sequence).
    private let otherHidden: UnsafeMutablePointer<Float>
    private var outputsMixed = false
    private var gateValues: [Float]

    /// Whether interweaved sequences run a base stream beside the tuned one.
    public let twoStreams: Bool

    public init(model: LlamaModel, gate: InterweaveGate?) {
        self.model = model
        self.gate = gate
        twoStreams = gate?.needsBaseStream ?? false
        mixed = .allocate(capacity: model.maxBatch * model.config.vocabularySize)
        otherHidden = .allocate(capacity: 2 * model.maxBatch * model.config.embeddingLength)
        gateValues = [Float](repeating: 0, count: model.config.embeddingLength)
    }

    deinit {
        mixed.deallocate()
        otherHidden.deallocate()
    }

    /// Sequences decoded together at most (an interweaved one takes two columns).
    public var maxSequences: Int { twoStreams ? model.maxBatch / 2 : model.maxBatch }

    /// The route a sequence runs for a query routed to `route` with the router's probability
    /// `prior`: under a gate the router alone decides (the default guarded rule), the base
    /// when r < ½ — the stream that rule would let write every token — and `route` otherwise.
    /// Callers set this as the sequence's route, so that caches and shared prefixes are keyed by
    /// what is actually computed.
    public func route(for route: Route, prior: Float) -> Route {
        if case .guarded(let rule) = gate, rule.decidesByRouterAlone, !rule.tunedFirst(prior: prior) { return .base }
        return route
    }

    public func makeSequence(capacity: Int, route: Route = .base, prior: Float = 0.5) -> DecodeSequence {
        DecodeSequence(cache: model.makeCache(capacity: capacity), baseCache: twoStreams ? model.makeCache(capacity: capacity) : nil,
                       route: route, prior: prior)
    }

    /// Logits of sequence `i` after the last `prefill` (i = 0) or `step`.
    public func logits(_ i: Int = 0) -> UnsafeBufferPointer<Float> {
        let v = model.config.vocabularySize
        return outputsMixed ? UnsafeBufferPointer(start: mixed + i * v, count: v) : model.logits(i)
    }

    /// Feeds `tokens` to the sequence from its current end and returns the last token's logits.
    /// The learned gate's query summaries are the mean over `tokens[queryStart...]`.
    @discardableResult
    public func prefill(_ s: DecodeSequence, _ tokens: [Int32], queryStart: Int = 0) throws -> UnsafeBufferPointer<Float> {
        guard let gate, twoStreams, s.isInterweaved else {
            outputsMixed = false
            return try model.prefill(tokens, cache: s.cache, route: s.route)
        }
        let d = model.config.embeddingLength
        var summarize = false
        if case .learned = gate { summarize = true }
        s.queryBase = try prefillStream(tokens, cache: s.baseCache!, route: .base, queryStart: queryStart, summarize: summarize)
        let base = Array(UnsafeBufferPointer(start: model.hidden(0), count: d))
        s.queryTuned = try prefillStream(tokens, cache: s.cache, route: s.route, queryStart: queryStart, summarize: summarize)
        model.hidden(1).update(from: model.hidden(0), count: d)
        model.hidden(0).update(from: base, count: d)
        try combine([s], columns: [(0, 1)])
        return logits(0)
    }

    /// One token for each sequence, all in one forward pass; then `logits(i)`.
    public func step(_ seqs: [DecodeSequence], _ tokens: [Int32]) throws {
        precondition(seqs.count == tokens.count)
        var entries: [BatchEntry] = []
        var columns: [(Int, Int?)] = []
        for (s, t) in zip(seqs, tokens) {
            if twoStreams && s.isInterweaved {
                columns.append((entries.count, entries.count + 1))
                entries.append(BatchEntry(token: t, position: s.baseCache!.count, cache: s.baseCache!, route: .base))
            } else {
                columns.append((entries.count, nil))
            }
            entries.append(BatchEntry(token: t, position: s.cache.count, cache: s.cache, route: s.route))
        }
        if !twoStreams {
            try model.forward(entries, outputs: Array(entries.indices))
            outputsMixed = false
            return
        }
        try model.forward(entries, outputs: Array(entries.indices), head: false)
        try combine(seqs, columns: columns)
    }

    /// Prefills one stream with the head left off; the mean final-norm hidden state over the query when asked.
    private func prefillStream(_ tokens: [Int32], cache: KVCache, route: Route, queryStart: Int, summarize: Bool) throws -> [Float] {
        guard summarize else {
            try model.prefill(tokens, cache: cache, route: route, head: false)
            return []
        }
        let d = model.config.embeddingLength
        var sum = [Double](repeating: 0, count: d)
        var count = 0, position = 0
        model.observer = { layer, _, values, n in
            guard layer == -1 else { return }
            for c in 0..<n where position + c >= queryStart {
                for j in 0..<d { sum[j] += Double(values[c * d + j]) }
                count += 1
            }
            position += n
        }
        defer { model.observer = nil }
        try model.prefill(tokens, cache: cache, route: route, head: false)
        return sum.map { Float($0 / Double(max(count, 1))) }
    }

    /// Mixes each sequence's (base, tuned) columns, or passes a single column on, into output i.
    private func combine(_ seqs: [DecodeSequence], columns: [(Int, Int?)]) throws {
        guard let gate else { return }
        let d = model.config.embeddingLength, v = model.config.vocabularySize
        if gate.blendsHidden {
            // Output i is written after columns < i were read (columns are in sequence order).
            for (i, (c, t)) in columns.enumerated() {
                let out = model.hidden(i)
                guard let t else {
                    if c != i { out.update(from: model.hidden(c), count: d) }
                    continue
                }
                let hb = model.hidden(c), ht = model.hidden(t)
                switch gate {
                case .fixed(let l, _):
                    for j in 0..<d { out[j] = l * hb[j] + (1 - l) * ht[j] }
                case .learned(let gates):
                    let g = try learnedGate(gates, seqs[i].route)
                    gateValues.withUnsafeMutableBufferPointer { gv in
                        g.gate(queryBase: seqs[i].queryBase, base: hb, tuned: ht, queryTuned: seqs[i].queryTuned, into: gv.baseAddress!)
                        for j in 0..<d { out[j] = gv[j] * hb[j] + (1 - gv[j]) * ht[j] }
                    }
                case .adaptive, .guarded:
                    preconditionFailure("the adaptive and guarded gates choose after the head")
                }
            }
            model.head(columns: seqs.count)
            outputsMixed = false
            return
        }
        if case .adaptive = gate {
            try chooseStreams(seqs, columns: columns)
            return
        }
        if case .guarded(let rule) = gate {
            guardStreams(rule, seqs, columns: columns)
            return
        }
        model.head(columns: columns.reduce(0) { $0 + ($1.1 == nil ? 1 : 2) })
        for (i, (c, t)) in columns.enumerated() {
            let out = mixed + i * v
            guard let t else {
                out.update(from: model.logits(c).baseAddress!, count: v)
                continue
            }
            // Log-probabilities mixed with the fixed weight.
            guard case .fixed(let l, _) = gate else { preconditionFailure("only fixed gates mix logits") }
            let lb = model.logits(c), lt = model.logits(t)
            let zb = Self.logSumExp(lb), zt = Self.logSumExp(lt)
            for j in 0..<v { out[j] = l * (lb[j] - zb) + (1 - l) * (lt[j] - zt) }
        }
        outputsMixed = true
    }

    /// The adaptive gate: per sequence, the stream whose top probability times the router's
    /// weight for it (r for the tuned stream, 1 − r for the base, r kept in [ε, 1 − ε]) is higher
    /// writes the token; ties go to the tuned stream. The favoured stream's head runs first, and
    /// the other's only when it could still win (its top probability is at most 1) — so most
    /// steps pay for one LM head column per sequence, not two.
    private func chooseStreams(_ seqs: [DecodeSequence], columns: [(Int, Int?)]) throws {
        let d = model.config.embeddingLength, v = model.config.vocabularySize
        var weights: [(favoured: Float, other: Float, tunedFavoured: Bool)?] = []
        var others: [Int] = []
        for (i, (c, t)) in columns.enumerated() {
            guard let t else {
                weights.append(nil)
                if c != i { model.hidden(i).update(from: model.hidden(c), count: d) }
                continue
            }
            let r = min(max(seqs[i].prior, InterweaveGate.priorFloor), 1 - InterweaveGate.priorFloor)
            let tunedFavoured = r >= 0.5
            weights.append(tunedFavoured ? (r, 1 - r, true) : (1 - r, r, false))
            let (favoured, other) = tunedFavoured ? (t, c) : (c, t)
            (otherHidden + others.count * d).update(from: model.hidden(other), count: d)
            others.append(i)
            if favoured != i { model.hidden(i).update(from: model.hidden(favoured), count: d) }
        }
        model.head(columns: seqs.count)
        var needed: [(sequence: Int, slot: Int, score: Float)] = []
        for (i, w) in weights.enumerated() {
            (mixed + i * v).update(from: model.logits(i).baseAddress!, count: v)
            guard let w else { continue }
            let score = w.favoured * Self.topProbability(model.logits(i))
            if w.other > score || (w.other == score && !w.tunedFavoured) {
                needed.append((i, others.firstIndex(of: i)!, score))
            }
        }
        outputsMixed = true
        guard !needed.isEmpty else { return }
        for (j, n) in needed.enumerated() { model.hidden(j).update(from: otherHidden + n.slot * d, count: d) }
        model.head(columns: needed.count)
        for (j, n) in needed.enumerated() {
            let w = weights[n.sequence]!
            let score = w.other * Self.topProbability(model.logits(j))
            if score > n.score || (score == n.score && !w.tunedFavoured) {
                (mixed + n.sequence * v).update(from: model.logits(j).baseAddress!, count: v)
            }
        }
    }

    /// The guarded gate: the favoured stream's head first (the tuned one when r ≥ ½); the other
    /// stream's head only for sequences whose rule could not decide from the first, and a mix's
    /// head only where the rule asks for one. Each sequence's output is the chosen logits.
    private func guardStreams(_ rule: GuardedGate, _ seqs: [DecodeSequence], columns: [(Int, Int?)]) {
        let d = model.config.embeddingLength, v = model.config.vocabularySize
        // Per sequence: its (base, tuned) hidden states set aside, or nil when single-stream.
        var pairs: [(base: Int, tuned: Int)?] = []
        for (i, (c, t)) in columns.enumerated() {
            guard let t else {
                pairs.append(nil)
                if c != i { model.hidden(i).update(from: model.hidden(c), count: d) }
                continue
            }
            (otherHidden + 2 * i * d).update(from: model.hidden(c), count: d)
            (otherHidden + (2 * i + 1) * d).update(from: model.hidden(t), count: d)
            pairs.append((2 * i, 2 * i + 1))
        }
        for (i, p) in pairs.enumerated() {
            guard let p else { continue }
            model.hidden(i).update(from: otherHidden + (rule.tunedFirst(prior: seqs[i].prior) ? p.tuned : p.base) * d, count: d)
        }
        model.head(columns: seqs.count)
        var undecided: [(sequence: Int, favoured: StreamConfidence)] = []
        for (i, p) in pairs.enumerated() {
            (mixed + i * v).update(from: model.logits(i).baseAddress!, count: v)
            guard let p else { continue }
            let favoured = StreamConfidence(logits: model.logits(i))
            if rule.choose(prior: seqs[i].prior, favoured: favoured) == nil {
                undecided.append((i, favoured))
                model.hidden(undecided.count - 1).update(from: otherHidden + p.base * d, count: d)
            }
        }
        outputsMixed = true
        guard !undecided.isEmpty else { return }
        model.head(columns: undecided.count)
        var mixes: [(sequence: Int, lambda: Float)] = []
        for (j, u) in undecided.enumerated() {
            let base = StreamConfidence(logits: model.logits(j))
            switch rule.choose(prior: seqs[u.sequence].prior, tuned: u.favoured, base: base) {
            case .tuned: break
            case .base: (mixed + u.sequence * v).update(from: model.logits(j).baseAddress!, count: v)
            case .mix(let l): mixes.append((u.sequence, l))
            }
        }
        guard !mixes.isEmpty else { return }
        for (j, m) in mixes.enumerated() {
            let p = pairs[m.sequence]!, out = model.hidden(j)
            let hb = otherHidden + p.base * d, ht = otherHidden + p.tuned * d
            for k in 0..<d { out[k] = m.lambda * hb[k] + (1 - m.lambda) * ht[k] }
        }
        model.head(columns: mixes.count)
        for (j, m) in mixes.enumerated() { (mixed + m.sequence * v).update(from: model.logits(j).baseAddress!, count: v) }
    }

    private func learnedGate(_ gates: [String: LearnedGate], _ route: Route) throws -> LearnedGate {
        let main = route.terms.max { $0.coefficient < $1.coefficient }!.vector
        guard let g = gates[main.name] else {
            throw BraidError.invalidArgument("no learned gate for task \(main.name) (braid train-gate --task \(main.name))")
        }
        return g
    }

    public static func logSumExp(_ x: UnsafeBufferPointer<Float>) -> Float {
        let top = x.max()!
        var s: Float = 0
        for v in x { s += expf(v - top) }
        return top + logf(s)
    }

    static func topProbability(_ x: UnsafeBufferPointer<Float>) -> Float {
        let top = x.max()!
        var s: Float = 0
        for v in x { s += expf(v - top) }
        return 1 / s
    }
}
