import ArgumentParser
import Braid
import Foundation

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Turn a fine-tune into a 1-bit task vector for the base model.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The fine-tune as a delta GGUF (tuned = base + delta).")
    var delta: String?

    @Option(help: "The fine-tune as a full GGUF of the same architecture (delta = tuned − base).")
    var fineTuned: String?

    @Option(help: "The fine-tune as Hugging Face Llama safetensors, a file or a folder of shards (delta = tuned − base).")
    var safetensors: String?

    @Option(help: "The fine-tune as a PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors; delta = scale·B·A).")
    var lora: String?

    @Option(name: .customLong("task"), help: "Task name stored in the vector (default: from the delta file).")
    var taskName: String?

    @Option(help: "One-line description of the task (the router and listings show it).")
    var description: String = ""

    @Option(help: "Scales of the 1-bit matrices: row (mean |Δ| per row) or matrix.")
    var scales: String = "row"

    @Option(help: "Comma-separated matrix kinds kept dense instead of 1 bit (attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down; 'mlp' = the three ffn_*).")
    var dense: String = ""

    @Option(help: "Encoding of the dense matrices: q4_0 or q8_0.")
    var denseType: String = "q4_0"

    @Option(help: "Fraction of each 1-bit matrix's rows kept (those whose 1-bit term lowers the error most); the rest's delta is dropped.")
    var rowDensity: Double = 1

    @Flag(help: "Fit each row's scale to the layer outputs on calibration prompts (least squares) instead of mean |Δ|.")
    var fitScales = false

    @Option(help: "Calibration prompts with answers, JSONL (default: ../shared/tasks/TASK.dev.jsonl).")
    var calibration: String?

    @Option(help: "How many calibration examples to use.")
    var calibrationCount: Int = 256

    @Option(name: [.short, .long], help: "Output file (NAME.tv.gguf).")
    var output: String

    @Flag(name: [.short, .long], help: "No progress bar.")
    var quiet = false

    func validate() throws {
        guard [delta, fineTuned, safetensors, lora].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --delta, --fine-tuned, --safetensors or --lora")
        }
        // Fitting runs the fine-tune itself for its layer outputs, which braid serves from a delta GGUF.
        if fitScales && delta == nil { throw ValidationError("--fit-scales needs the fine-tune as a --delta GGUF") }
        guard CompressionOptions.Scales(rawValue: scales) != nil else { throw ValidationError("--scales must be row or matrix") }
        guard rowDensity > 0 && rowDensity <= 1 else { throw ValidationError("--row-density must be in (0, 1]") }
        guard ["q4_0", "q8_0"].contains(denseType) else { throw ValidationError("--dense-type must be q4_0 or q8_0") }
    }

    func run() throws {
        let model = try modelOptions.load()
        let source = try delta.map { try DeltaSource.deltaGGUF($0, base: model) }
            ?? fineTuned.map { try DeltaSource.fineTunedGGUF($0, base: model) }
            ?? safetensors.map { try DeltaSource.safetensors($0, base: model) }
            ?? DeltaSource.lora(lora!, base: model)
        var options = CompressionOptions()
        options.scales = CompressionOptions.Scales(rawValue: scales)!
        options.rowDensity = rowDensity
        options.denseType = denseType == "q8_0" ? .q8_0 : .q4_0
        options.denseKinds = Set(dense.split(separator: ",").flatMap { $0 == "mlp" ? ["ffn_gate", "ffn_up", "ffn_down"] : [String($0)] })
        let task = taskName ?? source.taskName
        if fitScales {
            let rt = try Runtime(model: model, options: modelOptions)
            let examples = try TaskSuite.load(calibration ?? "../shared/tasks/\(task).dev.jsonl", limit: calibrationCount)
            var bars: [String: ProgressBar] = [:]
            options.fitted = try ScaleFitter.fit(source: source, base: model, tokenizer: rt.tokenizer, template: rt.template,
                                                       examples: examples) { phase, done, total in
                if bars[phase] == nil { bars[phase] = ProgressBar("\(phase) \(task)", quiet: quiet) }
                bars[phase]!.update(done, total)
            }
        }
        let bar = ProgressBar("compress \(task)", quiet: quiet)
        let writer = try Compressor.compress(source, base: model, baseSHA256: try BaseIdentity.sha256(of: model), task: task,
                                             description: description, options: options, progress: bar.update)
        try writer.write(to: output)
        let size = (try FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        printError("wrote \(output): \(MemoryReport.mib(size)) (\(options.label))")
    }
}
