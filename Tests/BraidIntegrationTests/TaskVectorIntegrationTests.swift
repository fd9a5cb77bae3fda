import Foundation
import Testing
import Braid

/// A shared delta compressed for real, then served: it must answer its task where the base cannot.
@Suite(.enabled(if: Fixtures.haveReference, "needs the base model, ../shared/models/deltas and ../shared/tasks"))
struct TaskVectorIntegrationTests {
    /// Also keeping 80 % of the rows, which must bring the vector under 1/6 of the bytes of the
    /// base matrices it covers (1 bit and an fp16 scale per row against Q4_1's 5 bits is 1/4.9).
    @Test(arguments: [1.0, 0.8])
    func compressedJSONVectorAnswersWhereTheBaseDoesNot(rowDensity: Double) throws {
        let model = try Fixtures.model()
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let sha = try BaseIdentity.sha256(of: model)
        #expect(sha == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        let deltaPath = Fixtures.shared.appendingPathComponent("models/deltas/json.delta.Q4_0.gguf").path
        var options = CompressionOptions()
        options.rowDensity = rowDensity
        let writer = try Compressor.compress(try DeltaSource.deltaGGUF(deltaPath, base: model), base: model, baseSHA256: sha,
                                             task: "json", description: "extract JSON", options: options)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-json-\(UUID().uuidString).tv.gguf").path
        try writer.write(to: path)
        let tv = try TaskVector(path: path, base: model, baseSHA256: sha)
        let vectorBytes = tv.matrices.joined().reduce(0) { $0 + ($1?.byteCount ?? 0) }
        let baseBytes = model.weights.layers.reduce(0) { $0 + $1.matrices.reduce(0) { $0 + $1.1.byteCount } }
        #expect(Double(baseBytes) / Double(vectorBytes) > (rowDensity < 1 ? 6 : 4.85), "\(vectorBytes) of \(baseBytes) bytes")
        let examples = try TaskSuite.load(Fixtures.shared.appendingPathComponent("tasks/json.test.jsonl").path, limit: 4)
        let evaluator = Evaluator(model: model, tokenizer: tokenizer, template: ChatTemplate())
        let withVector = try evaluator.run(examples, route: { _ in Route([(tv, 1)]) })
        let base = try evaluator.run(examples, route: { _ in .base })
        let vectorRight = withVector.filter { $0.correct }.count
        let baseRight = base.filter { $0.correct }.count
        #expect(vectorRight == examples.count, "\(withVector.map { $0.output })")
        #expect(baseRight < vectorRight)
    }

    /// A real fine-tune written as Hugging Face safetensors (HF names, [out, in], rotate-half
    /// q/k rows; F32 and BF16) gives the deltas the delta GGUF gives.
    @Test func safetensorsFineTuneGivesTheSameDeltas() throws {
        let model = try Fixtures.model()
        let c = model.config
        let delta = try DeltaSource.deltaGGUF(Fixtures.shared.appendingPathComponent("models/deltas/json.delta.Q4_0.gguf").path, base: model)
        let picks = [("model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight", c.headCount),
                     ("model.layers.3.self_attn.k_proj.weight", "blk.3.attn_k.weight", c.headCountKV),
                     ("model.layers.3.mlp.up_proj.weight", "blk.3.ffn_up.weight", 0),
                     ("model.layers.3.input_layernorm.weight", "blk.3.attn_norm.weight", 0)]
        for dtype in ["F32", "BF16"] {
            var header: [String: Any] = [:]
            var payload = Data()
            var tunedWeights: [String: [Float]] = [:]
            for (hf, name, heads) in picks {
                let t = try model.gguf.tensor(name)
                var tuned = [Float](repeating: 0, count: t.elementCount)
                tuned.withUnsafeMutableBufferPointer { BlockCodec.decode(t.type, model.gguf.data(t), into: $0.baseAddress!, count: t.elementCount) }
                if let d = try delta.delta(name) { for i in tuned.indices { tuned[i] += d[i] } }
                tunedWeights[name] = tuned
                let rows = t.shape.count == 2 ? t.shape[1] : 1, cols = t.shape[0]
                if heads > 0 {  // GGUF row h·hd + 2i + s was HF row h·hd + s·hd/2 + i
                    let hd = rows / heads
                    var hfOrder = tuned
                    for h in 0..<heads { for i in 0..<(hd / 2) { for s in 0..<2 { for j in 0..<cols {
                        hfOrder[(h * hd + s * hd / 2 + i) * cols + j] = tuned[(h * hd + 2 * i + s) * cols + j]
                    } } } }
                    tuned = hfOrder
                }
                let bytes = dtype == "F32" ? tuned.withUnsafeBytes { Data($0) }
                    : tuned.map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }.withUnsafeBytes { Data($0) }
                header[hf] = ["dtype": dtype, "shape": t.shape.count == 2 ? [rows, cols] : [cols], "data_offsets": [payload.count, payload.count + bytes.count]]
                payload += bytes
            }
            let json = try JSONSerialization.data(withJSONObject: header)
            var file = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Data($0) }
            file += json + payload
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-hf-\(UUID().uuidString).safetensors").path
            try file.write(to: URL(fileURLWithPath: path))
            let source = try DeltaSource.safetensors(path, base: model)
            for (_, name, _) in picks {
                let expected = try delta.delta(name)!, got = try source.delta(name)!
                // BF16 stores the tuned weight cut to its top 16 bits, so each element's delta must be
                // exactly the GGUF delta moved by that cut (nothing else: a zeroed or scaled delta fails).
                let tuned = tunedWeights[name]!
                var wrong = 0
                for i in expected.indices {
                    let stored = dtype == "F32" ? tuned[i] : Float(bitPattern: tuned[i].bitPattern & 0xFFFF_0000)
                    let want = expected[i] + (stored - tuned[i])
                    if abs(got[i] - want) > 1e-6 + 1e-6 * abs(tuned[i]) { wrong += 1 }
                }
                #expect(wrong == 0, "\(dtype) \(name): \(wrong) of \(expected.count) deltas differ from the GGUF delta + the \(dtype) rounding")
                if dtype == "F32" {
                    let agree = zip(expected, got).filter { ($0 >= 0) == ($1 >= 0) }.count
                    #expect(Double(agree) / Double(expected.count) > 0.999, "\(name): signs")
                }
            }
            #expect(try source.delta("blk.4.attn_q.weight") == nil)
            // A folder whose files repeat a tensor is not one model's shards.
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("braid-hf-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for shard in ["a", "b"] { try file.write(to: dir.appendingPathComponent("\(shard).safetensors")) }
            let repeated = #expect(throws: BraidError.self) { _ = try DeltaSource.safetensors(dir.path, base: model) }
            #expect(repeated?.description.hasSuffix("/b.safetensors: not shards of one model") == true)
            #expect(try DeltaSource.safetensors(dir.appendingPathComponent("a.safetensors").path, base: model).contains("blk.3.attn_q.weight"))
        }
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
