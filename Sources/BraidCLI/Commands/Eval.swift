import ArgumentParser
import Braid
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score the task suites (DESIGN.md §6) for the base, full fine-tunes and task vectors, each task through its own (oracle) route.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Comma-separated tasks.")
    var tasks: String = "arith,json,sentiment,spell"

    @Option(help: "Split: train, dev or test.")
    var split: String = "test"

    @Option(help: "First N examples of each split (the reference table uses 300).")
    var limit: Int = 300

    @Option(help: "Folder of the task suites.")
    var suites: String = "../shared/tasks"

    @Option(name: .customLong("config"), help: "LABEL=SPEC[@GATE], repeatable. SPEC: base | delta:DIR (TASK.delta.*.gguf, the full fine-tunes) | tv:DIR (TASK.tv.gguf); @GATE interweaves that config (as --interweave).")
    var configs: [String] = ["base=base", "fine-tune=delta:../shared/models/deltas", "task vector=tv:models"]

    @Option(help: "Sequences decoded together.")
    var batch: Int = 8

    @Option(help: "Run task routes on merged weights built once per route (q8_0 or f16) instead of on the fly.")
    var materialize: String?

    @OptionGroup var interweaveOptions: InterweaveOptions

    @Option(help: "Task vectors whose router gives the adaptive gate its prior.")
    var routerDir: String = TaskOptions.defaultDir

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(name: [.short, .long], help: "No progress bar.")
    var quiet = false

    func run() throws {
        let rt = try Runtime(modelOptions)
        if let m = materialize { rt.model.materialized = try TaskOptions.materializedCache(m, budgetMiB: 1024) }
        let taskNames = tasks.split(separator: ",").map(String.init)
        if let twice = taskNames.first(where: { t in taskNames.filter { $0 == t }.count > 1 }) {
            throw ValidationError("--tasks lists \(twice) twice")
        }
        var examples: [TaskExample] = []
        for t in taskNames {
            examples += try TaskSuite.load("\(suites)/\(t).\(split).jsonl", limit: limit)
        }
        var evaluator = Evaluator(model: rt.model, tokenizer: rt.tokenizer, template: rt.template)
        evaluator.batch = batch
        let sha = try BaseIdentity.sha256(of: rt.model)
        var rows: [[String: Any]] = []
        var table: [(String, [(String, Double, Int)], Double)] = []
        for config in configs {
            guard let eq = config.firstIndex(of: "=") else { throw ValidationError("--config wants LABEL=SPEC, got \(config)") }
            let label = String(config[..<eq])
            var spec = String(config[config.index(after: eq)...])
            var interweave = interweaveOptions
            if let at = spec.firstIndex(of: "@") {
                interweave.interweave = String(spec[spec.index(after: at)...])
                try interweave.validate()
                spec = String(spec[..<at])
            }
            var routes: [String: Route] = [:]
            for t in taskNames { routes[t] = try route(spec, task: t, model: rt.model, sha: sha) }
            evaluator.interweave = try interweave.gate(for: routes.values.flatMap { $0.terms.map(\.vector) }, model: rt.model)
            let prior = interweave.needsPrior ? try priors(rt) : nil
            let bar = ProgressBar("eval \(label)", quiet: quiet)
            let start = Date()
            let outcomes = try evaluator.run(examples, route: { routes[$0.task] ?? .base },
                                             prior: { e in try prior.map { try $0(e.prompt, routes[e.task] ?? .base) } ?? 0.5 },
                                             progress: bar.update)
            let acc = Evaluator.accuracy(outcomes)
            let mean = acc.map(\.percent).reduce(0, +) / Double(max(acc.count, 1))
            table.append((label, acc, mean))
            rows.append(["config": label, "spec": spec, "mean": mean, "seconds": Date().timeIntervalSince(start),
                         "tasks": Dictionary(acc.map { ($0.task, ["accuracy": $0.percent, "n": $0.count] as [String: Any]) }, uniquingKeysWith: { a, _ in a })])
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: ["split": split, "limit": limit, "results": rows], options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("| model | " + taskNames.joined(separator: " | ") + " | mean |")
            print("|---|" + String(repeating: "---:|", count: taskNames.count + 1))
            for (label, acc, mean) in table {
                print("| \(label) | " + acc.map { String(format: "%.1f", $0.1) }.joined(separator: " | ") + String(format: " | %.1f |", mean))
            }
        }
    }

    /// The router's probability of a route for a prompt (the adaptive gate's prior).
    func priors(_ rt: Runtime) throws -> (String, Route) throws -> Float {
        let router = try Router(tasks: loadTaskVectors(routerDir, model: rt.model))
        let features = QueryFeatures(model: rt.model, tokenizer: rt.tokenizer, template: rt.template, layers: router.featureLayers)
        return { prompt, route in router.probability(of: route, in: try router.probabilities(of: prompt, features: features).probabilities) }
    }

    func route(_ spec: String, task: String, model: LlamaModel, sha: String) throws -> Route {
        if spec == "base" { return .base }
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, ["delta", "tv"].contains(parts[0]) else { throw ValidationError("unknown config spec \(spec) (base, delta:DIR or tv:DIR)") }
        let path = try taskFile(parts[1], task: task, suffix: parts[0] == "tv" ? ".tv.gguf" : ".gguf")
        return Route([(try TaskVector(path: path, base: model, baseSHA256: sha), 1)])
    }
}
