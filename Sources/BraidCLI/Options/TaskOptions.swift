import ArgumentParser
import Braid
import Foundation

/// Which task vectors serve the query.
struct TaskOptions: ParsableArguments {
    @Option(name: .customLong("task"), help: "Serve with task vector NAME[:COEF] (a name in --task-dir, a .gguf path, or a PEFT LoRA adapter folder served as its low-rank factors; repeatable to blend).")
    var tasks: [String] = []

    @Option(help: "Routing when no --task is given: auto (top task, or the base below the threshold), blend (top-2 weighted), none.")
    var route: String = "auto"

    @Option(help: "Tasks mixed by --route blend.")
    var blendK: Int = 2

    @Option(help: "Run routes on merged weights built once per route (q8_0 or f16) instead of adding task terms on the fly.")
    var materialize: String?

    @Option(help: "Memory budget of materialised routes, MiB (least recently used dropped first).")
    var materializeBudget: Int = 1024

    @Option(help: "Folder of task vectors (NAME.tv.gguf).")
    var taskDir: String = TaskOptions.defaultDir

    static var defaultDir: String {
        URL(fileURLWithPath: ModelOptions.defaultModel).deletingLastPathComponent().path
    }

    /// The cache for `--materialize q8_0|f16`.
    static func materializedCache(_ encoding: String, budgetMiB: Int) throws -> MaterializedCache {
        guard encoding == "q8_0" || encoding == "f16" else { throw ValidationError("--materialize must be q8_0 or f16") }
        return MaterializedCache(budgetBytes: budgetMiB << 20, type: encoding == "f16" ? .f16 : .q8_0)
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
            if name.hasSuffix(".gguf") || name.contains("/") || LoRAAdapter.isAdapter(name) {
                return (name, coefficient)
            }
            let path = URL(fileURLWithPath: taskDir).appendingPathComponent(name + ".tv.gguf").path
            guard FileManager.default.fileExists(atPath: path) else {
                let known = files(in: taskDir, suffix: ".tv.gguf").map { String($0.dropLast(8)) }
                throw ValidationError("unknown task \(name) (known in \(taskDir): \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
            }
            return (path, coefficient)
        }
    }

    /// The per-query router over every task vector in --task-dir, or nil when --task fixes the
    /// route, --route none is given, or there are no task vectors with router data.
    func router(for model: LlamaModel) throws -> (Router, RoutingMode)? {
        guard tasks.isEmpty else { return nil }
        guard let mode = RoutingMode(rawValue: route) else { throw ValidationError("--route must be auto, blend or none") }
        if mode == .none { return nil }
        let names = files(in: taskDir, suffix: ".tv.gguf")
        if names.isEmpty { return nil }
        // The shipped vectors beside the default model belong to SmolLM2: another model (Gemma 3)
        // run with the default folder keeps its base, with a note, instead of refusing to start.
        if taskDir == Self.defaultDir {
            let sha = try BaseIdentity.sha256(of: model)
            let own = try names.filter { name in
                let file = try GGUFFile(path: "\(taskDir)/\(name)", metadataOnly: true)
                return file.metadata["braid.task_vector.base_sha256"]?.stringValue == sha
            }
            if own.isEmpty {
                FileHandle.standardError.write(Data("note: the task vectors in \(taskDir) were made for another base model; routing keeps the base (--task-dir names a folder of this model's)\n".utf8))
                return nil
            }
        }
        return (try Router(tasks: loadTaskVectors(taskDir, model: model)), mode)
    }

    func route(for model: LlamaModel) throws -> Route {
        if let m = materialize { model.materialized = try Self.materializedCache(m, budgetMiB: materializeBudget) }
        let specs = try parsed()
        if specs.isEmpty { return .base }
        let sha = try BaseIdentity.sha256(of: model)
        let terms = try specs.map { path, coefficient in
            LoRAAdapter.isAdapter(path)
                ? (try LoRAAdapter(directory: path, base: model).taskVector(base: model, baseSHA256: sha), coefficient)
                : (try TaskVector(path: path, base: model, baseSHA256: sha), coefficient)
        }
        try TaskVector.requireDistinctNames(terms.map(\.0))
        return Route(terms)
    }
}
