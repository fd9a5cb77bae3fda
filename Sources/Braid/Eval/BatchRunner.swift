import Foundation

/// Greedy answers for many prompts at once: up to `batch` sequences decode together, each
/// with its own KV cache and route, in one forward pass per step — every weight is read once
/// per step for all of them (the Punica / S-LoRA idea on a CPU). Interweaved sequences take
/// two columns each (base and tuned stream).
public final class BatchRunner {
    public struct Request {
        public var prompt: [Int32]
        public var route: Route
        /// The router's probability for the route's task (the adaptive gate's prior).
        public var prior: Float
        /// What a bridge reads for this request (nil: no bridge).
        public var bridge: BridgeMemory?
        public init(prompt: [Int32], route: Route, prior: Float = 0.5, bridge: BridgeMemory? = nil) {
            self.prompt = prompt
            self.route = route
            self.prior = prior
            self.bridge = bridge
        }
    }

    public struct Answer {
        public var tokens: [Int32] = []
        public var finishReason: FinishReason = .length
        /// From the request's prefill to its last token (other requests share those steps).
        public var seconds = 0.0
        public var promptSeconds = 0.0
    }

    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let decoder: StreamDecoder
    public let batch: Int
    public let maxTokens: Int
    /// Of the last run: seconds spent in prefills and in decode steps, tokens made by decode steps.
    public private(set) var prefillSeconds = 0.0
    public private(set) var decodeSeconds = 0.0
    public private(set) var decodedTokens = 0

    public init(model: LlamaModel, tokenizer: Tokenizer, batch: Int, maxTokens: Int, interweave: InterweaveGate? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        decoder = StreamDecoder(model: model, gate: interweave)
        self.batch = max(1, min(batch, decoder.maxSequences))
        self.maxTokens = maxTokens
    }

    /// Answers in request order; `progress(done, total)` and `finished(request, answer)` after
    /// each finished request (so a caller can save it before the rest are done).
    public func run(_ requests: [Request], progress: (Int, Int) -> Void = { _, _ in },
                    finished: (Int, Answer) throws -> Void = { _, _ in }) throws -> [Answer] {
        prefillSeconds = 0
        decodeSeconds = 0
        decodedTokens = 0
        var answers = [Answer](repeating: Answer(), count: requests.count)
        struct Slot { var request: Int; var sequence: DecodeSequence; var next: Int32; var start: UInt64 }
        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
        var started = [UInt64](repeating: 0, count: requests.count)
        func finish(_ i: Int, _ reason: FinishReason) throws {
            answers[i].finishReason = reason
            answers[i].seconds = Double(now() - started[i]) / 1e9
            done += 1
            progress(done, requests.count)
            try finished(i, answers[i])
        }
        var slots: [Slot] = []
        var nextRequest = 0
        var done = 0
        let capacity = (requests.map(\.prompt.count).max() ?? 0) + maxTokens + 1
        var spare: [DecodeSequence] = (0..<batch).map { _ in decoder.makeSequence(capacity: capacity) }

        let marker = tokenizer.id(of: "<|im_start|>")
        // The prompts share their start (the system prompt): its keys and values are computed
        // once per route and copied, so each request evaluates only its own tokens. Under the
        // learned gate the prefix stops before the user's turn, which its query summary covers.
        let queryStarts = requests.map { Generator.queryStart($0.prompt, marker: marker) }
        var shared = requests.first.map { $0.prompt.count - 1 } ?? 0
        for (r, q) in zip(requests, queryStarts) {
            shared = min(shared, r.prompt.count - 1, zip(r.prompt, requests[0].prompt).prefix { $0 == $1 }.count)
            if case .learned = decoder.gate { shared = min(shared, q) }
            // A bridge writes the request's own positions from its user turn on.
            if let b = r.bridge { shared = min(shared, b.from) }
        }
        var prefixes: [String: DecodeSequence] = [:]
        /// Starts request i in a free sequence: prefill, first greedy token. Nil if it ended at once.
        func start(_ i: Int) throws -> Slot? {
            let sequence = spare.removeLast()
            sequence.reset()
            sequence.route = decoder.route(for: requests[i].route, prior: requests[i].prior)
            sequence.prior = requests[i].prior
            sequence.cache.bridge = requests[i].bridge
            sequence.baseCache?.bridge = requests[i].bridge
            started[i] = now()
            let prompt = requests[i].prompt
            if shared >= 8 {
                let label = sequence.route.label
                if prefixes[label] == nil {
                    let p = decoder.makeSequence(capacity: shared, route: sequence.route)
                    try decoder.prefill(p, Array(prompt[..<shared]))
                    prefixes[label] = p
                }
                sequence.copyPrefix(from: prefixes[label]!, count: shared)
            }
            let skip = sequence.count
            let logits = try decoder.prefill(sequence, Array(prompt[skip...]), queryStart: max(0, queryStarts[i] - skip))
            answers[i].promptSeconds = Double(now() - started[i]) / 1e9
            prefillSeconds += answers[i].promptSeconds
            let first = Int32(Ops.argmax(logits))
            if tokenizer.endOfGeneration.contains(first) || maxTokens == 0 {
                spare.append(sequence)
                try finish(i, tokenizer.endOfGeneration.contains(first) ? .stop : .length)
                return nil
            }
            answers[i].tokens.append(first)
            return Slot(request: i, sequence: sequence, next: first, start: started[i])
        }

        while true {
            while slots.count < batch && nextRequest < requests.count {
                let i = nextRequest
                nextRequest += 1
                if let s = try start(i) { slots.append(s) }
            }
            if slots.isEmpty { break }
            // Finish slots that reached the token limit before spending a step on them.
            let step = slots.filter { answers[$0.request].tokens.count < maxTokens }
            for s in slots where answers[s.request].tokens.count >= maxTokens {
                spare.append(s.sequence)
                try finish(s.request, .length)
            }
            slots = step
            if slots.isEmpty { continue }
            let stepStart = now()
            try decoder.step(slots.map(\.sequence), slots.map(\.next))
            decodeSeconds += Double(now() - stepStart) / 1e9
            decodedTokens += slots.count
            var kept: [Slot] = []
            for (j, var s) in slots.enumerated() {
                let id = Int32(Ops.argmax(decoder.logits(j)))
                if tokenizer.endOfGeneration.contains(id) {
                    spare.append(s.sequence)
                    try finish(s.request, .stop)
                } else {
                    answers[s.request].tokens.append(id)
                    s.next = id
                    kept.append(s)
                }
            }
            slots = kept
        }
        return answers
    }
}
