/// The router's view of a query (DESIGN.md §4): the mean of the base model's final-norm hidden
/// states over the tokens of the user message, from one base prefill.
public struct QueryFeatures {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let template: ChatTemplate

    public init(model: LlamaModel, tokenizer: BPETokenizer, template: ChatTemplate) {
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
    }

    /// Features of one user message (in the context of the default system prompt).
    public func features(_ message: String) throws -> [Float] {
        let prefix = template.render([], addGenerationPrompt: false) + "<|im_start|>user\n"
        let start = tokenizer.encode(prefix).count
        let ids = tokenizer.encode(prefix + message)
        let d = model.config.embeddingLength
        var sum = [Double](repeating: 0, count: d)
        var count = 0
        var position = 0
        model.observer = { layer, input, values, columns in
            guard layer == -1 && input == 4 else { return }
            for c in 0..<columns where position + c >= start {
                for j in 0..<d { sum[j] += Double(values[c * d + j]) }
                count += 1
            }
            position += columns
        }
        defer { model.observer = nil }
        let cache = model.makeCache(capacity: ids.count + 1)
        try model.prefill(ids, cache: cache)
        return sum.map { Float($0 / Double(max(count, 1))) }
    }
}
