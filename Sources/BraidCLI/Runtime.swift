import ArgumentParser
import Braid
import Foundation

/// The loaded pieces a command works with.
struct Runtime {
    let gguf: GGUFFile
    let model: LlamaModel
    let tokenizer: Tokenizer
    let template: ChatTemplate
    let contextLength: Int

    init(_ options: ModelOptions) throws {
        try self.init(ModelText(options), options: options)
    }

    init(model: LlamaModel, options: ModelOptions) throws {
        self.init(try ModelText(gguf: model.gguf, config: model.config, options: options), model: model)
    }

    /// The weights of the file `text` was read from.
    init(_ text: ModelText, options: ModelOptions) throws {
        self.init(text, model: try LlamaModel(gguf: text.gguf, threads: options.threads))
    }

    private init(_ text: ModelText, model: LlamaModel) {
        self.model = model
        gguf = text.gguf
        tokenizer = text.tokenizer
        template = text.template
        contextLength = text.contextLength
    }
}

/// What turning a prompt into tokens needs, read before the weights: a prompt too long for
/// the context is refused without loading them (Gemma 3's take longer than tokenizing 1 MiB).
struct ModelText {
    let gguf: GGUFFile
    let tokenizer: Tokenizer
    let template: ChatTemplate
    let contextLength: Int

    init(_ options: ModelOptions) throws {
        let gguf = try options.open()
        try self.init(gguf: gguf, config: LlamaConfig(gguf: gguf), options: options)
    }

    init(gguf: GGUFFile, config: LlamaConfig, options: ModelOptions) throws {
        self.gguf = gguf
        tokenizer = try Tokenizer(gguf: gguf)
        template = ChatTemplate.detect(fromTemplate: gguf.metadata["tokenizer.chat_template"]?.stringValue)
        contextLength = min(options.ctxSize, config.contextLength)
    }
}

/// stderr, unbuffered.
func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// stdout text written and flushed at once, for streaming.
func emit(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}

/// All of stdin (or a file) as strictly valid UTF-8.
func readText(path: String?) throws -> String {
    let data: Data
    if let p = path, p != "-" {
        // Any readable path, not only regular files: `-i <(head -100 file)` is a pipe.
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDirectory) else { throw BraidError.fileNotFound(path: p) }
        guard !isDirectory.boolValue else { throw BraidError.cannotOpen(path: p, reason: "it is a directory") }
        guard let h = FileHandle(forReadingAtPath: p) else { throw BraidError.cannotOpen(path: p, reason: String(cString: strerror(errno))) }
        do { data = try h.readToEnd() ?? Data() } catch { throw BraidError.cannotOpen(path: p, reason: error.localizedDescription) }
    } else {
        data = FileHandle.standardInput.readDataToEndOfFile()
    }
    return try Tokenizer.decodeUTF8Strictly(Array(data), source: path.map { $0 == "-" ? "stdin" : $0 } ?? "stdin")
}
