/// Which task vectors serve a query and with what coefficients: the c_k of
/// y = W0·x + Σ c_k·D_k·x. Empty is the base model. A route travels with each column of a
/// batch, never as global state.
public struct Route: @unchecked Sendable {
    public var terms: [(vector: TaskVector, coefficient: Float)]

    public init(_ terms: [(vector: TaskVector, coefficient: Float)] = []) {
        self.terms = terms.filter { $0.coefficient != 0 }
    }

    public static let base = Route()
    public var isBase: Bool { terms.isEmpty }

    public var label: String {
        isBase ? "base" : terms.map { $0.coefficient == 1 ? $0.vector.name : "\($0.vector.name):\($0.coefficient)" }.joined(separator: "+")
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
