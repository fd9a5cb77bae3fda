import ArgumentParser
import Braid
import Foundation

/// Training data for a bridge: for each prompt of a JSONL file, the source model's final-norm
/// states over the prompt and the small model's chat tokens for it, as braid will see them when
/// serving (scripts/bridge/train.py reads the file).
struct SourceStates: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "source-states",
        abstract: "Write a source model's hidden states and the small model's chat tokens for each prompt (bridge training data).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The source model GGUF.")
    var source: String

    @Option(name: [.short, .long], help: "Prompts, JSONL: {\"id\", \"prompt\"}, optional \"source\" (what the source reads instead).")
    var input: String

    @Option(name: [.short, .long], help: "Output GGUF.")
    var output: String

    @Option(help: "What the source reads, {} standing for the prompt (the bridge stores the same template).")
    var sourceTemplate = "{}"

    struct Line: Decodable {
        var id: String
        var prompt: String
        var source: String?
    }

    func validate() throws {
        guard sourceTemplate.contains("{}") else { throw ValidationError("--source-template needs {} where the prompt goes") }
    }

    func run() throws {
        let lines = try readText(path: input).split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }.enumerated().map { i, raw in
            do { return try JSONDecoder().decode(Line.self, from: Data(raw.utf8)) } catch {
                throw BraidError.invalidArgument("\(input):\(i + 1): not a JSON object with \"id\" and \"prompt\" strings")
            }
        }
        let small = try ModelText(modelOptions)
        let smallSHA = try BaseIdentity.sha256(ofFile: small.gguf.path, bytes: small.gguf.map.bytes, cacheDirectory: nil)
        let gguf = try GGUFFile(path: source)
        let encoder = try SourceModel(model: LlamaModel(gguf: gguf, threads: modelOptions.threads), tokenizer: Tokenizer(gguf: gguf))
        var states: [Float] = [], counts: [GGUFValue] = [], chat: [GGUFValue] = [], chatCounts: [GGUFValue] = [], starts: [GGUFValue] = []
        let marker = small.tokenizer.id(of: "<|im_start|>")
        let bar = ProgressBar("source-states", quiet: false)
        for (i, line) in lines.enumerated() {
            let (tokens, s) = try encoder.states(of: sourceTemplate.replacingOccurrences(of: "{}", with: line.source ?? line.prompt))
            states += s
            counts.append(.int32(Int32(tokens.count)))
            let prompt = small.tokenizer.encode(small.template.render([.user(line.prompt)]))
            chat += prompt.map { .int32($0) }
            chatCounts.append(.int32(Int32(prompt.count)))
            starts.append(.int32(Int32(Generator.queryStart(prompt, marker: marker))))
            bar.update(i + 1, lines.count)
        }
        var w = GGUFWriter()
        w.set("general.type", .string("braid_source_states"))
        w.set("braid.states.source_sha256", .string(encoder.sha256))
        w.set("braid.states.small_sha256", .string(smallSHA))
        w.set("braid.states.source_template", .string(sourceTemplate))
        w.set("braid.states.ids", .array(.string, lines.map { .string($0.id) }))
        w.set("braid.states.counts", .array(.int32, counts))
        w.set("braid.states.chat_tokens", .array(.int32, chat))
        w.set("braid.states.chat_counts", .array(.int32, chatCounts))
        w.set("braid.states.query_starts", .array(.int32, starts))
        try w.addTensor("states", shape: [encoder.width, states.count / encoder.width], floats: states)
        try w.write(to: output)
        printError("source-states: \(lines.count) prompts, \(states.count / encoder.width) source states → \(output)")
    }
}
