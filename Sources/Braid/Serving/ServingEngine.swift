import Foundation
import Synchronization

/// Continuous batching across routes: one thread owns the model and, every step, runs one
/// forward pass over every active sequence — each with its own route (task terms), KV cache
/// and sampler. Requests join and leave between steps; prompts are fed in chunks under a
/// per-step column budget, next to the running sequences' decode tokens, so streams keep
/// flowing while new prompts are read, and prompts that arrive together share one forward.
/// The system turn's keys and values are computed once per route and copied.
/// @unchecked Sendable: the engine thread owns the model and sequences; other threads only touch the lock-guarded queue and counters.
public final class ServingEngine: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Sequences decoded together.
        public var parallel = 8
        /// KV capacity of each sequence (prompt + answer).
        public var contextSize = 2048
        /// Requests waiting for a free sequence; beyond it `submit` refuses.
        public var queueLimit = 64
        /// Columns of one forward pass (decode tokens + prompt chunks).
        public var stepTokenBudget = 64
        /// The interweaving mode of requests that name none.
        public var interweave = "off"
        /// Tasks mixed by the blend route.
        public var blendK = 2
        public init() {}
    }

    /// Counters for /metrics and the log.
    public struct Snapshot: Sendable {
        public var active = 0
        public var queued = 0
        public var steps = 0
        public var stepSeconds = 0.0
        public var promptTokens = 0
        public var generatedTokens = 0
        public var finished = 0
        public var failed = 0
        public var tasks: [String] = []
    }

    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let configuration: Configuration
    public let template: ChatTemplate

    private struct Pending {
        var id: Int
        var request: ServingRequest
        var events: @Sendable (ServingEvent) -> Void
        var queued: UInt64
    }

    private struct Shared {
        var queue: [Pending] = []
        var cancelled: Set<Int> = []
        var commands: [@Sendable () -> Void] = []
        var nextID = 1
        var cancelAll = false
        var catalog: TaskCatalog
        var accepting = true
        var stopped = false
        /// The engine thread has returned (or was never started).
        var exited = true
        var snapshot = Snapshot()
    }

    private let shared: Mutex<Shared>
    private let wake = NSCondition()
    private var thread: Thread?
    private let finishedRunning = DispatchSemaphore(value: 0)

    // Owned by the engine thread.
    private var catalog: TaskCatalog
    private var features: QueryFeatures?
    private var decoders: [String: StreamDecoder] = [:]
    private var spare: [Bool: [DecodeSequence]] = [:]
    private var active: [ActiveSequence] = []
    private var prefixes: [(key: String, tokens: [Int32], sequence: DecodeSequence)] = []
    private let marker: Int32?

    public init(model: LlamaModel, tokenizer: Tokenizer, template: ChatTemplate, catalog: TaskCatalog, configuration: Configuration) throws {
        guard configuration.parallel >= 1 && 2 * configuration.parallel <= model.maxBatch else {
            throw BraidError.invalidArgument("--parallel must be between 1 and \(model.maxBatch / 2)")
        }
        guard configuration.contextSize >= 16 else { throw BraidError.invalidArgument("--ctx-size must be at least 16") }
        self.model = model
        self.tokenizer = tokenizer
        self.configuration = configuration
        self.template = template
        self.catalog = catalog
        shared = Mutex(Shared(catalog: catalog))
        marker = tokenizer.id(of: "<|im_start|>")
        _ = try decoder(for: configuration.interweave)
        publishTasks()
    }

    /// The task vectors being served now.
    public var currentCatalog: TaskCatalog { shared.withLock { $0.catalog } }

    /// The interweaving modes requests may name.
    public static func checkInterweave(_ mode: String) throws {
        if mode != "learned" { _ = try InterweaveGate.parse(mode) }
    }

    // MARK: - Requests

    /// Queues a request; `events` is called from the engine thread. Throws when the queue is
    /// full or the engine no longer accepts work.
    @discardableResult
    public func submit(_ request: ServingRequest, events: @escaping @Sendable (ServingEvent) -> Void) throws -> Int {
        let id = try shared.withLock { s -> Int in
            guard s.accepting else { throw ServingFailure.shuttingDown }
            guard s.queue.count < configuration.queueLimit else { throw ServingFailure.queueFull(limit: configuration.queueLimit) }
            let id = s.nextID
            s.nextID += 1
            s.queue.append(Pending(id: id, request: request, events: events, queued: DispatchTime.now().uptimeNanoseconds))
            s.snapshot.queued = s.queue.count
            return id
        }
        signal()
        return id
    }

    /// Stops request `id` at the next step (its sequence leaves the batch); it gets `.failed(.cancelled)`.
    public func cancel(_ id: Int) {
        shared.withLock { _ = $0.cancelled.insert(id) }
        signal()
    }

    /// Runs `work` on the engine thread between two steps and returns its result.
    public func perform<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            shared.withLock { $0.commands.append { c.resume(with: Result { try work() }) } }
            signal()
        }
    }

    /// Rescans the task folder between steps: new vectors become servable, removed ones take no
    /// new requests (running ones finish with the vector they started with).
    public func reload() async throws -> TaskCatalog {
        try await perform { [self] in
            let next = try TaskCatalog(directory: catalog.directory, model: model, previous: catalog)
            install(next)
            return next
        }
    }

    public func snapshot() -> Snapshot { shared.withLock { $0.snapshot } }

    // MARK: - Lifecycle

    public func start() {
        shared.withLock { $0.exited = false }
        let t = Thread { [self] in
            loop()
            shared.withLock { $0.exited = true }
            finishedRunning.signal()
        }
        t.name = "braid-engine"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// Takes no new requests; those queued and running finish. Returns when the engine is idle
    /// or after `timeout` seconds (then what still runs is cancelled).
    public func drain(timeout: Double) {
        let running = shared.withLock {
            $0.accepting = false
            $0.stopped = true
            return !$0.exited
        }
        guard running else { return }
        signal()
        if finishedRunning.wait(timeout: .now() + timeout) == .timedOut {
            cancelAll()
            _ = finishedRunning.wait(timeout: .now() + 5)
        }
    }

    /// Takes no new requests and cancels every queued and running one at the next step.
    public func cancelAll() {
        shared.withLock {
            $0.accepting = false
            $0.cancelAll = true
        }
        signal()
    }

    private func signal() {
        wake.lock()
        wake.signal()
        wake.unlock()
    }

    // MARK: - The loop

    private func loop() {
        while true {
            var admitted: [Pending] = []
            var cancelled: Set<Int> = []
            var commands: [@Sendable () -> Void] = []
            var stop = false
            wake.lock()
            while true {
                let ready = shared.withLock { s -> Bool in
                    if !s.commands.isEmpty || !s.cancelled.isEmpty || s.cancelAll { return true }
                    if !active.isEmpty { return true }
                    if !s.queue.isEmpty { return true }
                    return s.stopped
                }
                if ready { break }
                wake.wait()
            }
            wake.unlock()
            let now = DispatchTime.now().uptimeNanoseconds
            var expired: [Pending] = []
            shared.withLock { s in
                commands = s.commands
                s.commands.removeAll()
                cancelled = s.cancelled
                s.cancelled.removeAll()
                if s.cancelAll {
                    cancelled.formUnion(s.queue.map(\.id))
                    cancelled.formUnion(active.map(\.id))
                    s.cancelAll = false  // new requests are refused from now on
                }
                // Cancelled or expired while waiting: answered now, never started.
                var kept: [Pending] = []
                for p in s.queue {
                    if cancelled.contains(p.id) { expired.append(p) } else if let d = p.request.deadline, d < now { expired.append(p) } else { kept.append(p) }
                }
                s.queue = kept
                while active.count + admitted.count < configuration.parallel && !s.queue.isEmpty {
                    admitted.append(s.queue.removeFirst())
                }
                s.snapshot.queued = s.queue.count
                stop = s.stopped && s.queue.isEmpty && active.isEmpty && admitted.isEmpty && s.commands.isEmpty
            }
            for c in commands { c() }
            for p in expired {
                p.events(.failed(cancelled.contains(p.id) ? .cancelled : .deadlineExceeded))
                count(failed: 1)
            }
            for s in active where cancelled.contains(s.id) || (s.request.deadline.map { $0 < now } ?? false) {
                if cancelled.contains(s.id) {
                    release(s, failed: true)
                    s.events(.failed(.cancelled))
                } else {
                    finish(s, .length)
                }
            }
            if stop && active.isEmpty { break }
            for p in admitted { admit(p) }
            if !active.isEmpty { step() }
        }
    }

    /// Routes a request, takes a sequence for it and copies the shared system-turn prefix.
    private func admit(_ p: Pending) {
        do {
            let request = p.request
            guard !request.prompt.isEmpty else { throw ServingFailure.invalid("the prompt is empty") }
            let mode = request.interweave ?? configuration.interweave
            let decoder = try self.decoder(for: mode)
            let (route, report, prior) = try resolve(request, interweave: mode)
            guard request.prompt.count < configuration.contextSize else {
                throw ServingFailure.invalid(BraidError.promptTooLong(tokens: request.prompt.count, context: configuration.contextSize).description)
            }
            let sequence = spare[decoder.twoStreams]?.popLast() ?? decoder.makeSequence(capacity: configuration.contextSize)
            sequence.reset()
            sequence.route = decoder.route(for: route, prior: prior)
            sequence.prior = prior
            let queryStart = Generator.queryStart(request.prompt, marker: marker)
            var skip = 0
            if let prefix = try sharedPrefix(request.prompt, route: sequence.route, decoder: decoder, queryStart: queryStart) {
                sequence.copyPrefix(from: prefix.sequence, count: prefix.tokens.count)
                skip = prefix.tokens.count
            }
            let s = ActiveSequence(id: p.id, request: request, events: p.events, decoder: decoder, sequence: sequence,
                                   remaining: Array(request.prompt[skip...]), queryStart: max(0, queryStart - skip),
                                   tokenizer: tokenizer, admitted: p.queued)
            p.events(.routed(report, promptTokens: request.prompt.count))
            active.append(s)
            shared.withLock {
                $0.snapshot.active = active.count
                $0.snapshot.promptTokens += request.prompt.count
            }
        } catch let f as ServingFailure {
            p.events(.failed(f))
            count(failed: 1)
        } catch {
            p.events(.failed(.invalid("\(error)")))
            count(failed: 1)
        }
    }

    /// One forward pass per decoder over its sequences, then a token for each that is decoding.
    private func step() {
        let start = DispatchTime.now().uptimeNanoseconds
        var groups: [ObjectIdentifier: [ActiveSequence]] = [:]
        var order: [ObjectIdentifier] = []
        for s in active {
            let key = ObjectIdentifier(s.decoder)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(s)
        }
        var tokens = 0
        for key in order {
            let group = groups[key]!
            do {
                tokens += try group[0].decoder.twoStreams ? stepInterweaved(group) : stepSingle(group)
            } catch {
                for s in group where active.contains(where: { $0 === s }) {
                    release(s, failed: true)
                    s.events(.failed(.invalid("\(error)")))
                }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        shared.withLock {
            $0.snapshot.steps += 1
            $0.snapshot.stepSeconds += seconds
            $0.snapshot.generatedTokens += tokens
        }
    }

    /// Single-stream sequences: decode tokens and prompt chunks in one forward call.
    private func stepSingle(_ group: [ActiveSequence]) throws -> Int {
        var entries: [BatchEntry] = []
        var outputs: [Int] = []
        var owners: [ActiveSequence] = []
        for s in group where s.remaining.isEmpty {
            outputs.append(entries.count)
            owners.append(s)
            entries.append(BatchEntry(token: s.next, position: s.sequence.cache.count, cache: s.sequence.cache, route: s.sequence.route))
        }
        var budget = max(configuration.stepTokenBudget - entries.count, 1)
        for s in group where !s.remaining.isEmpty && budget > 0 && entries.count < model.maxBatch {
            let n = min(s.remaining.count, budget, model.maxBatch - entries.count)
            let base = s.sequence.cache.count
            for k in 0..<n {
                entries.append(BatchEntry(token: s.remaining[k], position: base + k, cache: s.sequence.cache, route: s.sequence.route))
            }
            s.remaining.removeFirst(n)
            budget -= n
            if s.remaining.isEmpty {
                outputs.append(entries.count - 1)
                owners.append(s)
            }
        }
        guard !entries.isEmpty else { return 0 }
        try model.forward(entries, outputs: outputs)
        for (j, s) in owners.enumerated() { consume(s, model.logits(j)) }
        return owners.count
    }

    /// Interweaved sequences (two streams each): prompts one per step, then one decode step.
    private func stepInterweaved(_ group: [ActiveSequence]) throws -> Int {
        let decoder = group[0].decoder
        let decoding = group.filter { $0.remaining.isEmpty }
        if !decoding.isEmpty {
            try decoder.step(decoding.map(\.sequence), decoding.map(\.next))
            for (j, s) in decoding.enumerated() { consume(s, decoder.logits(j)) }
        }
        guard let s = group.first(where: { !$0.remaining.isEmpty }) else { return decoding.count }
        let tokens = s.remaining
        s.remaining = []
        consume(s, try decoder.prefill(s.sequence, tokens, queryStart: s.queryStart))
        return decoding.count + 1
    }

    /// Samples the next token of `s` from its logits and tells its owner.
    private func consume(_ s: ActiveSequence, _ logits: UnsafeBufferPointer<Float>) {
        if s.firstToken == nil { s.firstToken = DispatchTime.now().uptimeNanoseconds }
        let id = s.sampler.sample(logits, history: s.history)
        if tokenizer.endOfGeneration.contains(id) {
            finish(s, .stop)
            return
        }
        let lp = s.request.logprobs.map { Self.logprob(logits, token: id, top: $0, tokenizer: tokenizer) }
        s.generated += 1
        s.history.append(id)
        let piece = s.detokenizer.append(id)
        let text = s.stops.feed(piece)
        s.events(.text(text, lp))
        if s.stops.matched {
            finish(s, .stop)
        } else if s.generated >= (s.request.maxTokens ?? Int.max) || s.sequence.cache.count + 1 >= s.sequence.capacity {
            finish(s, .length)
        } else {
            s.next = id
        }
    }

    private func finish(_ s: ActiveSequence, _ reason: FinishReason) {
        if !s.stops.matched {
            let rest = s.stops.feed(s.detokenizer.flush()) + s.stops.flush()
            if !rest.isEmpty { s.events(.text(rest, nil)) }
        }
        let now = DispatchTime.now().uptimeNanoseconds
        release(s, failed: false)
        s.events(.finished(reason, ServingUsage(
            promptTokens: s.request.prompt.count, completionTokens: s.generated,
            firstTokenSeconds: Double((s.firstToken ?? now) - s.admitted) / 1e9, totalSeconds: Double(now - s.admitted) / 1e9)))
    }

    private func release(_ s: ActiveSequence, failed: Bool) {
        active.removeAll { $0 === s }
        spare[s.decoder.twoStreams, default: []].append(s.sequence)
        shared.withLock {
            $0.snapshot.active = active.count
            if failed { $0.snapshot.failed += 1 } else { $0.snapshot.finished += 1 }
        }
    }

    private func count(failed n: Int) { shared.withLock { $0.snapshot.failed += n } }

    // MARK: - Routes, decoders, prefixes

    private func install(_ next: TaskCatalog) {
        catalog = next
        shared.withLock { $0.catalog = next }
        features = nil
        prefixes.removeAll()
        // Learned gates belong to the vectors: a new decoder for new requests, old ones finish on theirs.
        decoders["learned"] = nil
        publishTasks()
    }

    private func publishTasks() {
        let names = catalog.names
        shared.withLock { $0.snapshot.tasks = names }
    }

    private func decoder(for mode: String) throws -> StreamDecoder {
        if let d = decoders[mode] { return d }
        let gate: InterweaveGate?
        if mode == "learned" {
            gate = .learned(try catalog.learnedGates(dim: model.config.embeddingLength))
        } else {
            gate = try InterweaveGate.parse(mode)
        }
        let d = StreamDecoder(model: model, gate: gate)
        decoders[mode] = d
        return d
    }

    /// The route of a request, its report and the router's probability of it (the adaptive and guarded gates' prior).
    private func resolve(_ r: ServingRequest, interweave: String) throws -> (Route, RouteReport, Float) {
        var route = Route.base
        var modeName = "none"
        var probabilities: [String: Float] = [:]
        var milliseconds = 0.0
        var layers = 0
        var prior: Float = 0.5
        var pinned: Route?
        if case .pinned(let coefficients) = r.route {
            var terms: [(vector: TaskVector, coefficient: Float)] = []
            for name in coefficients.keys.sorted() {
                guard let v = catalog.vector(named: name) else { throw ServingFailure.unknownTask(name, known: catalog.names) }
                terms.append((v, coefficients[name]!))
            }
            pinned = Route(terms)
            route = pinned!
            modeName = "pinned"
        }
        let wantsRouter: Bool
        switch r.route {
        case .auto, .blend: wantsRouter = true
        case .none: wantsRouter = false
        case .pinned: wantsRouter = (try? InterweaveGate.parse(interweave))??.needsPrior ?? false
        }
        let text = r.routerText ?? tokenizer.decode(r.prompt)
        // An empty message tells the router nothing: the base answers it.
        if wantsRouter, let router = catalog.router, !text.allSatisfy(\.isWhitespace) {
            if features == nil {
                features = QueryFeatures(model: model, tokenizer: tokenizer, template: template, layers: router.featureLayers)
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (p, used) = try router.probabilities(of: text, features: features!)
            milliseconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            layers = used
            probabilities = Dictionary(zip(router.labels, p), uniquingKeysWith: { a, _ in a })
            if pinned == nil {
                let mode: RoutingMode = r.route == .blend ? .blend : .auto
                route = router.route(p, mode: mode, blendK: configuration.blendK)
                modeName = mode.rawValue
            }
            prior = router.probability(of: route, in: p)
        } else if pinned == nil, r.route != .none {
            modeName = "none"  // no router: the base answers
        }
        let label = route.terms.map { $0.coefficient == 1 ? $0.vector.name : $0.vector.name + String(format: ":%.3g", $0.coefficient) }.joined(separator: "+")
        let report = RouteReport(mode: modeName, label: route.isBase ? "base" : label,
                                 coefficients: Dictionary(route.terms.map { ($0.vector.name, $0.coefficient) }, uniquingKeysWith: +),
                                 probabilities: probabilities, routingMilliseconds: milliseconds, routingLayers: layers,
                                 interweave: interweave)
        return (route, report, prior)
    }

    /// The system turn of a chat prompt (up to its second `<|im_start|>`), prefilled once per
    /// route and decoder and kept for the next requests (least recently used dropped past 32).
    private func sharedPrefix(_ prompt: [Int32], route: Route, decoder: StreamDecoder, queryStart: Int) throws -> (tokens: [Int32], sequence: DecodeSequence)? {
        guard let marker, prompt.first == marker, let end = prompt.dropFirst().firstIndex(of: marker),
              end >= 8, end < prompt.count else { return nil }
        if case .learned = decoder.gate, end > queryStart { return nil }  // the gate's query summary starts there
        let tokens = Array(prompt[..<end])
        let key = "\(ObjectIdentifier(decoder).hashValue)|\(route.label)"
        if let i = prefixes.firstIndex(where: { $0.key == key && $0.tokens == tokens }) {
            let hit = prefixes.remove(at: i)
            prefixes.append(hit)
            return (hit.tokens, hit.sequence)
        }
        let sequence = decoder.makeSequence(capacity: tokens.count, route: route)
        try decoder.prefill(sequence, tokens)
        prefixes.append((key, tokens, sequence))
        if prefixes.count > 32 { prefixes.removeFirst() }
        return (tokens, sequence)
    }

    /// log-softmax of the chosen token and the `top` most likely ones.
    static func logprob(_ logits: UnsafeBufferPointer<Float>, token: Int32, top: Int, tokenizer: Tokenizer) -> TokenLogprob {
        let z = StreamDecoder.logSumExp(logits)
        var best: [TokenCandidate] = []
        if top > 0 { Sampler.selectTopK(logits, top, penalized: [], penalty: 1, into: &best) }
        return TokenLogprob(token: token, bytes: tokenizer.piece(token), logprob: logits[Int(token)] - z,
                            top: best.map { ($0.id, tokenizer.piece($0.id), $0.logit - z) })
    }
}

/// A request that holds a sequence: what is left of its prompt, its sampler and its text.
final class ActiveSequence {
    let id: Int
    let request: ServingRequest
    let events: @Sendable (ServingEvent) -> Void
    let decoder: StreamDecoder
    let sequence: DecodeSequence
    /// Prompt tokens not yet fed.
    var remaining: [Int32]
    let queryStart: Int
    var sampler: Sampler
    var detokenizer: StreamingDetokenizer
    var stops: StopMatcher
    /// Prompt and answer so far (the repetition penalty's window).
    var history: [Int32]
    var next: Int32 = 0
    var generated = 0
    let admitted: UInt64
    var firstToken: UInt64?

    init(id: Int, request: ServingRequest, events: @escaping @Sendable (ServingEvent) -> Void, decoder: StreamDecoder,
         sequence: DecodeSequence, remaining: [Int32], queryStart: Int, tokenizer: Tokenizer, admitted: UInt64) {
        self.id = id
        self.request = request
        self.events = events
        self.decoder = decoder
        self.sequence = sequence
        self.remaining = remaining
        self.queryStart = queryStart
        sampler = Sampler(request.sampling)
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        stops = StopMatcher(request.stop)
        history = request.prompt
        self.admitted = admitted
    }
}
