import Braid
import Foundation
import Hummingbird
import HTTPTypes
import NIOCore

/// The engine's events for one request, read in order by one task.
/// @unchecked Sendable: the engine thread pushes events under its lock; one request task reads them.
final class EventReader: @unchecked Sendable {
    private var iterator: AsyncStream<ServingEvent>.Iterator
    /// Stops the request at the engine's next step (the client went away).
    let cancel: @Sendable () -> Void
    init(_ stream: AsyncStream<ServingEvent>, cancel: @escaping @Sendable () -> Void) {
        iterator = stream.makeAsyncIterator()
        self.cancel = cancel
    }
    func next() async -> ServingEvent? { await iterator.next() }
}

extension BraidServer {
    /// Queues a request; its events arrive on the reader. A reader dropped before the end
    /// (the client went away) cancels the request at the engine's next step.
    func submit(_ r: ServingRequest, to engine: ServingEngine) throws -> EventReader {
        let (stream, continuation) = AsyncStream.makeStream(of: ServingEvent.self)
        let id: Int
        do {
            id = try engine.submit(r) { event in
                continuation.yield(event)
                switch event {
                case .finished, .failed: continuation.finish()
                default: break
                }
            }
        } catch let f as ServingFailure {
            throw APIError(f)
        }
        continuation.onTermination = { reason in
            if case .cancelled = reason { engine.cancel(id) }
        }
        return EventReader(stream, cancel: { engine.cancel(id) })
    }

    /// Waits for the route (or the refusal) before any header is sent.
    func routed(_ reader: EventReader) async throws -> RouteReport {
        switch await reader.next() {
        case .routed(let report, _): return report
        case .failed(let f): throw APIError(f)
        default: throw APIError(.cancelled)
        }
    }

    /// A request the engine took: its events, its route, and what every response of it repeats.
    struct Accepted: Sendable {
        var reader: EventReader
        var report: RouteReport
        var id: String
        var created = Int(Date().timeIntervalSince1970)
        var model: String
        var headers = HTTPFields()
        var info: BraidInfo { BraidInfo(route: RouteInfo(report), interweave: report.interweave) }
    }

    /// Submits a translated request and waits for its route (before any header is sent).
    func accept(_ r: ServingRequest, model: String?, idPrefix: String, engine: ServingEngine) async throws -> Accepted {
        let reader = try submit(r, to: engine)
        let report = try await routed(reader)
        var a = Accepted(reader: reader, report: report, id: idPrefix + Self.randomID(), model: model ?? "braid")
        a.headers[HTTPField.Name("X-Braid-Route")!] = report.label
        return a
    }

