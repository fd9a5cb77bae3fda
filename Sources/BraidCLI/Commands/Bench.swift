import ArgumentParser
import Braid
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Prompt-processing and generation speed, like llama-bench.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var interweaveOptions: InterweaveOptions

    @Option(name: [.short, .customLong("n-prompt")], parsing: .upToNextOption, help: "Prompt sizes (ppN).")
    var prompt: [Int] = [64, 256]

    @Option(name: [.short, .customLong("n-gen")], help: "Tokens to generate (tgN).")
    var gen: Int = 128

    @Option(name: [.short, .customLong("repetitions")], help: "Timed repetitions per test (after one warm-up).")
    var repetitions: Int = 5

    @Option(help: "Also decode this many sequences, each routed to a different task vector of --task-dir (cycled), together and one after another (tgN each), alternating; 0: skip.")
    var mixedBatch: Int = 0

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
        var tests = prompt.map { Benchmark.Test.prompt($0) }
        if gen > 0 { tests.append(.generate(gen)) }
        var rows: [[String: Any]] = []
        if !json {
            print("| model | route | interweave | threads | test | t/s |")
            print("| --- | --- | --- | ---: | ---: | ---: |")
        }
        let name = URL(fileURLWithPath: modelOptions.model).lastPathComponent
        let size = MemoryReport.mib(model.gguf.map.bytes.count)
        for test in tests {
            var medians: [Double] = []
            for bench in benches {
                let r = try bench.run(test, repetitions: repetitions)
                medians.append(r.median)
                let mode = bench.interweave?.label ?? "off"
                if json {
                    rows.append(["model": name, "route": route.label, "interweave": mode, "threads": model.pool.threadCount, "test": test.description,
                                 "median_tps": r.median, "sd_tps": r.standardDeviation, "samples_tps": r.tokensPerSecond])
                } else {
                    print(String(format: "| %@ | %@ | %@ | %d | %@ | %.2f ± %.2f |", name, route.label, mode, model.pool.threadCount, test.description, r.median, r.standardDeviation))
                }
            }
            if medians.count == 2 && !json {
                printError(String(format: "%@: interweaved takes %.2f× the time of single-stream", test.description, medians[0] / medians[1]))
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
        let mem = MemoryReport.current()
        if json {
            let out: [String: Any] = ["results": rows, "peak_rss_bytes": mem.peakRSS, "weights_bytes_per_token": model.weights.bytesPerToken]
            let data = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let taskBytes = route.terms.reduce(0) { $0 + $1.vector.byteCount }
            print("\(size) base; peak RSS \(MemoryReport.mib(mem.peakRSS)); weights read per token \(MemoryReport.mib(model.weights.bytesPerToken)) base + \(MemoryReport.mib(taskBytes)) task vectors")
            if gate != nil {
                let perToken = 2 * model.config.blockCount * model.config.kvDim * MemoryLayout<Float16>.size
                let tokens = (prompt + [gen]).max()!
                print("interweaving keeps a second KV cache: \(perToken) bytes per token, \(MemoryReport.mib(perToken * tokens)) at \(tokens) tokens, \(MemoryReport.mib(perToken * model.config.contextLength)) at the full context")
            }
        }
    }
}
