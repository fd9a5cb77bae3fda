import Braid
import Foundation

/// How one query was routed.
struct RoutingDecision {
    var route: Route
    /// The router's probability for the route's tasks (0.5 when no router was asked).
    var prior: Float = 0.5
    var probabilities: [String: Float] = [:]
    var milliseconds = 0.0
    /// Blocks of the base the deciding features came from (the router's early stage or its full one; 0: no router).
    var layers = 0
    /// "route arith (arith p=0.99, 8.1 ms)"
    var line: String

    init(fixed route: Route) {
        self.route = route
        line = "route \(route.label)"
    }
}

/// Per-query routing for the commands: features from one base prefill, then the router. With
/// --task the route is fixed, and the router (when the task folder has one) only says how
/// much the query looks like that task, which the adaptive interweaving gate uses.
struct QueryRouting {
    let fixed: Route
    let router: Router?
    /// nil: the route is fixed
    let mode: RoutingMode?
    let features: QueryFeatures?
    let blendK: Int

    init(_ options: TaskOptions, _ rt: Runtime, fixed: Route, needPrior: Bool) throws {
        self.fixed = fixed
        blendK = options.blendK
        if let (router, mode) = try options.router(for: rt.model) {
            self.router = router
            self.mode = mode
        } else {
            mode = nil
            router = needPrior && !fixed.isBase ? try? Router(tasks: loadTaskVectors(options.taskDir, model: rt.model)) : nil
        }
        features = router.map { QueryFeatures(model: rt.model, tokenizer: rt.tokenizer, template: rt.template, layers: $0.featureLayers) }
    }

    /// Whether a router picks the routes (else they are fixed).
    var routes: Bool { mode != nil }

    /// The route of `message` (`forced` overrides the router's choice but keeps its probabilities).
    func route(_ message: String, forcing forced: Route? = nil) throws -> RoutingDecision {
        var decision = RoutingDecision(fixed: forced ?? fixed)
        guard let router, let features else { return decision }
        let start = DispatchTime.now().uptimeNanoseconds
        let (p, layers) = try router.probabilities(of: message, features: features)
        if let mode, forced == nil { decision.route = router.route(p, mode: mode, blendK: blendK) }
        decision.prior = router.probability(of: decision.route, in: p)
        decision.milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        decision.probabilities = Dictionary(zip(router.labels, p), uniquingKeysWith: { a, _ in a })
        let best = p.indices.max { p[$0] < p[$1] }!
        decision.layers = layers
        decision.line = String(format: "route %@ (%@ p=%.2f, %.1f ms, %d blocks)", decision.route.label, router.labels[best], p[best], decision.milliseconds, layers)
        return decision
    }
}
