import ArgumentParser
import Braid
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Prompt-processing and generation speed, like llama-bench.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var taskOptions: TaskOptions

    @Option(name: [.short, .customLong("n-prompt")], parsing: .upToNextOption, help: "Prompt sizes (ppN).")
    var prompt: [Int] = [64, 256]

    @Option(name: [.short, .customLong("n-gen")], help: "Tokens to generate (tgN).")
    var gen: Int = 128

    @Option(name: [.short, .customLong("repetitions")], help: "Timed repetitions per test (after one warm-up).")
    var repetitions: Int = 5

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be ≥ 1") }
        guard prompt.allSatisfy({ $0 >= 1 }), gen >= 0 else { throw ValidationError("sizes must be positive") }
    }

    func run() throws {
        let model = try modelOptions.load()
        let route = try taskOptions.route(for: model)
        let bench = Benchmark(model: model, route: route)
        var tests = prompt.map { Benchmark.Test.prompt($0) }
        if gen > 0 { tests.append(.generate(gen)) }
        var rows: [[String: Any]] = []
        if !json {
            print("| model | route | threads | test | t/s |")
            print("| --- | --- | ---: | ---: | ---: |")
        }
        let name = URL(fileURLWithPath: modelOptions.model).lastPathComponent
        let size = MemoryReport.mib(model.gguf.map.bytes.count)
        for test in tests {
            let r = try bench.run(test, repetitions: repetitions)
            if json {
                rows.append(["model": name, "route": route.label, "threads": model.pool.threadCount, "test": test.description,
                             "median_tps": r.median, "sd_tps": r.standardDeviation, "samples_tps": r.tokensPerSecond])
            } else {
                print(String(format: "| %@ | %@ | %d | %@ | %.2f ± %.2f |", name, route.label, model.pool.threadCount, test.description, r.median, r.standardDeviation))
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
        }
    }
}
