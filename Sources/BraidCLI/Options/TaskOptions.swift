import ArgumentParser
import Braid
import Foundation

/// Which task vectors serve the query.
struct TaskOptions: ParsableArguments {
    @Option(name: .customLong("task"), help: "Serve with task vector NAME[:COEF] (a name in --task-dir, or a .gguf path; repeatable to blend).")
    var tasks: [String] = []

    @Option(help: "Folder of task vectors (NAME.tv.gguf).")
    var taskDir: String = TaskOptions.defaultDir

    static var defaultDir: String {
        URL(fileURLWithPath: ModelOptions.defaultModel).deletingLastPathComponent().path
    }

    /// NAME[:COEF] → (path, coefficient)
    func parsed() throws -> [(String, Float)] {
        try tasks.map { spec in
            var name = spec
            var coefficient: Float = 1
            if let colon = spec.lastIndex(of: ":"), let c = Float(spec[spec.index(after: colon)...]) {
                name = String(spec[..<colon])
                coefficient = c
            }
            if name.hasSuffix(".gguf") || name.contains("/") {
                return (name, coefficient)
            }
            let path = URL(fileURLWithPath: taskDir).appendingPathComponent(name + ".tv.gguf").path
            guard FileManager.default.fileExists(atPath: path) else {
                let known = (try? FileManager.default.contentsOfDirectory(atPath: taskDir))?
                    .filter { $0.hasSuffix(".tv.gguf") }.map { String($0.dropLast(8)) }.sorted() ?? []
                throw ValidationError("unknown task \(name) (known in \(taskDir): \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
            }
            return (path, coefficient)
        }
    }

    func route(for model: LlamaModel) throws -> Route {
        let specs = try parsed()
        if specs.isEmpty { return .base }
        let sha = try BaseIdentity.sha256(of: model)
        return Route(try specs.map { (try TaskVector(path: $0.0, base: model, baseSHA256: sha), $0.1) })
    }
}
