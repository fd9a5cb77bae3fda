import Braid
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals
import Synchronization

/// `braid serve`: the OpenAI-compatible HTTP front of a `ServingEngine`. The listener comes up
/// first (/health answers 503 while the model loads); SIGTERM/SIGINT stop accepting, let the
/// requests in flight finish (up to the drain timeout) and exit; SIGHUP rescans the task folder.
public final class BraidServer: Sendable {
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port = 8080
        public var apiKey: String?
        public var adminKey: String?
        public var maxBody = 1 << 20
        public var drainTimeout = 30.0
        /// Seconds a request may wait and run in all.
        public var requestTimeout = 600.0
        public var sampling = SamplingParameters(temperature: 0.8)
        public var contextSize = 2048
        public init() {}
    }

    /// What the loader hands over once the model is in memory.
    public struct Loaded: Sendable {
        public var engine: ServingEngine
        public var tokenizer: Tokenizer
        public var template: ChatTemplate
        public var modelName: String
        public init(engine: ServingEngine, tokenizer: Tokenizer, template: ChatTemplate, modelName: String) {
            self.engine = engine
            self.tokenizer = tokenizer
            self.template = template
            self.modelName = modelName
        }
    }

    let configuration: Configuration
    let logger: Logger
    let metrics = ServerMetrics()
    private let loaded = Mutex<Loaded?>(nil)
    private let started = Int(Date().timeIntervalSince1970)

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until SIGTERM/SIGINT; `load` runs once the listener is up.
    public func run(load: @escaping @Sendable () throws -> Loaded) async throws {
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "braid"),
            onServerRunning: { [logger, configuration] _ in
                logger.info("listening on http://\(configuration.host):\(configuration.port)")
            },
            logger: logger)
        let engineService = EngineService(server: self, load: load)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: engineService), .init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger))
        try await group.run()
    }

    var engine: ServingEngine? { loaded.withLock { $0?.engine } }
    var state: Loaded? { loaded.withLock { $0 } }

    func install(_ l: Loaded) { loaded.withLock { $0 = l } }

    // MARK: - Routes

    func makeRouter() -> Hummingbird.Router<BasicRequestContext> {
        let router = Hummingbird.Router()
        router.middlewares.add(ErrorMiddleware())
        router.middlewares.add(AuthMiddleware(apiKey: configuration.apiKey))
        router.get("/health") { [self] _, _ -> Response in
            guard let s = state else {
                return json(["status": "loading"], status: .serviceUnavailable)
            }
            let snap = s.engine.snapshot()
            return json(["status": "ok", "active": snap.active, "queued": snap.queued, "tasks": s.engine.currentCatalog.names] as [String: any Sendable])
        }
        router.get("/") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: WebPage.html)))
        }
        router.get("/metrics") { [self] _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.render(engine: engine))))
        }
        router.get("/v1/models") { [self] _, _ -> Response in
            let s = try ready()
            return encode(models(s))
        }
        router.get("/v1/models/:id") { [self] _, context -> Response in
            let s = try ready()
            let id = context.parameters.get("id") ?? ""
            guard let m = models(s).data.first(where: { $0.id == id }) else {
                throw APIError(status: .notFound, message: "the model \(id) does not exist", type: "invalid_request_error", code: "model_not_found", param: "model")
            }
            return encode(m)
        }
        router.post("/v1/chat/completions") { [self] request, context -> Response in
            try await counted("chat") { try await chatCompletion(request, context) }
        }
        router.post("/v1/completions") { [self] request, context -> Response in
            try await counted("completions") { try await textCompletion(request, context) }
        }
        router.post("/admin/reload") { [self] request, _ -> Response in
            guard let key = configuration.adminKey else {
                throw APIError(status: .forbidden, message: "admin endpoints are off (start braid serve with --admin-key)", type: "permission_error")
            }
            guard request.headers[.authorization] == "Bearer \(key)" else {
                throw APIError(status: .unauthorized, message: "the admin key is missing or wrong", type: "authentication_error", code: "invalid_admin_key")
            }
            return encode(try await reload())
        }
        return router
    }

    /// Counts the answer's status in /metrics, errors included.
    private func counted(_ endpoint: String, _ body: () async throws -> Response) async throws -> Response {
        do {
            let r = try await body()
            metrics.request(endpoint, status: Int(r.status.code))
            return r
        } catch let e as APIError {
            metrics.request(endpoint, status: Int(e.status.code))
            throw e
        } catch let e as HTTPError {
            metrics.request(endpoint, status: Int(e.status.code))
            throw e
        }
    }

    func ready() throws -> Loaded {
        guard let s = state else {
            throw APIError(status: .serviceUnavailable, message: "the model is still loading", type: "overloaded_error", code: "loading", retryAfter: 2)
        }
        return s
    }

    struct ReloadReport: Encodable {
        var tasks: [String]
        var added: [String]
        var removed: [String]
        var refused: [[String: String]]
    }

    /// Rescans --task-dir between two steps (also on SIGHUP).
    func reload() async throws -> ReloadReport {
        let s = try ready()
        let before = Set(s.engine.currentCatalog.names)
        let next = try await s.engine.reload()
        let after = Set(next.names)
        let report = ReloadReport(tasks: next.names, added: after.subtracting(before).sorted(), removed: before.subtracting(after).sorted(),
                                  refused: next.refused.map { ["file": $0.file, "reason": $0.reason] })
        logger.info("reload: serving \(next.names), added \(report.added), removed \(report.removed), refused \(report.refused.count)")
        for r in next.refused { logger.warning("refused \(r.file): \(r.reason)") }
        return report
    }

    func models(_ s: Loaded) -> ModelList {
        let catalog = s.engine.currentCatalog
        var data = [
            ModelEntry(id: "braid", created: started,
                       description: "\(s.modelName), each request routed to a task vector, a blend or the base" + (catalog.router == nil ? " (no router: the base answers)" : ""),
                       parent: nil, kind: "routed"),
            ModelEntry(id: "base", created: started, description: s.modelName, parent: nil, kind: "base"),
        ]
        for v in catalog.vectors {
            data.append(ModelEntry(id: v.name, created: started, description: v.description, parent: "base", kind: "task"))
        }
        return ModelList(data: data)
    }

    func translation(_ s: Loaded) -> RequestTranslation {
        RequestTranslation(tokenizer: s.tokenizer, template: s.template, catalog: s.engine.currentCatalog, defaults: configuration.sampling,
                           contextSize: s.engine.configuration.contextSize, timeout: configuration.requestTimeout)
    }

    /// The request body as JSON of type T, or a 400/413 that says what is wrong.
    func decodeBody<T: Decodable>(_ request: inout Request, as: T.Type) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: configuration.maxBody)
        } catch is NIOTooManyBytesError {
            throw APIError(status: .contentTooLarge, message: "the request body is over the server's limit of \(configuration.maxBody) bytes (--max-body)",
                           type: "invalid_request_error", code: "body_too_large")
        }
        return try Self.decodeJSON(Data(buffer: buffer), as: T.self)
    }

    /// `body` as JSON of type T, or a 400 that says what is wrong (what the fuzzer feeds).
    package static func decodeJSON<T: Decodable>(_ body: Data, as: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: body)
        } catch let e as DecodingError {
            throw APIError.invalid("invalid request body: \(describe(e))")
        } catch {
            throw APIError.invalid("invalid request body: \(error)")
        }
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ c: [any CodingKey]) -> String { c.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description }
        switch e {
        case .typeMismatch(let t, let c): return "\(path(c.codingPath)) must be of type \(t)"
        case .valueNotFound(let t, let c): return "\(path(c.codingPath)) must be a \(t), not null"
        case .keyNotFound(let k, let c): return "missing field \((path(c.codingPath) + "." + k.stringValue).drop { $0 == "." })"
        case .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "not valid UTF-8 JSON, or a number that does not fit its field" : "\(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
}

