import Foundation
import Testing
import Braid

/// Router fitting on synthetic features, the threshold fallback, and mixed-route batches.
struct RouterTests {
    /// Three clusters (two tasks and "none") in 16 dimensions.
    func clusters(_ rng: inout Xoshiro256, perClass: Int) -> ([[Float]], [Int]) {
        let centers: [[Float]] = (0..<3).map { c in (0..<16).map { j in j % 3 == c ? 3 : 0 } }
        var f: [[Float]] = [], l: [Int] = []
        for c in 0..<3 {
            for _ in 0..<perClass {
                f.append(centers[c].map { $0 + (rng.nextUnit() * 2 - 1) })
                l.append(c)
            }
        }
        return (f, l)
    }

    func tinyVectors(_ n: Int, architecture: String = "llama") throws -> (LlamaModel, [TaskVector]) {
        try TinyModel.baseWithVectors(n, firstSeed: 20, architecture: architecture)
    }

    @Test(arguments: ["linear", "centroid"])
    func fitsAndPredictsSyntheticClusters(classifier: String) throws {
        var rng = Xoshiro256(seed: 3)
        let (train, labels) = clusters(&rng, perClass: 40)
        let (test, testLabels) = clusters(&rng, perClass: 20)
        let (_, vectors) = try tinyVectors(2)
        let router = Router(tasks: vectors, data: RouterFitter.fit(features: train, labels: labels, taskCount: 2, classifier: classifier))
        var right = 0
        for (x, y) in zip(test, testLabels) {
            let p = router.probabilities(x)
            #expect(abs(p.reduce(0, +) - 1) < 1e-4)
            if p.indices.max(by: { p[$0] < p[$1] }) == y { right += 1 }
        }
        #expect(right == test.count)
        let (route, _) = router.route(test[0], mode: .auto)
        #expect(route.terms.count == 1 && route.terms[0].vector === vectors[0])
        let (none, _) = router.route(test[test.count - 1], mode: .auto)
        #expect(none.isBase)
    }

    @Test func autoFallsBackToTheBaseBelowTheThreshold() throws {
        var rng = Xoshiro256(seed: 5)
        let (train, labels) = clusters(&rng, perClass: 30)
        let (_, vectors) = try tinyVectors(2)
        let ambiguous = (0..<16).map { j -> Float in j % 3 == 2 ? 0 : 1.5 }  // halfway between the two tasks
        let sure = Router(tasks: vectors, data: RouterFitter.fit(features: train, labels: labels, taskCount: 2, threshold: 0.0))
        let p = sure.probabilities(ambiguous)
        #expect(max(p[0], p[1]) < 0.99)
        #expect(!sure.route(ambiguous, mode: .auto).route.isBase)
        let strict = Router(tasks: vectors, data: RouterFitter.fit(features: train, labels: labels, taskCount: 2, threshold: 0.99))
        #expect(strict.route(ambiguous, mode: .auto).route.isBase)
        #expect(strict.route(ambiguous, mode: .none).route.isBase)
        let blend = sure.route(ambiguous, mode: .blend, blendK: 2).route
        #expect(blend.terms.count == 2)
    }

    /// The early stage answers alone where it is confident (the full features are never asked
    /// for), and hands ambiguous queries to the full router; its data survive the JSON round trip.
    @Test func earlyStageDecidesConfidentQueriesAlone() throws {
        var rng = Xoshiro256(seed: 7)
        let (train, labels) = clusters(&rng, perClass: 30)
        let (_, vectors) = try tinyVectors(2)
        // The early stage sees the same clusters more noisily (features from fewer blocks).
        let earlyTrain = train.map { $0.map { $0 + (rng.nextUnit() * 2 - 1) } }
        var data = RouterFitter.fit(features: train, labels: labels, taskCount: 2, featureLayers: 10)
        data = RouterFitter.addEarlyStage(to: data, features: earlyTrain, labels: labels, featureLayers: 4, confidence: 0.99)
        data = try data.map { try JSONDecoder().decode(RouterData.self, from: JSONEncoder().encode($0)) }
        let router = Router(tasks: vectors, data: data)
        let clear = (0..<16).map { j -> Float in j % 3 == 0 ? 3 : 0 }  // task 0's centre
        let ambiguous = (0..<16).map { j -> Float in j % 3 == 2 ? 0 : 1.5 }
        var fullAsked = false
        let (p, early) = router.cascade(early: { layers in
            #expect(layers == 4)
            return clear
        }, full: { fullAsked = true; return clear }, fullLayers: 10)
        #expect(early && !fullAsked && p.indices.max { p[$0] < p[$1] } == 0 && p[0] >= 0.99)
        let (q, early2) = router.cascade(early: { _ in ambiguous }, full: { fullAsked = true; return clear }, fullLayers: 10)
        #expect(!early2 && fullAsked)
        #expect(q == router.probabilities(clear))
        // Without an early stage the full router always decides.
        let plain = Router(tasks: vectors, data: RouterFitter.fit(features: train, labels: labels, taskCount: 2, featureLayers: 10))
        #expect(plain.earlyProbabilities(clear) == nil)
        #expect(!plain.cascade(early: { _ in clear }, full: { clear }, fullLayers: 10).1)
    }

