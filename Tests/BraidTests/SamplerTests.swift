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
        #expect(throws: BraidError.self) { try SamplingParameters(temperature: -1).validate() }
        #expect(throws: BraidError.self) { try SamplingParameters(topP: 0).validate() }
    }
}
