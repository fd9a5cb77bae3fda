import Foundation
import Testing
import Braid

/// The forward pass against llama.cpp's own outputs for the same GGUF.
@Suite(.enabled(if: Fixtures.haveReference, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh) and ../shared/reference"), .serialized)
struct LlamaCppLogitsTests {
    @Test func foxLogitsMatchLlamaCpp() throws {
        let model = try Fixtures.model()
        let fox = try Fixtures.json("fox_top5_logits.json")
        let ids = (fox["input_token_ids"] as! [Int]).map(Int32.init)
        let cache = model.makeCache(capacity: 64)
        let logits = Array(try model.prefill(ids, cache: cache))
        let data = try Data(contentsOf: Fixtures.reference.appendingPathComponent("fox_logits.f32"))
        let ref = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(ref.count == logits.count)
        var sq: Double = 0
        for i in 0..<ref.count { sq += Double((ref[i] - logits[i]) * (ref[i] - logits[i])) }
        let rms = (sq / Double(ref.count)).squareRoot()
        print("fox logits rms difference vs llama.cpp: \(rms)")
        #expect(rms <= 0.15)
        let top = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(4).map { $0 }
        let refTop = (fox["top5_next"] as! [[String: Any]]).prefix(4).map { $0["id"] as! Int }
        #expect(top == refTop)
    }

    /// Feeds prompt + llama.cpp's generated ids; braid's top-1 must equal llama.cpp's wherever
    /// llama.cpp's top-1/top-2 margin is at least 0.5.
    @Test(arguments: ["a", "b", "c", "d", "e"])
    func teacherForcedTop1(prompt: String) throws {
        let model = try Fixtures.model()
        let ref = try Fixtures.json("reference.json")
        let chat = (ref["chat"] as! [String: Any])[prompt] as! [String: Any]
        let promptIDs = (chat["prompt_token_ids"] as! [Int]).map(Int32.init)
        let generated = (chat["generated_ids_32"] as! [Int]).map(Int32.init)
        let margins = chat["top1_minus_top2_per_step"] as! [Double]
        let cache = model.makeCache(capacity: 128)
        var logits = Array(try model.prefill(promptIDs, cache: cache))
        var mismatches: [Int] = []
        for (step, expected) in generated.enumerated() {
            let top = Int32(logits.withUnsafeBufferPointer { Ops.argmax($0) })
            if margins[step] >= 0.5 && top != expected { mismatches.append(step) }
            logits = Array(try model.decode(expected, cache: cache))
        }
        #expect(mismatches.isEmpty, "steps where braid's top-1 differs with margin ≥ 0.5: \(mismatches)")
    }
}
