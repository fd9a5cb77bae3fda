import Foundation
import Testing
import Braid

/// The router shipped inside models/*.tv.gguf on prompts it was not fitted on.
@Suite(.enabled(if: Fixtures.haveReference, "needs the base model and ../shared/tasks"))
struct RoutingIntegrationTests {
    @Test func shippedRouterSendsEachPromptWhereItBelongs() throws {
        let model = try Fixtures.model()
        let tokenizer = try BPETokenizer(gguf: model.gguf)
        let sha = try BaseIdentity.sha256(of: model)
        let dir = Fixtures.root.appendingPathComponent("models").path
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".tv.gguf") }.sorted()
        let router = try Router(tasks: files.map { try TaskVector(path: "\(dir)/\($0)", base: model, baseSHA256: sha) })
        let features = QueryFeatures(model: model, tokenizer: tokenizer, template: ChatTemplate(), layers: router.featureLayers)
        var cases: [TaskExample] = []
        for t in ["arith", "json", "sentiment", "spell"] {
            cases += try TaskSuite.load(Fixtures.shared.appendingPathComponent("tasks/\(t).test.jsonl").path, limit: 300).suffix(10)
        }
        cases += try TaskSuite.load(Fixtures.root.appendingPathComponent("prompts/rephrased.jsonl").path)
        cases += try TaskSuite.load(Fixtures.root.appendingPathComponent("prompts/general.jsonl").path)
        var wrong: [String] = []
        for c in cases {
            let (route, _) = router.route(try features.features(c.prompt), mode: .auto)
            let got = route.isBase ? "general" : route.terms[0].vector.name
            if got != c.task { wrong.append("\(c.prompt) → \(got)") }
        }
        // Held out: the test splits' tails, our rephrasings and general questions.
        #expect(Double(wrong.count) <= 0.05 * Double(cases.count), "\(wrong)")
    }
}
