/// How the next token is chosen. Names and defaults follow llama.cpp's flags; temperature 0
/// means greedy.
public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Float = 0
    public var topK: Int = 40
    public var topP: Float = 0.95
    public var minP: Float = 0.05
    public var repeatPenalty: Float = 1
    public var repeatLastN: Int = 64
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 40, topP: Float = 0.95, minP: Float = 0.05,
                repeatPenalty: Float = 1, repeatLastN: Int = 64, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repeatPenalty = repeatPenalty
        self.repeatLastN = repeatLastN
        self.seed = seed
    }

    public static let greedy = SamplingParameters()

    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw BraidError.invalidArgument(message) }
        }
        try check(temperature >= 0 && temperature.isFinite, "--temp must be ≥ 0")
        try check(topK >= 0, "--top-k must be ≥ 0 (0 disables it)")
        try check(topP > 0 && topP <= 1, "--top-p must be in (0, 1]")
        try check(minP >= 0 && minP < 1, "--min-p must be in [0, 1)")
        try check(repeatPenalty > 0 && repeatPenalty.isFinite, "--repeat-penalty must be > 0")
        try check(repeatLastN >= 0, "--repeat-last-n must be ≥ 0")
    }
}
