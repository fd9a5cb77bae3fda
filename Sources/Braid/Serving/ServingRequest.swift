import Foundation

/// How a served request picks its route: the router's choice, a blend of its top tasks, the
/// base alone, or named task vectors with coefficients (pinned).
public enum RouteChoice: Sendable, Equatable {
    case auto
    case blend
    case none
    case pinned([String: Float])
}

/// One generation asked of the engine: the prompt already templated and tokenised.
public struct ServingRequest: Sendable {
    public var prompt: [Int32]
    /// The text the router reads (the last user message); nil for the whole prompt.
    public var routerText: String?
    public var route: RouteChoice
    /// Interweaving mode (`off`, `guarded`, `fixed:λ`, `fixed-logits:λ`, `adaptive`, `learned`); nil: the server's.
    public var interweave: String?
    public var sampling: SamplingParameters
    /// Most tokens to generate; nil: until the context is full.
    public var maxTokens: Int?
    public var stop: [String]
    /// Top alternatives reported per token; nil: no log-probabilities.
    public var logprobs: Int?
    /// Uptime (ns) after which the request gives up: in the queue it fails, running it stops.
    public var deadline: UInt64?

    public init(prompt: [Int32], routerText: String? = nil, route: RouteChoice = .auto, interweave: String? = nil,
                sampling: SamplingParameters = .greedy, maxTokens: Int? = nil, stop: [String] = [],
                logprobs: Int? = nil, deadline: UInt64? = nil) {
        self.prompt = prompt
        self.routerText = routerText
        self.route = route
        self.interweave = interweave
        self.sampling = sampling
        self.maxTokens = maxTokens
        self.stop = stop
        self.logprobs = logprobs
        self.deadline = deadline
    }
}

/// The route a request took and why.
public struct RouteReport: Sendable, Codable, Equatable {
    /// "auto", "blend", "none" or "pinned".
    public var mode: String
    /// The route's label: "base", "arith", "json:0.7+sentiment:0.3".
    public var label: String
    public var coefficients: [String: Float]
    /// The router's probabilities (tasks and "none"); empty when no router was asked.
    public var probabilities: [String: Float]
    public var routingMilliseconds: Double
    /// Blocks of the base the deciding features came from (0: no router).
    public var routingLayers: Int
    public var interweave: String
}

/// A token's log-probability and the most likely alternatives at its step.
public struct TokenLogprob: Sendable, Equatable {
    public var token: Int32
    public var bytes: [UInt8]
    public var logprob: Float
    public var top: [(token: Int32, bytes: [UInt8], logprob: Float)]

    public static func == (a: TokenLogprob, b: TokenLogprob) -> Bool {
        a.token == b.token && a.logprob == b.logprob && a.top.map(\.token) == b.top.map(\.token)
    }
}

/// Token counts of a finished request (OpenAI's usage object).
public struct ServingUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// From admission to the first token, and to the end.
    public var firstTokenSeconds: Double
    public var totalSeconds: Double
}

/// Why a request ended without an answer.
public enum ServingFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case queueFull(limit: Int)
    case shuttingDown
    case deadlineExceeded
    case cancelled
    case unknownTask(String, known: [String])
    case invalid(String)

    public var description: String {
        switch self {
        case .queueFull(let n): return "the server is busy: \(n) requests are already waiting; retry later"
        case .shuttingDown: return "the server is shutting down"
        case .deadlineExceeded: return "the request waited past its deadline"
        case .cancelled: return "the request was cancelled"
        case .unknownTask(let t, let known):
            return "unknown task \(t) (served: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case .invalid(let m): return m
        }
    }
}

/// What the engine tells a request's owner, in this order: routed, then tokens, then finished or failed.
public enum ServingEvent: Sendable {
    case routed(RouteReport, promptTokens: Int)
    /// Text ready to show (stop strings held back until ruled out) and the token's log-probability.
    case text(String, TokenLogprob?)
    case finished(FinishReason, ServingUsage)
    case failed(ServingFailure)
}
