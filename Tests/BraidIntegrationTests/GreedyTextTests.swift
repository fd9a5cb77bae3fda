import Foundation
import Testing
import Braid

/// Greedy continuations against llama.cpp's. braid implements llama.cpp's numerics (8-bit
/// activations before Q4_1/Q8_0 products), so its greedy choice equals llama.cpp's at every
/// step that is not a near-tie (top-1/top-2 margin < 0.5 in llama.cpp), and prompt (a) starts
/// with llama.cpp's "L'Étoile…", not the float32 reference's "The capital of France is Paris."
@Suite(.enabled(if: Fixtures.haveReference, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh) and ../shared/reference"))
struct GreedyTextTests {
    func greedy(_ prompt: [Int32], tokens: Int) throws -> [Int32] {
        let model = try Fixtures.model()
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let generator = Generator(model: model, tokenizer: tokenizer, contextLength: 256)
        return try generator.generate(prompt, sampling: .greedy, maxTokens: tokens).tokens
    }

    /// Every step of llama.cpp's 32-token greedy answer is checked: braid's greedy token must be
    /// llama.cpp's, or differ only where llama.cpp's top-1/top-2 margin is under 0.5 — and there
    /// llama.cpp's token is fed on (teacher forcing), so one near-tie does not end the comparison.
    /// The answer's text, detokenized by braid, must then be llama.cpp's text.
    @Test(arguments: ["a", "b", "c", "d", "e"])
    func greedyTextMatchesLlamaCppAtEveryDecidedStep(prompt: String) throws {
        let ref = try Fixtures.json("reference.json")
        let chat = (ref["chat"] as! [String: Any])[prompt] as! [String: Any]
        let ids = (chat["prompt_token_ids"] as! [Int]).map(Int32.init)
        let expected = (chat["generated_ids_32"] as! [Int]).map(Int32.init)
        let margins = chat["top1_minus_top2_per_step"] as! [Double]
        let firstEOG = chat["first_eog_index"] as! Int
        let steps = firstEOG >= 0 ? firstEOG : expected.count
        let model = try Fixtures.model()
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let cache = model.makeCache(capacity: ids.count + expected.count + 1)
        var logits = Array(try model.prefill(ids, cache: cache))
        var decided = 0, ties = 0
        for step in 0..<steps {
            let mine = Int32(logits.withUnsafeBufferPointer { Ops.argmax($0) })
            if margins[step] >= 0.5 {
                decided += 1
                #expect(mine == expected[step], "prompt \(prompt) step \(step): braid \(mine), llama.cpp \(expected[step]) (margin \(margins[step]))")
            } else if mine != expected[step] {
                ties += 1
            }
            logits = Array(try model.decode(expected[step], cache: cache))
        }
        #expect(decided > 0)
        #expect(tokenizer.decode(Array(expected.prefix(steps))) == chat["generated_text_until_eog"] as? String)
        print("prompt \(prompt): \(decided) decided steps equal llama.cpp's, \(ties) near-ties resolved the other way")
    }

    @Test func promptAFollowsLlamaCppNotFloat32() throws {
        let ref = try Fixtures.json("reference.json")
        let chat = (ref["chat"] as! [String: Any])["a"] as! [String: Any]
        let ids = (chat["prompt_token_ids"] as! [Int]).map(Int32.init)
        let float32 = (try Fixtures.json("greedy_a_float32.json")["generated_ids"] as! [Int]).map(Int32.init)
        let got = try greedy(ids, tokens: 3)
        #expect(got == (chat["generated_ids_32"] as! [Int]).prefix(3).map(Int32.init))
        #expect(got.first != float32.first)
    }
}
