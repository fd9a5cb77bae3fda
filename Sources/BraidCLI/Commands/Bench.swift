import ArgumentParser
import Braid
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Prompt-processing and generation speed, like llama-bench.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var interweaveOptions: InterweaveOptions
    @OptionGroup var bridgeOptions: BridgeOptions

    @Option(name: [.short, .customLong("n-prompt")], parsing: .upToNextOption, help: "Prompt sizes (ppN).")
    var prompt: [Int] = [64, 256]

    @Option(name: [.short, .customLong("n-gen")], help: "Tokens to generate (tgN).")
    var gen: Int = 128

    @Option(name: [.short, .customLong("repetitions")], help: "Timed repetitions per test (after one warm-up).")
    var repetitions: Int = 5

    @Option(help: "Also decode this many sequences, each routed to a different task vector of --task-dir (cycled), together and one after another (tgN each), alternating; 0: skip.")
    var mixedBatch: Int = 0

    @Flag(help: "Also time sampling a token (greedy; temperature 0.8 with top-k 40, top-p 0.95, min-p 0.05; the same with top-k off) against a decode step.")
    var sampling = false

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be ≥ 1") }
        guard prompt.allSatisfy({ $0 >= 1 }), gen >= 0 else { throw ValidationError("sizes must be positive") }
        guard mixedBatch >= 0 else { throw ValidationError("--mixed-batch must be ≥ 0") }
        guard mixedBatch == 0 || gen > 0 else { throw ValidationError("--mixed-batch needs --n-gen > 0") }
    }

    func run() throws {
        let model = try modelOptions.load()
        let route = try taskOptions.route(for: model)
        // With --interweave, each test runs single-stream and interweaved, back to back.
        let gate = try interweaveOptions.gate(for: route.terms.map(\.vector), model: model)
        if gate != nil && route.isBase { throw ValidationError("--interweave needs a --task to interweave with the base") }
        var benches = [Benchmark(model: model, route: route)]
        if let gate { benches.append(Benchmark(model: model, route: route, interweave: gate)) }
        // With --bridge, each test also runs with a bridge that every position reads.
        if let loaded = try bridgeOptions.load(for: model, threads: modelOptions.threads) {
            let made = try BridgeOptions.memory(loaded, message: "What is the capital of Japan?", from: 0)
            benches.append(Benchmark(model: model, route: route, bridge: made.memory))
            printError(String(format: "bridge %@: %.2f M parameters (%.1f MiB as float32); the source read %d tokens in %.1f ms",
                              loaded.0.name, Double(loaded.0.parameterCount) / 1e6, Double(loaded.0.parameterCount * 4) / 1_048_576,
                              made.sourceTokens, made.milliseconds))
        }
        var tests = prompt.map { Benchmark.Test.prompt($0) }
        if gen > 0 { tests.append(.generate(gen)) }
        var rows: [[String: Any]] = []
        if !json {
            print("| model | route | interweave | threads | test | t/s |")
            print("| --- | --- | --- | ---: | ---: | ---: |")
        }
        let name = URL(fileURLWithPath: modelOptions.model).lastPathComponent
        let size = MemoryReport.mib(model.gguf.map.bytes.count)
        var decodeMedian = 0.0
        for test in tests {
            var medians: [Double] = []
            for bench in benches {
                let r = try bench.run(test, repetitions: repetitions)
                medians.append(r.median)
                if case .generate = test, bench.interweave == nil { decodeMedian = r.median }
                let mode = bench.interweave?.label ?? "off"
                let routeLabel = route.label + (bench.bridge.map { "+bridge:" + $0.bridge.name } ?? "")
                if json {
                    rows.append(["model": name, "route": routeLabel, "interweave": mode, "threads": model.pool.threadCount, "test": test.description,
                                 "median_tps": r.median, "sd_tps": r.standardDeviation, "samples_tps": r.tokensPerSecond])
                } else {
                    print(String(format: "| %@ | %@ | %@ | %d | %@ | %.2f ± %.2f |", name, routeLabel, mode, model.pool.threadCount, test.description, r.median, r.standardDeviation))
                }
            }
            for (bench, median) in zip(benches, medians).dropFirst() where !json {
                printError(String(format: "%@: %@ takes %.2f× the time of single-stream", test.description,
                                  bench.interweave != nil ? "interweaved" : "bridged", medians[0] / median))
            }
        }
        if mixedBatch > 0 {
            let vectors = try loadTaskVectors(taskOptions.taskDir, model: model)
            guard !vectors.isEmpty else { throw ValidationError("--mixed-batch needs task vectors in \(taskOptions.taskDir)") }
            let routes = (0..<mixedBatch).map { Route([(vectors[$0 % vectors.count], 1)]) }
            let bench = Benchmark(model: model, routes: routes)
            let (single, batched) = try bench.compareRoutes(gen, repetitions: repetitions)
            let label = routes.map(\.label).joined(separator: ",")
            for r in [single, batched] {
                if json {
                    rows.append(["model": name, "route": label, "interweave": "off", "threads": model.pool.threadCount, "test": r.test.description,
                                 "median_tps": r.median, "sd_tps": r.standardDeviation, "samples_tps": r.tokensPerSecond])
                } else {
                    print(String(format: "| %@ | %@ | off | %d | %@ | %.2f ± %.2f |", name, label, model.pool.threadCount, r.test.description, r.median, r.standardDeviation))
                }
            }
            let ratios = zip(batched.tokensPerSecond, single.tokensPerSecond).map { $0 / $1 }.sorted()
            printError(String(format: "batch %d with %d routes: %.2f× the tokens/s of one sequence at a time (median of %d alternated pairs)",
                              mixedBatch, min(mixedBatch, vectors.count), ratios[ratios.count / 2], ratios.count))
        }
        if sampling {
            guard decodeMedian > 0 else { throw ValidationError("--sampling needs --n-gen > 0") }
            let step = 1 / decodeMedian
            for (label, micro) in try Self.samplingCost(model) {
                let share = micro / 1e6 / (step + micro / 1e6)
                if json {
                    rows.append(["model": name, "test": "sample " + label, "microseconds": micro, "share_of_step": share])
                } else {
                    printError(String(format: "sampling, %@: %.1f µs a token, %.2f%% of a decode step (%.2f ms)", label, micro, 100 * share, step * 1000))
                }
            }
        }
        let mem = MemoryReport.current()
        if json {
            let out: [String: Any] = ["results": rows, "peak_rss_bytes": mem.peakRSS, "weights_bytes_per_token": model.weights.bytesPerToken]
            let data = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let taskBytes = route.terms.reduce(0) { $0 + $1.vector.byteCount }
            print("\(size) base; peak RSS \(MemoryReport.mib(mem.peakRSS)); weights read per token \(MemoryReport.mib(model.weights.bytesPerToken)) base + \(MemoryReport.mib(taskBytes)) task vectors")
            if decodeMedian > 0 {
                let bandwidth = ReadBandwidth.measure(pool: model.pool)
                let used = decodeMedian * Double(model.weights.bytesPerToken + taskBytes)
                print(String(format: "decode reads %.1f GB/s of weights: %.2f of the machine's read bandwidth (%.1f GB/s, %d threads)",
                             used / 1e9, used / bandwidth, bandwidth / 1e9, model.pool.threadCount))
            }
            if gate != nil {
                let perToken = 2 * model.config.blockCount * model.config.kvDim * MemoryLayout<Float16>.size
                let tokens = (prompt + [gen]).max()!
                print("interweaving keeps a second KV cache: \(perToken) bytes per token, \(MemoryReport.mib(perToken * tokens)) at \(tokens) tokens, \(MemoryReport.mib(perToken * model.config.contextLength)) at the full context")
            }
        }
    }

    /// Microseconds to sample one token from real next-token logits, per sampler setting.
    static func samplingCost(_ model: LlamaModel) throws -> [(String, Double)] {
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let cache = model.makeCache(capacity: 64)
        let logits = Array(try model.prefill(tokenizer.encode(ChatTemplate().render([.user("Write a story about a dragon.")])), cache: cache))
        let settings: [(String, SamplingParameters)] = [
            ("greedy", .greedy),
            ("temp 0.8 top-k 40", SamplingParameters(temperature: 0.8, seed: 1)),
            ("temp 0.8 top-k off (sorts the vocabulary)", SamplingParameters(temperature: 0.8, topK: 0, seed: 1)),
        ]
        return settings.map { label, p in
            var sampler = Sampler(p)
            let n = 500
            let start = DispatchTime.now().uptimeNanoseconds
            logits.withUnsafeBufferPointer { for _ in 0..<n { _ = sampler.sample($0, history: []) } }
            return (label, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3 / Double(n))
        }
    }
}

