import Synchronization

/// Which task vectors serve a query and with what coefficients: the c_k of
/// y = W0·x + Σ c_k·D_k·x. Empty is the base model. A route travels with each column of a
/// batch, never as global state.
/// @unchecked Sendable: a value of immutable task vectors and coefficients.
public struct Route: @unchecked Sendable {
    public private(set) var terms: [(vector: TaskVector, coefficient: Float)]
    /// Blended norm vectors made so far (every token of a stream needs the same ones).
    private let blended = BlendedNorms()

    public init(_ terms: [(vector: TaskVector, coefficient: Float)] = []) {
        self.terms = terms.filter { $0.coefficient != 0 }
    }

    public static let base = Route()
    public var isBase: Bool { terms.isEmpty }

    public var label: String {
        isBase ? "base" : terms.map { $0.coefficient == 1 ? $0.vector.name : "\($0.vector.name):\($0.coefficient)" }.joined(separator: "+")
    }

    /// base + Σ c_k Δ_k for the norm vector `key` names (any number, the same for the same
    /// vector), made once per route and base; nil when no term changes it.
    func norm(_ key: Int, _ base: [Float], _ delta: (TaskVector) -> [Float]?) -> [Float]? {
        let address = base.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
        if let made = blended.entries.withLock({ $0[key] }), made.base == address { return made.weight }
        let weight = norm(base, delta)
        blended.entries.withLock { $0[key] = (address, weight) }
        return weight
    }

    /// base + Σ c_k Δ_k for one norm vector, or nil when no term changes it.
    func norm(_ base: [Float], _ delta: (TaskVector) -> [Float]?) -> [Float]? {
        var out: [Float]?
        for (v, c) in terms {
            guard let d = delta(v) else { continue }
            if out == nil { out = base }
            for i in 0..<d.count { out![i] += c * d[i] }
        }
        return out
    }
}

/// A route's blended norm vectors by key, with the address of the base array each was made from.
private final class BlendedNorms: Sendable {
    let entries = Mutex<[Int: (base: Int, weight: [Float]?)]>([:])
}
