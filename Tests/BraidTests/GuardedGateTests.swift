import Foundation
import Testing
import Braid

/// The guarded interweaving gate: its rule on synthetic confidences, and the decoder writing
/// exactly what the rule chose, alone and in a batch.
struct GuardedGateTests {
    let rule = GuardedGate(routerSure: 0.9, tunedSure: 0.6, baseSure: 0.8, disagreementMix: 0.5)

    func sure(_ token: Int, _ top: Float) -> StreamConfidence { StreamConfidence(token: token, top: top, second: (1 - top) / 2) }

    @Test func confidenceIsTheTopTwoSoftmaxProbabilities() {
        let logits: [Float] = [0, logf(3), logf(6), 0]  // softmax: 1/11, 3/11, 6/11, 1/11
        let c = logits.withUnsafeBufferPointer { StreamConfidence(logits: $0) }
        #expect(c.token == 2)
        #expect(abs(c.top - 6 / 11) < 1e-6 && abs(c.second - 3 / 11) < 1e-6)
        #expect(abs(c.margin - 3 / 11) < 1e-6)
    }

    @Test func outsideTheTaskTheBaseWritesWithoutTheTunedHead() {
        for r: Float in [0, 0.2, 0.49] {
            #expect(!rule.tunedFirst(prior: r))
            #expect(rule.choose(prior: r, favoured: sure(1, 0.99)) == .base)
        }
    }

    @Test func aSureRouterAndASureTunedStreamSkipTheBase() {
        #expect(rule.choose(prior: 0.95, favoured: sure(1, 0.7)) == .tuned)
        // Either doubt asks for the base's head.
        #expect(rule.choose(prior: 0.95, favoured: sure(1, 0.5)) == nil)
        #expect(rule.choose(prior: 0.8, favoured: sure(1, 0.99)) == nil)
    }

    @Test func withBothHeadsAgreementKeepsTunedAndDisagreementDefersToASureBaseOrMixes() {
        #expect(rule.choose(prior: 0.7, tuned: sure(4, 0.4), base: sure(4, 0.9)) == .tuned)
        #expect(rule.choose(prior: 0.7, tuned: sure(4, 0.4), base: sure(5, 0.9)) == .base)
        #expect(rule.choose(prior: 0.7, tuned: sure(4, 0.4), base: sure(5, 0.6)) == .mix(0.5))
        #expect(rule.choose(prior: 0.95, tuned: sure(4, 0.9), base: sure(5, 0.99)) == .tuned)
        var pure = rule
        pure.disagreementMix = 0
        #expect(pure.choose(prior: 0.7, tuned: sure(4, 0.4), base: sure(5, 0.6)) == .tuned)
        pure.disagreementMix = 1
        #expect(pure.choose(prior: 0.7, tuned: sure(4, 0.4), base: sure(5, 0.6)) == .base)
    }

    @Test func parsesAsTheDefaultGate() throws {
        for spec in ["guarded", "on"] {
            guard case .guarded(let g)? = try InterweaveGate.parse(spec) else { Issue.record("\(spec) is not the guarded gate"); continue }
            #expect(g == .selected)
        }
        guard case .guarded(let g)? = try InterweaveGate.parse("guarded:0.9/0.5/0.8/0.25") else { Issue.record("guarded:… did not parse"); return }
        #expect(g == GuardedGate(routerSure: 0.9, tunedSure: 0.5, baseSure: 0.8, disagreementMix: 0.25))
        for bad in ["guarded:0.9/0.5/0.8", "guarded:0.9/x/0.8/0.2", "guarded:0.9/0.5/0.8/1.5", "guarded:0.9,0.5,0.8,0"] {
            #expect(throws: BraidError.self) { try InterweaveGate.parse(bad) }
        }
        #expect(try InterweaveGate.parse("guarded")?.needsPrior == true)
        #expect(try InterweaveGate.parse("fixed:0.5")?.needsPrior == false)
    }

    /// A tiny model, a route to its first vector, a prompt, the tokens fed after it, and the
    /// logits of the base and the tuned stream alone at every step.
    func streams() throws -> (LlamaModel, Route, [Int32], [Int32], [[Float]], [[Float]]) {
        let (model, vectors) = try InterweaveTests().tiny()
        let route = Route([(vectors[0], 1)])
        let prompt: [Int32] = [3, 17, 42, 8], steps: [Int32] = [11, 64, 2, 90]
        let t = InterweaveTests()
        let base = try t.run(StreamDecoder(model: model, gate: nil), route: .base, prompt: prompt, steps: steps)
        let tuned = try t.run(StreamDecoder(model: model, gate: nil), route: route, prompt: prompt, steps: steps)
        return (model, route, prompt, steps, base, tuned)
    }

