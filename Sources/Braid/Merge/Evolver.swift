import Foundation

/// Evolver (METHODS.md §6), "with merger" mode, on task-vector coefficients: the population is
/// the N models themselves, individual i a coefficient per (model, group) — group = a layer or
/// a single tensor — starting at its own task vector (e_i). The merged model is
/// λ·Σ_i individual_i, times each model's (filtered) weight per tensor. Each generation visits the individuals in random order, mutates one
/// (current-to-ref v = x_i + F(x_r − x_i), or DE/rand/1 x_i + F(x_r1 − x_r2)), applies binomial
/// crossover (CR, no forced coordinate), re-merges in memory and keeps the change only if the
/// merged model's dev score strictly improves. Selection sees the dev subset only.
public struct Evolver {
    public struct Step: Sendable {
        public var evaluation: Int
        public var score: Double
        public var accepted: Bool
        public var perTask: [(task: String, percent: Double)]
        public var seconds: Double
    }

    public struct Outcome {
        /// [model][group] factors of the best merge (λ applied); a tensor's coefficient is its
        /// group's factor times the model's weight for that tensor.
        public var factors: [[Float]]
        public var groupOf: [String: Int]
        public var weights: (String) -> [Float]

        public func coefficients(_ tensor: String) -> [Float] {
            let g = groupOf[tensor] ?? 0
            return zip(factors, weights(tensor)).map { $0[g] * $1 }
        }
        public var initialScore: Double
        public var bestScore: Double
        public var steps: [Step]
    }

    public let merger: Merger
    public let evaluator: Evaluator
    public let examples: [TaskExample]
    public var options: MergeConfig.Evolver

    public init(merger: Merger, evaluator: Evaluator, examples: [TaskExample]) {
        self.merger = merger
        self.evaluator = evaluator
        self.examples = examples
        options = merger.config.evolver
    }

    /// Group of each changed tensor: its block (non-block tensors join the last) or itself.
    public static func groups(_ tensors: [TensorInfo], granularity: MergeConfig.Evolver.Granularity, blockCount: Int) -> [String: Int] {
        var out: [String: Int] = [:]
        for (i, t) in tensors.enumerated() {
            switch granularity {
            case .matrix: out[t.name] = i
            case .layer:
                let parts = t.name.split(separator: ".")
                out[t.name] = parts.count > 2 && parts[0] == "blk" ? Int(parts[1]) ?? blockCount - 1 : blockCount - 1
            }
        }
        return out
    }

    public func run(log: (Step) -> Void = { _ in }) throws -> Outcome {
        let model = merger.base
        let groupOf = Self.groups(merger.changedTensors, granularity: options.granularity, blockCount: model.config.blockCount)
        let g = (groupOf.values.max() ?? 0) + 1
        let n = merger.sources.count
        let lambda = merger.config.lambda
        // population[i][t * g + group]
        var population: [[Float]] = (0..<n).map { i in
            var x = [Float](repeating: 0, count: n * g)
            for j in 0..<g { x[i * g + j] = 1 }
            return x
        }
        func merged(_ p: [[Float]]) -> [[Float]] {
            (0..<n).map { t in (0..<g).map { j in lambda * p.reduce(0) { $0 + $1[t * g + j] } } }
        }
        let candidate = MergedWeights(base: model)
        let baseWeights = model.weights
        defer { model.weights = baseWeights }
        var steps: [Step] = []
        func score(_ p: [[Float]]) throws -> Step {
            let start = Date()
            let c = merged(p)
            try candidate.fill { t in
                guard let group = groupOf[t.name] else { return nil }
                return try merger.delta(t, coefficients: zip(c, merger.weights(t.name)).map { $0[group] * $1 })
            }
            model.weights = candidate.weights
            let acc = Evaluator.accuracy(try evaluator.run(examples, route: { _ in .base }))
            let mean = acc.map(\.percent).reduce(0, +) / Double(max(acc.count, 1))
            return Step(evaluation: steps.count, score: mean, accepted: false,
                        perTask: acc.map { ($0.task, $0.percent) }, seconds: Date().timeIntervalSince(start))
        }

        var first = try score(population)
        first.accepted = true
        steps.append(first)
        log(first)
        var best = first.score
        var rng = Xoshiro256(seed: options.seed)
        func pick(_ excluding: [Int]) -> Int {
            while true {
                let r = Int(rng.next() % UInt64(n))
                if !excluding.contains(r) { return r }
            }
        }
        for _ in 0..<options.iterations {
            var order = Array(0..<n)
            order.shuffle(using: &rng)
            for i in order {
                let x = population[i]
                var v: [Float]
                switch options.mutation {
                case .currentToRef:
                    let r = pick([i])
                    v = zip(x, population[r]).map { $0 + options.f * ($1 - $0) }
                case .rand1:
                    let r1 = pick([i]), r2 = n > 2 ? pick([i, r1]) : i
                    v = (0..<x.count).map { x[$0] + options.f * (population[r1][$0] - population[r2][$0]) }
                }
                for j in v.indices where rng.nextUnit() >= options.cr { v[j] = x[j] }
                population[i] = v
                var step = try score(population)
                if step.score > best {
                    best = step.score
                    step.accepted = true
                } else {
                    population[i] = x
                }
                steps.append(step)
                log(step)
            }
        }
        return Outcome(factors: merged(population), groupOf: groupOf, weights: merger.weights, initialScore: first.score, bestScore: best, steps: steps)
    }
}
