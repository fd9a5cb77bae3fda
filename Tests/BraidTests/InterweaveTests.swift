import Foundation
import Testing
import Braid

/// Two-stream decoding and the gates, on tiny random models.
struct InterweaveTests {
    func tiny(_ architecture: String = "llama") throws -> (LlamaModel, [TaskVector]) {
        try TinyModel.baseWithVectors(2, firstSeed: 40, architecture: architecture)
    }

    /// Logits after the prompt and after each of `steps`, for one sequence.
    func run(_ decoder: StreamDecoder, route: Route, prompt: [Int32], steps: [Int32]) throws -> [[Float]] {
        let s = decoder.makeSequence(capacity: 32, route: route)
        var out = [Array(try decoder.prefill(s, prompt))]
        for t in steps {
            try decoder.step([s], [t])
            out.append(Array(decoder.logits(0)))
        }
        return out
    }

    @Test(arguments: TinyModel.architectures)
    func gateOneIsTheBaseAndGateZeroTheTunedModelExactly(architecture: String) throws {
        let (model, vectors) = try tiny(architecture)
        let route = Route([(vectors[0], 1)])
        let prompt: [Int32] = [3, 17, 42, 8, 90, 5], steps: [Int32] = [11, 64, 2, 77]
        let base = try run(StreamDecoder(model: model, gate: nil), route: .base, prompt: prompt, steps: steps)
        let tuned = try run(StreamDecoder(model: model, gate: nil), route: route, prompt: prompt, steps: steps)
        #expect(base != tuned)
        for space in [InterweaveGate.BlendSpace.hidden] {
            #expect(try run(StreamDecoder(model: model, gate: .fixed(1, space: space)), route: route, prompt: prompt, steps: steps) == base)
            #expect(try run(StreamDecoder(model: model, gate: .fixed(0, space: space)), route: route, prompt: prompt, steps: steps) == tuned)
        }
    }

    /// The adaptive gate writes the logits of the stream with the higher prior-weighted top
    /// probability, whether or not it ran the other stream's head, alone or in a batch.
    @Test(arguments: TinyModel.architectures)
    func adaptiveGatePicksTheMoreConfidentStream(architecture: String) throws {
        let (model, vectors) = try tiny(architecture)
        let route = Route([(vectors[0], 1)])
        let prompt: [Int32] = [3, 17, 42, 8], steps: [Int32] = [11, 64, 2]
        let base = try run(StreamDecoder(model: model, gate: nil), route: .base, prompt: prompt, steps: steps)
        let tuned = try run(StreamDecoder(model: model, gate: nil), route: route, prompt: prompt, steps: steps)
        func top(_ x: [Float]) -> Float { let m = x.max()!; return 1 / x.reduce(0) { $0 + expf($1 - m) } }
        let decoder = StreamDecoder(model: model, gate: .adaptive)
        let priors: [Float] = [0, 0.3, 0.5, 0.62, 0.8, 1]
        let seqs = priors.map { decoder.makeSequence(capacity: 32, route: route, prior: $0) }
        var outputs = try seqs.map { [Array(try decoder.prefill($0, prompt))] }
        for t in steps {
            try decoder.step(seqs, [Int32](repeating: t, count: seqs.count))
            for i in seqs.indices { outputs[i].append(Array(decoder.logits(i))) }
        }
        var picked = Set<Bool>()
        for (i, p) in priors.enumerated() {
            let r = min(max(p, 0.05), 0.95)
            for k in 0...steps.count {
                let tunedWins = r * top(tuned[k]) >= (1 - r) * top(base[k])
                picked.insert(tunedWins)
                let expected = tunedWins ? tuned[k] : base[k]
                // Batched steps use the 4-wide kernels: equal up to summation order.
                #expect(zip(outputs[i][k], expected).allSatisfy { abs($0 - $1) < 1e-3 }, "prior \(p), step \(k)")
            }
        }
        #expect(picked.count == 2)
    }

    @Test func twoSequencesInOneStepEqualEachAlone() throws {
        let (model, vectors) = try tiny()
        let decoder = StreamDecoder(model: model, gate: .fixed(0.3, space: .hidden))
        let routes = [Route([(vectors[0], 1)]), Route([(vectors[1], 1)])]
        let prompt: [Int32] = [4, 9, 33], steps: [Int32] = [12, 50]
        let alone = try routes.map { try run(decoder, route: $0, prompt: prompt, steps: steps).last! }
        let seqs = routes.map { decoder.makeSequence(capacity: 32, route: $0) }
        for s in seqs { try decoder.prefill(s, prompt) }
        for t in steps { try decoder.step(seqs, [t, t]) }
        // Four columns use the 4-wide kernel: equal up to float summation order.
        for i in 0..<2 {
            let together = Array(decoder.logits(i))
            #expect(zip(together, alone[i]).allSatisfy { abs($0 - $1) < 1e-3 })
            #expect(together.withUnsafeBufferPointer { Ops.argmax($0) } == alone[i].withUnsafeBufferPointer { Ops.argmax($0) })
        }
    }

