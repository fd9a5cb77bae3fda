import Braid
import Foundation
import Hummingbird
import HTTPTypes
import NIOCore

/// The engine's events for one request, read in order by one task.
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

    func chatCompletion(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await decodeBody(&request, as: ChatCompletionRequest.self)
        let s = try ready()
        let r = try translation(s).chat(body)
        let reader = try submit(r, to: s.engine)
        let report = try await routed(reader)
        let id = "chatcmpl-" + Self.randomID()
        let created = Int(Date().timeIntervalSince1970)
        let model = body.model ?? "braid"
        var headers = HTTPFields()
        headers[HTTPField.Name("X-Braid-Route")!] = report.label
        let wantsLogprobs = r.logprobs != nil
        if body.stream == true {
            let includeUsage = body.stream_options?.include_usage == true
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: ResponseBody { [self] writer in
                func send<T: Encodable>(_ value: T) async throws {
                    try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + Array(try JSONEncoder().encode(value)) + Array("\n\n".utf8)))
                }
                let info = BraidInfo(route: RouteInfo(report), interweave: report.interweave)
                try await send(ChatCompletionChunk(id: id, created: created, model: model,
                                                   choices: [ChatChunkChoice(delta: ChatDelta(role: "assistant", content: ""))], braid: info))
                while let event = await reader.next() {
                    switch event {
                    case .routed: continue
                    case .text(let text, let lp):
                        if text.isEmpty && !(wantsLogprobs && lp != nil) { continue }
                        try await send(ChatCompletionChunk(id: id, created: created, model: model, choices: [ChatChunkChoice(
                            delta: ChatDelta(content: text), logprobs: wantsLogprobs ? lp.map { ChatLogprobs(content: [LogprobContent($0)]) } : nil)]))
                    case .finished(let reason, let usage):
                        metrics.finished(usage, route: report.label)
                        var final = info
                        final.timings = Self.timings(usage)
                        try await send(ChatCompletionChunk(id: id, created: created, model: model,
                                                           choices: [ChatChunkChoice(delta: ChatDelta(), finish_reason: reason.rawValue)], braid: final))
                        if includeUsage {
                            try await send(ChatCompletionChunk(id: id, created: created, model: model, choices: [], usage: Usage(usage)))
                        }
                    case .failed(let f):
                        let e = APIError(f)
                        try await writer.write(ByteBuffer(string: "data: {\"error\": {\"message\": \(Self.quoted(e.message)), \"type\": \"\(e.type)\", \"code\": \(e.code.map { "\"\($0)\"" } ?? "null")}}\n\n"))
                    }
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            })
        }
        return try await request.body.consumeWithInboundCloseHandler({ _ in
            try await self.chatAnswer(reader, report: report, id: id, created: created, model: model, headers: headers, wantsLogprobs: wantsLogprobs)
        }, onInboundClosed: reader.cancel)
    }

    /// The whole answer of a non-streamed chat request.
    private func chatAnswer(_ reader: EventReader, report: RouteReport, id: String, created: Int, model: String, headers: HTTPFields,
                            wantsLogprobs: Bool) async throws -> Response {
        var text = ""
        var logprobs: [LogprobContent] = []
        while let event = await reader.next() {
            switch event {
            case .routed: continue
            case .text(let t, let lp):
                text += t
                if let lp { logprobs.append(LogprobContent(lp)) }
            case .finished(let reason, let usage):
                metrics.finished(usage, route: report.label)
                var info = BraidInfo(route: RouteInfo(report), interweave: report.interweave)
                info.timings = Self.timings(usage)
                let answer = ChatCompletion(id: id, created: created, model: model,
                                            choices: [ChatChoice(message: AssistantMessage(content: text),
                                                                 logprobs: wantsLogprobs ? ChatLogprobs(content: logprobs) : nil,
                                                                 finish_reason: reason.rawValue)],
                                            usage: Usage(usage), braid: info)
                return encode(answer, headers: headers)
            case .failed(let f):
                throw APIError(f)
            }
        }
        throw APIError(.cancelled)
    }

    func textCompletion(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await decodeBody(&request, as: CompletionRequest.self)
        let s = try ready()
        let r = try translation(s).completion(body)
        let reader = try submit(r, to: s.engine)
        let report = try await routed(reader)
        let id = "cmpl-" + Self.randomID()
        let created = Int(Date().timeIntervalSince1970)
        let model = body.model ?? "braid"
        var headers = HTTPFields()
        headers[HTTPField.Name("X-Braid-Route")!] = report.label
        let info = BraidInfo(route: RouteInfo(report), interweave: report.interweave)
        if body.stream == true {
            let includeUsage = body.stream_options?.include_usage == true
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: ResponseBody { [self] writer in
                func send<T: Encodable>(_ value: T) async throws {
                    try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + Array(try JSONEncoder().encode(value)) + Array("\n\n".utf8)))
                }
                var first = true
                while let event = await reader.next() {
                    switch event {
                    case .routed: continue
                    case .text(let text, _):
                        if text.isEmpty { continue }
                        try await send(TextCompletion(id: id, created: created, model: model, choices: [CompletionChoice(text: text)], braid: first ? info : nil))
                        first = false
                    case .finished(let reason, let usage):
                        metrics.finished(usage, route: report.label)
                        var final = info
                        final.timings = Self.timings(usage)
                        try await send(TextCompletion(id: id, created: created, model: model, choices: [CompletionChoice(text: "", finish_reason: reason.rawValue)],
                                                      usage: includeUsage ? Usage(usage) : nil, braid: final))
                    case .failed(let f):
                        let e = APIError(f)
                        try await writer.write(ByteBuffer(string: "data: {\"error\": {\"message\": \(Self.quoted(e.message)), \"type\": \"\(e.type)\", \"code\": \(e.code.map { "\"\($0)\"" } ?? "null")}}\n\n"))
                    }
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            })
        }
        let wantsLogprobs = r.logprobs != nil
        return try await request.body.consumeWithInboundCloseHandler({ _ in
            try await self.completionAnswer(reader, report: report, id: id, created: created, model: model, headers: headers, wantsLogprobs: wantsLogprobs)
        }, onInboundClosed: reader.cancel)
    }

    /// The whole answer of a non-streamed text completion.
    private func completionAnswer(_ reader: EventReader, report: RouteReport, id: String, created: Int, model: String, headers: HTTPFields,
                                  wantsLogprobs: Bool) async throws -> Response {
        let info = BraidInfo(route: RouteInfo(report), interweave: report.interweave)
        var text = ""
        var lps: [TokenLogprob] = []
        while let event = await reader.next() {
            switch event {
            case .routed: continue
            case .text(let t, let lp):
                text += t
                if let lp { lps.append(lp) }
            case .finished(let reason, let usage):
                metrics.finished(usage, route: report.label)
                var final = info
                final.timings = Self.timings(usage)
                var logprobs: CompletionLogprobs?
                if wantsLogprobs {
                    var offset = 0
                    var offsets: [Int] = []
                    for l in lps { offsets.append(offset); offset += String(decoding: l.bytes, as: UTF8.self).count }
                    logprobs = CompletionLogprobs(
                        tokens: lps.map { String(decoding: $0.bytes, as: UTF8.self) }, token_logprobs: lps.map(\.logprob),
                        top_logprobs: lps.map { Dictionary($0.top.map { (String(decoding: $0.bytes, as: UTF8.self), $0.logprob) }, uniquingKeysWith: max) },
                        text_offset: offsets)
                }
                return encode(TextCompletion(id: id, created: created, model: model,
                                             choices: [CompletionChoice(text: text, logprobs: logprobs, finish_reason: reason.rawValue)],
                                             usage: Usage(usage), braid: final), headers: headers)
            case .failed(let f):
                throw APIError(f)
            }
        }
        throw APIError(.cancelled)
    }

    static func timings(_ u: ServingUsage) -> BraidInfo.Timings {
        let decode = u.totalSeconds - u.firstTokenSeconds
        return BraidInfo.Timings(first_token_ms: u.firstTokenSeconds * 1000, total_ms: u.totalSeconds * 1000,
                                 completion_tokens_per_second: u.completionTokens > 1 && decode > 0 ? Double(u.completionTokens - 1) / decode : 0)
    }

    static func randomID() -> String {
        (0..<12).map { _ in String("0123456789abcdefghijklmnopqrstuvwxyz".randomElement()!) }.joined()
    }

    static func quoted(_ s: String) -> String {
        String(decoding: (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
    }
}
