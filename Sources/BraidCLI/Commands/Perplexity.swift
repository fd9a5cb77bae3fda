import ArgumentParser
import Braid
import Foundation

/// `braid perplexity`: llama-perplexity's measurement (chunks of -c tokens, the second half of
/// each scored), its final estimate on stdout, the running PPL per chunk on stderr.
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a text file, measured as llama-perplexity does (chunks of -c tokens, second half of each scored).")

    @Option(name: [.short, .long], help: "Base model GGUF (env BRAID_MODEL).")
    var model: String = ProcessInfo.processInfo.environment["BRAID_MODEL"] ?? ModelOptions.defaultModel

    @Option(name: [.short, .long], help: "Threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: [.short, .customLong("ctx-size")], help: "Tokens per chunk (llama-perplexity's default, 512; at most the model's context).")
    var ctxSize: Int = 512

    @Option(name: [.short, .long], help: "The text file (UTF-8); '-' reads stdin.")
    var file: String

    @Option(help: "Evaluate at most N chunks (default: all the text holds).")
    var chunks: Int?

    @Option(name: [.short, .customLong("batch-size")], help: "Columns per forward pass.")
    var batchSize: Int = 64

    @Option(name: .customLong("task"), help: "Measure with task vector NAME[:COEF] added (a name in --task-dir, or a .gguf path; repeatable to blend).")
    var tasks: [String] = []

    @Option(help: "Folder of task vectors (NAME.tv.gguf).")
    var taskDir: String = TaskOptions.defaultDir

    @Flag(name: [.short, .long], help: "No per-chunk progress.")
    var quiet = false

    func validate() throws {
        guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be between 1 and 256") }
        guard ctxSize >= 4 else { throw ValidationError("--ctx-size must be at least 4") }
        guard batchSize >= 1 && batchSize <= 512 else { throw ValidationError("--batch-size must be between 1 and 512") }
        if let c = chunks, c < 1 { throw ValidationError("--chunks must be at least 1") }
    }

    func run() throws {
        let text = try readText(path: file)
        guard !text.isEmpty else { throw BraidError.invalidArgument("\(file == "-" ? "stdin" : file) is empty: nothing to measure") }
        if !FileManager.default.fileExists(atPath: model) {
            throw BraidError.invalidArgument("model not found: \(model) (run scripts/setup.sh, or pass -m PATH)")
        }
        let llama = try LlamaModel(path: model, threads: threads, maxBatch: batchSize)
        if ctxSize > llama.config.contextLength {
            throw BraidError.outOfRange(what: "--ctx-size", value: String(ctxSize), allowed: "4...\(llama.config.contextLength), the model's context length")
        }
        let route = tasks.isEmpty ? Route.base
            : try TaskOptions.parse(tasks.flatMap { ["--task", $0] } + ["--task-dir", taskDir]).route(for: llama)
        let started = Date()
        let (tokens, bos) = try Perplexity.tokenize(text, model: llama)
        let tokenizeSeconds = Date().timeIntervalSince(started)
        let measure = Perplexity(model: llama, context: ctxSize, bos: bos, route: route)
        if tokens.count >= Perplexity.minimumTokens(context: ctxSize) {
            printError(String(format: "perplexity: %d tokens (tokenized in %.0f ms); %d chunks of %d, %d scored each, route %@, %d threads, %d columns a pass",
                              tokens.count, tokenizeSeconds * 1000, measure.chunkCount(tokenCount: tokens.count, limit: chunks), ctxSize,
                              ctxSize - ctxSize / 2 - 1, route.label, llama.pool.threadCount, batchSize))
        }
        let tty = isatty(2) == 1
        let source = file == "-" ? "stdin" : file
        let result = try measure.run(tokens, chunks: chunks, source: source) { done, total, ppl in
            guard !quiet else { return }
            if tty {
                let width = 30, filled = width * done / total
                let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
                FileHandle.standardError.write(Data(String(format: "\rperplexity [%@] %d/%d PPL %.4f", bar, done, total, ppl).utf8))
            } else {
                // llama-perplexity's running line: [1]12.3456,[2]11.9876,…
                FileHandle.standardError.write(Data(String(format: "[%d]%.4f,", done, ppl).utf8))
            }
            if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        }
        printError(String(format: "perplexity: %d tokens in %.2f s, %.1f tokens/s; %d tokens scored", result.chunkNLL.count * ctxSize,
                          result.seconds, result.tokensPerSecond, result.scored))
        print(String(format: "Final estimate: PPL = %.4f +/- %.5f", result.perplexity, result.standardError))
    }
}
