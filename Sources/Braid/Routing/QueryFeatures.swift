/// The router's view of a query (DESIGN.md §4): the mean of the base model's final-norm hidden
/// states over the tokens of the user message. The system prompt and the user header are the
/// same for every query, so their keys and values are computed once and kept; each query then
/// runs only its own tokens, through the first `layers` blocks (all by default).
/// @unchecked Sendable: one caller at a time (it runs the model and keeps the prefix cache).
public final class QueryFeatures: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    public let layers: Int?
    private let prefix: [Int32]
    private var cache: KVCache?

    public init(model: LlamaModel, tokenizer: Tokenizer, template: ChatTemplate, layers: Int? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.layers = layers
        prefix = tokenizer.encode(template.userTurnStart)
    }

    /// Features of one user message (in the context of the default system prompt), taken after
    /// `layers` blocks (at most this featurizer's; nil: its own).
    public func features(_ message: String, layers wanted: Int? = nil) throws -> [Float] {
        let layers = wanted ?? self.layers
        if let w = wanted { precondition(w <= self.layers ?? model.config.blockCount, "features after \(w) blocks from a cache of fewer") }
        var ids = tokenizer.encode(template.userTurnStart + message)
        let capacity = max(ids.count + 1, 512)
        if cache == nil || cache!.capacity < capacity {
            cache = model.makeCache(capacity: capacity)
            if !prefix.isEmpty { try model.prefill(prefix, cache: cache!, layers: self.layers) }  // serves any fewer blocks too
        }
        let cache = self.cache!
        if ids.starts(with: prefix) {
            cache.truncate(to: prefix.count)
            ids.removeFirst(prefix.count)
        } else {
            cache.reset()  // the message changed how its start tokenises: run it all, count only the message
        }
        let skip = cache.count == 0 ? prefix.count : 0
        guard !ids.isEmpty else { throw BraidError.invalidArgument("the message is empty") }
        let d = model.config.embeddingLength
        var sum = [Double](repeating: 0, count: d)
        var count = 0
        var position = 0
        model.observer = { layer, input, values, columns in
            guard layer == -1 && input == 4 else { return }
            for c in 0..<columns where position + c >= skip {
                for j in 0..<d { sum[j] += Double(values[c * d + j]) }
                count += 1
            }
            position += columns
        }
        defer { model.observer = nil }
        try model.prefill(ids, cache: cache, layers: layers)
        if skip > 0 { self.cache = nil }  // its prefix is gone; rebuild next time
        return sum.map { Float($0 / Double(max(count, 1))) }
    }
}
