import ArgumentParser
import Braid
import Foundation

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Routed greedy inference over a JSONL file of prompts; one JSON answer per line, in order, with its route and timings.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var interweaveOptions: InterweaveOptions

    @Option(name: [.short, .long], help: "Prompts, JSONL: {\"prompt\", optional \"id\", \"task\", \"answer\"} ('-' reads stdin).")
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

    struct Line: Decodable {
        var id: String?
        var prompt: String
        var task: String?
        var answer: String?
    }

    func validate() throws {
        guard batch >= 1 && batch <= 64 else { throw ValidationError("--batch must be between 1 and 64") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1") }
    }

    func run() throws {
        let text = try readText(path: input)
        var lines: [Line] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            do { lines.append(try JSONDecoder().decode(Line.self, from: Data(raw.utf8))) } catch {
                throw ValidationError("\(input):\(i + 1): not a JSON object with a \"prompt\" string")
            }
        }
        let rt = try Runtime(modelOptions)
        let fixed = try taskOptions.route(for: rt.model)
        let routing = try QueryRouting(taskOptions, rt, fixed: fixed, needPrior: interweaveOptions.needsPrior)
        var byName: [String: TaskVector] = [:]
        if oracle { for v in try loadTaskVectors(taskOptions.taskDir, model: rt.model) { byName[v.name] = v } }

        // Route every line (one base prefill each), then decode them in batches.
        let routeBar = ProgressBar("route", quiet: quiet)
        var routes: [RoutingDecision] = []
        for (i, l) in lines.enumerated() {
            var forced: Route?
            if oracle {
                let t = l.task ?? "general"
                guard t == "general" || byName[t] != nil else { throw ValidationError("line \(i + 1): unknown task \(t) (known: \(byName.keys.sorted().joined(separator: ", ")))") }
                forced = byName[t].map { Route([($0, 1)]) } ?? .base
            }
            let asksRouter = forced == nil || interweaveOptions.needsPrior
            routes.append(asksRouter ? try routing.route(l.prompt, forcing: forced) : RoutingDecision(fixed: forced!))
            routeBar.update(i + 1, lines.count)
        }
        let gate = try interweaveOptions.gate(for: routing.router?.tasks ?? fixed.terms.map(\.vector) + byName.values, model: rt.model)
        let requests = zip(lines, routes).map { l, r in
            BatchRunner.Request(prompt: rt.tokenizer.encode(rt.template.render([.user(l.prompt)])), route: r.route, prior: r.prior)
        }
        for r in requests where r.prompt.count + maxTokens >= rt.contextLength {
            throw BraidError.promptTooLong(tokens: r.prompt.count + maxTokens, context: rt.contextLength)
        }
        let bar = ProgressBar("run", quiet: quiet)
        let start = Date()
        let runner = BatchRunner(model: rt.model, tokenizer: rt.tokenizer, batch: batch, maxTokens: maxTokens, interweave: gate)
        let answers = try runner.run(requests, progress: bar.update)
        let seconds = Date().timeIntervalSince(start)

        let out = output.flatMap { $0 == "-" ? nil : $0 }
        if let out { _ = FileManager.default.createFile(atPath: out, contents: nil) }
        let handle = out.map { FileHandle(forWritingAtPath: $0)! } ?? FileHandle.standardOutput
        var perTask: [String: (Int, Int)] = [:]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for (i, (l, a)) in zip(lines, answers).enumerated() {
            let textOut = rt.tokenizer.decode(a.tokens)
            let route = routes[i].route
            var correct: Bool?
            if let answer = l.answer, let task = l.task {
                correct = Scorer.isCorrect(task: task, output: textOut, answer: answer)
                perTask[task, default: (0, 0)].0 += correct! ? 1 : 0
                perTask[task, default: (0, 0)].1 += 1
            }
            let record = OutputLine(
                id: l.id ?? String(i + 1), prompt: l.prompt, output: textOut,
                route: .init(mode: oracle ? "oracle" : (routing.mode?.rawValue ?? (route.isBase ? "none" : "fixed")), task: route.isBase ? "base" : route.label,
                             coefficients: Dictionary(uniqueKeysWithValues: route.terms.map { ($0.vector.name, $0.coefficient) }),
                             probabilities: routes[i].probabilities, route_ms: routes[i].milliseconds, route_layers: routes[i].layers,
                             interweave: gate?.label),
                finish_reason: a.finishReason.rawValue,
                timings: .init(prompt_n: requests[i].prompt.count, prompt_ms: a.promptSeconds * 1000, predicted_n: a.tokens.count, total_ms: a.seconds * 1000),
                correct: correct)
            handle.write(try encoder.encode(record) + Data("\n".utf8))
        }
        if out != nil { try handle.close() }
        let generated = answers.reduce(0) { $0 + $1.tokens.count }
        let routeMs = routes.map(\.milliseconds).reduce(0, +) / Double(max(routes.count, 1))
        var sum: [String: Any] = ["lines": lines.count, "batch": batch, "seconds": seconds, "generated_tokens": generated,
                                  "tokens_per_second": Double(generated) / seconds, "mean_route_ms": routeMs,
                                  "prefill_seconds": runner.prefillSeconds, "decode_seconds": runner.decodeSeconds,
                                  "decode_tokens_per_second": Double(runner.decodedTokens) / max(runner.decodeSeconds, 1e-9),
                                  "peak_rss_bytes": MemoryReport.current().peakRSS]
        // Routing against each answer's own latency (routing + prefill + decode), median over lines.
        let shares = zip(routes, answers).map { r, a in r.milliseconds / (r.milliseconds + a.seconds * 1000) }.sorted()
        let routingShare = shares.isEmpty ? 0 : shares[shares.count / 2]
        let early = routes.filter { $0.layers > 0 && $0.layers < (routing.router?.featureLayers ?? Int.max) }.count
        sum["median_route_share"] = routingShare
        sum["routed_early"] = early
        if !perTask.isEmpty { sum["accuracy"] = perTask.mapValues { 100 * Double($0.0) / Double($0.1) } }
        printError(String(format: "run: %d lines in %.1f s, %d tokens, %.1f tok/s (batch %d; decode steps %.1f tok/s, prefill %.1f s), routing %.1f ms/line, peak RSS %@",
                          lines.count, seconds, generated, Double(generated) / seconds, batch,
                          Double(runner.decodedTokens) / max(runner.decodeSeconds, 1e-9), runner.prefillSeconds,
                          routeMs, MemoryReport.mib(MemoryReport.current().peakRSS)))
        if routing.router != nil {
            printError(String(format: "routing: median %.1f%% of an answer's latency; %d of %d lines decided by the early stage",
                              100 * routingShare, early, routes.count))
        }
        for (t, (r, n)) in perTask.sorted(by: { $0.key < $1.key }) { printError(String(format: "  %@: %.1f%% of %d", t, 100 * Double(r) / Double(n), n)) }
        if let summary {
            try JSONSerialization.data(withJSONObject: sum, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: summary))
        }
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
        var correct: Bool?
    }
}
