import Foundation
import Synchronization
import Testing
import Braid

/// The serving engine on the real base and the shipped task vectors: answers do not depend on
/// what else is in the batch, requests join and leave between steps, cancelled ones leave at
/// once, and a full queue or a passed deadline is refused rather than waited on.
@Suite(.enabled(if: Fixtures.haveModel, "needs the base model"), .serialized)
struct ServingEngineTests {
    /// Everything one request was told, in order.
    final class Recorder: Sendable {
        let events = Mutex<[ServingEvent]>([])
        let done = DispatchSemaphore(value: 0)
        var sink: @Sendable (ServingEvent) -> Void {
            { [self] e in
                events.withLock { $0.append(e) }
                switch e {
                case .finished, .failed: done.signal()
                default: break
                }
            }
        }
        func wait() { done.wait() }
        var text: String {
            events.withLock { $0.compactMap { if case .text(let t, _) = $0 { return t } else { return nil } }.joined() }
        }
        var route: String? { events.withLock { $0.compactMap { if case .routed(let r, _) = $0 { return r.label } else { return nil } }.first } }
        var failure: ServingFailure? { events.withLock { $0.compactMap { if case .failed(let f) = $0 { return f } else { return nil } }.first } }
        var finish: FinishReason? { events.withLock { $0.compactMap { if case .finished(let r, _) = $0 { return r } else { return nil } }.first } }
        var textEvents: Int { events.withLock { $0.filter { if case .text = $0 { return true } else { return false } }.count } }
    }

    static let model: LlamaModel? = try? Fixtures.model()

    func engine(parallel: Int = 8, queue: Int = 64, start: Bool = true) throws -> (ServingEngine, Tokenizer) {
        let model = try #require(Self.model)
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let catalog = try TaskCatalog(directory: Fixtures.root.appendingPathComponent("models").path, model: model)
        var config = ServingEngine.Configuration()
        config.parallel = parallel
        config.queueLimit = queue
        config.contextSize = 512
        let e = try ServingEngine(model: model, tokenizer: tokenizer, template: ChatTemplate(), catalog: catalog, configuration: config)
        if start { e.start() }
        return (e, tokenizer)
    }

    static let messages = [
        "Add 250 and 317.", "What is 48 times 7?",
        "Extract the name, age and city as JSON: Meet Noah Okafor: 53 years old, a plumber from Lisbon.",
        "Is this review positive or negative? The soup was cold and the waiter ignored us.",
        "How do you write 470 in English words?", "Spell 1203 in words.",
        "What is the capital of France?", "Give me a tip for sleeping better.",
    ]

    func request(_ tokenizer: Tokenizer, _ message: String, maxTokens: Int = 32, route: RouteChoice = .auto) -> ServingRequest {
        ServingRequest(prompt: tokenizer.encode(ChatTemplate().render([.user(message)])), routerText: message, route: route,
                       sampling: .greedy, maxTokens: maxTokens)
    }

