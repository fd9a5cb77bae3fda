import Foundation

/// How a fine-tune becomes a task vector.
public struct CompressionOptions: Sendable {
    public enum Scales: String, Sendable, CaseIterable {
        /// α_r = mean |Δ_r| per row (BitDelta's initialisation, per row)
        case row
        /// one α = mean |Δ| for the whole matrix (1bit-Merging's default)
        case matrix
    }
    public var scales: Scales = .row
    /// Matrix kinds (attn_q … ffn_down) kept as a dense delta in `denseType` instead of 1 bit.
    public var denseKinds: Set<String> = []
    public var denseType: GGMLType = .q4_0
    /// Row scales fitted elsewhere (calibration), by tensor name; they replace mean |Δ_r|.
    public var fittedScales: [String: [Float]] = [:]
    public init() {}

    /// A short label of the fidelity option, stored in the file and shown by eval.
    public var label: String {
        var parts = [fittedScales.isEmpty ? "1bit-\(scales.rawValue)" : "1bit-fitted"]
        if !denseKinds.isEmpty { parts.append("\(denseType.name):" + denseKinds.sorted().joined(separator: ",")) }
        return parts.joined(separator: " ")
    }
}

/// delta → signs + scales (BitDelta / 1bit-Merging), matrix by matrix, into a task-vector GGUF.
public enum Compressor {
    public static func compress(_ source: DeltaSource, base: LlamaModel, baseSHA256: String, task: String, description: String,
                                options: CompressionOptions, progress: (Int, Int) -> Void = { _, _ in }) throws -> GGUFWriter {
        guard !task.isEmpty, task.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw BraidError.invalidArgument("task name \"\(task)\" must be letters, digits, - or _")
        }
        let unknown = options.denseKinds.subtracting(TaskVector.matrixKinds)
        guard unknown.isEmpty else {
            throw BraidError.invalidArgument("unknown matrix kinds \(unknown.sorted()) (known: \(TaskVector.matrixKinds.joined(separator: ", ")))")
        }
        var w = GGUFWriter()
        w.set("general.architecture", .string(base.config.architecture))
        w.set("general.type", .string("task_vector"))
        w.set("general.name", .string(task))
        w.set("braid.task_vector.version", .uint32(UInt32(TaskVector.formatVersion)))
        w.set("braid.task_vector.task", .string(task))
        w.set("braid.task_vector.description", .string(description))
        w.set("braid.task_vector.base_sha256", .string(baseSHA256))
        w.set("braid.task_vector.base_name", .string(URL(fileURLWithPath: base.gguf.path).lastPathComponent))
        w.set("braid.task_vector.source", .string(URL(fileURLWithPath: source.path).lastPathComponent))
        w.set("braid.task_vector.source_sha256", .string(source.sha256))
        w.set("braid.task_vector.fidelity", .string(options.label))

        let c = base.config
        var vectors = ["output_norm.weight"]
        for l in 0..<c.blockCount { vectors += ["blk.\(l).attn_norm.weight", "blk.\(l).ffn_norm.weight"] }
        for name in vectors {
            if let d = try source.delta(name) { try w.addTensor(name, shape: [d.count], floats: d) }
        }
        let total = c.blockCount * TaskVector.matrixKinds.count
        var done = 0
        for (l, layer) in base.weights.layers.enumerated() {
            for (kind, m) in layer.matrices {
                let name = "blk.\(l).\(kind).weight"
                defer { done += 1; progress(done, total) }
                guard let delta = try source.delta(name) else { continue }
                if options.denseKinds.contains(kind) {
                    try w.addTensor(name + ".delta", shape: [m.columns, m.rows], type: options.denseType,
                                    data: Data(BlockCodec.encode(options.denseType, delta)))
                    continue
                }
                let signs = delta.withUnsafeBufferPointer { BitMatrix.pack($0.baseAddress!, rows: m.rows, columns: m.columns) }
                let scales: [Float]
                if let fitted = options.fittedScales[name] {
                    guard fitted.count == m.rows else { throw BraidError.invalidArgument("fitted scales for \(name): \(fitted.count) rows, expected \(m.rows)") }
                    scales = fitted
                } else if options.scales == .matrix {
                    scales = [delta.reduce(0) { $0 + abs($1) } / Float(delta.count)]
                } else {
                    scales = meanAbsoluteRows(delta, rows: m.rows, columns: m.columns)
                }
                try w.addTensor(name + ".signs", shape: [m.columns / 8, m.rows], type: .i8, data: Data(signs))
                try w.addTensor(name + ".scales", shape: [scales.count], floats: scales)
            }
        }
        return w
    }

    public static func meanAbsoluteRows(_ delta: [Float], rows: Int, columns: Int) -> [Float] {
        (0..<rows).map { r in
            var s: Float = 0
            for j in 0..<columns { s += abs(delta[r * columns + j]) }
            return s / Float(columns)
        }
    }
}
