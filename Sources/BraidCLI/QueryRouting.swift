import Braid
import Foundation

/// Per-query routing for the commands: features from one base prefill, then the router.
struct QueryRouting {
    let router: Router
    let mode: RoutingMode
    let features: QueryFeatures
    let blendK: Int

    init?(_ options: TaskOptions, _ rt: Runtime) throws {
        guard let (router, mode) = try options.router(for: rt.model) else { return nil }
        self.router = router
        self.mode = mode
        self.blendK = options.blendK
        features = QueryFeatures(model: rt.model, tokenizer: rt.tokenizer, template: rt.template, layers: router.featureLayers)
    }

    /// The route for a user message and a line describing it (route, probabilities, cost).
    func route(_ message: String) throws -> (Route, String) {
        let start = DispatchTime.now().uptimeNanoseconds
        let f = try features.features(message)
        let (route, p) = router.route(f, mode: mode, blendK: blendK)
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        let best = p.indices.max { p[$0] < p[$1] }!
        return (route, String(format: "route %@ (%@ p=%.2f, %.1f ms)", route.label, router.labels[best], p[best], ms))
    }
}
