import Foundation

/// The frozen knowledge source of a bridge: a model run once per request over the user's
/// message (raw text, its own tokenizer, no chat template), whose final-norm hidden states the
/// bridge reads.
/// @unchecked Sendable: one caller encodes at a time (the model's forward calls are not reentrant).
public final class SourceModel: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let sha256: String

    public init(model: LlamaModel, tokenizer: Tokenizer) throws {
        self.model = model
        self.tokenizer = tokenizer
        sha256 = try BaseIdentity.sha256(of: model)
    }

    public var width: Int { model.config.embeddingLength }

    /// Final-norm hidden states over `text` (tokens × width), with the tokens read.
    public func states(of text: String) throws -> (tokens: [Int32], states: [Float]) {
        let tokens = tokenizer.encode(text, parseSpecial: false)
        guard !tokens.isEmpty else { throw BraidError.invalidArgument("the source model has nothing to read: the message is empty") }
        let cache = model.makeCache(capacity: tokens.count)
        var states = [Float](repeating: 0, count: tokens.count * width)
        var filled = 0
        model.observer = { layer, input, values, columns in
            guard layer == -1, input == 4 else { return }
            states.withUnsafeMutableBufferPointer { s in
                (s.baseAddress! + filled * self.width).update(from: values, count: columns * self.width)
            }
            filled += columns
        }
        defer { model.observer = nil }
        try model.prefill(tokens, cache: cache, head: false)
        precondition(filled == tokens.count)
        return (tokens, states)
    }

    /// The bridge's memory for one request: `message` encoded by the source, read by the small
    /// model from position `from` on.
    public func memory(for bridge: Bridge, message: String, from: Int) throws -> BridgeMemory {
        let (tokens, states) = try states(of: message)
        return try bridge.memory(states: states, count: tokens.count, from: from)
    }
}