/// Bearer auth on everything but /health and the page at / (which holds no data and asks for the key).
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let apiKey: String?
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let apiKey, request.uri.path != "/health", request.uri.path != "/", !request.uri.path.hasPrefix("/admin/") else {
            return try await next(request, context)
        }
        guard request.headers[.authorization] == "Bearer \(apiKey)" else {
            throw APIError(status: .unauthorized, message: "missing or wrong API key (send Authorization: Bearer KEY)",
                           type: "authentication_error", code: "invalid_api_key")
        }
        return try await next(request, context)
    }
}

/// Loads the model once the listener is up, installs the engine, rescans on SIGHUP, and on
/// shutdown (after the HTTP server has drained) lets the engine finish.
struct EngineService: Service {
    let server: BraidServer
    let load: @Sendable () throws -> BraidServer.Loaded

    func run() async throws {
        let loaded = try await withCheckedThrowingContinuation { (c: CheckedContinuation<BraidServer.Loaded, Error>) in
            Thread { c.resume(with: Result { try load() }) }.start()
        }
        loaded.engine.start()
        server.install(loaded)
        server.logger.info("ready: \(loaded.modelName), tasks \(loaded.engine.currentCatalog.names)")
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let stops = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let timeout = server.configuration.drainTimeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in hangups.cancelOnGracefulShutdown() {
                    do { _ = try await server.reload() } catch { server.logger.error("reload failed: \(error)") }
                }
            }
            // The HTTP server drains first (it stops listening and waits for its requests); past
            // --drain-timeout whatever still runs is cancelled, so those requests end and it can stop.
            group.addTask {
                for await _ in stops {
                    server.logger.info("draining: up to \(timeout) s for the requests in flight")
                    try? await Task.sleep(for: .seconds(timeout))
                    if !Task.isCancelled {
                        server.logger.warning("drain timeout: cancelling what still runs")
                        loaded.engine.cancelAll()
                    }
                    break
                }
            }
            await group.next()
            group.cancelAll()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            Thread {
                loaded.engine.drain(timeout: timeout)
                c.resume()
            }.start()
        }
        server.logger.info("engine drained")
    }
}

func json(_ object: [String: any Sendable], status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

func encode<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
    var headers = extra
    headers[.contentType] = "application/json"
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    let data = (try? encoder.encode(value)) ?? Data()
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}