    @Test func gateGradientMatchesFiniteDifferences() {
        let d = 6, r = 3, vocab = 11, n = 5
        var rng = Xoshiro256(seed: 7)
        func random(_ count: Int, _ scale: Float) -> [Float] { (0..<count).map { _ in (rng.nextUnit() * 2 - 1) * scale } }
        var gate = LearnedGate(dim: d, rank: r, task: "t", taskVectorSHA256: "x")
        gate.a = random(4 * d * r, 0.5)
        gate.b = random(r * d, 0.5)
        let inputs = random(n * 4 * d, 1.5)
        let targets: [Int32] = (0..<n).map { Int32($0 * 3 % vocab) }
        let head = random(vocab * d, 1)
        let teachers = (0..<n).map { $0 % 2 == 0 }
        for μ: Float in [0, 0.5] {
        func loss(_ g: LearnedGate) -> Double {
            Double(g.lossAndGradient(inputs: inputs, targets: targets, tunedTeaches: teachers, softWeight: μ, head: head, vocab: vocab).loss)
        }
        let (_, ga, gb) = gate.lossAndGradient(inputs: inputs, targets: targets, tunedTeaches: teachers, softWeight: μ, head: head, vocab: vocab)
        let eps: Float = 1e-2
        for (which, analytic) in [(0, ga), (1, gb)] {
            for i in stride(from: 0, to: analytic.count, by: 5) {
                var plus = gate, minus = gate
                if which == 0 { plus.a[i] += eps; minus.a[i] -= eps } else { plus.b[i] += eps; minus.b[i] -= eps }
                let numeric = (loss(plus) - loss(minus)) / Double(2 * eps)
                #expect(abs(numeric - Double(analytic[i])) < 2e-3 + 0.03 * abs(numeric), "μ \(μ), parameter \(which == 0 ? "A" : "B")[\(i)]: \(numeric) vs \(analytic[i])")
            }
        }
        }
    }

    @Test func gateFileLoadsForItsVectorAndIsRefusedForAnother() throws {
        let (model, vectors) = try tiny()
        let d = model.config.embeddingLength
        var gate = LearnedGate(dim: d, rank: 4, task: vectors[0].name, taskVectorSHA256: vectors[0].weightsSHA256, seed: 3)
        gate.b = gate.a.prefix(4 * d).map { $0 * 2 }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-gate-\(UUID().uuidString).gate.gguf").path
        try gate.write(to: path)
        let loaded = try LearnedGate(path: path, for: vectors[0], dim: d)
        #expect(loaded.a == gate.a && loaded.b == gate.b && loaded.rank == 4)
        #expect(errorText { _ = try LearnedGate(path: path, for: vectors[1], dim: d) }.contains(".gate.gguf was trained for another task vector (t0, sha256 "))
        #expect(errorText { _ = try LearnedGate(path: vectors[0].path, for: vectors[0], dim: d) }.hasSuffix(".tv.gguf is not an interweaving gate (general.type = interweave_gate)"))
    }

    @Test(arguments: TinyModel.architectures)
    func trainingTheGateLowersItsLoss(architecture: String) throws {
        let (model, vectors) = try tiny(architecture)
        let inside = GateTrainer.Example(prompt: [5, 6, 7, 8], target: [9, 10, 11, 12, 13], inside: true)
        let other = GateTrainer.Example(prompt: [20, 21, 22], target: [30, 31, 32, 33], inside: false)
        var options = GateTrainer.Options()
        options.epochs = 30
        options.batch = 4
        options.learningRate = 1e-2
        let trainer = GateTrainer(model: model, queryMarker: nil, options: options)
        let rows = try trainer.collect([inside, other], route: Route([(vectors[0], 1)]))
        #expect(rows.targets.count == 9)
        var gate = LearnedGate(dim: model.config.embeddingLength, rank: 4, task: "t0", taskVectorSHA256: vectors[0].weightsSHA256)
        let losses = trainer.train(&gate, rows: rows)
        #expect(losses.last! < losses.first! - 0.05)
        // It learns to lean on the tuned stream inside the task and on the base outside it.
        let mean = rows.meanGate(gate)
        #expect(mean.inside < 0.5 && mean.outside > 0.5, "\(mean)")
    }

    /// The base measured against itself agrees everywhere with zero divergence; a task vector does not.
    @Test(arguments: TinyModel.architectures)
    func agreementWithTheBaseIsMeasuredAlongTheModesOwnAnswer(architecture: String) throws {
        let (model, vectors) = try tiny(architecture)
        let tokenizer = try Tokenizer(tokens: (0..<96).map { String(UnicodeScalar(UInt8(33 + $0))) }, tokenTypes: [],
                                         merges: [], bosID: nil, eosID: 95, addBOS: false)
        var measure = BaseAgreement(model: model, tokenizer: tokenizer)
        measure.maxTokens = 12
        let route = Route([(vectors[0], 1)])
        var base = BaseAgreement.Tally(), tuned = BaseAgreement.Tally()
        for prompt: [Int32] in [[3, 17, 42], [8, 8, 60, 2]] {
            try measure.measure(prompt, route: route, prior: 0.5, decoder: StreamDecoder(model: model, gate: .fixed(1, space: .hidden)), into: &base)
            try measure.measure(prompt, route: route, prior: 0.5, decoder: StreamDecoder(model: model, gate: nil), into: &tuned)
        }
        #expect(base.steps > 0 && base.agreement == 100 && base.meanKL < 1e-9)
        #expect(tuned.steps > 0 && tuned.meanKL > 1e-3)
    }
}
