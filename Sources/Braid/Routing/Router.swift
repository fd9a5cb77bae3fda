import Foundation

/// What a router learned, stored as JSON in every task vector's metadata
/// (`braid.router`): the shared part (feature normalisation, the "none" class, threshold) and
/// the part that belongs to that task (its centroid and its row of the linear classifier).
public struct RouterData: Codable, Sendable {
    public struct Shared: Codable, Sendable {
        public var featureMean: [Float]
        public var featureScale: [Float]
        public var noneCentroid: [Float]
        public var noneWeight: [Float]
        public var noneBias: Float
        /// Below this probability `auto` keeps the base.
        public var threshold: Float
        /// Softmax temperature of the centroid classifier's cosine scores.
        public var temperature: Float
        public var classifier: String
        /// Blocks the features are taken after (nil: all of them).
        public var featureLayers: Int?
    }
    public var shared: Shared
    public var centroid: [Float]
    public var weight: [Float]
    public var bias: Float

    public static let metadataKey = "braid.router"
}

/// How a query picks its task vectors.
public enum RoutingMode: String, Sendable, CaseIterable {
    /// the most likely task, or the base when "none" wins or the top probability is below the threshold
    case auto
    /// a soft mix of the top-k tasks, weighted by their probabilities
    case blend
    /// always the base
    case none
}

/// Nearest-centroid (cosine) or linear-softmax classification of query features over the
/// loaded tasks plus "none" (DESIGN.md §4; Twin-Merging's soft weights for `blend`).
public struct Router: @unchecked Sendable {
    public let tasks: [TaskVector]
    let data: [RouterData]
    let shared: RouterData.Shared

    /// The router stored in the task vectors; every vector must carry router data from one fit.
    public init(tasks: [TaskVector]) throws {
        guard !tasks.isEmpty else { throw BraidError.invalidArgument("routing needs at least one task vector") }
        var data: [RouterData] = []
        for t in tasks {
            guard let json = t.file.metadata[RouterData.metadataKey]?.stringValue,
                  let d = try? JSONDecoder().decode(RouterData.self, from: Data(json.utf8)) else {
                throw BraidError.invalidArgument("\(t.path) has no router data; run braid router fit")
            }
            data.append(d)
        }
        self.init(tasks: tasks, data: data)
    }

    public init(tasks: [TaskVector], data: [RouterData]) {
        self.tasks = tasks
        self.data = data
        shared = data[0].shared
    }

    /// Probabilities over the tasks, then "none" last.
    public func probabilities(_ features: [Float]) -> [Float] {
        let z = zip(zip(features, shared.featureMean), shared.featureScale).map { ($0.0 - $0.1) / $1 }
        var scores: [Float]
        if shared.classifier == "linear" {
            scores = data.map { dot($0.weight, z) + $0.bias } + [dot(shared.noneWeight, z) + shared.noneBias]
        } else {
            let n = norm(z)
            scores = (data.map(\.centroid) + [shared.noneCentroid]).map { dot($0, z) / max(n * norm($0), 1e-12) / shared.temperature }
        }
        let m = scores.max()!
        let e = scores.map { expf($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    public func route(_ features: [Float], mode: RoutingMode, blendK: Int = 2) -> (route: Route, probabilities: [Float]) {
        let p = probabilities(features)
        return (route(p, mode: mode, blendK: blendK), p)
    }

    /// The route for probabilities `p` (tasks, then "none").
    public func route(_ p: [Float], mode: RoutingMode, blendK: Int = 2) -> Route {
        switch mode {
        case .none:
            return .base
        case .auto:
            let best = p.indices.max { p[$0] < p[$1] }!
            if best == tasks.count || p[best] < shared.threshold { return .base }
            return Route([(tasks[best], 1)])
        case .blend:
            // Coefficients are the probabilities of the top-k tasks; the rest of the mass is the base.
            let top = tasks.indices.sorted { p[$0] > p[$1] }.prefix(blendK).filter { p[$0] >= 0.01 }
            return Route(top.map { (tasks[$0], p[$0]) })
        }
    }

    /// The probability, among `p`, of the route's tasks (what the adaptive interweaving gate trusts).
    public func probability(of route: Route, in p: [Float]) -> Float {
        route.terms.reduce(0) { sum, term in sum + (tasks.firstIndex { $0.name == term.vector.name }.map { p[$0] } ?? 0) }
    }

    public var labels: [String] { tasks.map(\.name) + ["none"] }
    public var featureLayers: Int? { shared.featureLayers }

    func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    func norm(_ a: [Float]) -> Float { dot(a, a).squareRoot() }
}
