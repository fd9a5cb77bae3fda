import ArgumentParser
import Braid
import Foundation

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Answer one prompt, streamed to stdout; timings on stderr.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var interweaveOptions: InterweaveOptions
    @OptionGroup var bridgeOptions: BridgeOptions

    @Option(name: [.short, .long], help: "The prompt ('-' reads stdin).")
    var prompt: String?

    @Option(name: [.short, .long], help: "Read the prompt from a file.")
    var file: String?

    @Flag(help: "Feed the prompt as raw text, without the chat template.")
    var noChatTemplate = false

    func validate() throws {
        if prompt != nil && file != nil { throw ValidationError("give the prompt with -p or -f, not both") }
    }

    func run() throws {
        let text: String
        if let p = prompt, p != "-" {
            text = p
        } else {
            text = try readText(path: file ?? prompt)
        }
        let modelText = try ModelText(modelOptions)
        let params = try sampling.parameters(defaultTemperature: 0)
        var messages: [ChatMessage] = []
        if let s = output.system { messages.append(.system(s)) }
        messages.append(.user(text))
        if modelText.template.isRaw && !noChatTemplate && !output.quiet {
            printError("note: the model has no chat template; completing the raw prompt (as llama.cpp does)")
        }
        let rendered = noChatTemplate ? text : modelText.template.render(messages)
        let ids = modelText.tokenizer.encode(rendered, parseSpecial: !noChatTemplate)
        // Before the weights load and before routing (the router would read the whole prompt first).
        guard ids.count < modelText.contextLength else {
            throw BraidError.promptTooLong(tokens: ids.count, context: modelText.contextLength)
        }
        let rt = try Runtime(modelText, options: modelOptions)
        let fixed = try taskOptions.route(for: rt.model)
        let routing = try QueryRouting(taskOptions, rt, fixed: fixed, needPrior: interweaveOptions.needsPrior)
        let decision = try routing.route(text)
        let gate = try interweaveOptions.gate(for: decision.route.terms.map(\.vector), model: rt.model)
        let generator = Generator(model: rt.model, tokenizer: rt.tokenizer, contextLength: rt.contextLength, interweave: gate)
        var bridgeLine = ""
        var memory: BridgeMemory?
        if let loaded = try bridgeOptions.load(for: rt.model, threads: modelOptions.threads) {
            let made = try BridgeOptions.memory(loaded, message: text, prompt: ids, tokenizer: rt.tokenizer)
            memory = made.memory
            bridgeLine = String(format: " | bridge %@ (source read %d tokens in %.1f ms)", loaded.0.name, made.sourceTokens, made.milliseconds)
        }
        let (_, stats) = try generator.generate(ids, route: decision.route, prior: decision.prior, bridge: memory,
                                                sampling: params, maxTokens: sampling.maxTokens) { piece in
            emit(piece)
            return true
        }
        emit("\n")
        if !output.quiet { printError(decision.line + (gate.map { " | interweave \($0.label)" } ?? "") + bridgeLine + " | " + stats.summary()) }
    }
}