    /// `router fit`'s path on the model's own features (mean final-norm hidden state over the
    /// message, raw text as for a model without a chat template): three kinds of text (two
    /// tasks and "none") are told apart on messages it did not fit on, on either architecture.
    @Test(arguments: TinyModel.architectures)
    func routerFitsOnTheModelsOwnFeatures(architecture: String) throws {
        let (base, vectors) = try tinyVectors(2, architecture: architecture)
        let tokenizer = try Tokenizer(tokens: (0..<96).map { String(UnicodeScalar(UInt8(33 + $0))) }, tokenTypes: [],
                                      merges: [], bosID: nil, eosID: 95, addBOS: false)
        let features = QueryFeatures(model: base, tokenizer: tokenizer, template: .raw)
        let alphabets = [Array("abcdefgh"), Array("01234567"), Array("+-*/=<>%")]
        var rng = Xoshiro256(seed: 11)
        func message(_ kind: Int) -> String { String((0..<(6 + Int(rng.next() % 6))).map { _ in alphabets[kind][Int(rng.next() % 8)] }) }
        var train: [[Float]] = [], labels: [Int] = []
        for _ in 0..<20 {
            for kind in 0..<3 {
                train.append(try features.features(message(kind)))
                labels.append(kind)
            }
        }
        let router = Router(tasks: vectors, data: RouterFitter.fit(features: train, labels: labels, taskCount: 2))
        var right = 0, total = 0
        for _ in 0..<10 {
            for kind in 0..<3 {
                let (route, _) = router.route(try features.features(message(kind)), mode: .auto)
                let picked = route.isBase ? 2 : vectors.firstIndex { $0 === route.terms[0].vector }!
                if picked == kind { right += 1 }
                total += 1
            }
        }
        #expect(right * 10 >= total * 9, "\(right) of \(total)")
    }

    /// Four prompts with four different routes decoded together give the same greedy tokens as
    /// each run alone.
    @Test(arguments: TinyModel.architectures)
    func mixedRouteBatchEqualsOneByOne(architecture: String) throws {
        let (base, vectors) = try tinyVectors(3, architecture: architecture)
        let tokenizer = try Tokenizer(tokens: (0..<96).map { String(UnicodeScalar(UInt8(33 + $0))) }, tokenTypes: [],
                                         merges: [], bosID: nil, eosID: 95, addBOS: false)
        let routes = [Route.base, Route([(vectors[0], 1)]), Route([(vectors[1], 1)]), Route([(vectors[2], 0.5), (vectors[0], 0.5)])]
        let requests = routes.enumerated().map { i, r in
            BatchRunner.Request(prompt: (0..<(5 + i)).map { Int32(($0 * 7 + i) % 90) }, route: r)
        }
        let together = try BatchRunner(model: base, tokenizer: tokenizer, batch: 4, maxTokens: 12).run(requests)
        let alone = try requests.map { try BatchRunner(model: base, tokenizer: tokenizer, batch: 1, maxTokens: 12).run([$0])[0] }
        #expect(together.map(\.tokens) == alone.map(\.tokens))
        #expect(Set(together.map(\.tokens)).count > 1)
    }

    /// Prompts sharing a 12-token start (a system prompt): the batch computes it once per route
    /// and copies it, and still answers exactly as a generator running each prompt whole does.
    @Test(arguments: [nil, InterweaveGate.fixed(0.3, space: .hidden)], TinyModel.architectures)
    func sharedPrefixDoesNotChangeAnswers(gate: InterweaveGate?, architecture: String) throws {
        let (base, vectors) = try tinyVectors(2, architecture: architecture)
        let tokenizer = try Tokenizer(tokens: (0..<96).map { String(UnicodeScalar(UInt8(33 + $0))) }, tokenTypes: [],
                                         merges: [], bosID: nil, eosID: 95, addBOS: false)
        let prefix: [Int32] = (0..<12).map { Int32($0 * 5 % 90) }
        let routes = [Route.base, Route([(vectors[0], 1)]), Route([(vectors[1], 1)]), Route([(vectors[0], 1)])]
        let requests = routes.enumerated().map { i, r in
            BatchRunner.Request(prompt: prefix + (0..<(3 + i)).map { Int32(($0 * 11 + i * 3) % 90) }, route: r)
        }
        let together = try BatchRunner(model: base, tokenizer: tokenizer, batch: 3, maxTokens: 10, interweave: gate).run(requests)
        let generator = Generator(model: base, tokenizer: tokenizer, contextLength: 64, interweave: gate)
        let alone = try requests.map { r -> [Int32] in
            generator.reset()
            return try generator.generate(r.prompt, route: r.route, sampling: SamplingParameters(temperature: 0), maxTokens: 10).tokens
        }
        #expect(together.map(\.tokens) == alone)
        #expect(Set(alone).count > 1)
    }
}
