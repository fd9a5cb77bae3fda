import ArgumentParser
import Braid
import Foundation

struct TrainGate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-gate",
        abstract: "Train the interweaving gate of one task vector (IMSM, only the gate learns) and store it beside the vector as TASK.gate.gguf.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The task vector: a name in --task-dir.")
    var task: String

    @Option(help: "Folder of task vectors (NAME.tv.gguf).")
    var taskDir: String = TaskOptions.defaultDir

    @Option(help: "Folder of the task suites.")
    var suites: String = "../shared/tasks"

    @Option(help: "Examples of the task's train split to learn from (targets: their answers).")
    var examples: Int = 512

    @Option(help: "Prompts with no task, JSONL; targets are the base's own answers. Repeatable.")
    var general: [String] = ["../shared/tasks/general.dev.jsonl"]

    @Option(help: "Train prompts of each other task, also with the base's answers as targets (the vector must leave them alone).")
    var otherTasks: Int = 48

    @Option(help: "Tokens of each base answer to learn from: short, so the many tokens of the base's long answers do not outweigh the task's short ones.")
    var outsideTokens: Int = 12

    @Option(help: "Gate rank r (5·d·r parameters).")
    var rank: Int = 8

    @Option(help: "Passes over the rows.")
    var epochs: Int = 4

    @Option(help: "Adam learning rate.")
    var learningRate: Float = 5e-3

    @Option(help: "Weight μ of the soft term (KL to the leading stream: tuned inside the task, base outside) against the target tokens' cross-entropy.")
    var softWeight: Float = 0.5

    @Option(help: "Where to write the gate (default: TASK.gate.gguf beside the task vector).")
    var out: String?

    @Flag(name: [.short, .long], help: "No progress bar.")
    var quiet = false

    func validate() throws {
        guard softWeight >= 0 && softWeight <= 1 else { throw ValidationError("--soft-weight must be in [0, 1]") }
        guard rank >= 1, epochs >= 1, examples >= 1, outsideTokens >= 1, learningRate > 0 else { throw ValidationError("--rank, --epochs, --examples, --outside-tokens and --learning-rate must be positive") }
    }

    func run() throws {
        let rt = try Runtime(modelOptions)
        let vectors = try loadTaskVectors(taskDir, model: rt.model)
        guard let vector = vectors.first(where: { $0.name == task }) else {
            throw ValidationError("unknown task \(task) (known in \(taskDir): \(vectors.map(\.name).joined(separator: ", ")))")
        }
        let start = Date()
        // What closes an answer: ChatML's end of turn, or the end of text for a model without a chat template.
        let im = rt.tokenizer.id(of: "<|im_end|>") ?? rt.tokenizer.eosID
        func prompt(_ text: String) -> [Int32] { rt.tokenizer.encode(rt.template.render([.user(text)])) }

        // Inside the task: the train split's answers. Outside: the base's own greedy answers.
        var set = try TaskSuite.load("\(suites)/\(task).train.jsonl", limit: examples).compactMap { e in
            e.answer.map { GateTrainer.Example(prompt: prompt(e.prompt), target: rt.tokenizer.encode($0, parseSpecial: false) + [im], inside: true) }
        }
        var outside: [String] = []
        for g in general { outside += try TaskSuite.load(g).map(\.prompt) }
        for other in vectors.map(\.name) where other != task && otherTasks > 0 {
            let path = "\(suites)/\(other).train.jsonl"
            if FileManager.default.fileExists(atPath: path) { outside += try TaskSuite.load(path, limit: otherTasks).map(\.prompt) }
        }
        let runner = BatchRunner(model: rt.model, tokenizer: rt.tokenizer, batch: 8, maxTokens: outsideTokens)
        let baseBar = ProgressBar("base answers", quiet: quiet)
        let answers = try runner.run(outside.map { BatchRunner.Request(prompt: prompt($0), route: .base) }, progress: baseBar.update)
        for (p, a) in zip(outside, answers) {
            set.append(.init(prompt: prompt(p), target: a.tokens + (a.finishReason == .stop ? [im] : []), inside: false))
        }

        var options = GateTrainer.Options()
        options.rank = rank
        options.epochs = epochs
        options.learningRate = learningRate
        options.softWeight = softWeight
        let trainer = GateTrainer(model: rt.model, queryMarker: rt.tokenizer.id(of: "<|im_start|>"), options: options)
        let rows = try trainer.collect(set, route: Route([(vector, 1)]), progress: ProgressBar("hidden states", quiet: quiet).update)
        var gate = LearnedGate(dim: rt.model.config.embeddingLength, rank: rank, task: vector.name, taskVectorSHA256: vector.weightsSHA256)
        let bar = ProgressBar("train", quiet: quiet)
        let losses = trainer.train(&gate, rows: rows) { step, total, _ in bar.update(step, total) }
        let (inside, outsideGate) = rows.meanGate(gate)
        let path = out ?? InterweaveOptions.gatePath(for: vector)
        try gate.write(to: path, metadata: [
            "braid.gate.examples": .uint32(UInt32(set.count)), "braid.gate.rows": .uint32(UInt32(rows.targets.count)),
            "braid.gate.epochs": .uint32(UInt32(epochs)), "braid.gate.final_loss": .float32(losses.last ?? 0),
            "braid.gate.mean_inside": .float32(inside), "braid.gate.mean_outside": .float32(outsideGate),
        ])
        printError(String(format: "train-gate %@: %d examples (%d outside the task), %d rows, loss by epoch %@, mean g (base weight) inside %.2f outside %.2f, %.0f s → %@",
                          task, set.count, outside.count, rows.targets.count,
                          losses.map { String(format: "%.3f", $0) }.joined(separator: " "), inside, outsideGate, Date().timeIntervalSince(start), path))
    }
}
