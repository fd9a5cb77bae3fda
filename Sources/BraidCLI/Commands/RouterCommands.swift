import ArgumentParser
import Braid
import Foundation

struct RouterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "router", abstract: "Fit the query router.", subcommands: [RouterFit.self])
}

struct RouterFit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Fit the router on labelled prompts (each task's dev split; general prompts as 'none') and store it in every task vector.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var taskOptions: TaskOptions

    @Option(help: "Folder of the task suites.")
    var suites: String = "../shared/tasks"

    @Option(help: "Split the task prompts come from.")
    var split: String = "dev"

    @Option(help: "Prompts with no task (the 'none' class), JSONL; repeatable.")
    var general: [String] = ["../shared/tasks/general.dev.jsonl"]

    @Option(help: "More labelled prompts to fit on, JSONL with task names (phrasings the splits lack); repeatable.")
    var extra: [String] = ["prompts/router-train.jsonl"]

    @Option(help: "linear (softmax regression) or centroid (cosine to class means).")
    var classifier: String = "linear"

    @Option(help: "Take the features after this many blocks (a third of the cost of all 30, as accurate on the checks).")
    var featureLayers: Int = 10

    @Option(help: "Blocks of the early stage's features: a linear classifier asked first, whose confident answers stand (0: no early stage).")
    var earlyLayers: Int = 4

    @Option(help: "Top probability at which the early stage's answer stands.")
    var earlyConfidence: Float = 0.999

    @Option(help: "Below this probability auto mode keeps the base.")
    var threshold: Float = 0.5

    @Option(help: "Held-out labelled prompts to report on, JSONL (task 'general' means none); repeatable.")
    var check: [String] = ["prompts/rephrased.jsonl", "prompts/in-task-rephrased.jsonl", "prompts/general.jsonl"]

    @Flag(name: [.short, .long], help: "No progress bar.")
    var quiet = false

    func validate() throws {
        guard ["linear", "centroid"].contains(classifier) else { throw ValidationError("--classifier must be linear or centroid") }
        guard featureLayers > 0 else { throw ValidationError("--feature-layers must be at least 1") }
        guard earlyLayers >= 0, earlyLayers < featureLayers else { throw ValidationError("--early-layers must be 0 (none) or fewer than --feature-layers") }
        guard earlyConfidence > 0, earlyConfidence <= 1 else { throw ValidationError("--early-confidence must be in (0, 1]") }
    }

    func run() throws {
        let rt = try Runtime(modelOptions)
        guard featureLayers <= rt.model.config.blockCount else {
            throw ValidationError("--feature-layers \(featureLayers): the model has \(rt.model.config.blockCount) blocks")
        }
        let tasks = try loadTaskVectors(taskOptions.taskDir, model: rt.model)
        let names = tasks.map(\.name)
        let featurizer = QueryFeatures(model: rt.model, tokenizer: rt.tokenizer, template: rt.template, layers: featureLayers)
        func label(_ task: String) -> Int? { task == "general" ? names.count : names.firstIndex(of: task) }
        /// Features after the full router's blocks and after the early stage's, and labels.
        func featurize(_ examples: [TaskExample], _ what: String) throws -> ([[Float]], [[Float]], [Int]) {
            let bar = ProgressBar("features \(what)", quiet: quiet)
            var f: [[Float]] = [], fe: [[Float]] = [], l: [Int] = []
            for (i, e) in examples.enumerated() {
                if let y = label(e.task) {
                    f.append(try featurizer.features(e.prompt))
                    if earlyLayers > 0 { fe.append(try featurizer.features(e.prompt, layers: earlyLayers)) }
                    l.append(y)
                }
                bar.update(i + 1, examples.count)
            }
            return (f, fe, l)
        }
        var train: [TaskExample] = []
        for t in names { train += try TaskSuite.load("\(suites)/\(t).\(split).jsonl") }
        for g in general { train += try TaskSuite.load(g).map { TaskExample(task: "general", prompt: $0.prompt, answer: nil) } }
        for e in extra where FileManager.default.fileExists(atPath: e) { train += try TaskSuite.load(e) }
        let (features, earlyFeatures, labels) = try featurize(train, "fit")
        var data = RouterFitter.fit(features: features, labels: labels, taskCount: names.count, classifier: classifier, featureLayers: featureLayers, threshold: threshold)
        if earlyLayers > 0 {
            data = RouterFitter.addEarlyStage(to: data, features: earlyFeatures, labels: labels, featureLayers: earlyLayers, confidence: earlyConfidence)
        }
        let router = Router(tasks: tasks, data: data)
        /// Accuracy of the whole router (early stage first), and how many it decided early.
        func accuracy(_ f: [[Float]], _ fe: [[Float]], _ l: [Int]) -> String {
            var right = [Int](repeating: 0, count: names.count + 1), total = right
            var early = 0
            for (i, (x, y)) in zip(f, l).enumerated() {
                var p = router.probabilities(x)
                if earlyLayers > 0, let pe = router.earlyProbabilities(fe[i]), pe.max()! >= earlyConfidence {
                    p = pe
                    early += 1
                }
                var best = p.indices.max { p[$0] < p[$1] }!
                if best < names.count && p[best] < threshold { best = names.count }
                total[y] += 1
                if best == y { right[y] += 1 }
            }
            return router.labels.indices.filter { total[$0] > 0 }
                .map { String(format: "%@ %.1f%% (%d)", router.labels[$0], 100 * Double(right[$0]) / Double(total[$0]), total[$0]) }
                .joined(separator: ", ") + (earlyLayers > 0 ? "; \(early) of \(l.count) decided after \(earlyLayers) blocks" : "")
        }
        print("fit (\(classifier)): \(accuracy(features, earlyFeatures, labels))")
        var testSet: [TaskExample] = []
        for t in names { testSet += (try? TaskSuite.load("\(suites)/\(t).test.jsonl", limit: 300)) ?? [] }
        let (tf, tfe, tl) = try featurize(testSet, "test")
        print("test splits: \(accuracy(tf, tfe, tl))")
        for c in check where FileManager.default.fileExists(atPath: c) {
            let (cf, cfe, cl) = try featurize(try TaskSuite.load(c), c)
            print("\(c): \(accuracy(cf, cfe, cl))")
        }
        for (t, d) in zip(tasks, data) { try RouterFitter.store(d, in: t.path) }
        printError("stored the router in \(tasks.map(\.path).joined(separator: ", "))")
    }
}
