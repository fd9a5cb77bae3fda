import ArgumentParser
import Braid
import Foundation

/// `--bridge`: let the small model read a larger frozen model through a trained bridge (LLM Modules).
struct BridgeOptions: ParsableArguments {
    @Option(help: "A trained bridge (.bridge.gguf, from scripts/bridge/train.py): the model reads the source model's states of the user's message through it.")
    var bridge: String?

    @Option(help: "The bridge's source model GGUF (default: the file the bridge names, beside the bridge or in models/).")
    var bridgeSource: String?

    /// The bridge, checked against `model`, and its source model loaded and checked; nil without --bridge.
    func load(for model: LlamaModel, threads: Int) throws -> (Bridge, SourceModel)? {
        guard let path = bridge else { return nil }
        guard FileManager.default.fileExists(atPath: path) else { throw BraidError.fileNotFound(path: path) }
        let bridge = try Bridge(path: path, smallSHA256: BaseIdentity.sha256(of: model))
        let sourcePath = try bridgeSource ?? Self.find(bridge.sourceFile, beside: path)
        let gguf = try GGUFFile(path: sourcePath)
        let source = try SourceModel(model: LlamaModel(gguf: gguf, threads: threads), tokenizer: Tokenizer(gguf: gguf))
        try bridge.check(smallWidth: model.config.embeddingLength, smallBlocks: model.config.blockCount,
                         sourceSHA256: source.sha256, sourceWidth: source.width)
        return (bridge, source)
    }

    static func find(_ file: String, beside bridge: String) throws -> String {
        let dir = URL(fileURLWithPath: bridge).deletingLastPathComponent()
        let candidates = [dir.appendingPathComponent(file).path, URL(fileURLWithPath: ModelOptions.defaultModel).deletingLastPathComponent().appendingPathComponent(file).path]
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw BraidError.invalidArgument("the bridge's source model \(file) is in none of \(candidates.joined(separator: ", ")); pass --bridge-source PATH (Gemma 3: scripts/setup.sh --model gemma3-270m)")
        }
        return found
    }

    /// The memory for one prompt: the source reads `message`; the small model's `prompt` tokens
    /// are read from its user turn on (the whole prompt when it has no chat turns). Returns the
    /// source's tokens and milliseconds too.
    static func memory(_ loaded: (Bridge, SourceModel), message: String, prompt: [Int32], tokenizer: Tokenizer) throws
        -> (memory: BridgeMemory, sourceTokens: Int, milliseconds: Double) {
        try memory(loaded, message: message, from: Generator.queryStart(prompt, marker: tokenizer.id(of: "<|im_start|>")))
    }

    static func memory(_ loaded: (Bridge, SourceModel), message: String, from: Int) throws
        -> (memory: BridgeMemory, sourceTokens: Int, milliseconds: Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        let (tokens, states) = try loaded.1.states(of: loaded.0.sourceText(for: message))
        let memory = try loaded.0.memory(states: states, count: tokens.count, from: from)
        return (memory, tokens.count, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
}
