import COpenBLAS
import Foundation

/// A PEFT LoRA adapter for a Llama-family base: `adapter_config.json` (r, lora_alpha,
/// target_modules, use_rslora) and `adapter_model.safetensors` (lora_A r × in and lora_B out × r
/// per adapted projection). The update of a projection is scale·B·A with scale α/r, or α/√r with
/// rsLoRA; q and k rows are put in GGUF's RoPE order as llama.cpp's converter puts the base's.
public struct LoRAAdapter {
    public let path: String
    public let rank: Int
    public let alpha: Double
    public let rsLoRA: Bool
    public var scale: Float { Float(rsLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)) }
    /// The base model the adapter names (informational: the shapes are what is checked).
    public let baseModelName: String?
    let file: SafetensorsFile
    /// GGUF matrix name → its A and B entries and, for q and k, the RoPE head count.
    let entries: [String: (a: SafetensorsFile.Entry, b: SafetensorsFile.Entry, heads: Int?)]

    /// Whether `path` is a folder holding a PEFT adapter.
    public static func isAdapter(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(path)/adapter_config.json")
    }

    public init(directory path: String, base: LlamaModel) throws {
        self.path = path
        let configPath = "\(path)/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else { throw BraidError.fileNotFound(path: configPath) }
        guard let config = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw BraidError.invalidArgument("\(configPath) is not a JSON object")
        }
        func refuse(_ why: String) -> BraidError { .invalidArgument("\(configPath): \(why)") }
        if let type = config["peft_type"] as? String, type != "LORA" { throw refuse("peft_type \(type); braid reads LoRA adapters") }
        guard let r = config["r"] as? Int, (1...4096).contains(r) else { throw refuse("r must be an integer in 1…4096") }
        guard let alpha = (config["lora_alpha"] as? NSNumber)?.doubleValue, alpha.isFinite, alpha > 0 else {
            throw refuse("lora_alpha must be a positive number")
        }
        if config["use_dora"] as? Bool == true { throw refuse("a DoRA adapter (use_dora) is not plain LoRA") }
        if config["lora_bias"] as? Bool == true { throw refuse("lora_bias adds a bias to B, which braid's matrices do not have") }
        if config["fan_in_fan_out"] as? Bool == true { throw refuse("fan_in_fan_out (GPT-2 style Conv1D weights) is not a Llama layout") }
        for key in ["rank_pattern", "alpha_pattern"] {
            if let p = config[key] as? [String: Any], !p.isEmpty { throw refuse("\(key) (per-module ranks or alphas) is not supported") }
        }
        if let saved = config["modules_to_save"] as? [Any], !saved.isEmpty {
            throw refuse("modules_to_save stores whole modules (\(saved)), not a low-rank update")
        }
        rank = r
        self.alpha = alpha
        rsLoRA = config["use_rslora"] as? Bool ?? false
        baseModelName = config["base_model_name_or_path"] as? String

        let weightsPath = "\(path)/adapter_model.safetensors"
        guard FileManager.default.fileExists(atPath: weightsPath) else {
            throw BraidError.invalidArgument("\(path) has no adapter_model.safetensors (a .bin adapter must be saved as safetensors)")
        }
        file = try SafetensorsFile(path: weightsPath)
        var a: [String: SafetensorsFile.Entry] = [:], b: [String: SafetensorsFile.Entry] = [:]
        for (hf, entry) in file.tensors {
            guard let (name, isA) = Self.matrixName(hf) else {
                throw BraidError.invalidArgument("\(weightsPath): tensor \(hf) is not a LoRA factor of a Llama projection braid knows")
            }
            if isA { a[name] = entry } else { b[name] = entry }
        }
        let c = base.config
        var factors: [String: (a: SafetensorsFile.Entry, b: SafetensorsFile.Entry, heads: Int?)] = [:]
        for name in a.keys.sorted() {  // sorted: the first mismatch reported is the same every run
            let ea = a[name]!
            guard let eb = b[name] else { throw BraidError.invalidArgument("\(weightsPath): \(name) has lora_A but no lora_B") }
            let t = try base.gguf.tensor(name)
            let (rows, columns) = (t.shape[1], t.shape[0])
            guard ea.shape == [r, columns], eb.shape == [rows, r] else {
                throw BraidError.invalidArgument("\(weightsPath): \(name) has factors \(ea.shape) and \(eb.shape); this base with r = \(r) needs [\(r), \(columns)] and [\(rows), \(r)] (an adapter for another model?)")
            }
            // Only adjacent-pair RoPE models had their q/k rows reordered by the converter; NeoX ones (Qwen, Gemma) keep HF's order.
            let heads = c.ropeNeoX ? nil : name.hasSuffix("attn_q.weight") ? c.headCount : name.hasSuffix("attn_k.weight") ? c.headCountKV : nil
            factors[name] = (ea, eb, heads)
        }
        if let orphan = b.keys.sorted().first(where: { a[$0] == nil }) { throw BraidError.invalidArgument("\(weightsPath): \(orphan) has lora_B but no lora_A") }
        guard !factors.isEmpty else { throw BraidError.invalidArgument("\(weightsPath) holds no LoRA factors") }
        entries = factors
    }

    /// `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight` → (`blk.N.attn_q.weight`, true).
    static func matrixName(_ hf: String) -> (String, Bool)? {
        var name = hf.replacingOccurrences(of: ".default.", with: ".")
        if name.hasPrefix("base_model.model.") { name.removeFirst("base_model.model.".count) }
        let isA = name.hasSuffix(".lora_A.weight")
        guard isA || name.hasSuffix(".lora_B.weight") else { return nil }
        name = String(name.dropLast(".lora_A.weight".count)) + ".weight"
        guard let gguf = HuggingFaceLlama.ggufName(name), !gguf.hasSuffix("norm.weight") else { return nil }
        return (gguf, isA)
    }

    /// The GGUF names of the matrices the adapter changes.
    public var matrices: [String] { entries.keys.sorted() }

    /// A (rank × in) as stored, and B·scale (out × rank) with rows in GGUF order, as floats.
    public func factors(_ name: String) -> (a: [Float], b: [Float])? {
        guard let f = entries[name] else { return nil }
        var b = file.floats(f.b).map { $0 * scale }
        if let heads = f.heads { b = HuggingFaceLlama.permuteRoPERows(b, rows: f.b.shape[0], columns: rank, heads: heads) }
        return (file.floats(f.a), b)
    }

    /// scale·B·A (out × in, row-major, GGUF row order), nil for a matrix the adapter leaves alone.
    public func delta(_ name: String) -> [Float]? {
        guard let (a, b) = factors(name) else { return nil }
        let rows = b.count / rank, columns = a.count / rank
        var out = [Float](repeating: 0, count: rows * columns)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(columns), Int32(rank),
                    1, b, Int32(rank), a, Int32(columns), 0, &out, Int32(columns))
        return out
    }

    /// sha256 of the adapter's weights.
    public var sha256: String { file.sha256 }

    /// The adapter as a task vector that serves each update as its two factors (nothing
    /// compressed): a task-vector GGUF made in memory, named after the folder.
    public func taskVector(base: LlamaModel, baseSHA256: String) throws -> TaskVector {
        let task = URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
        var w = Compressor.header(task: task, description: "LoRA adapter \(task) (r \(rank), alpha \(alpha)\(rsLoRA ? ", rsLoRA" : ""))",
                                  base: base, baseSHA256: baseSHA256, source: path, sourceSHA256: sha256, fidelity: "lora r\(rank)")
        for name in matrices {
            let (a, b) = factors(name)!
            try w.addTensor(name + ".lora_a", shape: [a.count / rank, rank], floats: a)
            try w.addTensor(name + ".lora_b", shape: [rank, b.count / rank], floats: b)
        }
        let bytes = w.encoded()
        let map = bytes.withUnsafeBytes { MappedFile(copying: $0, path: path) }
        return try TaskVector(file: GGUFFile(map: map), base: base, baseSHA256: baseSHA256)
    }
}