    /// A server-sent-event response: `body` writes the chunks, then `data: [DONE]` ends it.
    func eventStream(_ a: Accepted, _ body: @escaping @Sendable (EventWriter) async throws -> Void) -> Response {
        var headers = a.headers
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let events = EventWriter(writer: writer)
            try await body(events)
            var w = events.writer
            try await w.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await w.finish(nil)
        })
    }

    /// Waits for the end of a non-streamed answer; a client that hangs up cancels it.
    func wholeAnswer(_ request: Request, _ a: Accepted, _ collect: @escaping (EventReader) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await request.body.consumeWithInboundCloseHandler({ _ in try await collect(a.reader) }, onInboundClosed: a.reader.cancel)
        } catch let e as APIError {
            response = e.response
        }
        // Watching for the hang-up ends the connection after this answer: say so, or a keep-alive
        // client may send its next request into the closing socket.
        response.headers[.connection] = "close"
        return response
    }

    func chatCompletion(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await decodeBody(&request, as: ChatCompletionRequest.self)
        let s = try ready()
        let r = try translation(s).chat(body)
        let a = try await accept(r, model: body.model, idPrefix: "chatcmpl-", engine: s.engine)
        let wantsLogprobs = r.logprobs != nil
        @Sendable func chunk(_ choices: [ChatChunkChoice], usage: Usage? = nil, braid: BraidInfo? = nil) -> ChatCompletionChunk {
            ChatCompletionChunk(id: a.id, created: a.created, model: a.model, choices: choices, usage: usage, braid: braid)
        }
        if body.stream == true {
            let includeUsage = body.stream_options?.include_usage == true
            return eventStream(a) { [self] out in
                try await out.send(chunk([ChatChunkChoice(delta: ChatDelta(role: "assistant", content: ""))], braid: a.info))
                while let event = await a.reader.next() {
                    switch event {
                    case .routed: continue
                    case .text(let text, let lp):
                        if text.isEmpty && !(wantsLogprobs && lp != nil) { continue }
                        let logprobs = wantsLogprobs ? lp.map { ChatLogprobs(content: [LogprobContent($0)]) } : nil
                        try await out.send(chunk([ChatChunkChoice(delta: ChatDelta(content: text), logprobs: logprobs)]))
                    case .finished(let reason, let usage):
                        try await out.send(chunk([ChatChunkChoice(delta: ChatDelta(), finish_reason: reason.rawValue)], braid: finished(a, usage)))
                        if includeUsage { try await out.send(chunk([], usage: Usage(usage))) }
                    case .failed(let f):
                        try await out.send(APIError(f))
                    }
                }
            }
        }
        return try await wholeAnswer(request, a) { [self] reader in
            var text = ""
            var logprobs: [LogprobContent] = []
            while let event = await reader.next() {
                switch event {
                case .routed: continue
                case .text(let t, let lp):
                    text += t
                    if let lp { logprobs.append(LogprobContent(lp)) }
                case .finished(let reason, let usage):
                    let choice = ChatChoice(message: AssistantMessage(content: text), logprobs: wantsLogprobs ? ChatLogprobs(content: logprobs) : nil,
                                            finish_reason: reason.rawValue)
                    return encode(ChatCompletion(id: a.id, created: a.created, model: a.model, choices: [choice], usage: Usage(usage),
                                                 braid: finished(a, usage)), headers: a.headers)
                case .failed(let f):
                    throw APIError(f)
                }
            }
            throw APIError(.cancelled)
        }
    }

    func textCompletion(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await decodeBody(&request, as: CompletionRequest.self)
        let s = try ready()
        let r = try translation(s).completion(body)
        let a = try await accept(r, model: body.model, idPrefix: "cmpl-", engine: s.engine)
        let wantsLogprobs = r.logprobs != nil
        @Sendable func completion(_ choice: CompletionChoice, usage: Usage? = nil, braid: BraidInfo? = nil) -> TextCompletion {
            TextCompletion(id: a.id, created: a.created, model: a.model, choices: [choice], usage: usage, braid: braid)
        }
        if body.stream == true {
            let includeUsage = body.stream_options?.include_usage == true
            return eventStream(a) { [self] out in
                var first = true
                while let event = await a.reader.next() {
                    switch event {
                    case .routed: continue
                    case .text(let text, _):
                        if text.isEmpty { continue }
                        try await out.send(completion(CompletionChoice(text: text), braid: first ? a.info : nil))
                        first = false
                    case .finished(let reason, let usage):
                        try await out.send(completion(CompletionChoice(text: "", finish_reason: reason.rawValue),
                                                      usage: includeUsage ? Usage(usage) : nil, braid: finished(a, usage)))
                    case .failed(let f):
                        try await out.send(APIError(f))
                    }
                }
            }
        }
        return try await wholeAnswer(request, a) { [self] reader in
            var text = ""
            var lps: [TokenLogprob] = []
            while let event = await reader.next() {
                switch event {
                case .routed: continue
                case .text(let t, let lp):
                    text += t
                    if let lp { lps.append(lp) }
                case .finished(let reason, let usage):
                    let choice = CompletionChoice(text: text, logprobs: wantsLogprobs ? CompletionLogprobs(lps) : nil, finish_reason: reason.rawValue)
                    return encode(completion(choice, usage: Usage(usage), braid: finished(a, usage)), headers: a.headers)
                case .failed(let f):
                    throw APIError(f)
                }
            }
            throw APIError(.cancelled)
        }
    }

    /// Counts a finished answer in /metrics and gives its final `braid` object (with timings).
    func finished(_ a: Accepted, _ usage: ServingUsage) -> BraidInfo {
        metrics.finished(usage, route: a.report.label)
        var info = a.info
        info.timings = Self.timings(usage)
        return info
    }

    static func timings(_ u: ServingUsage) -> BraidInfo.Timings {
        let decode = u.totalSeconds - u.firstTokenSeconds
        return BraidInfo.Timings(first_token_ms: u.firstTokenSeconds * 1000, total_ms: u.totalSeconds * 1000,
                                 completion_tokens_per_second: u.completionTokens > 1 && decode > 0 ? Double(u.completionTokens - 1) / decode : 0)
    }

    static func randomID() -> String {
        (0..<12).map { _ in String("0123456789abcdefghijklmnopqrstuvwxyz".randomElement()!) }.joined()
    }

}

/// Writes `data: JSON` events of a server-sent-event stream.
/// @unchecked Sendable: used by the one task that writes its response.
struct EventWriter: @unchecked Sendable {
    var writer: any ResponseBodyWriter

    func send<T: Encodable>(_ value: T) async throws {
        var w = writer
        try await w.write(ByteBuffer(bytes: Array("data: ".utf8) + Array(try JSONEncoder().encode(value)) + Array("\n\n".utf8)))
    }

    /// An error after the stream started: the status is sent already, so it goes in an event.
    func send(_ e: APIError) async throws {
        try await send(e.body)
    }
}
