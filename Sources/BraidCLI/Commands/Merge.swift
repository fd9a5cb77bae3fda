import ArgumentParser
import Braid
import Foundation

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge fine-tunes (delta GGUFs, fine-tuned GGUFs or task vectors) into one model or one task vector, as a YAML config says.",
        discussion: "Methods: task_arithmetic, ties, dare_linear, dare_ties, star, evolver; an aim: section applies AIM after any of them. See README.md, 'Merging'.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The merge config (YAML or JSON).")
    var config: String

    @Option(name: [.short, .customLong("out")], help: "Output file: a model GGUF, or a delta GGUF with output type delta.")
    var out: String

    @Option(help: "Name stored in the output (default: the config's name, else its file name).")
    var name: String?

    @Flag(name: [.short, .long], help: "No progress bars.")
    var quiet = false

    func run() throws {
        let start = Date()
        let cfg = try MergeConfig(path: config)
        let basePath = cfg.base ?? modelOptions.model
        guard FileManager.default.fileExists(atPath: basePath) else { throw BraidError.fileNotFound(path: basePath) }
        let model = try LlamaModel(path: basePath, threads: modelOptions.threads)
        let sha = try BaseIdentity.sha256(of: model)
        let merger = try Merger(config: cfg, base: model, baseSHA256: sha)
        let label = name ?? cfg.name ?? URL(fileURLWithPath: config).deletingPathExtension().lastPathComponent

        if cfg.method == .ties && cfg.trim == .model {
            try merger.prepare(progress: ProgressBar("thresholds", quiet: quiet).update)
        }
        let rt = try Runtime(model: model, options: modelOptions)
        if let a = cfg.aim {
            let texts = try AIM.loadTexts(a.calibration, limit: a.limit)
            merger.aim = try AIM.calibrate(model: model, tokenizer: rt.tokenizer, template: rt.template, texts: texts, omega: a.omega,
                                           progress: ProgressBar("aim calibration", quiet: quiet).update)
        }
        var coefficients: ((TensorInfo) -> [Float])?
        if cfg.method == .evolver {
            let e = cfg.evolver
            var examples: [TaskExample] = []
            for t in e.tasks { examples += try TaskSuite.load("\(e.suites)/\(t).dev.jsonl", limit: e.devPerTask) }
            var evaluator = Evaluator(model: model, tokenizer: rt.tokenizer, template: rt.template)
            evaluator.batch = e.batch
            let total = 1 + e.iterations * merger.sources.count
            printError("evolver: \(total) merges scored on \(examples.count) dev examples (\(e.devPerTask) per task), \(e.granularity.rawValue) coefficients")
            let outcome = try Evolver(merger: merger, evaluator: evaluator, examples: examples).run { s in
                let tasks = s.perTask.map { "\($0.task) \(String(format: "%.0f", $0.percent))" }.joined(separator: ", ")
                printError(String(format: "evolver %d/%d: dev %.1f %@ (%@) %.1f s", s.evaluation + 1, total, s.score,
                                  s.accepted ? "kept" : "dropped", tasks, s.seconds))
            }
            printError(String(format: "evolver: dev %.1f → %.1f", outcome.initialScore, outcome.bestScore))
            for (i, c) in outcome.factors.enumerated() {
                printError("  \(merger.sources[i].name): " + c.map { String(format: "%.2f", $0) }.joined(separator: " "))
            }
            coefficients = { outcome.coefficients($0.name) }
        }
        try MergeOutput.write(merger, to: out, name: label, baseSHA256: sha, coefficients: coefficients,
                              progress: ProgressBar("merge \(cfg.method.rawValue)", quiet: quiet).update)
        let size = (try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
        printError(String(format: "wrote %@ (%@) in %.1f s, peak RSS %@", out, MemoryReport.mib(size), Date().timeIntervalSince(start),
                          MemoryReport.mib(MemoryReport.current().peakRSS)))
    }
}
