import ArgumentParser
import Braid
import Foundation

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Interactive multi-turn chat, streamed. /reset clears the history, /exit quits; stdin may be a pipe.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var interweaveOptions: InterweaveOptions
    @OptionGroup var bridgeOptions: BridgeOptions

    func run() throws {
        let rt = try Runtime(modelOptions)
        let params = try sampling.parameters(defaultTemperature: 0.8)
        let fixed = try taskOptions.route(for: rt.model)
        let routing = try QueryRouting(taskOptions, rt, fixed: fixed, needPrior: interweaveOptions.needsPrior)
        let gate = try interweaveOptions.gate(for: routing.router?.tasks ?? fixed.terms.map(\.vector), model: rt.model)
        let generator = Generator(model: rt.model, tokenizer: rt.tokenizer, contextLength: rt.contextLength, interweave: gate)
        let bridge = try bridgeOptions.load(for: rt.model, threads: modelOptions.threads)
        let interactive = isatty(0) == 1
        var history: [ChatMessage] = output.system.map { [.system($0)] } ?? []
        let start = history
        if interactive { printError("braid chat — /reset clears the conversation, /exit quits") }
        var turn = 0
        while true {
            if interactive { emit("> ") }
            guard let line = readLine(strippingNewline: true) else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/exit" || input == "/quit" { break }
            if input == "/reset" {
                history = start
                generator.reset()
                printError("(conversation cleared)")
                continue
            }
            history.append(.user(input))
            // Each turn is routed on its own message; the task vector serves that turn only.
            let ids = rt.tokenizer.encode(rt.template.render(history))
            guard ids.count < rt.contextLength else {  // before routing, which would read it all first
                printError("error: \(BraidError.promptTooLong(tokens: ids.count, context: rt.contextLength)) (the turn was dropped; /reset starts over)")
                history.removeLast()
                continue
            }
            let decision = try routing.route(input)
            if !output.quiet && routing.routes { printError(decision.line) }
            var answer = ""
            var turnParams = params
            turnParams.seed = params.seed &+ UInt64(turn)
            turn += 1
            do {
                // A bridge's source reads this turn's message; earlier turns keep what they read.
                let memory = try bridge.map { try BridgeOptions.memory($0, message: input, prompt: ids, tokenizer: rt.tokenizer).memory }
                let (_, stats) = try generator.generate(ids, route: decision.route, prior: decision.prior, bridge: memory,
                                                        sampling: turnParams, maxTokens: sampling.maxTokens) { piece in
                    answer += piece
                    emit(piece)
                    return true
                }
                emit("\n")
                if !output.quiet { printError(stats.summary()) }
                history.append(.assistant(answer))
            } catch let e as BraidError {
                // A turn that no longer fits is reported; the conversation can be reset.
                history.removeLast()
                printError("error: \(e) — /reset to start over")
            }
        }
    }
}
