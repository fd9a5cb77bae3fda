import Foundation

/// One labelled prompt of a task suite (../shared/tasks/*.jsonl).
public struct TaskExample: Sendable, Codable {
    public var task: String
    public var prompt: String
    public var answer: String?

    public init(task: String, prompt: String, answer: String?) {
        self.task = task
        self.prompt = prompt
        self.answer = answer
    }
}

/// Reads JSONL task files: one {"task", "prompt", "answer"} object per line.
public enum TaskSuite {
    public static func load(_ path: String, limit: Int? = nil) throws -> [TaskExample] {
        guard let data = FileManager.default.contents(atPath: path) else { throw BraidError.fileNotFound(path: path) }
        let text = try Tokenizer.decodeUTF8Strictly(Array(data), source: path)
        var out: [TaskExample] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            if let limit, out.count >= limit { break }
            do {
                out.append(try JSONDecoder().decode(TaskExample.self, from: Data(line.utf8)))
            } catch {
                throw BraidError.invalidArgument("\(path):\(i + 1): not a {\"task\", \"prompt\", \"answer\"} object")
            }
        }
        return out
    }
}

/// DESIGN.md §6 scoring: exact match after trimming whitespace and one trailing period,
/// case-insensitive; JSON answers compared as parsed objects.
public enum Scorer {
    public static func isCorrect(task: String, output: String, answer: String) -> Bool {
        if task == "json" {
            guard let a = parse(output), let b = parse(answer) else { return false }
            return a.isEqual(b)
        }
        return normalize(output) == normalize(answer)
    }

    static func normalize(_ s: String) -> String {
        var t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.hasSuffix(".") { t.removeLast() }
        return t.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    static func parse(_ s: String) -> NSObject? {
        guard let data = s.trimmingCharacters(in: .whitespacesAndNewlines).data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) as? NSObject
    }
}
