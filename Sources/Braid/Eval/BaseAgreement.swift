import Foundation

/// How closely a way of decoding follows the base model outside a task: along its own greedy
/// answer, the share of steps whose token is also the base's top token given the same prefix,
/// and the mean KL(base ‖ mode) of the two next-token distributions.
public struct BaseAgreement {
    public struct Tally: Sendable {
        public var steps = 0
        public var agreeing = 0
        public var divergence = 0.0
        public var agreement: Double { 100 * Double(agreeing) / Double(max(steps, 1)) }
        public var meanKL: Double { divergence / Double(max(steps, 1)) }
        public init() {}
    }

    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public var maxTokens = 48

    public init(model: LlamaModel, tokenizer: Tokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Adds one prompt's steps (template applied) decoded with `route` by `decoder` (its gate) to `tally`.
    public func measure(_ prompt: [Int32], route: Route, prior: Float, decoder: StreamDecoder, into tally: inout Tally) throws {
        let sequence = decoder.makeSequence(capacity: prompt.count + maxTokens + 1, route: decoder.route(for: route, prior: prior), prior: prior)
        let baseCache = model.makeCache(capacity: prompt.count + maxTokens + 1)
        var mode = Array(try decoder.prefill(sequence, prompt, queryStart: Generator.queryStart(prompt, marker: tokenizer.id(of: "<|im_start|>"))))
        var base = Array(try model.prefill(prompt, cache: baseCache))
        for step in 0..<maxTokens {
            let token = Int32(mode.withUnsafeBufferPointer { Ops.argmax($0) })
            tally.steps += 1
            if base.withUnsafeBufferPointer({ Ops.argmax($0) }) == Int(token) { tally.agreeing += 1 }
            tally.divergence += Self.kl(base, mode)
            if tokenizer.endOfGeneration.contains(token) || step == maxTokens - 1 { break }
            try decoder.step([sequence], [token])
            mode = Array(decoder.logits(0))
            base = Array(try model.decode(token, cache: baseCache))
        }
    }

    /// KL(p ‖ q) of the softmaxes of two logit vectors, in nats.
    static func kl(_ p: [Float], _ q: [Float]) -> Double {
        func logSoftmax(_ x: [Float]) -> [Double] {
            let top = Double(x.max()!)
            let z = log(x.reduce(0.0) { $0 + exp(Double($1) - top) }) + top
            return x.map { Double($0) - z }
        }
        let lp = logSoftmax(p), lq = logSoftmax(q)
        var sum = 0.0
        for i in lp.indices where lp[i] > -30 { sum += exp(lp[i]) * (lp[i] - lq[i]) }
        return max(sum, 0)
    }
}
