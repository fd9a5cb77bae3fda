import ArgumentParser
import Braid

/// llama-cli's sampling flags.
struct SamplingOptions: ParsableArguments {
    @Option(name: [.customLong("temp"), .customLong("temperature")], help: "Temperature; 0 is greedy (default: 0 for generate, 0.8 for chat).")
    var temperature: Float?

    @Option(help: "Keep the k most likely tokens (0 = off).")
    var topK: Int = 40

    @Option(help: "Keep the smallest set of tokens whose probability reaches p (1 = off).")
    var topP: Float = 0.95

    @Option(help: "Drop tokens less likely than p × the most likely one (0 = off).")
    var minP: Float = 0.05

    @Option(help: "Penalty for repeating recent tokens (1 = off).")
    var repeatPenalty: Float = 1

    @Option(help: "How many recent tokens the repeat penalty looks at.")
    var repeatLastN: Int = 64

    @Option(name: [.short, .long], help: "Random seed (default: random, printed with the timings).")
    var seed: UInt64?

    @Option(name: [.customShort("n"), .customLong("max-tokens"), .customLong("n-predict")], help: "Most tokens to generate (-1 = until end of turn or context).")
    var maxTokens: Int = -1

    func parameters(defaultTemperature: Float) throws -> SamplingParameters {
        let p = SamplingParameters(
            temperature: temperature ?? defaultTemperature, topK: topK, topP: topP, minP: minP,
            repeatPenalty: repeatPenalty, repeatLastN: repeatLastN, seed: seed ?? UInt64.random(in: 0...UInt64(UInt32.max)))
        do { try p.validate() } catch { throw ValidationError("\(error)") }
        return p
    }

    func validate() throws {
        guard maxTokens >= -1 else { throw ValidationError("--max-tokens must be -1 or ≥ 0") }
    }
}
