import Foundation

/// Writes a whole model GGUF whose weights are base + Σ coefficient·delta: a fine-tune as a
/// separate model (one delta), or a static merge (several). Tensors no delta touches are copied
/// as they are; changed matrices are encoded in `type`, changed vectors stay F32.
public enum ModelWriter {
    public static func writeMerged(base: LlamaModel, deltas: [(DeltaSource, Float)], type: GGMLType, to path: String,
                                   name: String, progress: (Int, Int) -> Void = { _, _ in }) throws {
        let g = base.gguf
        var w = GGUFWriter()
        w.alignment = g.alignment
        for k in g.metadataKeys where k != "general.alignment" { w.set(k, g.metadata[k]!) }
        w.set("general.name", .string(name))
        w.set("general.file_type", .uint32(type == .f16 ? 1 : type == .q8_0 ? 7 : type == .q4_1 ? 3 : 0))
        for (i, t) in g.tensorList.enumerated() {
            defer { progress(i + 1, g.tensorList.count) }
            let touching = try deltas.compactMap { (s, c) in try s.delta(t.name).map { ($0, c) } }
            if touching.isEmpty {
                try w.addTensor(t.name, shape: t.shape, type: t.type, data: Data(bytes: g.data(t), count: t.byteCount))
                continue
            }
            var values = [Float](repeating: 0, count: t.elementCount)
            values.withUnsafeMutableBufferPointer { BlockCodec.decode(t.type, g.data(t), into: $0.baseAddress!, count: t.elementCount) }
            for (d, c) in touching {
                for j in values.indices { values[j] += c * d[j] }
            }
            if t.shape.count == 1 {
                try w.addTensor(t.name, shape: t.shape, floats: values)
            } else {
                try w.addTensor(t.name, shape: t.shape, type: type, data: Data(BlockCodec.encode(type, values)))
            }
        }
        try w.write(to: path)
    }
}
