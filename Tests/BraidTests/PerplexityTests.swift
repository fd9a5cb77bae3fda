import Foundation
import Testing
import Braid

/// llama-perplexity's method on a tiny random model: the scored positions, BOS at each chunk's
/// start, batching that does not change the result, the standard error, and the refusals.
struct PerplexityTests {
    static func tokens(_ n: Int, seed: UInt64 = 3) -> [Int32] {
        var rng = Xoshiro256(seed: seed)
        return (0..<n).map { _ in Int32(rng.next() % UInt64(TinyModel.config.vocabularySize)) }
    }

    /// The negative log-likelihoods llama-perplexity sums, computed the slow way: each chunk fed
    /// one token at a time from an empty cache, positions n/2 … n−2 scored in double.
    static func reference(_ model: LlamaModel, _ tokens: [Int32], context: Int, chunks: Int, bos: Int32?) throws -> [Double] {
        var nll: [Double] = []
        for c in 0..<chunks {
            let cache = model.makeCache(capacity: context)
            for p in 0..<(context - 1) {
                let token = p == 0 ? (bos ?? tokens[c * context]) : tokens[c * context + p]
                let logits = Array(try model.decode(token, cache: cache)).map(Double.init)
                guard p >= context / 2 else { continue }
                let m = logits.max()!
                let logSum = log(logits.reduce(0) { $0 + exp($1 - m) }) + m
                nll.append(logSum - logits[Int(tokens[c * context + p + 1])])
            }
        }
        return nll
    }

    @Test func logSoftmaxIsInDouble() {
        let logits: [Float] = [1, 2, 3, -40, 0.5]
        // llama.cpp's: exp in float, summed in double.
        let sum = logits.reduce(0.0) { $0 + Double(expf($1 - 3)) }
        let exact = logits.reduce(0.0) { $0 + exp(Double($1) - 3) }
        logits.withUnsafeBufferPointer { l in
            for target in logits.indices {
                let value = Perplexity.logSoftmax(l, vocabulary: logits.count, target: target)
                #expect(abs(value - (Double(logits[target] - 3) - log(sum))) < 1e-12)
                #expect(abs(value - (Double(logits[target]) - 3 - log(exact))) < 1e-6)
            }
        }
    }

    /// With batches of 5 columns (chunks cut mid-way, the scored half starting inside a batch)
    /// and of 64, the result equals the one-token-at-a-time reference.
    @Test(arguments: [5, 64])
    func matchesTheSequentialReference(maxBatch: Int) throws {
        let model = try LlamaModel(path: try TinyModel.write(seed: 7), threads: 2, maxBatch: maxBatch)
        let tokens = Self.tokens(70)
        let context = 16
        let result = try Perplexity(model: model, context: context, bos: nil).run(tokens)
        #expect(result.chunkNLL.count == 4)  // 70 / 16
        #expect(result.scored == 4 * (context - context / 2 - 1))
        let nll = try Self.reference(model, tokens, context: context, chunks: 4, bos: nil)
        #expect(nll.count == result.scored)
        let mean = nll.reduce(0, +) / Double(nll.count)
        #expect(abs(log(result.perplexity) - mean) < 1e-5, "\(log(result.perplexity)) vs \(mean)")
        // Standard error: PPL × sqrt(var / (N − 1)), var = E[nll²] − E[nll]².
        let variance = nll.reduce(0) { $0 + $1 * $1 } / Double(nll.count) - mean * mean
        let se = exp(mean) * (variance / Double(nll.count - 1)).squareRoot()
        #expect(abs(result.standardError - se) / se < 1e-4)
        // Per chunk and running values.
        for c in 0..<4 {
            let part = nll[(c * 7)..<((c + 1) * 7)]
            #expect(abs(result.chunkNLL[c] - part.reduce(0, +) / 7) < 1e-5)
            let sofar = nll[0..<((c + 1) * 7)]
            #expect(abs(result.running[c] - exp(sofar.reduce(0, +) / Double(sofar.count))) < 1e-4)
        }
    }

    /// When the vocabulary adds BOS, each chunk's first token becomes BOS (and is never a target).
    @Test func bosReplacesEachChunksFirstToken() throws {
        let model = try LlamaModel(path: try TinyModel.write(seed: 7), threads: 2)
        var tokens = Self.tokens(48, seed: 9)
        let withBOS = try Perplexity(model: model, context: 16, bos: 1).run(tokens, chunks: 2)
        #expect(withBOS.chunkNLL.count == 2)
        for c in 0..<3 { tokens[c * 16] = 1 }
        let replaced = try Perplexity(model: model, context: 16, bos: nil).run(tokens, chunks: 2)
        #expect(withBOS.perplexity == replaced.perplexity)
        let reference = try Self.reference(model, tokens, context: 16, chunks: 2, bos: nil)
        #expect(abs(log(withBOS.perplexity) - reference.reduce(0, +) / Double(reference.count)) < 1e-5)
    }

    @Test func tooFewTokensIsRefusedWithLlamaCppsMessage() throws {
        let model = try LlamaModel(path: try TinyModel.write(), threads: 1)
        let measure = Perplexity(model: model, context: 16, bos: nil)
        #expect(errorText { _ = try measure.run(Self.tokens(31), source: "short.txt") }
                == "you need at least 32 tokens to evaluate perplexity with a context of 16; short.txt tokenizes to only 31 tokens")
        #expect(errorText { _ = try measure.run(Self.tokens(32)) } == "no error")
    }

    @Test func contextBeyondTheModelsIsRefused() throws {
        let model = try LlamaModel(path: try TinyModel.write(), threads: 1)
        #expect(errorText { _ = try Perplexity(model: model, context: 128, bos: nil).run(Self.tokens(400)) }
                == "the context (--ctx-size) is 128, out of range (allowed: 4...64, the model's context length)")
        #expect(errorText { _ = try Perplexity(model: model, context: 16, bos: nil).run(Self.tokens(64), chunks: 0) }
                == "--chunks is 0, out of range (allowed: 1 or more)")
    }
}
