import Foundation
import Testing
import Braid

/// Greedy continuations against llama.cpp's. braid implements llama.cpp's numerics (8-bit
/// activations before Q4_1/Q8_0 products), so its path equals llama.cpp's up to the first
/// near-tie (top-1/top-2 margin < 0.5 in llama.cpp), and prompt (a) starts with llama.cpp's
/// "L'Étoile…", not the float32 reference's "The capital of France is Paris."
@Suite(.enabled(if: Fixtures.haveReference, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh) and ../shared/reference"))
struct GreedyTextTests {
    func greedy(_ prompt: [Int32], tokens: Int) throws -> [Int32] {
        let model = try Fixtures.model()
        let tokenizer = try BPETokenizer(gguf: model.gguf)
        let generator = Generator(model: model, tokenizer: tokenizer, contextLength: 256)
        return try generator.generate(prompt, sampling: .greedy, maxTokens: tokens).tokens
    }

    @Test(arguments: ["a", "b", "c", "d", "e"])
    func matchesLlamaCppUpToTheFirstNearTie(prompt: String) throws {
        let ref = try Fixtures.json("reference.json")
        let chat = (ref["chat"] as! [String: Any])[prompt] as! [String: Any]
        let ids = (chat["prompt_token_ids"] as! [Int]).map(Int32.init)
        let expected = (chat["generated_ids_32"] as! [Int]).map(Int32.init)
        let margins = chat["top1_minus_top2_per_step"] as! [Double]
        // (a)'s first step is a near-tie that braid's integer numerics resolve as llama.cpp does.
        let skipFirst = prompt == "a" ? 1 : 0
        let firstTie = margins.indices.dropFirst(skipFirst).first { margins[$0] < 0.5 } ?? margins.count
        let firstEOG = chat["first_eog_index"] as! Int
        let n = firstEOG >= 0 ? min(firstTie, firstEOG) : firstTie
        let got = try greedy(ids, tokens: n)
        #expect(got == Array(expected.prefix(n)), "prompt \(prompt): first \(n) tokens")
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
