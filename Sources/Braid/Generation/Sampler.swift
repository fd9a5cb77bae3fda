import Foundation

/// A candidate token and its logit (later its probability).
public struct TokenCandidate: Sendable, Equatable {
    public var id: Int32
    public var logit: Float
    public var p: Float = 0
    public init(id: Int32, logit: Float, p: Float = 0) {
        self.id = id
        self.logit = logit
        self.p = p
    }
}

/// Chooses the next token: repetition penalty, then top-k, top-p, min-p, temperature and a
/// seeded draw — llama.cpp's default order. Temperature 0 is greedy (argmax after penalties).
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: Xoshiro256
    private var candidates: [TokenCandidate] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = Xoshiro256(seed: parameters.seed)
    }

    /// Picks a token from `logits` given the tokens seen so far (for the repetition penalty).
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>, history: [Int32]) -> Int32 {
        let p = parameters
        let recent = history.suffix(p.repeatLastN)
        if p.temperature == 0 {
            if p.repeatPenalty == 1 || recent.isEmpty { return Int32(Ops.argmax(logits)) }
            let seen = Set(recent)
            var best: Int32 = 0
            var value = -Float.infinity
            for i in 0..<logits.count {
                let l = seen.contains(Int32(i)) ? Self.penalize(logits[i], p.repeatPenalty) : logits[i]
                if l > value { value = l; best = Int32(i) }
            }
            return best
        }
        let penalized = p.repeatPenalty == 1 ? [] : Set(recent).filter { Int($0) < logits.count && $0 >= 0 }.sorted()
        if p.topK > 0 && p.topK < logits.count {
            Self.selectTopK(logits, p.topK, penalized: penalized, penalty: p.repeatPenalty, into: &candidates)
        } else {
            candidates.removeAll(keepingCapacity: true)
            for i in 0..<logits.count { candidates.append(TokenCandidate(id: Int32(i), logit: logits[i])) }
            for id in penalized { candidates[Int(id)].logit = Self.penalize(candidates[Int(id)].logit, p.repeatPenalty) }
            Self.topK(&candidates, 0)
        }
        Self.topP(&candidates, p.topP)
        Self.minP(&candidates, p.minP)
        Self.temperature(&candidates, p.temperature)
        return Self.draw(candidates, &rng)
    }

    static func penalize(_ logit: Float, _ penalty: Float) -> Float {
        logit > 0 ? logit / penalty : logit * penalty
    }

    /// The k largest logits (penalised ones with their penalty), sorted descending, in one pass
    /// over the vocabulary with a k-entry min-heap: a logit only costs a compare unless it beats
    /// the heap's smallest, so sampling stays a small part of a decode step.
    public static func selectTopK(_ logits: UnsafeBufferPointer<Float>, _ k: Int, penalized: [Int32], penalty: Float,
                           into heap: inout [TokenCandidate]) {
        heap.removeAll(keepingCapacity: true)
        func push(_ t: TokenCandidate) {
            if heap.count < k {
                heap.append(t)
                var i = heap.count - 1
                while i > 0 {
                    let parent = (i - 1) / 2
                    guard heap[i].logit < heap[parent].logit else { break }
                    heap.swapAt(i, parent)
                    i = parent
                }
            } else if t.logit > heap[0].logit {
                heap[0] = t
                var i = 0
                while true {
                    let l = 2 * i + 1, r = l + 1
                    var m = i
                    if l < k && heap[l].logit < heap[m].logit { m = l }
                    if r < k && heap[r].logit < heap[m].logit { m = r }
                    if m == i { break }
                    heap.swapAt(i, m)
                    i = m
                }
            }
        }
        var floor = -Float.infinity
        for i in 0..<logits.count where logits[i] > floor || heap.count < k {
            if !penalized.isEmpty && penalized.contains(Int32(i)) { continue }
            push(TokenCandidate(id: Int32(i), logit: logits[i]))
            if heap.count == k { floor = heap[0].logit }
        }
        for id in penalized { push(TokenCandidate(id: id, logit: Self.penalize(logits[Int(id)], penalty))) }
        heap.sort { $0.logit > $1.logit }
    }

    /// Keeps the k largest logits, sorted descending (k = 0 keeps all, sorted).
    public static func topK(_ c: inout [TokenCandidate], _ k: Int) {
        if k > 0 && k < c.count {
            // Partial selection: a bounded min-heap would do too; sorting a prefix is simpler.
            var kept = Array(c.prefix(k)).sorted { $0.logit > $1.logit }
            for t in c.dropFirst(k) where t.logit > kept[k - 1].logit {
                var i = k - 1
                while i > 0 && kept[i - 1].logit < t.logit { kept[i] = kept[i - 1]; i -= 1 }
                kept[i] = t
            }
            c = kept
        } else {
            c.sort { $0.logit > $1.logit }
        }
    }

    /// Softmax over the (sorted) candidates into `p`.
    public static func softmax(_ c: inout [TokenCandidate]) {
        guard let m = c.map(\.logit).max() else { return }
        var sum: Float = 0
        for i in c.indices { c[i].p = expf(c[i].logit - m); sum += c[i].p }
        for i in c.indices { c[i].p /= sum }
    }

    /// Smallest prefix whose probability mass reaches `p` (candidates sorted descending).
    public static func topP(_ c: inout [TokenCandidate], _ p: Float) {
        guard p < 1, !c.isEmpty else { return }
        softmax(&c)
        var mass: Float = 0
        var keep = c.count
        for i in c.indices {
            mass += c[i].p
            if mass >= p { keep = i + 1; break }
        }
        c.removeSubrange(keep...)
    }

    /// Drops candidates whose probability is below `minP` times the best one's.
    public static func minP(_ c: inout [TokenCandidate], _ minP: Float) {
        guard minP > 0, let best = c.map(\.logit).max() else { return }
        let threshold = best + logf(minP)
        c.removeAll { $0.logit < threshold }
    }

    public static func temperature(_ c: inout [TokenCandidate], _ t: Float) {
        for i in c.indices { c[i].logit /= t }
        softmax(&c)
    }

    static func draw(_ c: [TokenCandidate], _ rng: inout Xoshiro256) -> Int32 {
        let u = rng.nextUnit()
        var mass: Float = 0
        for t in c {
            mass += t.p
            if u < mass { return t.id }
        }
        return c.last!.id
    }
}
