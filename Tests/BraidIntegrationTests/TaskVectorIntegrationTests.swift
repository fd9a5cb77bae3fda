import Foundation
import Testing
import Braid

/// A shared delta compressed for real, then served: it must answer its task where the base cannot.
@Suite(.enabled(if: Fixtures.haveReference, "needs the base model, ../shared/models/deltas and ../shared/tasks"))
struct TaskVectorIntegrationTests {
    @Test func compressedJSONVectorAnswersWhereTheBaseDoesNot() throws {
        let model = try Fixtures.model()
        let tokenizer = try BPETokenizer(gguf: model.gguf)
        let sha = try BaseIdentity.sha256(of: model)
        #expect(sha == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        let deltaPath = Fixtures.shared.appendingPathComponent("models/deltas/json.delta.Q4_0.gguf").path
        let writer = try Compressor.compress(try DeltaSource.deltaGGUF(deltaPath, base: model), base: model, baseSHA256: sha,
                                             task: "json", description: "extract JSON", options: CompressionOptions())
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-json-\(UUID().uuidString).tv.gguf").path
        try writer.write(to: path)
        let tv = try TaskVector(path: path, base: model, baseSHA256: sha)
        let examples = try TaskSuite.load(Fixtures.shared.appendingPathComponent("tasks/json.test.jsonl").path, limit: 4)
        let evaluator = Evaluator(model: model, tokenizer: tokenizer, template: ChatTemplate())
        let withVector = try evaluator.run(examples, route: { _ in Route([(tv, 1)]) })
        let base = try evaluator.run(examples, route: { _ in .base })
        let vectorRight = withVector.filter { $0.correct }.count
        let baseRight = base.filter { $0.correct }.count
        #expect(vectorRight == examples.count, "\(withVector.map { $0.output })")
        #expect(baseRight < vectorRight)
    }

    @Test func shippedVectorsLoadAndMatchTheManifest() throws {
        let model = try Fixtures.model()
        let sha = try BaseIdentity.sha256(of: model)
        let manifestURL = Fixtures.root.appendingPathComponent("models/manifest.json")
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as! [String: Any]
        let entries = manifest["task_vectors"] as! [[String: Any]]
        #expect(entries.map { $0["task"] as! String } == ["arith", "json", "sentiment", "spell"])
        for e in entries {
            let path = Fixtures.root.appendingPathComponent("models/\(e["file"] as! String)").path
            let tv = try TaskVector(path: path, base: model, baseSHA256: sha)
            #expect(tv.name == e["task"] as! String)
            #expect(SHA256.hex(tv.file.map.bytes) == e["sha256"] as! String)
        }
    }
}
