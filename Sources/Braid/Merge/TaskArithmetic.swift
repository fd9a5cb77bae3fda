/// mergekit's "generalized task arithmetic", one tensor at a time (METHODS.md §8): each task
/// vector is optionally thinned (TIES trim / DARE drop), weighted, sign-elected (TIES), summed,
/// optionally divided by the weight that voted for each entry (TIES's disjoint mean), and scaled
/// by λ. Task arithmetic, TIES, DARE-linear and DARE-TIES are parameterisations of it.
public struct TaskArithmetic: Sendable {
    public enum Sparsification: Sendable, Equatable {
        case none
        /// keep the largest |τ|: per tensor at `density`, or at a given |τ| threshold per model
        /// (the whole-model trim)
        case magnitude(thresholds: [Float]?)
        /// DARE: keep each entry with probability density
        case random(seed: UInt64)
    }

    public var sparsification: Sparsification = .none
    /// TIES sign election by the sign of the weighted sum ("mass"); entries that disagree are left out.
    public var consensus = false
    /// Divide by Σ weight over the models that kept (and agreed on) each entry.
    public var normalize = false
    /// DARE: divide the kept entries by density.
    public var rescale = false
    public var lambda: Float = 1

    public init() {}

    /// The preset of a config's method (TA, TIES, DARE-linear, DARE-TIES).
    public init(config c: MergeConfig, thresholds: [Float]?) {
        switch c.method {
        case .ties: sparsification = .magnitude(thresholds: thresholds)
        case .dareLinear, .dareTies: sparsification = .random(seed: c.seed)
        default: sparsification = .none
        }
        consensus = c.method == .ties || c.method == .dareTies
        normalize = c.normalize
        rescale = c.rescale
        lambda = c.lambda
    }

    /// Merges one tensor. `deltas[t]` is model t's delta (nil: untouched), consumed in place.
    public func merge(_ deltas: inout [[Float]?], weights: [Float], densities: [Float], tensor: String) -> [Float]? {
        guard let count = deltas.lazy.compactMap({ $0?.count }).first else { return nil }
        for t in deltas.indices where deltas[t] != nil {
            deltas[t]!.withUnsafeMutableBufferPointer { v in
                switch sparsification {
                case .none: break
                case .magnitude(let thresholds):
                    let th = thresholds?[t] ?? Sparsify.magnitudeThreshold(UnsafeBufferPointer(v), density: densities[t])
                    Sparsify.trim(v, threshold: th)
                case .random(let seed):
                    Sparsify.dropRandom(v, density: densities[t], rescale: rescale, seed: Sparsify.seed(seed, model: t, tensor: tensor))
                }
            }
        }
        var mixed = [Float](repeating: 0, count: count)
        var voted = [Float](repeating: 0, count: normalize ? count : 0)
        var sign = [Float](repeating: 0, count: consensus ? count : 0)
        if consensus {
            // γ = sign(Σ w_t τ̂_t); an exact zero goes to + (mergekit), zeros never vote.
            for t in deltas.indices {
                guard let d = deltas[t] else { continue }
                let w = weights[t]
                for i in 0..<count { sign[i] += w * d[i] }
            }
            for i in 0..<count { sign[i] = sign[i] < 0 ? -1 : 1 }
        }
        mixed.withUnsafeMutableBufferPointer { m in
            voted.withUnsafeMutableBufferPointer { v in
                sign.withUnsafeBufferPointer { g in
                    for t in deltas.indices {
                        guard let d = deltas[t] else { continue }
                        let w = weights[t]
                        d.withUnsafeBufferPointer { d in
                            for i in 0..<count {
                                let x = d[i]
                                if consensus && (x == 0 || (x < 0) != (g[i] < 0)) { continue }
                                m[i] += w * x
                                if normalize && x != 0 { v[i] += w }
                            }
                        }
                    }
                }
            }
        }
        for i in 0..<count {
            let divisor: Float = normalize && voted[i] != 0 ? voted[i] : 1
            mixed[i] = lambda * mixed[i] / divisor
        }
        return mixed
    }
}
