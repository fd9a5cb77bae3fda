import Braid
import Foundation

/// Checks an OpenAI request and turns it into what the engine runs: the route from `model` and
/// `braid.route`, the prompt through the chat template, the sampling fields over the server's
/// defaults. Every mistake is a 400 (or 404 for an unknown model) that names the field.
package struct RequestTranslation {
    let tokenizer: Tokenizer
    let template: ChatTemplate
    let catalog: TaskCatalog
    let defaults: SamplingParameters
    let contextSize: Int
    let timeout: Double

    package init(tokenizer: Tokenizer, template: ChatTemplate, catalog: TaskCatalog, defaults: SamplingParameters, contextSize: Int, timeout: Double) {
        self.tokenizer = tokenizer
        self.template = template
        self.catalog = catalog
        self.defaults = defaults
        self.contextSize = contextSize
        self.timeout = timeout
    }

    package func chat(_ r: ChatCompletionRequest) throws -> ServingRequest {
        guard !r.messages.isEmpty else { throw APIError.invalid("messages must not be empty", param: "messages") }
        var messages: [ChatMessage] = []
        for (i, m) in r.messages.enumerated() {
            guard ["system", "user", "assistant", "developer"].contains(m.role) else {
                throw APIError.invalid("messages[\(i)].role must be system, user or assistant (got \(m.role))", param: "messages")
            }
            messages.append(ChatMessage(role: m.role == "developer" ? "system" : m.role, content: m.content?.text ?? ""))
        }
        let prompt = tokenizer.encode(template.render(messages))
        let routerText = messages.last { $0.role == "user" }?.content ?? messages.last!.content
        var top: Int?
        if r.logprobs == true {
            top = r.top_logprobs ?? 0
        } else if r.top_logprobs != nil {
            throw APIError.invalid("top_logprobs needs logprobs: true", param: "top_logprobs")
        }
        return try common(r, prompt: prompt, routerText: routerText, logprobs: top, defaultMaxTokens: nil)
    }

    package func completion(_ r: CompletionRequest) throws -> ServingRequest {
        guard !r.prompt.isEmpty else { throw APIError.invalid("prompt must not be empty", param: "prompt") }
        return try common(r, prompt: tokenizer.encode(r.prompt), routerText: r.prompt, logprobs: r.logprobs, defaultMaxTokens: 16)
    }

    private func common(_ r: some SamplingRequest, prompt: [Int32], routerText: String, logprobs: Int?, defaultMaxTokens: Int?) throws -> ServingRequest {
        if let n = r.n, n != 1 { throw APIError.invalid("n must be 1 (braid answers one choice per request)", param: "n") }
        if let l = logprobs, !(0...20).contains(l) { throw APIError.invalid("top_logprobs must be between 0 and 20", param: "top_logprobs") }
        var sampling = defaults
        sampling.seed = r.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        if let t = r.temperature {
            guard t.isFinite, (0...2).contains(t) else { throw APIError.invalid("temperature must be between 0 and 2", param: "temperature") }
            sampling.temperature = t
        }
        if let p = r.top_p {
            guard p.isFinite, p > 0, p <= 1 else { throw APIError.invalid("top_p must be in (0, 1]", param: "top_p") }
            sampling.topP = p
        }
        if let k = r.top_k {
            guard k >= 0 else { throw APIError.invalid("top_k must be ≥ 0", param: "top_k") }
            sampling.topK = k
        }
        if let m = r.min_p {
            guard m.isFinite, (0...1).contains(m) else { throw APIError.invalid("min_p must be between 0 and 1", param: "min_p") }
            sampling.minP = m
        }
        if let p = r.repeat_penalty {
            guard p.isFinite, p > 0 else { throw APIError.invalid("repeat_penalty must be > 0", param: "repeat_penalty") }
            sampling.repeatPenalty = p
        }
        let stop = r.stop?.values ?? []
        guard stop.count <= 16 else { throw APIError.invalid("stop takes at most 16 strings", param: "stop") }
        guard prompt.count < contextSize else {
            throw APIError(status: .badRequest, message: "the prompt is \(prompt.count) tokens but the context holds \(contextSize)",
                           type: "invalid_request_error", code: "context_length_exceeded", param: "messages")
        }
        var maxTokens = defaultMaxTokens
        if let m = r.tokenLimit {
            guard m >= 1 else { throw APIError.invalid("max_tokens must be ≥ 1", param: "max_tokens") }
            guard m <= contextSize - prompt.count else {  // not prompt.count + m: max_tokens may be Int.max
                throw APIError(status: .badRequest,
                               message: "the prompt (\(prompt.count) tokens) and max_tokens (\(m)) are over the context of \(contextSize) tokens",
                               type: "invalid_request_error", code: "context_length_exceeded", param: "max_tokens")
            }
            maxTokens = m
        }
        if let mode = r.braid?.interweave {
            do { try ServingEngine.checkInterweave(mode) } catch { throw APIError.invalid("\(error)", param: "braid.interweave") }
        }
        return ServingRequest(prompt: prompt, routerText: routerText, route: try route(r), interweave: r.braid?.interweave,
                              sampling: sampling, maxTokens: maxTokens, stop: stop, logprobs: logprobs,
                              deadline: DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9))
    }

    /// `model` picks routed (`braid`), `base` or a task; `braid.route` overrides it.
    private func route(_ r: some SamplingRequest) throws -> RouteChoice {
        var choice: RouteChoice
        switch r.model ?? "braid" {
        case "braid": choice = .auto
        case "base": choice = .none
        case let name:
            guard catalog.vector(named: name) != nil else {
                throw APIError(status: .notFound, message: "the model \(name) does not exist (served: \((["braid", "base"] + catalog.names).joined(separator: ", ")))",
                               type: "invalid_request_error", code: "model_not_found", param: "model")
            }
            choice = .pinned([name: 1])
        }
        switch r.braid?.route {
        case nil: break
        case .named("auto"): choice = .auto
        case .named("blend"): choice = .blend
        case .named("none"), .named("base"): choice = .none
        case .named(let name):
            guard catalog.vector(named: name) != nil else { throw unknownTask(name) }
            choice = .pinned([name: 1])
        case .coefficients(let c):
            guard !c.isEmpty else { throw APIError.invalid("braid.route needs at least one task", param: "braid.route") }
            for (name, v) in c {
                guard catalog.vector(named: name) != nil else { throw unknownTask(name) }
                guard v.isFinite, abs(v) <= 4 else { throw APIError.invalid("braid.route coefficient of \(name) must be a number in [-4, 4]", param: "braid.route") }
            }
            choice = .pinned(c)
        }
        return choice
    }

    private func unknownTask(_ name: String) -> APIError {
        APIError.invalid("braid.route names unknown task \(name) (served: \(catalog.names.joined(separator: ", ")))", param: "braid.route", code: "unknown_task")
    }
}
