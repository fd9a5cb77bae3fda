import ArgumentParser
import Braid
import Foundation

struct Footprint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measured memory of N fine-tunes: as N separate models (Q8_0 and F16), as base + N task vectors, and as one merged model.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var taskOptions: TaskOptions

    @Option(help: "Comma-separated tasks (N runs from 1 to their count).")
    var tasks: String = "arith,json,sentiment,spell"

    @Option(help: "Folder of the fine-tunes as delta GGUFs (TASK.delta.*.gguf).")
    var deltas: String = "../shared/models/deltas"

    @Option(help: "Where the separate and merged model files are written.")
    var workDir: String = FileManager.default.temporaryDirectory.appendingPathComponent("braid-footprint").path

    @Option(help: "Tokens generated with each model or route while memory is measured.")
    var tokens: Int = 16

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(name: [.short, .long], help: "No progress bar.")
    var quiet = false

    /// Internal: measure one configuration in this process (`--probe models|vectors`).
    @Option(help: .hidden) var probe: String?
    @Option(help: .hidden) var files: [String] = []

    func run() throws {
        if let mode = probe { return try runProbe(mode) }
        let taskNames = tasks.split(separator: ",").map(String.init)
        try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
        let model = try modelOptions.load()
        let deltaFiles = try taskNames.map { try taskFile(deltas, task: $0, suffix: ".gguf") }
        let vectorFiles = try taskNames.map { t -> String in
            let p = "\(taskOptions.taskDir)/\(t).tv.gguf"
            guard FileManager.default.fileExists(atPath: p) else { throw ValidationError("no task vector \(p) (run scripts/build-task-vectors.sh)") }
            return p
        }
        let sources = try deltaFiles.map { try DeltaSource.deltaGGUF($0, base: model) }
        // Separate fine-tuned models, each written once per encoding.
        var separate: [GGMLType: [String]] = [:]
        for type in [GGMLType.q8_0, .f16] {
            separate[type] = try taskNames.enumerated().map { i, t in
                let path = "\(workDir)/\(t).\(type.name).gguf"
                if !FileManager.default.fileExists(atPath: path) {
                    let bar = ProgressBar("write \(t) \(type.name)", quiet: quiet)
                    try ModelWriter.writeMerged(base: model, deltas: [(sources[i], 1)], type: type, to: path, name: "\(t) fine-tune", progress: bar.update)
                }
                return path
            }
        }
        var rows: [[String: Any]] = []
        func size(_ p: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: p))?[.size] as? Int) ?? 0 }
        for n in 1...taskNames.count {
            // One merged model: task arithmetic with λ = 1/N (the mean of the deltas), Q8_0.
            let merged = "\(workDir)/merged-\(n).Q8_0.gguf"
            if !FileManager.default.fileExists(atPath: merged) {
                let bar = ProgressBar("merge \(n)", quiet: quiet)
                try ModelWriter.writeMerged(base: model, deltas: sources.prefix(n).map { ($0, 1 / Float(n)) }, type: .q8_0,
                                            to: merged, name: "task arithmetic of \(n)", progress: bar.update)
            }
            let configs: [(String, String, [String], Int)] = [
                ("\(n) separate models, Q8_0", "models", Array(separate[.q8_0]!.prefix(n)), separate[.q8_0]!.prefix(n).map(size).reduce(0, +)),
                ("\(n) separate models, F16", "models", Array(separate[.f16]!.prefix(n)), separate[.f16]!.prefix(n).map(size).reduce(0, +)),
                ("base + \(n) task vectors", "vectors", Array(vectorFiles.prefix(n)), size(modelOptions.model) + vectorFiles.prefix(n).map(size).reduce(0, +)),
                ("one merged model (\(n) tasks), Q8_0", "models", [merged], size(merged)),
            ]
            for (label, mode, files, disk) in configs {
                let m = try measure(mode: mode, files: files)
                rows.append(["n": n, "config": label, "disk_bytes": disk, "peak_rss_bytes": m.peak, "rss_file_bytes": m.file, "rss_anon_bytes": m.anon])
                if !quiet { printError("footprint: \(label): disk \(MemoryReport.mib(disk)), peak RSS \(MemoryReport.mib(m.peak))") }
            }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: ["tokens_per_model": tokens, "results": rows], options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("| N | configuration | on disk | peak RSS | RssFile | RssAnon |")
            print("|---:|---|---:|---:|---:|---:|")
            for r in rows {
                print("| \(r["n"]!) | \(r["config"]!) | \(MemoryReport.mib(r["disk_bytes"] as! Int)) | \(MemoryReport.mib(r["peak_rss_bytes"] as! Int)) | \(MemoryReport.mib(r["rss_file_bytes"] as! Int)) | \(MemoryReport.mib(r["rss_anon_bytes"] as! Int)) |")
            }
        }
    }

    /// Runs this executable as a probe, so each configuration's peak RSS is its own process's.
    func measure(mode: String, files: [String]) throws -> (peak: Int, file: Int, anon: Int) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        p.arguments = ["footprint", "--probe", mode, "-m", modelOptions.model, "-t", "\(modelOptions.threads)", "--tokens", "\(tokens)"] + files.flatMap { ["--files", $0] }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let obj = try JSONSerialization.jsonObject(with: data) as? [String: Int] else {
            throw BraidError.invalidArgument("footprint probe (\(mode) \(files)) failed with status \(p.terminationStatus)")
        }
        return (obj["peak"]!, obj["file"]!, obj["anon"]!)
    }

    /// Loads every model (or the base and every task vector) and generates with each in turn.
    func runProbe(_ mode: String) throws {
        var steps: [(LlamaModel, Route)] = []
        var tokenizerSource: LlamaModel
        if mode == "models" {
            let models = try files.map { try LlamaModel(path: $0, threads: modelOptions.threads) }
            steps = models.map { ($0, .base) }
            tokenizerSource = models[0]
        } else {
            let base = try modelOptions.load()
            let sha = try BaseIdentity.sha256(of: base)
            steps = try files.map { (base, Route([(try TaskVector(path: $0, base: base, baseSHA256: sha), 1)])) }
            tokenizerSource = base
        }
        let tokenizer = try Tokenizer(gguf: tokenizerSource.gguf)
        let prompt = tokenizer.encode(ChatTemplate().render([.user("Tell me about the sea in a few sentences.")]))
        for (model, route) in steps {
            let cache = model.makeCache(capacity: prompt.count + tokens + 1)
            var logits = try model.prefill(prompt, cache: cache, route: route)
            for _ in 0..<tokens {
                logits = try model.decode(Int32(Ops.argmax(logits)), cache: cache, route: route)
            }
        }
        let m = MemoryReport.current()
        print("{\"peak\": \(m.peakRSS), \"file\": \(m.rssFile), \"anon\": \(m.rssAnon)}")
    }
}
