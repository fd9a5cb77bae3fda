import ArgumentParser
import Braid
import Foundation

/// Which model to load and how to run it.
struct ModelOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "Base model GGUF (env BRAID_MODEL).")
    var model: String = ProcessInfo.processInfo.environment["BRAID_MODEL"] ?? ModelOptions.defaultModel

    @Option(name: [.short, .long], help: "Threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: [.short, .customLong("ctx-size")], help: "Context length in tokens (default 2048, at most the model's).")
    var ctxSize: Int = 2048

    /// models/ next to the executable's package, else ./models.
    static var defaultModel: String {
        let file = "SmolLM2-135M-Instruct.Q4_1.gguf"
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent("models").appendingPathComponent(file)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate.path }
            dir.deleteLastPathComponent()
        }
        return "models/" + file
    }

    func validate() throws {
        guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be between 1 and 256") }
        guard ctxSize >= 16 else { throw ValidationError("--ctx-size must be at least 16") }
    }

    func load() throws -> LlamaModel {
        try LlamaModel(gguf: open(), threads: threads)
    }

    /// The model file, its header and tensor table read (no weights yet).
    func open() throws -> GGUFFile {
        if !FileManager.default.fileExists(atPath: model) {
            throw BraidError.invalidArgument("model not found: \(model) (run scripts/setup.sh, or pass -m PATH)")
        }
        return try GGUFFile(path: model)
    }
}
