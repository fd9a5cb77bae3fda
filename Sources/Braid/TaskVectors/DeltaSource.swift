import Foundation

/// Where a fine-tune's float deltas come from: a delta GGUF (tuned = base + delta, as in
/// ../shared/models/deltas), a full fine-tuned GGUF of the same architecture, or a Hugging
/// Face fine-tune in safetensors (one file or a folder of shards) — for these two the delta is
/// tuned − base, both decoded to float32 — or a PEFT LoRA adapter (scale·B·A).
public struct DeltaSource {
    public let path: String
    let storage: Storage
    let base: LlamaModel

    enum Storage {
        /// `subtractBase`: the file holds whole weights, not deltas.
        case gguf(GGUFFile, subtractBase: Bool)
        /// GGUF name → (file, entry, RoPE heads to reorder the rows for, or nil).
        case safetensors([SafetensorsFile], [String: (Int, SafetensorsFile.Entry, Int?)])
        case lora(LoRAAdapter)
    }

    /// A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors).
    public static func lora(_ path: String, base: LlamaModel) throws -> DeltaSource {
        DeltaSource(path: path, storage: .lora(try LoRAAdapter(directory: path, base: base)), base: base)
    }

    public static func deltaGGUF(_ path: String, base: LlamaModel) throws -> DeltaSource {
        let f = try GGUFFile(path: path)
        guard f.metadata["general.type"]?.stringValue == "delta" else {
            throw BraidError.invalidArgument("\(path) is not a delta GGUF (general.type = delta); use --fine-tuned for a full model")
        }
        return try DeltaSource(path: path, gguf: f, subtractBase: false, base: base)
    }

    public static func fineTunedGGUF(_ path: String, base: LlamaModel) throws -> DeltaSource {
        let f = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: f)
        guard config == base.config else {
            throw BraidError.invalidArgument("\(path) does not have the base model's shape (\(config) vs \(base.config))")
        }
        return try DeltaSource(path: path, gguf: f, subtractBase: true, base: base)
    }

    /// A Hugging Face Llama fine-tune: a .safetensors file or a folder of them.
    public static func safetensors(_ path: String, base: LlamaModel) throws -> DeltaSource {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw BraidError.fileNotFound(path: path) }
        let paths = isDirectory.boolValue
            ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted().map { "\(path)/\($0)" }
            : [path]
        guard !paths.isEmpty else { throw BraidError.invalidArgument("no .safetensors files in \(path)") }
        let files = try paths.map { try SafetensorsFile(path: $0) }
        let c = base.config
        var map: [String: (Int, SafetensorsFile.Entry, Int?)] = [:]
        for (i, f) in files.enumerated() {
            for (hf, entry) in f.tensors {
                guard let name = HuggingFaceLlama.ggufName(hf), let b = base.gguf.tensors[name] else { continue }
                // HF stores [out, in]; GGUF's shape lists ne0 (in) first.
                guard Array(entry.shape.reversed()) == b.shape else {
                    throw BraidError.tensorShape(name: "\(hf) (\(name))", expected: Array(b.shape.reversed()), found: entry.shape)
                }
                if let other = map[name] {
                    throw BraidError.invalidArgument("\(hf) is in both \(files[other.0].path) and \(f.path): not shards of one model")
                }
                // Only adjacent-pair RoPE models had their q/k rows reordered by the converter; NeoX ones (Qwen, Gemma) keep HF's order.
                let heads = c.ropeNeoX ? nil : name.hasSuffix("attn_q.weight") ? c.headCount : name.hasSuffix("attn_k.weight") ? c.headCountKV : nil
                map[name] = (i, entry, heads)
            }
        }
        guard !map.isEmpty else { throw BraidError.invalidArgument("\(path) holds no Llama weights braid knows (model.layers.N.…)") }
        return DeltaSource(path: path, storage: .safetensors(files, map), base: base)
    }

    init(path: String, gguf file: GGUFFile, subtractBase: Bool, base: LlamaModel) throws {
        for t in file.tensorList {
            guard let b = base.gguf.tensors[t.name] else {
                throw BraidError.invalidArgument("\(path): tensor \(t.name) is not in the base model")
            }
            guard b.shape == t.shape else { throw BraidError.tensorShape(name: t.name, expected: b.shape, found: t.shape) }
            guard t.type != .i8 else { throw BraidError.ggufUnsupportedTensorType(name: t.name, type: t.type.rawValue) }
        }
        self.init(path: path, storage: .gguf(file, subtractBase: subtractBase), base: base)
    }

    init(path: String, storage: Storage, base: LlamaModel) {
        self.path = path
        self.storage = storage
        self.base = base
    }

    public func contains(_ name: String) -> Bool {
        switch storage {
        case .gguf(let f, _): return f.tensors[name] != nil
        case .safetensors(_, let map): return map[name] != nil
        case .lora(let adapter): return adapter.entries[name] != nil
        }
    }

    /// The task the file names (`delta.task`), else its file name.
    public var taskName: String {
        if case .gguf(let f, _) = storage, let t = f.metadata["delta.task"]?.stringValue { return t }
        return URL(fileURLWithPath: path).lastPathComponent.components(separatedBy: ".").first ?? "task"
    }

    /// The float delta of tensor `name` (row-major, ne0 contiguous), nil when the source leaves it alone.
    public func delta(_ name: String) throws -> [Float]? {
        var out: [Float]
        switch storage {
        case .gguf(let f, let subtractBase):
            guard let t = f.tensors[name] else { return nil }
            out = [Float](repeating: 0, count: t.elementCount)
            out.withUnsafeMutableBufferPointer { BlockCodec.decode(t.type, f.data(t), into: $0.baseAddress!, count: t.elementCount) }
            if !subtractBase { return out }
        case .safetensors(let files, let map):
            guard let (i, entry, heads) = map[name] else { return nil }
            out = files[i].floats(entry)
            if let heads { out = HuggingFaceLlama.permuteRoPERows(out, rows: entry.shape[0], columns: entry.shape[1], heads: heads) }
        case .lora(let adapter):
            return adapter.delta(name)
        }
        let b = try base.gguf.tensor(name)
        var baseValues = [Float](repeating: 0, count: b.elementCount)
        baseValues.withUnsafeMutableBufferPointer { BlockCodec.decode(b.type, base.gguf.data(b), into: $0.baseAddress!, count: b.elementCount) }
        for i in out.indices { out[i] -= baseValues[i] }
        return out.allSatisfy({ $0 == 0 }) ? nil : out
    }

    /// sha256 of the source (of each file's sha256 in order, for shards).
    public var sha256: String {
        switch storage {
        case .gguf(let f, _): return SHA256.hex(f.map.bytes)
        case .safetensors(let files, _):
            return files.count == 1 ? files[0].sha256 : SHA256.hex(Array(files.map(\.sha256).joined().utf8))
        case .lora(let adapter): return adapter.sha256
        }
    }
}
