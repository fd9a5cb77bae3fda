import Foundation

/// Why generation stopped (OpenAI's names): an end-of-turn token, or a token/context limit.
public enum FinishReason: String, Sendable, Codable {
    case stop
    case length
}

/// Counts and timings of one answer.
public struct GenerationStats: Sendable {
    public var promptTokens = 0
    /// Prompt tokens actually evaluated (the rest were already in the KV cache).
    public var evaluatedPromptTokens = 0
    public var promptSeconds = 0.0
    public var generatedTokens = 0
    public var generateSeconds = 0.0
    public var finishReason = FinishReason.stop
    public var seed: UInt64 = 0

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(evaluatedPromptTokens) / promptSeconds : 0 }
    public var tokensPerSecond: Double { generateSeconds > 0 ? Double(generatedTokens) / generateSeconds : 0 }

    /// One line for stderr, in the spirit of llama.cpp's perf print.
    public func summary() -> String {
        String(format: "prompt %d tok %.1f tok/s | gen %d tok %.1f tok/s | %@ | seed %llu | peak RSS %@",
               evaluatedPromptTokens, promptTokensPerSecond, generatedTokens, tokensPerSecond,
               finishReason.rawValue, seed, MemoryReport.mib(MemoryReport.current().peakRSS))
    }
}
