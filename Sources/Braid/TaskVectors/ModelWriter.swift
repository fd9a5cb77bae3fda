import Foundation

/// Writes a whole model GGUF whose weights are base + a delta per tensor: a fine-tune as a
/// separate model (one delta), or a static merge (several, or a merge method's output).
/// Tensors no delta touches are copied as they are; changed matrices are encoded in `type`,
/// changed vectors stay F32.
public enum ModelWriter {
    public static func writeMerged(base: LlamaModel, deltas: [(DeltaSource, Float)], type: GGMLType, to path: String,
                                   name: String, progress: (Int, Int) -> Void = { _, _ in }) throws {
        var w = header(base: base, type: type, name: name)
        let tensors = base.gguf.tensorList
        for (i, t) in tensors.enumerated() {
            defer { progress(i + 1, tensors.count) }
            var sum: [Float]?
            for (s, c) in deltas {
                guard let d = try s.delta(t.name) else { continue }
                if sum == nil { sum = [Float](repeating: 0, count: d.count) }
                for j in d.indices { sum![j] += c * d[j] }
            }
            try add(t, of: base, delta: sum, type: type, to: &w)
        }
        try w.write(to: path)
    }

    /// A writer holding the base's metadata, renamed, with the file type of `type`.
    public static func header(base: LlamaModel, type: GGMLType, name: String) -> GGUFWriter {
        let g = base.gguf
        var w = GGUFWriter()
        w.alignment = g.alignment
        for k in g.metadataKeys where k != "general.alignment" { w.set(k, g.metadata[k]!) }
        w.set("general.name", .string(name))
        w.set("general.file_type", .uint32(type == .f16 ? 1 : type == .q8_0 ? 7 : type == .q4_1 ? 3 : 0))
        return w
    }

    /// Adds base tensor `t` plus `delta` (nil: copied as it is).
    public static func add(_ t: TensorInfo, of base: LlamaModel, delta: [Float]?, type: GGMLType, to w: inout GGUFWriter) throws {
        let g = base.gguf
        guard let delta else {
            try w.addTensor(t.name, shape: t.shape, type: t.type, data: Data(bytes: g.data(t), count: t.byteCount))
            return
        }
        var values = [Float](repeating: 0, count: t.elementCount)
        values.withUnsafeMutableBufferPointer { BlockCodec.decode(t.type, g.data(t), into: $0.baseAddress!, count: t.elementCount) }
        for j in values.indices { values[j] += delta[j] }
        if t.shape.count == 1 {
            try w.addTensor(t.name, shape: t.shape, floats: values)
        } else {
            try w.addTensor(t.name, shape: t.shape, type: type, data: Data(BlockCodec.encode(type, values)))
        }
    }
}
