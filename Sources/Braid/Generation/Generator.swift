import Foundation

/// Runs prompts through a model on one KV cache: keeps what the cache holds, so a follow-up
/// prompt that extends the previous one (a chat turn) only evaluates its new tokens.
public final class Generator: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let cache: KVCache
    /// Tokens whose keys and values are in `cache`, in order.
    public private(set) var cachedTokens: [Int32] = []
    /// The route the cached keys and values were computed under (another route invalidates them).
    private var cachedRoute = ""

    public init(model: LlamaModel, tokenizer: BPETokenizer, contextLength: Int) {
        self.model = model
        self.tokenizer = tokenizer
        cache = model.makeCache(capacity: contextLength)
    }

    public func reset() {
        cache.reset()
        cachedTokens.removeAll()
    }

    /// Generates an answer to `prompt` (token ids, template already applied). `onText` receives
    /// each complete piece of text as it is produced and may return false to stop.
    @discardableResult
    public func generate(_ prompt: [Int32], route: Route = .base, sampling: SamplingParameters, maxTokens: Int,
                         onText: (String) -> Bool = { _ in true }) throws -> (tokens: [Int32], stats: GenerationStats) {
        try sampling.validate()
        guard !prompt.isEmpty else { throw BraidError.invalidArgument("the prompt is empty") }
        guard prompt.count < cache.capacity else {
            throw BraidError.promptTooLong(tokens: prompt.count, context: cache.capacity)
        }
        var stats = GenerationStats()
        stats.promptTokens = prompt.count
        stats.seed = sampling.seed

        if route.label != cachedRoute {
            reset()
            cachedRoute = route.label
        }
        // Reuse the longest cached prefix; at least the last prompt token is evaluated for its logits.
        var keep = zip(cachedTokens, prompt).prefix { $0 == $1 }.count
        keep = min(keep, prompt.count - 1)
        cache.truncate(to: keep)
        cachedTokens.removeSubrange(keep...)
        let fresh = Array(prompt[keep...])
        stats.evaluatedPromptTokens = fresh.count

        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try model.prefill(fresh, cache: cache, route: route)
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
            logits = try model.decode(id, cache: cache, route: route)
            cachedTokens.append(id)
        }
        let rest = detokenizer.flush()
        if !rest.isEmpty { _ = onText(rest) }
        stats.generatedTokens = output.count
        stats.generateSeconds = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
        return (output, stats)
    }
}