    @Test func greedyAnswersAreTheSameAloneAmongSixteenMixedRoutesAndInBatchRunner() throws {
        let (engine, tokenizer) = try engine()
        defer { engine.drain(timeout: 5) }
        var alone: [String] = []
        var routes: [String] = []
        for m in Self.messages {
            let r = Recorder()
            try engine.submit(request(tokenizer, m), events: r.sink)
            r.wait()
            alone.append(r.text)
            routes.append(try #require(r.route))
        }
        #expect(Set(routes).count == 5, "four tasks and the base: \(routes)")
        let together = (0..<16).map { _ in Recorder() }
        for (i, r) in together.enumerated() { try engine.submit(request(tokenizer, Self.messages[i % 8]), events: r.sink) }
        for r in together { r.wait() }
        for (i, r) in together.enumerated() {
            #expect(r.text == alone[i % 8], "request \(i) (\(routes[i % 8])) changed in a batch")
            #expect(r.route == routes[i % 8])
        }
        // The mechanism `braid run` uses, with the routes the engine chose (the engine stopped first: one owner of the model at a time).
        engine.drain(timeout: 5)
        let catalog = engine.currentCatalog
        let runner = BatchRunner(model: engine.model, tokenizer: tokenizer, batch: 4, maxTokens: 32)
        let requests = zip(Self.messages, routes).map { m, label in
            BatchRunner.Request(prompt: tokenizer.encode(ChatTemplate().render([.user(m)])),
                                route: catalog.vector(named: label).map { Route([($0, 1)]) } ?? .base)
        }
        let answers = try runner.run(requests)
        for (i, a) in answers.enumerated() { #expect(tokenizer.decode(a.tokens) == alone[i], "\(Self.messages[i])") }
    }

    @Test func requestsJoinAndLeaveBetweenSteps() throws {
        let (engine, tokenizer) = try engine()
        defer { engine.drain(timeout: 5) }
        let order = Mutex<[String]>([])
        let long = Recorder(), short = Recorder()
        let started = DispatchSemaphore(value: 0)
        let seen = Atomic<Int>(0)
        try engine.submit(request(tokenizer, "Write a long essay about the history of Rome.", maxTokens: 60, route: .none)) { e in
            if case .finished = e { order.withLock { $0.append("long") } }
            long.sink(e)
            if case .text = e, seen.add(1, ordering: .relaxed).newValue == 3 { started.signal() }
        }
        started.wait()
        try engine.submit(request(tokenizer, "Add 250 and 317.", maxTokens: 8)) { e in
            if case .finished = e { order.withLock { $0.append("short") } }
            short.sink(e)
        }
        long.wait()
        short.wait()
        #expect(long.finish == .length && long.textEvents == 60)
        #expect(short.text == "567")
        #expect(order.withLock { $0 } == ["short", "long"], "the short request joined the running one and left first")
        #expect(engine.snapshot().active == 0)
    }

    @Test func aCancelledRequestLeavesWithinOneStep() throws {
        let (engine, tokenizer) = try engine()
        defer { engine.drain(timeout: 5) }
        let r = Recorder()
        let seen = Atomic<Int>(0)
        let gotThree = DispatchSemaphore(value: 0)
        let id = try engine.submit(request(tokenizer, "Tell me a long story about a dragon.", maxTokens: 400, route: .none)) { e in
            r.sink(e)
            if case .text = e, seen.add(1, ordering: .relaxed).newValue == 3 { gotThree.signal() }
        }
        gotThree.wait()
        engine.cancel(id)
        r.wait()
        #expect(r.failure == .cancelled)
        #expect(r.textEvents <= 6, "\(r.textEvents) tokens after 3 and a cancel")
        #expect(engine.snapshot().active == 0)
    }

    @Test func aFullQueueIsRefusedAndAPassedDeadlineFails() throws {
        let (engine, tokenizer) = try engine(parallel: 1, queue: 2, start: false)
        let a = Recorder(), b = Recorder()
        try engine.submit(request(tokenizer, "Add 250 and 317.", maxTokens: 4), events: a.sink)
        var late = request(tokenizer, "Add 1 and 2.", maxTokens: 4)
        late.deadline = DispatchTime.now().uptimeNanoseconds
        try engine.submit(late, events: b.sink)
        #expect(throws: ServingFailure.queueFull(limit: 2)) { try engine.submit(request(tokenizer, "Add 3 and 4.", maxTokens: 4)) { _ in } }
        engine.start()
        a.wait()
        b.wait()
        #expect(a.text == "567")
        #expect(b.failure == .deadlineExceeded)
        engine.drain(timeout: 5)
        #expect(throws: ServingFailure.shuttingDown) { try engine.submit(request(tokenizer, "Add 3 and 4.")) { _ in } }
    }

    @Test func pinnedRoutesStopStringsAndUnknownTasks() throws {
        let (engine, tokenizer) = try engine()
        defer { engine.drain(timeout: 5) }
        let pinned = Recorder()
        try engine.submit(request(tokenizer, "Add 250 and 317.", route: .pinned(["arith": 1])), events: pinned.sink)
        pinned.wait()
        #expect(pinned.route == "arith" && pinned.text == "567")
        let stopped = Recorder()
        var r = request(tokenizer, "Add 250 and 317.", route: .pinned(["arith": 1]))
        r.stop = ["6"]
        try engine.submit(r, events: stopped.sink)
        stopped.wait()
        #expect(stopped.text == "5" && stopped.finish == .stop)
        let unknown = Recorder()
        try engine.submit(request(tokenizer, "Add 1 and 2.", route: .pinned(["poetry": 1])), events: unknown.sink)
        unknown.wait()
        #expect(unknown.failure == .unknownTask("poetry", known: ["arith", "json", "sentiment", "spell"]))
    }
}
