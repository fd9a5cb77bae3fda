import Foundation

/// llama-bench-style throughput: prompt processing of N tokens (ppN) and generation of N
/// tokens one at a time (tgN), each repeated and summarised by its median.
public struct Benchmark {
    public enum Test: Sendable, Equatable, CustomStringConvertible {
        case prompt(Int)
        case generate(Int)
        public var description: String {
            switch self {
            case .prompt(let n): return "pp\(n)"
            case .generate(let n): return "tg\(n)"
            }
        }
        var tokens: Int {
            switch self {
            case .prompt(let n), .generate(let n): return n
            }
        }
    }

    public struct Result: Sendable {
        public let test: Test
        public let tokensPerSecond: [Double]
        public var median: Double { tokensPerSecond.sorted()[tokensPerSecond.count / 2] }
        public var standardDeviation: Double {
            let m = tokensPerSecond.reduce(0, +) / Double(tokensPerSecond.count)
            return (tokensPerSecond.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(tokensPerSecond.count)).squareRoot()
        }
    }

    public let model: LlamaModel
    public let route: Route
    /// Interweave the route with the base stream (nil: single stream).
    public let interweave: InterweaveGate?
    public init(model: LlamaModel, route: Route = .base, interweave: InterweaveGate? = nil) {
        self.model = model
        self.route = route
        self.interweave = interweave
    }

    /// Runs `test` once as a warm-up, then `repetitions` timed times.
    public func run(_ test: Test, repetitions: Int) throws -> Result {
        var rng = Xoshiro256(seed: 42)
        let vocab = UInt64(model.config.vocabularySize)
        let tokens = (0..<test.tokens).map { _ in Int32(rng.next() % vocab) }
        let decoder = StreamDecoder(model: model, gate: interweave)
        let sequence = decoder.makeSequence(capacity: test.tokens + 1, route: route)
        var rates: [Double] = []
        for rep in 0...repetitions {
            sequence.reset()
            let start = DispatchTime.now().uptimeNanoseconds
            switch test {
            case .prompt:
                try decoder.prefill(sequence, tokens)
            case .generate:
                for t in tokens { try decoder.step([sequence], [t]) }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if rep > 0 { rates.append(Double(test.tokens) / seconds) }
        }
        return Result(test: test, tokensPerSecond: rates)
    }
}
