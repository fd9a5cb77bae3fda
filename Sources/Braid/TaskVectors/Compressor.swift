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
    public var fitted: [String: ScaleFitter.FittedRows] = [:]
    /// Fraction of each 1-bit matrix's rows kept: those whose 1-bit term lowers the error most
    /// (on the calibration outputs when fitted, else on the weights); the others' delta is
    /// dropped. Below 1 a vector costs less than a bit per weight.
    public var rowDensity: Double = 1
    public init() {}

    /// A short label of the fidelity option, stored in the file and shown by eval.
    public var label: String {
        var parts = [fitted.isEmpty ? "1bit-\(scales.rawValue)" : "1bit-fitted"]
        if rowDensity < 1 { parts[0] += " rows:\(rowDensity)" }
        if !denseKinds.isEmpty { parts.append("\(denseType.name):" + denseKinds.sorted().joined(separator: ",")) }
        return parts.joined(separator: " ")
    }
}

/// delta → signs + scales (BitDelta / 1bit-Merging), matrix by matrix, into a task-vector GGUF.
public enum Compressor {
    public static func compress(_ source: DeltaSource, base: LlamaModel, baseSHA256: String, task: String, description: String,
                                options: CompressionOptions, progress: (Int, Int) -> Void = { _, _ in }) throws -> GGUFWriter {
        try TaskVector.checkName(task)
        let unknown = options.denseKinds.subtracting(TaskVector.matrixKinds)
        guard unknown.isEmpty else {
            throw BraidError.invalidArgument("unknown matrix kinds \(unknown.sorted()) (known: \(TaskVector.matrixKinds.joined(separator: ", ")))")
        }
        var w = header(task: task, description: description, base: base, baseSHA256: baseSHA256,
                       source: source.path, sourceSHA256: source.sha256, fidelity: options.label)

        let c = base.config
        var vectors = ["output_norm.weight"]
        for (l, layer) in base.weights.layers.enumerated() { vectors += layer.vectors.kinds.map { $0.tensorName(layer: l) } }
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
                let scales: [Float], gains: [Float]
                let meanAbs = meanAbsoluteRows(delta, rows: m.rows, columns: m.columns)
                if let f = options.fitted[name] {
                    guard f.scales.count == m.rows else { throw BraidError.invalidArgument("fitted scales for \(name): \(f.scales.count) rows, expected \(m.rows)") }
                    (scales, gains) = (f.scales, f.gains)
                } else if options.scales == .matrix {
                    let a = meanAbs.reduce(0, +) / Float(m.rows)
                    // ‖Δ_r‖² − ‖Δ_r − α s_r‖² = 2α Σ|Δ_r| − α² n
                    (scales, gains) = ([a], meanAbs.map { 2 * a * $0 * Float(m.columns) - a * a * Float(m.columns) })
                } else {
                    (scales, gains) = (meanAbs, meanAbs.map { $0 * $0 * Float(m.columns) })
                }
                let kept = keptRows(gains: gains, density: options.rowDensity)
                var stored = delta
                if kept.count < m.rows {
                    stored = kept.flatMap { delta[Int($0) * m.columns..<(Int($0) + 1) * m.columns] }
                    try w.addTensor(name + ".rows", shape: [RowIndex.bitmapBytes(m.rows)], type: .i8, data: Data(RowIndex.bitmap(kept, baseRows: m.rows)))
                }
                let groups = RowIndex.groupSizes(kept, baseRows: m.rows)
                let signs = stored.withUnsafeBufferPointer { BitMatrix.pack($0.baseAddress!, rows: kept.count, columns: m.columns, groupSizes: groups) }
                // The scales follow the signs in the file: a short tile's 32-byte loads stay inside it.
                try w.addTensor(name + ".signs", shape: [m.columns / 8, kept.count], type: .i8, data: Data(signs))
                // fp16 scales, as BitDelta keeps them: 2 bytes a row instead of 4.
                let stored16 = scales.count == 1 ? scales : kept.map { scales[Int($0)] }
                try w.addTensor(name + ".scales", shape: [stored16.count], type: .f16,
                                data: Data(BlockCodec.encode(.f16, stored16)))
            }
        }
        return w
    }

    /// A task-vector GGUF's metadata, before its tensors.
    static func header(task: String, description: String, base: LlamaModel, baseSHA256: String,
                       source: String, sourceSHA256: String, fidelity: String) -> GGUFWriter {
        var w = GGUFWriter()
        w.set("general.architecture", .string(base.config.architecture))
        w.set("general.type", .string("task_vector"))
        w.set("general.name", .string(task))
        w.set("braid.task_vector.version", .uint32(UInt32(TaskVector.formatVersion)))
        w.set("braid.task_vector.task", .string(task))
        w.set("braid.task_vector.description", .string(description))
        w.set("braid.task_vector.base_sha256", .string(baseSHA256))
        w.set("braid.task_vector.base_name", .string(URL(fileURLWithPath: base.gguf.path).lastPathComponent))
        w.set("braid.task_vector.source", .string(URL(fileURLWithPath: source).lastPathComponent))
        w.set("braid.task_vector.source_sha256", .string(sourceSHA256))
        w.set("braid.task_vector.fidelity", .string(fidelity))
        return w
    }

    /// The rows with the largest gains, `density` of them (at least one), in ascending order.
    public static func keptRows(gains: [Float], density: Double) -> [Int32] {
        let count = max(1, min(gains.count, Int((density * Double(gains.count)).rounded())))
        guard count < gains.count else { return (0..<Int32(gains.count)).map { $0 } }
        return gains.indices.sorted { gains[$0] > gains[$1] }.prefix(count).map { Int32($0) }.sorted()
    }

    public static func meanAbsoluteRows(_ delta: [Float], rows: Int, columns: Int) -> [Float] {
        (0..<rows).map { r in
            var s: Float = 0
            for j in 0..<columns { s += abs(delta[r * columns + j]) }
            return s / Float(columns)
        }
    }
}
