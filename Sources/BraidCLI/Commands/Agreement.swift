import ArgumentParser
import Braid
import Foundation

struct Agreement: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "How much a task vector, alone or interweaved, changes the base outside its task: next-token agreement with the base and KL to it, along each mode's greedy answers.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: [.short, .long], parsing: .upToNextOption, help: "Prompts, JSONL with \"prompt\" and optional \"task\".")
    var input: [String]

    @Option(help: "First N lines of each input.")
    var limit: Int = 60

    @Option(help: "Task vector to force every prompt through (a name in --task-dir); without it, each prompt goes through every task vector but its own task's (the wrong ones).")
    var task: String?

    @Option(help: "Folder of task vectors (NAME.tv.gguf, gates NAME.gate.gguf, the router).")
    var taskDir: String = TaskOptions.defaultDir

    @Option(help: "Comma-separated modes: off (the task vector alone), guarded, fixed:λ, fixed-logits:λ, adaptive, learned.")
    var modes: String = "off,fixed:0.5,adaptive,learned,guarded"

    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: "Most tokens per answer.")
    var maxTokens: Int = 48

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(name: [.short, .long], help: "No progress bar.")
    var quiet = false

    func run() throws {
        let rt = try Runtime(modelOptions)
        let vectors = try loadTaskVectors(taskDir, model: rt.model)
        if let task, !vectors.contains(where: { $0.name == task }) {
            throw ValidationError("unknown task \(task) (known in \(taskDir): \(vectors.map(\.name).joined(separator: ", ")))")
        }
        let router = try? Router(tasks: vectors)
        let features = router.map { QueryFeatures(model: rt.model, tokenizer: rt.tokenizer, template: rt.template, layers: $0.featureLayers) }
        var examples: [TaskExample] = []
        for path in input { examples += try TaskSuite.load(path, limit: limit) }
        // (prompt tokens, route, the router's probability of that route)
        var cases: [([Int32], Route, Float)] = []
        for e in examples {
            let ids = rt.tokenizer.encode(rt.template.render([.user(e.prompt)]))
            let p = try features.map { try router!.probabilities(of: e.prompt, features: $0).probabilities }
            for v in vectors where task.map({ $0 == v.name }) ?? (v.name != e.task) {
                let route = Route([(v, 1)])
                cases.append((ids, route, p.map { router!.probability(of: route, in: $0) } ?? 0.5))
            }
        }
        var measure = BaseAgreement(model: rt.model, tokenizer: rt.tokenizer)
        measure.maxTokens = maxTokens
        var rows: [[String: Any]] = []
        if !json {
            print("| prompts | route | interweave | steps | agreement with the base | mean KL to the base |")
            print("|---|---|---|---:|---:|---:|")
        }
        for mode in modes.split(separator: ",").map(String.init) {
            var options = InterweaveOptions()
            options.interweave = mode
            try options.validate()
            let gate = try options.gate(for: vectors.filter { v in task.map { $0 == v.name } ?? true }, model: rt.model)
            let decoder = StreamDecoder(model: rt.model, gate: gate)
            var tally = BaseAgreement.Tally()
            let bar = ProgressBar("agreement \(mode)", quiet: quiet)
            for (i, c) in cases.enumerated() {
                try measure.measure(c.0, route: c.1, prior: c.2, decoder: decoder, into: &tally)
                bar.update(i + 1, cases.count)
            }
            let what = input.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: "+")
            let route = task ?? "every other task"
            rows.append(["inputs": what, "route": route, "interweave": mode, "cases": cases.count, "steps": tally.steps,
                         "agreement": tally.agreement, "mean_kl": tally.meanKL])
            if !json { print(String(format: "| %@ | %@ | %@ | %d | %.1f%% | %.3f |", what, route, mode, tally.steps, tally.agreement, tally.meanKL)) }
        }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        }
    }
}
