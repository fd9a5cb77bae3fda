import Braid
import Foundation

/// A string, or a list of strings (OpenAI's `stop`).
struct StringOrList: Decodable {
    var values: [String]
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { values = [s]; return }
        values = try c.decode([String].self)
    }
}

/// A message's content: a string, or a list of parts of which the text parts count.
struct MessageContent: Decodable {
    var text: String
    struct Part: Decodable {
        var type: String
        var text: String?
    }
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { text = s; return }
        if c.decodeNil() { text = ""; return }
        let parts = try c.decode([Part].self)
        guard parts.allSatisfy({ $0.type == "text" && $0.text != nil }) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "only text content parts are supported")
        }
        text = parts.compactMap(\.text).joined()
    }
}

/// `braid.route`: "auto" | "blend" | "none" | NAME | {NAME: coefficient, …}.
enum RouteSpec: Decodable {
    case named(String)
    case coefficients([String: Float])
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .named(s); return }
        self = .coefficients(try c.decode([String: Float].self))
    }
}

/// The request extension: how to route and interweave this request.
struct BraidOptions: Decodable {
    var route: RouteSpec?
    var interweave: String?
}

struct StreamOptions: Decodable {
    var include_usage: Bool?
}

/// The sampling fields chat and text completions share.
protocol SamplingRequest {
    var model: String? { get }
    var stream: Bool? { get }
    var stream_options: StreamOptions? { get }
    var temperature: Float? { get }
    var top_p: Float? { get }
    var top_k: Int? { get }
    var min_p: Float? { get }
    var repeat_penalty: Float? { get }
    var seed: UInt64? { get }
    var stop: StringOrList? { get }
    var n: Int? { get }
    var braid: BraidOptions? { get }
    var tokenLimit: Int? { get }
}

package struct ChatCompletionRequest: Decodable, SamplingRequest {
    struct Message: Decodable {
        var role: String
        var content: MessageContent?
    }
    var model: String?
    var messages: [Message]
    var stream: Bool?
    var stream_options: StreamOptions?
    var max_tokens: Int?
    var max_completion_tokens: Int?
    var temperature: Float?
    var top_p: Float?
    var top_k: Int?
    var min_p: Float?
    var repeat_penalty: Float?
    var seed: UInt64?
    var stop: StringOrList?
    var n: Int?
    var logprobs: Bool?
    var top_logprobs: Int?
    var braid: BraidOptions?
    var tokenLimit: Int? { max_completion_tokens ?? max_tokens }
}

package struct CompletionRequest: Decodable, SamplingRequest {
    var model: String?
    var prompt: String
    var stream: Bool?
    var stream_options: StreamOptions?
    var max_tokens: Int?
    var temperature: Float?
    var top_p: Float?
    var top_k: Int?
    var min_p: Float?
    var repeat_penalty: Float?
    var seed: UInt64?
    var stop: StringOrList?
    var n: Int?
    /// Top alternatives per token (the legacy API's integer form).
    var logprobs: Int?
    var braid: BraidOptions?
    var tokenLimit: Int? { max_tokens }
}

// MARK: - Responses

struct Usage: Encodable {
    var prompt_tokens: Int
    var completion_tokens: Int
    var total_tokens: Int
    init(_ u: ServingUsage) {
        prompt_tokens = u.promptTokens
        completion_tokens = u.completionTokens
        total_tokens = u.promptTokens + u.completionTokens
    }
}

/// The route a response reports (`braid.route`).
struct RouteInfo: Encodable {
    var mode: String
    var task: String
    var coefficients: [String: Float]
    var probabilities: [String: Float]
    var routing_ms: Double
    var routing_layers: Int
    init(_ r: RouteReport) {
        mode = r.mode
        task = r.label
        coefficients = r.coefficients
        probabilities = r.probabilities
        routing_ms = r.routingMilliseconds
        routing_layers = r.routingLayers
    }
}

struct BraidInfo: Encodable {
    var route: RouteInfo
    var interweave: String
    /// Seconds from admission to the first token and to the end (absent in early stream chunks).
    var timings: Timings?
    struct Timings: Encodable {
        var first_token_ms: Double
        var total_ms: Double
        var completion_tokens_per_second: Double
    }
}

struct TopLogprob: Encodable {
    var token: String
    var logprob: Float
    var bytes: [UInt8]
}

struct LogprobContent: Encodable {
    var token: String
    var logprob: Float
    var bytes: [UInt8]
    var top_logprobs: [TopLogprob]
    init(_ l: TokenLogprob) {
        token = String(decoding: l.bytes, as: UTF8.self)
        logprob = l.logprob
        bytes = l.bytes
        top_logprobs = l.top.map { TopLogprob(token: String(decoding: $0.bytes, as: UTF8.self), logprob: $0.logprob, bytes: $0.bytes) }
    }
}

struct ChatLogprobs: Encodable {
    var content: [LogprobContent]
}

struct AssistantMessage: Encodable {
    var role = "assistant"
    var content: String
}

struct ChatChoice: Encodable {
    var index = 0
    var message: AssistantMessage
    var logprobs: ChatLogprobs?
    var finish_reason: String
}

struct ChatCompletion: Encodable {
    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [ChatChoice]
    var usage: Usage
    var braid: BraidInfo
}

struct ChatDelta: Encodable {
    var role: String?
    var content: String?
}

struct ChatChunkChoice: Encodable {
    var index = 0
    var delta: ChatDelta
    var logprobs: ChatLogprobs?
    var finish_reason: String?

    enum CodingKeys: String, CodingKey { case index, delta, logprobs, finish_reason }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(delta, forKey: .delta)
        try c.encode(logprobs, forKey: .logprobs)  // null, as OpenAI sends it
        try c.encode(finish_reason, forKey: .finish_reason)
    }
}

struct ChatCompletionChunk: Encodable {
    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [ChatChunkChoice]
    var usage: Usage?
    var braid: BraidInfo?
}

/// The legacy completions API's log-probabilities.
struct CompletionLogprobs: Encodable {
    var tokens: [String]
    var token_logprobs: [Float]
    var top_logprobs: [[String: Float]]
    var text_offset: [Int]
}

extension CompletionLogprobs {
    init(_ lps: [TokenLogprob]) {
        var offset = 0
        var offsets: [Int] = []
        for l in lps {
            offsets.append(offset)
            offset += String(decoding: l.bytes, as: UTF8.self).count
        }
        self.init(tokens: lps.map { String(decoding: $0.bytes, as: UTF8.self) }, token_logprobs: lps.map(\.logprob),
                  top_logprobs: lps.map { Dictionary($0.top.map { (String(decoding: $0.bytes, as: UTF8.self), $0.logprob) }, uniquingKeysWith: max) },
                  text_offset: offsets)
    }
}

struct CompletionChoice: Encodable {
    var index = 0
    var text: String
    var logprobs: CompletionLogprobs?
    var finish_reason: String?

    enum CodingKeys: String, CodingKey { case index, text, logprobs, finish_reason }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(text, forKey: .text)
        try c.encode(logprobs, forKey: .logprobs)
        try c.encode(finish_reason, forKey: .finish_reason)
    }
}

struct TextCompletion: Encodable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [CompletionChoice]
    var usage: Usage?
    var braid: BraidInfo?
}

struct ModelEntry: Encodable {
    var id: String
    var object = "model"
    var created: Int
    var owned_by = "braid"
    var description: String
    var parent: String?
    /// routed | base | task
    var kind: String
}

struct ModelList: Encodable {
    var object = "list"
    var data: [ModelEntry]
}
