import Foundation

/// The other way to execute y = W0·x + Σ c_k·D_k·x: build W0 + Σ c_k·D_k once for a route and
/// run it like a plain model. Costs memory (a copy of every matrix, in `type`) and the build
/// time; reads `type`'s bytes per token instead of the base's plus the task vectors'.
/// @unchecked Sendable: built once for a route, read-only afterwards; buffers freed in deinit.
public final class MaterializedWeights: @unchecked Sendable {
    public let weights: LlamaWeights
    public let byteCount: Int
    private var buffers: [UnsafeMutableRawPointer] = []

    public init(model: LlamaModel, route: Route, type: GGMLType = .q8_0) {
        let base = model.weights
        var bytes = 0
        var buffers: [UnsafeMutableRawPointer] = []
        var row = [Float](repeating: 0, count: max(model.config.feedForwardLength, model.config.queryDim, model.config.embeddingLength))
        var delta = row
        var layers: [LayerWeights] = []
        for (l, layer) in base.layers.enumerated() {
            var merged: [WeightMatrix] = []
            for (k, (_, w)) in layer.matrices.enumerated() {
                let terms = route.terms.compactMap { t in t.vector.matrices[l][k].map { ($0, t.coefficient) } }
                if terms.isEmpty { merged.append(w); continue }
                let rowBytes = type.rowBytes(w.columns)
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: rowBytes * w.rows, alignment: 64)
                buffers.append(buffer)
                bytes += rowBytes * w.rows
                row.withUnsafeMutableBufferPointer { r in
                    delta.withUnsafeMutableBufferPointer { d in
                        for i in 0..<w.rows {
                            w.decodeRow(i, into: r.baseAddress!)
                            for (m, c) in terms {
                                m.decodeRow(i, into: d.baseAddress!)
                                for j in 0..<w.columns { r[j] += c * d[j] }
                            }
                            BlockCodec.encode(type, r.baseAddress!, into: buffer + i * rowBytes, count: w.columns)
                        }
                    }
                }
                merged.append(WeightMatrix(type: type, rows: w.rows, columns: w.columns, data: buffer))
            }
            var built = layer.replacingMatrices(merged)
            built.vectors = layer.vectors.mapped { kind, weight in route.norm(weight) { $0.vectors[l][kind] } ?? weight }
            layers.append(built)
        }
        var w = base
        w.layers = layers
        w.outputNorm = route.norm(base.outputNorm) { $0.outputNorm } ?? base.outputNorm
        weights = w
        byteCount = bytes
        self.buffers = buffers
    }

    deinit { for b in buffers { b.deallocate() } }
}

/// Materialised weights per route, least recently used first out, within a byte budget.
/// @unchecked Sendable: owned by the model's one forward caller, which looks routes up between passes.
public final class MaterializedCache: @unchecked Sendable {
    public let budgetBytes: Int
    public let type: GGMLType
    private var entries: [(label: String, weights: MaterializedWeights)] = []

    public init(budgetBytes: Int, type: GGMLType = .q8_0) {
        self.budgetBytes = budgetBytes
        self.type = type
    }

    public var byteCount: Int { entries.reduce(0) { $0 + $1.weights.byteCount } }

    public func weights(for route: Route, model: LlamaModel) -> LlamaWeights {
        if let i = entries.firstIndex(where: { $0.label == route.label }) {
            let e = entries.remove(at: i)
            entries.append(e)
            return e.weights.weights
        }
        let made = MaterializedWeights(model: model, route: route, type: type)
        entries.append((route.label, made))
        while entries.count > 1 && byteCount > budgetBytes { entries.removeFirst() }
        return made.weights
    }
}
