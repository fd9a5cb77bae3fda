import COpenBLAS
import Foundation
import Synchronization

/// Runs a merge config over a base: opens the models, prepares what needs the whole model
/// first (TIES's whole-model thresholds), then yields the merged delta of each base tensor —
/// the method's, then AIM's relaxation when the config asks for it.
/// @unchecked Sendable: one merge command owns it; its pool workers only read the sources during `forEach`.
public final class Merger: @unchecked Sendable {
    public let config: MergeConfig
    public let base: LlamaModel
    public let sources: [MergeSource]
    /// TIES with `trim: model`: the |τ| threshold of each model over all its tensors.
    public private(set) var thresholds: [Float]?
    public var aim: AIM?

    public init(config: MergeConfig, base: LlamaModel, baseSHA256: String) throws {
        self.config = config
        self.base = base
        sources = try config.models.map { try MergeSource(path: $0.path, base: base, baseSHA256: baseSHA256) }
    }

    /// Base tensors that at least one model names, in file order.
    public var changedTensors: [TensorInfo] {
        base.gguf.tensorList.filter { t in sources.contains { $0.contains(t.name) } }
    }

    /// Whole-model TIES thresholds: two streaming passes of a radix select per model.
    public func prepare(progress: (Int, Int) -> Void = { _, _ in }) throws {
        guard config.method == .ties, config.trim == .model else { return }
        let tensors = changedTensors
        var selects = [Sparsify.MagnitudeSelect](repeating: .init(), count: sources.count)
        var keeps = [Int](repeating: 0, count: sources.count)
        var totals = [Int](repeating: 0, count: sources.count)
        for pass in 0..<2 {
            for (i, t) in tensors.enumerated() {
                for (m, s) in sources.enumerated() {
                    guard let d = try s.delta(t.name) else { continue }
                    d.withUnsafeBufferPointer { pass == 0 ? selects[m].count($0) : selects[m].refine($0) }
                    if pass == 0 { totals[m] += d.count }
                }
                progress(pass * tensors.count + i + 1, 2 * tensors.count)
            }
            if pass == 0 {
                for m in sources.indices {
                    keeps[m] = Int((Double(config.density(of: m)) * Double(totals[m])).rounded())
                    _ = selects[m].chooseBucket(keep: keeps[m])
                }
            }
        }
        thresholds = sources.indices.map { selects[$0].threshold(keep: keeps[$0]) }
    }

    /// The merged delta of base tensor `t`, nil when no model changes it. `coefficients`
    /// replaces the models' weights for this tensor (Evolver's genome) in a plain weighted sum.
    public func delta(_ t: TensorInfo, coefficients: [Float]? = nil) throws -> [Float]? {
        var deltas = try sources.map { try $0.delta(t.name) }
        let rows = t.shape.count == 2 ? t.shape[1] : 1, columns = t.shape[0]
        var merged: [Float]?
        if let c = coefficients {
            var ta = TaskArithmetic()
            ta.lambda = 1
            merged = ta.merge(&deltas, weights: c, densities: [], tensor: t.name)
        } else if config.method == .star {
            merged = star(&deltas, t, rows: rows, columns: columns)
        } else {
            merged = TaskArithmetic(config: config, thresholds: thresholds)
                .merge(&deltas, weights: weights(t.name), densities: sources.indices.map(config.density(of:)), tensor: t.name)
        }
        if let aim, var m = merged, let (layer, kind) = Self.blockMatrix(t.name) {
            AIM.apply(&m, rows: rows, columns: columns, relaxation: aim.relaxation(layer: layer, kind: kind))
            merged = m
        }
        return merged
    }

    /// Each model's weight for `tensor`.
    public func weights(_ tensor: String) -> [Float] {
        sources.indices.map { config.weight(of: $0, tensor: tensor) }
    }

    /// STAR on block matrices; other tensors (norms) are averaged as they are.
    private func star(_ deltas: inout [[Float]?], _ t: TensorInfo, rows: Int, columns: Int) -> [Float]? {
        let present = deltas.indices.filter { deltas[$0] != nil }
        guard !present.isEmpty else { return nil }
        if Self.blockMatrix(t.name) != nil {
            for i in present { STAR.truncate(&deltas[i]!, rows: rows, columns: columns, eta: config.eta) }
        }
        var ta = TaskArithmetic()
        ta.lambda = config.lambda / Float(sources.count)
        return ta.merge(&deltas, weights: weights(t.name), densities: [], tensor: t.name)
    }

    /// Every base tensor with its merged delta (nil: unchanged), in file order. Tensors are
    /// merged in parallel windows (LAPACK and BLAS run one thread each meanwhile); `body` sees
    /// them in order.
    public func forEach(coefficients: ((TensorInfo) -> [Float])? = nil, progress: (Int, Int) -> Void = { _, _ in },
                        _ body: (TensorInfo, [Float]?) throws -> Void) throws {
        let tensors = base.gguf.tensorList
        let pool = base.pool
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(pool.threadCount)) }
        let window = 2 * pool.threadCount
        var start = 0
        while start < tensors.count {
            let chunk = Array(tensors[start..<min(tensors.count, start + window)])
            let results = Mutex<[Int: Result<[Float]?, Error>]>([:])
            pool.parallelFor(chunk.count, grain: 1) { range in
                for i in range {
                    let t = chunk[i]
                    let r = Result { self.sources.contains { $0.contains(t.name) } ? try self.delta(t, coefficients: coefficients?(t)) : nil }
                    results.withLock { $0[i] = r }
                }
            }
            let done = results.withLock { $0 }
            for i in chunk.indices {
                try body(chunk[i], try done[i]!.get())
                progress(start + i + 1, tensors.count)
            }
            start += chunk.count
        }
    }

    /// (layer, kind index) of a `blk.L.KIND.weight` matrix name.
    public static func blockMatrix(_ name: String) -> (Int, Int)? {
        let parts = name.split(separator: ".")
        guard parts.count == 4, parts[0] == "blk", let l = Int(parts[1]),
              let k = TaskVector.matrixKinds.firstIndex(of: String(parts[2])) else { return nil }
        return (l, k)
    }
}
