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
        /// A cheaper first stage (nil: none).
        public var early: EarlyStage?
    }
    /// A linear classifier on features from fewer blocks, asked first: when its top
    /// probability reaches `confidence` its answer stands, else the full router decides. Most
    /// queries are plain cases and stop there, at the cost of those blocks alone.
    public struct EarlyStage: Codable, Sendable {
        public var featureLayers: Int
        public var featureMean: [Float]
        public var featureScale: [Float]
        public var noneWeight: [Float]
        public var noneBias: Float
        public var confidence: Float
    }
    public var shared: Shared
    public var centroid: [Float]
    public var weight: [Float]
    public var bias: Float
    /// This task's row of the early stage's classifier.
    public var earlyWeight: [Float]?
    public var earlyBias: Float?

    public static let metadataKey = "braid.router"

    /// What data read from a file must hold before it routes: every vector `width` long (the
    /// features' width; zip would silently drop the rest) and block counts of at least one.
    func check(path: String, width: Int) throws {
        func refuse(_ what: String) -> BraidError { .invalidArgument("\(path): router data \(what) (run braid router fit)") }
        guard width > 0 else { throw refuse("has no features") }
        var vectors = [("featureMean", shared.featureMean), ("featureScale", shared.featureScale), ("noneCentroid", shared.noneCentroid),
                       ("noneWeight", shared.noneWeight), ("centroid", centroid), ("weight", weight)]
        if let w = earlyWeight { vectors.append(("earlyWeight", w)) }
        if let e = shared.early {
            vectors += [("early.featureMean", e.featureMean), ("early.featureScale", e.featureScale), ("early.noneWeight", e.noneWeight)]
            guard e.featureLayers >= 1 else { throw refuse("takes early features after \(e.featureLayers) blocks") }
        }
        for (name, v) in vectors where v.count != width { throw refuse("\(name) has \(v.count) values, not \(width)") }
        if let l = shared.featureLayers, l < 1 { throw refuse("takes features after \(l) blocks") }
    }
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
/// @unchecked Sendable: immutable after init.
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
        for (t, d) in zip(tasks, data) { try d.check(path: t.path, width: data[0].shared.featureMean.count) }
        self.init(tasks: tasks, data: data)
    }

    public init(tasks: [TaskVector], data: [RouterData]) {
        self.tasks = tasks
        self.data = data
        shared = data[0].shared
    }

    /// Probabilities over the tasks, then "none" last, from the full router's features.
    public func probabilities(_ features: [Float]) -> [Float] {
        let z = zip(zip(features, shared.featureMean), shared.featureScale).map { ($0.0 - $0.1) / $1 }
        if shared.classifier == "linear" {
            return softmax(data.map { dot($0.weight, z) + $0.bias } + [dot(shared.noneWeight, z) + shared.noneBias])
        }
        let n = norm(z)
        return softmax((data.map(\.centroid) + [shared.noneCentroid]).map { dot($0, z) / max(n * norm($0), 1e-12) / shared.temperature })
    }

    /// The early stage's probabilities from its features (nil: the router has no early stage).
    public func earlyProbabilities(_ features: [Float]) -> [Float]? {
        guard let e = shared.early else { return nil }
        let z = zip(zip(features, e.featureMean), e.featureScale).map { ($0.0 - $0.1) / $1 }
        var scores: [Float] = []
        for d in data {
            guard let w = d.earlyWeight, let b = d.earlyBias else { return nil }
            scores.append(dot(w, z) + b)
        }
        return softmax(scores + [dot(e.noneWeight, z) + e.noneBias])
    }

    /// Probabilities for a message, through the early stage when it is confident enough, else
    /// through the full router; and the blocks the deciding features came from.
    public func probabilities(of message: String, features: QueryFeatures) throws -> (probabilities: [Float], layers: Int) {
        let c = features.model.config
        guard shared.featureMean.count == c.embeddingLength, (shared.featureLayers ?? 1) <= c.blockCount,
              (shared.early?.featureLayers ?? 1) <= c.blockCount else {
            throw BraidError.invalidArgument("the router was fitted on features of width \(shared.featureMean.count) after \(shared.featureLayers.map(String.init) ?? "all") blocks; this model has width \(c.embeddingLength) and \(c.blockCount) blocks (run braid router fit)")
        }
        let full = shared.featureLayers ?? c.blockCount
        let (p, early) = try cascade(early: { try features.features(message, layers: $0) },
                                     full: { try features.features(message, layers: full) }, fullLayers: full)
        return (p, early ? shared.early!.featureLayers : full)
    }

    /// The early stage's probabilities when its top one reaches its confidence (then `full` is
    /// never asked), else the full router's; and whether the early stage decided.
    public func cascade(early: (Int) throws -> [Float], full: () throws -> [Float], fullLayers: Int) rethrows -> ([Float], Bool) {
        if let e = shared.early, e.featureLayers < fullLayers, let p = earlyProbabilities(try early(e.featureLayers)), p.max()! >= e.confidence {
            return (p, true)
        }
        return (probabilities(try full()), false)
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

    func softmax(_ scores: [Float]) -> [Float] {
        let m = scores.max()!
        let e = scores.map { expf($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    func norm(_ a: [Float]) -> Float { dot(a, a).squareRoot() }
}
