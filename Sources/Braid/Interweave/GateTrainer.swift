import Foundation

/// Trains IMSM's gate for one task vector (METHODS.md §3) with everything else frozen: both
/// streams are run once, teacher-forced, over each example, and only A and B learn from the
/// final-norm hidden states they leave — so the gradient is the short one of
/// `LearnedGate.lossAndGradient`, and each step costs two products with the LM head.
public struct GateTrainer {
    public struct Options: Sendable {
        public var rank = 8
        public var epochs = 3
        public var learningRate: Float = 2e-3
        public var batch = 32
        public var seed: UInt64 = 1
        /// μ: the weight of the soft term that pulls the mix toward the leading stream's distribution.
        public var softWeight: Float = 0.5
        public init() {}
    }

    /// A prompt (template applied) and the answer tokens to learn, ending with the end of turn;
    /// `inside` when it is the task's (the tuned stream should lead), else the base should.
    public struct Example: Sendable {
        public var prompt: [Int32]
        public var target: [Int32]
        public var inside: Bool
        public init(prompt: [Int32], target: [Int32], inside: Bool) {
            self.prompt = prompt
            self.target = target
            self.inside = inside
        }
    }

    /// Training rows: v = [q̄_b; h_b; h_t; q̄_t] at every answer position, the next token, and
    /// whether the tuned stream leads there.
    public struct Rows: Sendable {
        public var inputs: [Float] = []
        public var targets: [Int32] = []
        public var tunedTeaches: [Bool] = []
    }

    public let model: LlamaModel
    /// The token that opens a chat turn (`<|im_start|>`): the query summaries start at the user's turn.
    public let queryMarker: Int32?
    public var options: Options

    public init(model: LlamaModel, queryMarker: Int32?, options: Options = Options()) {
        self.model = model
        self.queryMarker = queryMarker
        self.options = options
    }

    /// Runs each example through the base stream and the `route` stream and keeps the rows.
    public func collect(_ examples: [Example], route: Route, progress: (Int, Int) -> Void = { _, _ in }) throws -> Rows {
        let d = model.config.embeddingLength
        var rows = Rows()
        for (n, e) in examples.enumerated() {
            let tokens = e.prompt + e.target
            let cache = model.makeCache(capacity: tokens.count)
            let start = Generator.queryStart(e.prompt, marker: queryMarker)
            var streams: [(query: [Float], hidden: [Float])] = []
            for r in [Route.base, route] {
                cache.reset()
                var hidden = [Float](repeating: 0, count: tokens.count * d)
                var position = 0
                model.observer = { layer, _, values, columns in
                    guard layer == -1 else { return }
                    hidden.withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: position * d).update(from: values, count: columns * d) }
                    position += columns
                }
                defer { model.observer = nil }
                try model.prefill(tokens, cache: cache, route: r, head: false)
                var query = [Float](repeating: 0, count: d)
                for t in start..<e.prompt.count {
                    for j in 0..<d { query[j] += hidden[t * d + j] }
                }
                let count = Float(e.prompt.count - start)
                streams.append((query.map { $0 / count }, hidden))
            }
            for t in (e.prompt.count - 1)..<(tokens.count - 1) {
                rows.inputs += streams[0].query
                rows.inputs += streams[0].hidden[(t * d)..<((t + 1) * d)]
                rows.inputs += streams[1].hidden[(t * d)..<((t + 1) * d)]
                rows.inputs += streams[1].query
                rows.targets.append(tokens[t + 1])
                rows.tunedTeaches.append(e.inside)
            }
            progress(n + 1, examples.count)
        }
        return rows
    }

    /// Adam on A and B over shuffled mini-batches; returns the mean loss of each epoch.
    public func train(_ gate: inout LearnedGate, rows: Rows, progress: (Int, Int, Float) -> Void = { _, _, _ in }) -> [Float] {
        let d = model.config.embeddingLength, w = 4 * d, vocab = model.config.vocabularySize
        var head = [Float](repeating: 0, count: vocab * d)
        head.withUnsafeMutableBufferPointer { h in
            for r in 0..<vocab { model.weights.output.decodeRow(r, into: h.baseAddress! + r * d) }
        }
        var adamA = Adam(count: gate.a.count), adamB = Adam(count: gate.b.count)
        var rng = Xoshiro256(seed: options.seed)
        var order = Array(rows.targets.indices)
        let steps = (order.count + options.batch - 1) / options.batch
        var losses: [Float] = []
        for epoch in 0..<options.epochs {
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            var total: Float = 0
            for s in 0..<steps {
                let picked = order[(s * options.batch)..<min(order.count, (s + 1) * options.batch)]
                var inputs: [Float] = []
                inputs.reserveCapacity(picked.count * w)
                for p in picked { inputs += rows.inputs[(p * w)..<((p + 1) * w)] }
                let targets = picked.map { rows.targets[$0] }
                let teachers = picked.map { rows.tunedTeaches[$0] }
                let (loss, ga, gb) = head.withUnsafeBufferPointer {
                    gate.lossAndGradient(inputs: inputs, targets: targets, tunedTeaches: teachers, softWeight: options.softWeight,
                                         head: $0.baseAddress!, vocab: vocab)
                }
                adamA.step(&gate.a, ga, rate: options.learningRate)
                adamB.step(&gate.b, gb, rate: options.learningRate)
                total += loss * Float(picked.count)
                progress(epoch * steps + s + 1, options.epochs * steps, loss)
            }
            losses.append(total / Float(max(order.count, 1)))
        }
        return losses
    }
}

extension GateTrainer.Rows {
    /// The gate's mean value (the base's weight) over the rows inside the task and outside it.
    public func meanGate(_ gate: LearnedGate) -> (inside: Float, outside: Float) {
        let d = gate.dim, w = 4 * d
        var sums: [Bool: (Double, Int)] = [true: (0, 0), false: (0, 0)]
        var g = [Float](repeating: 0, count: d)
        inputs.withUnsafeBufferPointer { x in
            for (p, inside) in tunedTeaches.enumerated() {
                let v = x.baseAddress! + p * w
                gate.gate(queryBase: v, base: v + d, tuned: v + 2 * d, queryTuned: v + 3 * d, into: &g)
                sums[inside]!.0 += Double(g.reduce(0, +)) / Double(d)
                sums[inside]!.1 += 1
            }
        }
        func mean(_ k: Bool) -> Float { Float(sums[k]!.0 / Double(max(sums[k]!.1, 1))) }
        return (mean(true), mean(false))
    }
}

/// Adam (Kingma & Ba) with the usual defaults.
struct Adam {
    var m: [Float], v: [Float]
    var t = 0
    let beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8

    init(count: Int) {
        m = [Float](repeating: 0, count: count)
        v = m
    }

    mutating func step(_ x: inout [Float], _ g: [Float], rate: Float) {
        t += 1
        let c1 = 1 - powf(beta1, Float(t)), c2 = 1 - powf(beta2, Float(t))
        for i in x.indices {
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            x[i] -= rate * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
        }
    }
}
