import Testing
import Foundation
import Braid

/// llama.cpp's test-sampling tables and the properties of each step.
struct SamplerTests {
    func candidates(_ probs: [Float]) -> [TokenCandidate] {
        probs.enumerated().map { TokenCandidate(id: Int32($0.offset), logit: logf($0.element)) }
    }

    @Test func topPKeepsTheSmallestSetReachingP() {
        var c = candidates([0.1, 0.2, 0.3, 0.4])
        Sampler.topK(&c, 0)
        Sampler.topP(&c, 0.7)
        Sampler.softmax(&c)
        #expect(c.map(\.id) == [3, 2])
        #expect(abs(c[0].p - 0.571429) < 1e-5 && abs(c[1].p - 0.428571) < 1e-5)
    }

    @Test func topKKeepsTheLargest() {
        var c = candidates([0.1, 0.2, 0.3, 0.4, 0.05, 0.35])
        Sampler.topK(&c, 3)
        #expect(c.map(\.id) == [3, 5, 2])
    }

    @Test func minPDropsTheUnlikely() {
        var c = candidates([0.1, 0.2, 0.3, 0.4])
        Sampler.topK(&c, 0)
        Sampler.minP(&c, 0.55)  // keeps p ≥ 0.22
        #expect(c.map(\.id) == [3, 2])
    }

    @Test func temperatureZeroIsArgmaxAndSeedsRepeat() {
        let logits: [Float] = [0.5, 2, 1.9, -1]
        logits.withUnsafeBufferPointer { l in
            var greedy = Sampler(.greedy)
            #expect(greedy.sample(l, history: []) == 1)
            var p = SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0, seed: 99)
            var a = Sampler(p), b = Sampler(p)
            let da = (0..<20).map { _ in a.sample(l, history: []) }
            let db = (0..<20).map { _ in b.sample(l, history: []) }
            #expect(da == db)
            #expect(Set(da).count > 1)
            p.seed = 100
            var c = Sampler(p)
            #expect((0..<20).map { _ in c.sample(l, history: []) } != da)
        }
    }

    @Test func repeatPenaltyDemotesSeenTokens() {
        let logits: [Float] = [0.5, 2, 1.9, -1]
        logits.withUnsafeBufferPointer { l in
            var s = Sampler(SamplingParameters(repeatPenalty: 1.5))
            #expect(s.sample(l, history: [1]) == 2)
        }
    }

    @Test func invalidParametersAreRefused() {
        #expect(errorText { try SamplingParameters(temperature: -1).validate() } == "--temp must be ≥ 0")
        #expect(errorText { try SamplingParameters(topP: 0).validate() } == "--top-p must be in (0, 1]")
    }
}

/// The heap selection the sampler uses equals sorting the whole vocabulary.
struct TopKSelectionTests {
    @Test func heapSelectionEqualsAFullSort() {
        var rng = Xoshiro256(seed: 7)
        for k in [1, 5, 40, 200] {
            let logits = (0..<5000).map { _ in Float(rng.nextUnit() * 20 - 10) }
            let penalized: [Int32] = [3, 17, 4999]
            var sorted = logits.enumerated().map { TokenCandidate(id: Int32($0.offset), logit: $0.element) }
            for id in penalized { sorted[Int(id)].logit = sorted[Int(id)].logit > 0 ? sorted[Int(id)].logit / 1.3 : sorted[Int(id)].logit * 1.3 }
            Sampler.topK(&sorted, k)
            var heap: [TokenCandidate] = []
            logits.withUnsafeBufferPointer { Sampler.selectTopK($0, k, penalized: penalized, penalty: 1.3, into: &heap) }
            #expect(heap.map(\.id) == sorted.map(\.id), "k = \(k)")
        }
    }
}
