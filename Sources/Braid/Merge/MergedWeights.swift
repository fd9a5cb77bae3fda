import Synchronization

/// Merged weights held in memory, so a search can score one candidate merge after another
/// without writing a file: every block matrix re-encoded as Q8_0 into buffers allocated once,
/// norms and biases as floats; the embedding and LM head stay the base's.
/// @unchecked Sendable: owned by the search that fills it, one candidate at a time; the model reads it between fills.
public final class MergedWeights: @unchecked Sendable {
    public private(set) var weights: LlamaWeights
    private let base: LlamaModel
    /// The base's own weights, kept apart: `base.weights` may be these merged weights meanwhile.
    private let baseWeights: LlamaWeights
    private var buffers: [[UnsafeMutableRawPointer]]

    public init(base: LlamaModel) {
        self.base = base
        weights = base.weights
        baseWeights = base.weights
        buffers = base.weights.layers.map { layer in
            layer.matrices.map { UnsafeMutableRawPointer.allocate(byteCount: GGMLType.q8_0.rowBytes($0.1.columns) * $0.1.rows, alignment: 64) }
        }
    }

    deinit { for b in buffers.joined() { b.deallocate() } }

    /// Rebuilds every weight as base + `delta(tensor)` (nil: the base's), matrices in parallel
    /// on the base's pool.
    public func fill(_ delta: (TensorInfo) throws -> [Float]?) throws {
        let g = base.gguf, pool = base.pool
        let layers = baseWeights.layers
        let kinds = TaskVector.matrixKinds.count
        let failure = Mutex<Error?>(nil)
        let made = Mutex([[WeightMatrix?]](repeating: [WeightMatrix?](repeating: nil, count: kinds), count: layers.count))
        pool.parallelFor(layers.count * kinds, grain: 1) { range in
            for job in range {
                let l = job / kinds, k = job % kinds
                let w = layers[l].matrices[k].1
                do {
                    let t = try g.tensor("blk.\(l).\(TaskVector.matrixKinds[k]).weight")
                    let buffer = buffers[l][k]
                    var values = [Float](repeating: 0, count: w.rows * w.columns)
                    values.withUnsafeMutableBufferPointer { v in
                        for r in 0..<w.rows { w.decodeRow(r, into: v.baseAddress! + r * w.columns) }
                    }
                    if let d = try delta(t) { for j in values.indices { values[j] += d[j] } }
                    values.withUnsafeBufferPointer { BlockCodec.encode(.q8_0, $0.baseAddress!, into: buffer, count: values.count) }
                    let m = WeightMatrix(type: .q8_0, rows: w.rows, columns: w.columns, data: buffer)
                    made.withLock { $0[l][k] = m }
                } catch {
                    failure.withLock { $0 = error }
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        let matrices = made.withLock { $0 }
        func norm(_ name: String, _ b: [Float]) throws -> [Float] {
            guard let d = try delta(try g.tensor(name)) else { return b }
            return zip(b, d).map { $0 + $1 }
        }
        var w = baseWeights
        w.outputNorm = try norm("output_norm.weight", w.outputNorm)
        w.layers = try layers.enumerated().map { l, layer in
            var made = layer.replacingMatrices(matrices[l].map { $0! })
            made.vectors = try layer.vectors.mapped { kind, weight in try norm(kind.tensorName(layer: l), weight) }
            return made
        }
        weights = w
    }
}