    /// Per step and per prior, the decoder's logits are the tuned stream's, the base's or the
    /// fixed mix's — whichever the rule picks from the two streams' own logits — alone and batched.
    @Test func decoderWritesWhatTheRuleChose() throws {
        let (model, route, prompt, steps, base, tuned) = try streams()
        let t = InterweaveTests()
        // Thresholds at the tiny model's own confidences, so every branch is taken somewhere.
        let tops = tuned.map { $0.withUnsafeBufferPointer { StreamConfidence(logits: $0).top } }.sorted()
        let baseTops = base.map { $0.withUnsafeBufferPointer { StreamConfidence(logits: $0).top } }.sorted()
        let gate = GuardedGate(routerSure: 0.9, tunedSure: tops[tops.count / 2], baseSure: baseTops[baseTops.count / 2], disagreementMix: 0.5)
        let mix = try t.run(StreamDecoder(model: model, gate: .fixed(0.5, space: .hidden)), route: route, prompt: prompt, steps: steps)
        let priors: [Float] = [0.2, 0.7, 0.95]
        let decoder = StreamDecoder(model: model, gate: .guarded(gate))
        let alone = try priors.map { p -> [[Float]] in
            let s = decoder.makeSequence(capacity: 32, route: route, prior: p)
            var out = [Array(try decoder.prefill(s, prompt))]
            for k in steps {
                try decoder.step([s], [k])
                out.append(Array(decoder.logits(0)))
            }
            return out
        }
        let seqs = priors.map { decoder.makeSequence(capacity: 32, route: route, prior: $0) }
        var batched = try seqs.map { [Array(try decoder.prefill($0, prompt))] }
        for k in steps {
            try decoder.step(seqs, [Int32](repeating: k, count: seqs.count))
            for i in seqs.indices { batched[i].append(Array(decoder.logits(i))) }
        }
        var chosen = Set<String>()
        for (i, p) in priors.enumerated() {
            for k in 0...steps.count {
                let ct = tuned[k].withUnsafeBufferPointer { StreamConfidence(logits: $0) }
                let cb = base[k].withUnsafeBufferPointer { StreamConfidence(logits: $0) }
                let choice = gate.choose(prior: p, favoured: gate.tunedFirst(prior: p) ? ct : cb) ?? gate.choose(prior: p, tuned: ct, base: cb)
                let expected: [Float]
                switch choice {
                case .tuned: expected = tuned[k]; chosen.insert("tuned")
                case .base: expected = base[k]; chosen.insert("base")
                case .mix: expected = mix[k]; chosen.insert("mix")
                }
                // One sequence alone runs the same kernels as the references: equal exactly; batched up to summation order.
                #expect(alone[i][k] == expected, "prior \(p), step \(k)")
                #expect(zip(batched[i][k], expected).allSatisfy { abs($0 - $1) < 1e-3 }, "batched, prior \(p), step \(k)")
            }
        }
        #expect(chosen.count >= 2)
    }

    /// The default rule is decided by the router alone, so the decoder runs one stream: the
    /// tuned one at r ≥ ½, the base's below; its logits are then exactly that stream's, and no
    /// sequence carries a base cache.
    @Test func defaultRuleRunsOneStream() throws {
        #expect(GuardedGate.selected.decidesByRouterAlone)
        #expect(!GuardedGate(routerSure: 0.5, tunedSure: 0.99, baseSure: 1.01, disagreementMix: 0).decidesByRouterAlone)
        let (model, route, prompt, steps, base, tuned) = try streams()
        let decoder = StreamDecoder(model: model, gate: .guarded(.selected))
        #expect(!decoder.twoStreams && decoder.maxSequences == model.maxBatch)
        for (prior, expected) in [(Float(0.2), base), (0.7, tuned)] {
            let effective = decoder.route(for: route, prior: prior)
            #expect(effective.isBase == (prior < 0.5))
            let s = decoder.makeSequence(capacity: 32, route: effective, prior: prior)
            #expect(s.baseCache == nil)
            var out = [Array(try decoder.prefill(s, prompt))]
            for k in steps {
                try decoder.step([s], [k])
                out.append(Array(decoder.logits(0)))
            }
            #expect(out == expected, "prior \(prior)")
        }
    }
}
