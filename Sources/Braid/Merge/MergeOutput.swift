import Foundation

/// Writes a merge: a whole model GGUF (base + merged delta, matrices in the chosen encoding),
/// or one delta GGUF (`general.type = delta`) that `TaskVector` loads and a route can serve.
/// Both carry the config text and the base's sha256 for provenance.
public enum MergeOutput {
    public static func write(_ merger: Merger, to path: String, name: String, baseSHA256: String,
                             coefficients: ((TensorInfo) -> [Float])? = nil, progress: (Int, Int) -> Void = { _, _ in }) throws {
        let base = merger.base
        var w: GGUFWriter
        switch merger.config.output {
        case .model(let type):
            w = ModelWriter.header(base: base, type: type, name: name)
            try merger.forEach(coefficients: coefficients, progress: progress) { t, d in
                try ModelWriter.add(t, of: base, delta: d, type: type, to: &w)
            }
        case .delta(let type):
            w = GGUFWriter()
            w.set("general.architecture", .string(base.config.architecture))
            w.set("general.type", .string("delta"))
            w.set("general.name", .string(name))
            w.set("delta.task", .string(name))
            w.set("delta.base", .string(URL(fileURLWithPath: base.gguf.path).lastPathComponent))
            w.set("delta.quantization", .string(type.name))
            try merger.forEach(coefficients: coefficients, progress: progress) { t, d in
                guard let d else { return }
                if t.shape.count == 1 {
                    try w.addTensor(t.name, shape: t.shape, floats: d)
                } else {
                    try w.addTensor(t.name, shape: t.shape, type: type, data: Data(BlockCodec.encode(type, d)))
                }
            }
        }
        w.set("braid.merge.method", .string(merger.config.method.rawValue))
        w.set("braid.merge.config", .string(merger.config.text))
        w.set("braid.merge.base_sha256", .string(baseSHA256))
        try w.write(to: path)
    }
}
