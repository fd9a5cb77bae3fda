import ArgumentParser
import Braid
import Foundation

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Routed greedy inference over a JSONL file of prompts; one JSON answer per line, in order, with its route and timings.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var interweaveOptions: InterweaveOptions
    @OptionGroup var bridgeOptions: BridgeOptions

    @Option(name: [.short, .long], help: "Prompts, JSONL: {\"prompt\", optional \"id\", \"task\", \"answer\", \"source\" (what a --bridge's source reads instead of the prompt)} ('-' reads stdin).")
    var input: String

    @Option(name: [.short, .long], help: "Answers, JSONL ('-' or absent: stdout).")
    var output: String?

    @Option(help: "Sequences decoded together (each with its own route).")
    var batch: Int = 4

    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: "Most tokens per answer.")
    var maxTokens: Int = 48

    @Flag(help: "Route each line by its own \"task\" field (the oracle route).")
    var oracle = false

    @Option(help: "Write the summary as JSON to this file too.")
    var summary: String?

    @Flag(name: [.short, .long], help: "No progress bar.")
    var quiet = false

    @Flag(help: "Stop at the first bad line (after answering the lines before it) instead of recording the error and going on.")
    var failFast = false

    @Flag(help: "Skip the ids already in --output and append the rest (continues a run that was stopped).")
    var resume = false

    struct Line: Decodable {
        var id: String?
        var prompt: String
        var task: String?
        var answer: String?
        /// What a bridge's source reads instead of the prompt (the control that feeds it another question).
        var source: String?
    }

    /// A line of the input: its number in the file, its id, and the prompt or why it cannot run.
    struct Item {
        var number: Int
        var id: String
        var line: Result<Line, LineError>
    }

    struct LineError: Error, CustomStringConvertible {
        var description: String
    }

    func validate() throws {
        guard batch >= 1 && batch <= 64 else { throw ValidationError("--batch must be between 1 and 64") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1") }
        if resume && (output == nil || output == "-") { throw ValidationError("--resume needs --output FILE") }
    }

    /// Every non-blank line, parsed; a line that is not a prompt object, has an empty prompt or
    /// repeats an id is kept as an error.
    static func items(_ text: String) -> [Item] {
        var items: [Item] = []
        var firstLine: [String: Int] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard raw.contains(where: { !$0.isWhitespace }) else { continue }
            let number = i + 1
            var id = String(number)
            let line: Result<Line, LineError>
            if let l = try? JSONDecoder().decode(Line.self, from: Data(raw.utf8)) {
                id = l.id ?? id
                if l.prompt.isEmpty {
                    line = .failure(LineError(description: "empty prompt"))
                } else if let first = firstLine[id] {
                    line = .failure(LineError(description: "id \(id) repeats line \(first)"))
                } else {
                    line = .success(l)
                }
            } else {
                line = .failure(LineError(description: "not a JSON object with a \"prompt\" string"))
            }
            if firstLine[id] == nil { firstLine[id] = number }
            items.append(Item(number: number, id: id, line: line))
        }
        return items
    }

    func run() throws {
        let all = Self.items(try readText(path: input))
        let answers = try AnswerFile(path: output.flatMap { $0 == "-" ? nil : $0 }, resume: resume)
        let items = all.filter { !answers.answered.contains($0.id) }
        if resume { printError("run: \(all.count - items.count) of \(all.count) lines already in \(output!), \(items.count) to go") }
        if failFast, let bad = items.first(where: { (try? $0.line.get()) == nil }), case .failure(let e) = bad.line {
            throw BraidError.invalidArgument("\(input):\(bad.number): \(e)")
        }

        let rt = try Runtime(modelOptions)
        let fixed = try taskOptions.route(for: rt.model)
        let routing = try QueryRouting(taskOptions, rt, fixed: fixed, needPrior: interweaveOptions.needsPrior)
        var byName: [String: TaskVector] = [:]
        if oracle { for v in try loadTaskVectors(taskOptions.taskDir, model: rt.model) { byName[v.name] = v } }
        let gate = try interweaveOptions.gate(for: routing.router?.tasks ?? fixed.terms.map(\.vector) + byName.values, model: rt.model)
        let runner = BatchRunner(model: rt.model, tokenizer: rt.tokenizer, batch: batch, maxTokens: maxTokens, interweave: gate)
        let bridge = try bridgeOptions.load(for: rt.model, threads: modelOptions.threads)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]

        var stats = Stats()
        var failures: [(Item, String)] = []
        let bar = ProgressBar("run", quiet: quiet)
        let start = Date()
        // Lines go in chunks: each chunk is routed, then decoded in batches, and its records are
        // written in input order as soon as every line before them is done.
        let chunkSize = batch * 8
        var stop: Error?
        for chunkStart in stride(from: 0, to: items.count, by: chunkSize) {
            let chunk = items[chunkStart..<min(items.count, chunkStart + chunkSize)]
            var records: [Int: Data] = [:]
            var written = 0
            func flushReady() throws {
                while let r = records[written] {
                    try answers.append(r)
                    records[written] = nil
                    written += 1
                    bar.update(chunkStart + written, items.count)
                }
            }
            var requests: [BatchRunner.Request] = []
            var owners: [(position: Int, item: Item, line: Line, decision: RoutingDecision)] = []
            for (position, item) in chunk.enumerated() {
                do {
                    let l = try item.line.get()
                    let decision = try route(l, routing: routing, byName: byName)
                    let prompt = rt.tokenizer.encode(rt.template.render([.user(l.prompt)]))
                    guard prompt.count + maxTokens < rt.contextLength else {
                        throw BraidError.promptTooLong(tokens: prompt.count + maxTokens, context: rt.contextLength)
                    }
                    let memory = try bridge.map { try BridgeOptions.memory($0, message: l.source ?? l.prompt, prompt: prompt, tokenizer: rt.tokenizer).memory }
                    requests.append(BatchRunner.Request(prompt: prompt, route: decision.route, prior: decision.prior, bridge: memory))
                    owners.append((position, item, l, decision))
                } catch {
                    if failFast { stop = BraidError.invalidArgument("\(input):\(item.number): \(error)"); break }
                    failures.append((item, "\(error)"))
                    records[position] = try encoder.encode(ErrorLine(id: item.id, line: item.number, error: "\(error)"))
                }
            }
            try flushReady()
            _ = try runner.run(requests, finished: { j, a in
                let o = owners[j]
                let record = Self.record(o.item, o.line, o.decision, a, promptTokens: requests[j].prompt.count,
                                         mode: oracle ? "oracle" : routing.mode?.rawValue, gate: gate?.label, bridge: bridge?.0.name,
                                         tokenizer: rt.tokenizer)
                stats.add(record, o.decision, a)
                records[o.position] = try encoder.encode(record)
                try flushReady()
            })
            stats.add(runner)
            if let stop { throw stop }
        }
        stats.seconds = Date().timeIntervalSince(start)
        try stats.report(batch: batch, featureLayers: routing.router.map { $0.featureLayers ?? Int.max }, summary: summary)
        if !failures.isEmpty {
            printError("run: \(failures.count) of \(items.count) lines failed (error records in the output):")
            for (item, reason) in failures.prefix(10) { printError("  line \(item.number) (id \(item.id)): \(reason)") }
            if failures.count > 10 { printError("  … and \(failures.count - 10) more") }
            throw ExitCode(1)
        }
    }

    /// The route of one line: the oracle's (its own task), or the router's / the fixed one.
    func route(_ l: Line, routing: QueryRouting, byName: [String: TaskVector]) throws -> RoutingDecision {
        var forced: Route?
        if oracle {
            let t = l.task ?? "general"
            guard t == "general" || byName[t] != nil else {
                throw LineError(description: "unknown task \(t) (known: \(byName.keys.sorted().joined(separator: ", ")))")
            }
            forced = byName[t].map { Route([($0, 1)]) } ?? .base
        }
        if let forced, !interweaveOptions.needsPrior { return RoutingDecision(fixed: forced) }
        return try routing.route(l.prompt, forcing: forced)
    }

    static func record(_ item: Item, _ l: Line, _ decision: RoutingDecision, _ a: BatchRunner.Answer, promptTokens: Int,
                       mode: String?, gate: String?, bridge: String? = nil, tokenizer: Tokenizer) -> OutputLine {
        let text = tokenizer.decode(a.tokens)
        let route = decision.route
        var coefficients: [String: Float] = [:]
        for t in route.terms { coefficients[t.vector.name, default: 0] += t.coefficient }
        return OutputLine(
            id: item.id, prompt: l.prompt, output: text,
            route: .init(mode: mode ?? (route.isBase ? "none" : "fixed"), task: route.isBase ? "base" : route.label,
                         coefficients: coefficients, probabilities: decision.probabilities, route_ms: decision.milliseconds,
                         route_layers: decision.layers, interweave: gate, bridge: bridge),
            finish_reason: a.finishReason.rawValue,
            timings: .init(prompt_n: promptTokens, prompt_ms: a.promptSeconds * 1000, predicted_n: a.tokens.count, total_ms: a.seconds * 1000),
            task: l.task,
            correct: l.answer.flatMap { answer in l.task.map { Scorer.isCorrect(task: $0, output: text, answer: answer) } })
    }

    /// Totals over the answered lines, printed (and written with --summary) at the end.
    struct Stats {
        var lines = 0, generated = 0, decodedTokens = 0, early = 0
        var seconds = 0.0, prefillSeconds = 0.0, decodeSeconds = 0.0, routeMilliseconds = 0.0
        var routeShares: [Double] = []
        var layers: [Int] = []
        var perTask: [String: (right: Int, total: Int)] = [:]

        mutating func add(_ r: OutputLine, _ d: RoutingDecision, _ a: BatchRunner.Answer) {
            lines += 1
            generated += a.tokens.count
            routeMilliseconds += d.milliseconds
            routeShares.append(d.milliseconds / (d.milliseconds + a.seconds * 1000))
            layers.append(d.layers)
            if let c = r.correct, let t = r.task {
                perTask[t, default: (0, 0)].right += c ? 1 : 0
                perTask[t, default: (0, 0)].total += 1
            }
        }

        mutating func add(_ runner: BatchRunner) {
            prefillSeconds += runner.prefillSeconds
            decodeSeconds += runner.decodeSeconds
            decodedTokens += runner.decodedTokens
        }

        func report(batch: Int, featureLayers: Int?, summary: String?) throws {
            let routeMs = routeMilliseconds / Double(max(lines, 1))
            let decodeRate = Double(decodedTokens) / max(decodeSeconds, 1e-9)
            let shares = routeShares.sorted()
            let routingShare = shares.isEmpty ? 0 : shares[shares.count / 2]
            let early = layers.filter { $0 > 0 && $0 < (featureLayers ?? Int.max) }.count
            let peak = MemoryReport.current().peakRSS
            printError(String(format: "run: %d lines in %.1f s, %d tokens, %.1f tok/s (batch %d; decode steps %.1f tok/s, prefill %.1f s), routing %.1f ms/line, peak RSS %@",
                              lines, seconds, generated, Double(generated) / max(seconds, 1e-9), batch, decodeRate, prefillSeconds,
                              routeMs, MemoryReport.mib(peak)))
            if featureLayers != nil {
                printError(String(format: "routing: median %.1f%% of an answer's latency; %d of %d lines decided by the early stage",
                                  100 * routingShare, early, lines))
            }
            for (t, c) in perTask.sorted(by: { $0.key < $1.key }) {
                printError(String(format: "  %@: %.1f%% of %d", t, 100 * Double(c.right) / Double(c.total), c.total))
            }
            guard let summary else { return }
            var sum: [String: Any] = ["lines": lines, "batch": batch, "seconds": seconds, "generated_tokens": generated,
                                      "tokens_per_second": Double(generated) / max(seconds, 1e-9), "mean_route_ms": routeMs,
                                      "prefill_seconds": prefillSeconds, "decode_seconds": decodeSeconds,
                                      "decode_tokens_per_second": decodeRate, "peak_rss_bytes": peak,
                                      "median_route_share": routingShare, "routed_early": early]
            if !perTask.isEmpty { sum["accuracy"] = perTask.mapValues { 100 * Double($0.right) / Double($0.total) } }
            try AtomicFile.write(JSONSerialization.data(withJSONObject: sum, options: [.prettyPrinted, .sortedKeys]), to: summary)
        }
    }

    struct ErrorLine: Encodable {
        var id: String
        var line: Int
        var error: String
    }

    struct OutputLine: Encodable {
        struct RouteInfo: Encodable {
            var mode: String
            var task: String
            var coefficients: [String: Float]
            var probabilities: [String: Float]
            var route_ms: Double
            var route_layers: Int
            var interweave: String?
            var bridge: String?
        }
        struct Timings: Encodable {
            var prompt_n: Int
            var prompt_ms: Double
            var predicted_n: Int
            var total_ms: Double
        }
        var id: String
        var prompt: String
        var output: String
        var route: RouteInfo
        var finish_reason: String
        var timings: Timings
        var task: String?
        var correct: Bool?
    }
}
