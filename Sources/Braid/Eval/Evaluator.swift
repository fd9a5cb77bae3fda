import Foundation

/// Scores task suites under DESIGN.md §6: ChatML with the default system prompt, greedy, stop
/// at end of turn, at most 48 new tokens, exact match (JSON as objects).
public struct Evaluator {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    public var maxTokens = 48
    public var batch = 8
    /// Interweave each routed answer with the base stream (nil: single stream).
    public var interweave: InterweaveGate?

    public init(model: LlamaModel, tokenizer: Tokenizer, template: ChatTemplate) {
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
    }

    public struct Outcome: Sendable {
        public var example: TaskExample
        public var output: String
        public var correct: Bool
    }

    /// Runs every example with the route `route(example)` gives it; `prior(example)` is the
    /// router's probability of that route's task (for the adaptive gate).
    public func run(_ examples: [TaskExample], route: (TaskExample) -> Route, prior: (TaskExample) throws -> Float = { _ in 0.5 },
                    progress: (Int, Int) -> Void = { _, _ in }) throws -> [Outcome] {
        let requests = try examples.map {
            BatchRunner.Request(prompt: tokenizer.encode(template.render([.user($0.prompt)])), route: route($0), prior: try prior($0))
        }
        let runner = BatchRunner(model: model, tokenizer: tokenizer, batch: batch, maxTokens: maxTokens, interweave: interweave)
        let answers = try runner.run(requests, progress: progress)
        return zip(examples, answers).map { e, a in
            let text = tokenizer.decode(a.tokens)
            return Outcome(example: e, output: text, correct: e.answer.map { Scorer.isCorrect(task: e.task, output: text, answer: $0) } ?? false)
        }
    }

    /// Accuracy in percent per task, in first-seen task order.
    public static func accuracy(_ outcomes: [Outcome]) -> [(task: String, percent: Double, count: Int)] {
        var order: [String] = []
        var hits: [String: (Int, Int)] = [:]
        for o in outcomes {
            if hits[o.example.task] == nil { order.append(o.example.task); hits[o.example.task] = (0, 0) }
            hits[o.example.task]!.0 += o.correct ? 1 : 0
            hits[o.example.task]!.1 += 1
        }
        return order.map { t in (t, 100 * Double(hits[t]!.0) / Double(hits[t]!.1), hits[t]!.1) }
    }
}
