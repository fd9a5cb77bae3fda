import Foundation

/// Runs prompts through a model on one sequence (one KV cache, or two when interweaving):
/// keeps what the caches hold, so a follow-up prompt that extends the previous one (a chat
/// turn) only evaluates its new tokens.
/// @unchecked Sendable: one conversation (one thread) owns it and its caches.
public final class Generator: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let decoder: StreamDecoder
    public let sequence: DecodeSequence
    /// Tokens whose keys and values are in the caches, in order.
    public private(set) var cachedTokens: [Int32] = []
    /// The route the cached keys and values were computed under (another route invalidates them).
    private var cachedRoute = ""
    /// The bridge memory they were computed with (another one invalidates them from its start).
    private var cachedBridge: BridgeMemory?

    public init(model: LlamaModel, tokenizer: Tokenizer, contextLength: Int, interweave: InterweaveGate? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        decoder = StreamDecoder(model: model, gate: interweave)
        sequence = decoder.makeSequence(capacity: contextLength)
    }

    public func reset() {
        sequence.reset()
        cachedTokens.removeAll()
        cachedBridge = nil
    }

    /// Generates an answer to `prompt` (token ids, template already applied). `onText` receives
    /// each complete piece of text as it is produced and may return false to stop.
    @discardableResult
    /// `prior` is the router's probability for the route's task (the adaptive gate uses it);
    /// `bridge`, the memory a bridge reads for this prompt (its `from`: where the user's turn starts).
    public func generate(_ prompt: [Int32], route: Route = .base, prior: Float = 0.5, bridge: BridgeMemory? = nil,
                         sampling: SamplingParameters, maxTokens: Int,
                         onText: (String) -> Bool = { _ in true }) throws -> (tokens: [Int32], stats: GenerationStats) {
        let cache = sequence.cache
        try sampling.validate()
        guard !prompt.isEmpty else { throw BraidError.invalidArgument("the prompt is empty") }
        guard prompt.count < cache.capacity else {
            throw BraidError.promptTooLong(tokens: prompt.count, context: cache.capacity)
        }
        var stats = GenerationStats()
        stats.promptTokens = prompt.count
        stats.seed = sampling.seed

        // What is computed: a gate the router alone decides runs one stream, maybe the base's.
        let route = decoder.route(for: route, prior: prior)
        if route.label != cachedRoute {
            reset()
            cachedRoute = route.label
        }
        sequence.route = route
        sequence.prior = prior
        // Reuse the longest cached prefix; at least the last prompt token is evaluated for its logits.
        var keep = zip(cachedTokens, prompt).prefix { $0 == $1 }.count
        keep = min(keep, prompt.count - 1)
        // A new memory is read from its start on; positions before it keep what they read (a
        // chat's earlier turns). Dropping the bridge recomputes what the old one wrote.
        if bridge !== cachedBridge, let from = bridge?.from ?? cachedBridge?.from {
            keep = min(keep, from)
        }
        cachedBridge = bridge
        sequence.cache.bridge = bridge
        sequence.baseCache?.bridge = bridge
        sequence.truncate(to: keep)
        cachedTokens.removeSubrange(keep...)
        let fresh = Array(prompt[keep...])
        stats.evaluatedPromptTokens = fresh.count

        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try decoder.prefill(sequence, fresh, queryStart: max(0, Self.queryStart(prompt, marker: tokenizer.id(of: "<|im_start|>")) - keep))
        cachedTokens += fresh
        let t1 = DispatchTime.now().uptimeNanoseconds
        stats.promptSeconds = Double(t1 - t0) / 1e9

        var sampler = Sampler(sampling)
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        var output: [Int32] = []
        stats.finishReason = .length
        while maxTokens < 0 || output.count < maxTokens {
            let id = sampler.sample(logits, history: cachedTokens)
            if tokenizer.endOfGeneration.contains(id) {
                stats.finishReason = .stop
                break
            }
            output.append(id)
            let text = detokenizer.append(id)
            if !text.isEmpty && !onText(text) {
                stats.finishReason = .stop
                break
            }
            if output.count == maxTokens || cache.count >= cache.capacity { break }
            try decoder.step([sequence], [id])
            logits = decoder.logits(0)
            cachedTokens.append(id)
        }
        let rest = detokenizer.flush()
        if !rest.isEmpty { _ = onText(rest) }
        stats.generatedTokens = output.count
        stats.generateSeconds = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
        return (output, stats)
    }

    /// Where the current user turn starts: the second-to-last `<|im_start|>` of a chat prompt
    /// (the last opens the assistant's answer), else 0. The learned gate summarises from there.
    public static func queryStart(_ prompt: [Int32], marker: Int32?) -> Int {
        guard let marker else { return 0 }
        let starts = prompt.indices.filter { prompt[$0] == marker }
        return starts.count >= 2 ? starts[starts.count - 2] : 0
    }
}
