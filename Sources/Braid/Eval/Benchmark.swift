import Foundation

/// llama-bench-style throughput: prompt processing of N tokens (ppN) and generation of N
/// tokens one at a time (tgN), each repeated and summarised by its median.
public struct Benchmark {
    public enum Test: Sendable, Equatable, CustomStringConvertible {
        case prompt(Int)
        case generate(Int)
        /// tgN for each of `routes` sequences, decoded together (`batched`) or one after another.
        case generateRoutes(Int, routes: Int, batched: Bool)
        public var description: String {
            switch self {
            case .prompt(let n): return "pp\(n)"
            case .generate(let n): return "tg\(n)"
            case .generateRoutes(let n, let routes, let batched): return "tg\(n) ×\(routes) routes, batch \(batched ? routes : 1)"
            }
        }
        var tokens: Int {
            switch self {
            case .prompt(let n), .generate(let n), .generateRoutes(let n, _, _): return n
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
    /// The sequences' routes of `generateRoutes` (one sequence each).
    public let routes: [Route]
    /// A bridge's memory the sequence reads at every position (nil: no bridge).
    public let bridge: BridgeMemory?
    public init(model: LlamaModel, route: Route = .base, interweave: InterweaveGate? = nil, routes: [Route] = [], bridge: BridgeMemory? = nil) {
        self.model = model
        self.route = route
        self.interweave = interweave
        self.routes = routes
        self.bridge = bridge
    }

    /// Runs `test` once as a warm-up, then `repetitions` timed times.
    public func run(_ test: Test, repetitions: Int) throws -> Result {
        var rng = Xoshiro256(seed: 42)
        let vocab = UInt64(model.config.vocabularySize)
        let tokens = (0..<test.tokens).map { _ in Int32(rng.next() % vocab) }
        let decoder = StreamDecoder(model: model, gate: interweave)
        let sequence = decoder.makeSequence(capacity: test.tokens + 1, route: route)
        sequence.cache.bridge = bridge
        sequence.baseCache?.bridge = bridge
        var rates: [Double] = []
        for rep in 0...repetitions {
            sequence.reset()
            let start = DispatchTime.now().uptimeNanoseconds
            switch test {
            case .prompt:
                try decoder.prefill(sequence, tokens)
            case .generate:
                for t in tokens { try decoder.step([sequence], [t]) }
            case .generateRoutes(let n, _, let batched):
                if rep > 0 { rates.append(try runRoutes(n, batched: batched)) }
                continue
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if rep > 0 { rates.append(Double(test.tokens) / seconds) }
        }
        return Result(test: test, tokensPerSecond: rates)
    }

    /// One timed run of `generateRoutes`: every route's sequence decodes `n` tokens, all in one
    /// batch per step or each sequence alone; tokens per second over all sequences.
    public func runRoutes(_ n: Int, batched: Bool) throws -> Double {
        precondition(!routes.isEmpty, "generateRoutes needs routes")
        var rng = Xoshiro256(seed: 42)
        let vocab = UInt64(model.config.vocabularySize)
        let tokens = (0..<n).map { _ in (0..<routes.count).map { _ in Int32(rng.next() % vocab) } }
        let decoder = StreamDecoder(model: model, gate: interweave)
        let sequences = routes.map { decoder.makeSequence(capacity: n + 1, route: $0) }
        let start = DispatchTime.now().uptimeNanoseconds
        if batched {
            for step in tokens { try decoder.step(sequences, step) }
        } else {
            for (i, s) in sequences.enumerated() {
                for step in tokens { try decoder.step([s], [step[i]]) }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Double(n * routes.count) / seconds
    }

    /// `generateRoutes` batched and one by one, alternated `repetitions` times after a warm-up
    /// of each (the machine's drift falls on both alike): (one by one, batched).
    public func compareRoutes(_ n: Int, repetitions: Int) throws -> (single: Result, batched: Result) {
        _ = try runRoutes(n, batched: false)
        _ = try runRoutes(n, batched: true)
        var single: [Double] = [], batched: [Double] = []
        for _ in 0..<repetitions {
            single.append(try runRoutes(n, batched: false))
            batched.append(try runRoutes(n, batched: true))
        }
        return (Result(test: .generateRoutes(n, routes: routes.count, batched: false), tokensPerSecond: single),
                Result(test: .generateRoutes(n, routes: routes.count, batched: true), tokensPerSecond: batched))
    }
}
