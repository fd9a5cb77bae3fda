import ArgumentParser
import Braid
import Foundation

struct GateEvidenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate-evidence",
        abstract: "Per answer token, teacher-forced: both streams' confidence, the router's probability, and which output (tuned, base, hidden mixes) has the target on top — the rows scripts/select-gate.py selects a gate rule on.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: [.short, .long], parsing: .upToNextOption, help: "Labelled prompts, JSONL {task, prompt, answer, optional family}: each through its own task's vector, its answer the target.")
    var input: [String] = []

    @Option(parsing: .upToNextOption, help: "Prompts with no task, JSONL: each forced through every task vector, the base's own greedy answer the target.")
    var general: [String] = []

    @Option(help: "First N lines of each file.")
    var limit: Int = 1_000_000

    @Option(help: "Tokens of each base answer to use as targets (general prompts).")
    var outsideTokens: Int = 16

    @Option(help: "Folder of task vectors and the router.")
    var taskDir: String = TaskOptions.defaultDir

    @Option(name: [.short, .long], help: "Rows, JSONL.")
    var output: String

    @Flag(name: [.short, .long], help: "No progress bar.")
    var quiet = false

    /// The mixes λ·h_base + (1 − λ)·h_tuned whose hits are recorded after the two streams'.
    static let blends: [Float] = [0.25, 0.5, 0.75]

    struct Line: Decodable {
        var task: String?
        var prompt: String
        var answer: String?
        var family: String?
    }

    func run() throws {
        let rt = try Runtime(modelOptions)
        let vectors = try loadTaskVectors(taskDir, model: rt.model)
        let router = try Router(tasks: vectors)
        let features = QueryFeatures(model: rt.model, tokenizer: rt.tokenizer, template: rt.template, layers: router.featureLayers)
        let im = rt.tokenizer.id(of: "<|im_end|>")!
        func prompt(_ text: String) -> [Int32] { rt.tokenizer.encode(rt.template.render([.user(text)])) }
        func lines(_ path: String) throws -> [Line] {
            try readText(path: path).split(separator: "\n").prefix(limit).map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
        }

        // (vector, example, what the row says about it)
        var cases: [(TaskVector, GateTrainer.Example, [String: Any])] = []
        for path in input {
            for l in try lines(path) {
                guard let task = l.task, let answer = l.answer, let v = vectors.first(where: { $0.name == task }) else { continue }
                let p = try router.probabilities(of: l.prompt, features: features).probabilities
                cases.append((v, .init(prompt: prompt(l.prompt), target: rt.tokenizer.encode(answer, parseSpecial: false) + [im], inside: true),
                              ["task": task, "family": l.family ?? task, "r": router.probability(of: Route([(v, 1)]), in: p)]))
            }
        }
        let outside = try general.flatMap { try lines($0) }
        let runner = BatchRunner(model: rt.model, tokenizer: rt.tokenizer, batch: 8, maxTokens: outsideTokens)
        let answers = try runner.run(outside.map { BatchRunner.Request(prompt: prompt($0.prompt), route: .base) },
                                     progress: ProgressBar("base answers", quiet: quiet).update)
        for (l, a) in zip(outside, answers) {
            let p = try router.probabilities(of: l.prompt, features: features).probabilities
            let example = GateTrainer.Example(prompt: prompt(l.prompt), target: a.tokens + (a.finishReason == .stop ? [im] : []), inside: false)
            for v in vectors {
                cases.append((v, example, ["task": "general", "family": "general", "r": router.probability(of: Route([(v, 1)]), in: p)]))
            }
        }

        let d = rt.model.config.embeddingLength, vocab = rt.model.config.vocabularySize
        var head = [Float](repeating: 0, count: vocab * d)
        head.withUnsafeMutableBufferPointer { h in
            for r in 0..<vocab { rt.model.weights.output.decodeRow(r, into: h.baseAddress! + r * d) }
        }
        let trainer = GateTrainer(model: rt.model, queryMarker: rt.tokenizer.id(of: "<|im_start|>"))
        let out = try AnswerFile(path: output, resume: false)
        let bar = ProgressBar("evidence", quiet: quiet)
        for (n, c) in cases.enumerated() {
            let rows = try trainer.collect([c.1], route: Route([(c.0, 1)]))
            let evidence = head.withUnsafeBufferPointer {
                GateEvidence.collect(rows, dim: d, blends: Self.blends, head: $0.baseAddress!, vocab: vocab)
            }
            for (pos, e) in evidence.enumerated() {
                var row = c.2
                row["case"] = n
                row["route"] = c.0.name
                row["pos"] = pos
                row["len"] = evidence.count
                row["t"] = [e.tuned.token, e.tuned.top, e.tuned.second] as [Any]
                row["b"] = [e.base.token, e.base.top, e.base.second] as [Any]
                row["hits"] = e.hits.map { $0 ? 1 : 0 }
                try out.append(JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]))
            }
            bar.update(n + 1, cases.count)
        }
    }
}
