import Foundation

/// A bridge as a GGUF file (what `scripts/bridge/train.py` writes): the layout metadata, the
/// sha256 of the two models it was trained between, and its tensors in F32 or F16, ne0 = the
/// input width (a Linear(in → out) is [in, out]).
extension Bridge {
    /// Loads a bridge and checks it was trained for the small model whose sha256 is given
    /// (the source is checked by `check` once it is loaded).
    public convenience init(path: String, smallSHA256: String) throws {
        let f = try GGUFFile(path: path)
        guard f.metadata["general.type"]?.stringValue == Self.fileType else {
            throw BraidError.invalidArgument("\(path) is not a bridge (general.type = \(Self.fileType))")
        }
        let version = try f.int("braid.bridge.version")
        guard version == Self.formatVersion else {
            throw BraidError.invalidArgument("\(path): bridge format version \(version); this braid reads \(Self.formatVersion)")
        }
        let small = try f.string("braid.bridge.small_sha256")
        guard small == smallSHA256 else {
            throw BraidError.invalidArgument("\(path) was trained for another small model (sha256 \(small.prefix(12))…), not this one (\(smallSHA256.prefix(12))…)")
        }
        let d = try f.int("braid.bridge.width"), ds = try f.int("braid.bridge.source_width")
        let a = try f.int("braid.bridge.attention_width"), heads = try f.int("braid.bridge.heads")
        let r = try f.int("braid.bridge.adapter_width")
        let blocks = try f.intArray("braid.bridge.blocks")
        guard d > 0, ds > 0, a > 0, r > 0, heads > 0, a % heads == 0, !blocks.isEmpty, d <= 1 << 16, ds <= 1 << 16, a <= 1 << 16, r <= 1 << 16 else {
            throw BraidError.invalidArgument("\(path): bridge dimensions out of range")
        }
        self.init(width: d, sourceWidth: ds, blocks: blocks, heads: heads, attentionWidth: a, adapterWidth: r,
                  eps: Float(try f.float("braid.bridge.eps")), smallSHA256: small,
                  sourceSHA256: try f.string("braid.bridge.source_sha256"), sourceFile: try f.string("braid.bridge.source_file"),
                  name: f.metadata["general.name"]?.stringValue ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent,
                  seed: nil)
        sourceTemplate = f.metadata["braid.bridge.source_template"]?.stringValue ?? "{}"
        guard sourceTemplate.contains("{}") else { throw BraidError.invalidArgument("\(path): the source template has no {} for the message") }
        func floats(_ name: String, _ shape: [Int]) throws -> [Float] {
            let t = try f.tensor(name)
            guard t.shape == shape else { throw BraidError.tensorShape(name: name, expected: shape, found: t.shape) }
            switch t.type {
            case .f32: return Array(UnsafeBufferPointer(start: f.data(t).assumingMemoryBound(to: Float.self), count: t.elementCount))
            case .f16: return UnsafeBufferPointer(start: f.data(t).assumingMemoryBound(to: Float16.self), count: t.elementCount).map { Float($0) }
            default: throw BraidError.invalidArgument("\(path): bridge tensor \(name) is \(t.type.name); F32 or F16 expected")
            }
        }
        projection = try floats("proj.weight", [ds, d])
        projectionBias = try floats("proj.bias", [d])
        for i in layers.indices {
            let p = "blk.\(i)."
            layers[i].queryNorm = try floats(p + "q_norm", [d])
            layers[i].memoryNorm = try floats(p + "m_norm", [d])
            layers[i].query = try floats(p + "q", [d, a])
            layers[i].key = try floats(p + "k", [d, a])
            layers[i].value = try floats(p + "v", [d, a])
            layers[i].output = try floats(p + "o", [a, d])
            layers[i].down = try floats(p + "down", [d, r])
            layers[i].downBias = try floats(p + "down_bias", [r])
            layers[i].up = try floats(p + "up", [r, d])
            layers[i].upBias = try floats(p + "up_bias", [d])
            layers[i].gate = try floats(p + "gate", [2 * d, d])
            layers[i].gateBias = try floats(p + "gate_bias", [d])
        }
    }

    /// Checks the bridge fits a small model of this width and block count, and a source model
    /// with this sha256 and width.
    public func check(smallWidth: Int, smallBlocks: Int, sourceSHA256 sha: String, sourceWidth ds: Int) throws {
        guard smallWidth == width, layers.allSatisfy({ $0.block >= 0 && $0.block < smallBlocks }) else {
            throw BraidError.invalidArgument("bridge \(name) does not fit the small model (width \(width), blocks \(layers.map(\.block)))")
        }
        guard sha == sourceSHA256 else {
            throw BraidError.invalidArgument("bridge \(name) was trained with another source model (sha256 \(sourceSHA256.prefix(12))…), not this one (\(sha.prefix(12))…)")
        }
        guard ds == sourceWidth else {
            throw BraidError.invalidArgument("bridge \(name) reads source states of width \(sourceWidth); the source model has \(ds)")
        }
    }

    public func write(to path: String) throws {
        var w = GGUFWriter()
        w.set("general.type", .string(Self.fileType))
        w.set("general.name", .string(name))
        w.set("braid.bridge.version", .uint32(UInt32(Self.formatVersion)))
        w.set("braid.bridge.small_sha256", .string(smallSHA256))
        w.set("braid.bridge.source_sha256", .string(sourceSHA256))
        w.set("braid.bridge.source_file", .string(sourceFile))
        w.set("braid.bridge.source_template", .string(sourceTemplate))
        w.set("braid.bridge.width", .uint32(UInt32(width)))
        w.set("braid.bridge.source_width", .uint32(UInt32(sourceWidth)))
        w.set("braid.bridge.attention_width", .uint32(UInt32(attentionWidth)))
        w.set("braid.bridge.heads", .uint32(UInt32(heads)))
        w.set("braid.bridge.adapter_width", .uint32(UInt32(adapterWidth)))
        w.set("braid.bridge.eps", .float32(eps))
        w.set("braid.bridge.blocks", .array(.int32, layers.map { .int32(Int32($0.block)) }))
        let d = width, a = attentionWidth, r = adapterWidth
        try w.addTensor("proj.weight", shape: [sourceWidth, d], floats: projection)
        try w.addTensor("proj.bias", shape: [d], floats: projectionBias)
        for (i, l) in layers.enumerated() {
            let p = "blk.\(i)."
            try w.addTensor(p + "q_norm", shape: [d], floats: l.queryNorm)
            try w.addTensor(p + "m_norm", shape: [d], floats: l.memoryNorm)
            try w.addTensor(p + "q", shape: [d, a], floats: l.query)
            try w.addTensor(p + "k", shape: [d, a], floats: l.key)
            try w.addTensor(p + "v", shape: [d, a], floats: l.value)
            try w.addTensor(p + "o", shape: [a, d], floats: l.output)
            try w.addTensor(p + "down", shape: [d, r], floats: l.down)
            try w.addTensor(p + "down_bias", shape: [r], floats: l.downBias)
            try w.addTensor(p + "up", shape: [r, d], floats: l.up)
            try w.addTensor(p + "up_bias", shape: [d], floats: l.upBias)
            try w.addTensor(p + "gate", shape: [2 * d, d], floats: l.gate)
            try w.addTensor(p + "gate_bias", shape: [d], floats: l.gateBias)
        }
        try w.write(to: path)
    }
}
