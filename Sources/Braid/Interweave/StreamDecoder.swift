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
}

/// Turns tokens into next-token logits for one or many sequences, each single-stream or
/// interweaved. An interweaved sequence is two columns of one forward pass (base, tuned), so
/// every weight is read once for both and only the tuned column gets the task term; the gate
/// then mixes the two before the LM head (hidden space) or after it (logits).
public final class StreamDecoder: @unchecked Sendable {
    public let model: LlamaModel
    /// nil: no interweaving.
    public let gate: InterweaveGate?
    /// Logits mixed after the head, one row per sequence.
    private let mixed: UnsafeMutablePointer<Float>
    private var outputsMixed = false
    private var gateValues: [Float]

    public init(model: LlamaModel, gate: InterweaveGate?) {
        self.model = model
        self.gate = gate
        mixed = .allocate(capacity: model.maxBatch * model.config.vocabularySize)
        gateValues = [Float](repeating: 0, count: model.config.embeddingLength)
    }

    deinit { mixed.deallocate() }

    /// Sequences decoded together at most (an interweaved one takes two columns).
    public var maxSequences: Int { gate == nil ? model.maxBatch : model.maxBatch / 2 }

    public func makeSequence(capacity: Int, route: Route = .base, prior: Float = 0.5) -> DecodeSequence {
        DecodeSequence(cache: model.makeCache(capacity: capacity), baseCache: gate == nil ? nil : model.makeCache(capacity: capacity),
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
        guard let gate, s.isInterweaved else {
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
            if gate != nil && s.isInterweaved {
                columns.append((entries.count, entries.count + 1))
                entries.append(BatchEntry(token: t, position: s.baseCache!.count, cache: s.baseCache!, route: .base))
            } else {
                columns.append((entries.count, nil))
            }
            entries.append(BatchEntry(token: t, position: s.cache.count, cache: s.cache, route: s.route))
        }
        if gate == nil {
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
                case .adaptive:
                    preconditionFailure("the adaptive gate mixes logits")
                }
            }
            model.head(columns: seqs.count)
            outputsMixed = false
            return
        }
        model.head(columns: columns.reduce(0) { $0 + ($1.1 == nil ? 1 : 2) })
        for (i, (c, t)) in columns.enumerated() {
            let out = mixed + i * v
            guard let t else {
                out.update(from: model.logits(c).baseAddress!, count: v)
                continue
            }
            let lb = model.logits(c), lt = model.logits(t)
            switch gate {
            case .fixed(let l, _):
                let zb = Self.logSumExp(lb), zt = Self.logSumExp(lt)
                for j in 0..<v { out[j] = l * (lb[j] - zb) + (1 - l) * (lt[j] - zt) }
            case .adaptive:
                // Each stream's top probability, weighted by the router's belief in the task.
                let r = min(max(seqs[i].prior, InterweaveGate.priorFloor), 1 - InterweaveGate.priorFloor)
                let pb = Self.topProbability(lb), pt = Self.topProbability(lt)
                out.update(from: (r * pt >= (1 - r) * pb ? lt : lb).baseAddress!, count: v)
            case .learned:
                preconditionFailure("the learned gate mixes hidden states")
            }
        }
        outputsMixed = true
    }

    private func learnedGate(_ gates: [String: LearnedGate], _ route: Route) throws -> LearnedGate {
        let main = route.terms.max { $0.coefficient < $1.coefficient }!.vector
        guard let g = gates[main.name] else {
            throw BraidError.invalidArgument("no learned gate for task \(main.name) (braid train-gate --task \(main.name))")
        }
        return g
    }

    static func logSumExp(_ x: UnsafeBufferPointer<Float>) -> Float {
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
