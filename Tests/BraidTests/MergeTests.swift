import Foundation
import Testing
import Braid

/// Merge methods on tiny synthetic matrices and tiny random models (METHODS.md §12.3 anchors).
struct MergeTests {
    func random(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = Xoshiro256(seed: seed)
        return (0..<n).map { _ in (rng.nextUnit() * 2 - 1) * scale }
    }

    @Test func starKeepsTheNuclearNorm() {
        let (rows, columns) = (24, 40)
        var m = random(rows * columns, seed: 3)
        let before = STAR.singularValues(m, rows: rows, columns: columns)
        let rank = STAR.truncate(&m, rows: rows, columns: columns, eta: 40)
        let after = STAR.singularValues(m, rows: rows, columns: columns)
        #expect(rank < rows)
        let nuclearBefore: Float = before.reduce(0, +), nuclearAfter: Float = after.reduce(0, +)
        #expect(abs(nuclearAfter - nuclearBefore) < 1e-3 * nuclearBefore)
        // Only `rank` directions are left.
        #expect(after[rank...].allSatisfy { $0 < 1e-3 * after[0] })
    }

    @Test func starWithEta100ReproducesTheInput() {
        let (rows, columns) = (32, 20)
        let m = random(rows * columns, seed: 5)
        var t = m
        #expect(STAR.truncate(&t, rows: rows, columns: columns, eta: 100) == 20)
        #expect(zip(m, t).allSatisfy { abs($0 - $1) < 1e-4 })
    }

    @Test func starRankIsTheSmallestPrefixReachingEta() {
        #expect(STAR.rank([4, 3, 2, 1], eta: 40) == 1)
        #expect(STAR.rank([4, 3, 2, 1], eta: 41) == 2)
        #expect(STAR.rank([4, 3, 2, 1], eta: 70) == 2)
        #expect(STAR.rank([4, 3, 2, 1], eta: 100) == 4)
    }

    @Test func tiesLeavesEntriesWithoutAnAgreeingVoteAtZero() {
        var ties = TaskArithmetic()
        ties.sparsification = .magnitude(thresholds: nil)
        ties.consensus = true
        ties.normalize = true
        // density 0.5 keeps the two largest |τ| of each: τ1 → [1, 0, 0.5, 0], τ2 → [-0.5, 0, 0.6, 0]
        var deltas: [[Float]?] = [[1, -0.01, 0.5, 0.02], [-0.5, 0.01, 0.6, -0.03]]
        let merged = ties.merge(&deltas, weights: [1, 1], densities: [0.5, 0.5], tensor: "t")!
        #expect(merged == [1, 0, 0.55, 0])
        // Two models that disagree: the elected sign's side alone is averaged.
        var split: [[Float]?] = [[2, -1], [-1, 3]]
        #expect(ties.merge(&split, weights: [1, 1], densities: [1, 1], tensor: "t")! == [2, 3])
    }

    @Test func wholeModelThresholdIsTheExactKthLargest() {
        let a = random(5000, seed: 7), b = random(3000, seed: 8, scale: 0.1)
        var select = Sparsify.MagnitudeSelect()
        a.withUnsafeBufferPointer { select.count($0) }
        b.withUnsafeBufferPointer { select.count($0) }
        let keep = 1600
        let refine = select.chooseBucket(keep: keep)
        #expect(refine)
        a.withUnsafeBufferPointer { select.refine($0) }
        b.withUnsafeBufferPointer { select.refine($0) }
        let sorted = (a + b).map(abs).sorted(by: >)
        #expect(select.threshold(keep: keep) == sorted[keep - 1])
    }

    @Test func dareWithNoDropIsTheIdentity() {
        var dare = TaskArithmetic()
        dare.sparsification = .random(seed: 1)
        dare.rescale = true
        let tau = random(300, seed: 11)
        var deltas: [[Float]?] = [tau]
        #expect(dare.merge(&deltas, weights: [1], densities: [1], tensor: "t")! == tau)
    }

    @Test func dareIsUnbiasedInExpectation() {
        let tau = random(64, seed: 12).map { $0 + ($0 < 0 ? -0.5 : 0.5) }  // |τ| ≥ 0.5
        let trials = 4000
        var sum = [Double](repeating: 0, count: tau.count)
        for s in 0..<trials {
            var v = tau
            v.withUnsafeMutableBufferPointer { Sparsify.dropRandom($0, density: 0.3, rescale: true, seed: UInt64(s)) }
            for i in v.indices { sum[i] += Double(v[i]) }
        }
        let relative = tau.indices.map { abs(sum[$0] / Double(trials) - Double(tau[$0])) / abs(Double(tau[$0])) }
        #expect(relative.reduce(0, +) / Double(relative.count) < 0.05)
        #expect(relative.max()! < 0.2)
    }

    @Test func aimWithOmegaOneReturnsTheMergedWeights() {
        let activity: [[[Float]]] = [[random(8, seed: 1).map(abs), random(8, seed: 2).map(abs), random(8, seed: 3).map(abs), random(16, seed: 4).map(abs)]]
        let merged = random(4 * 8, seed: 9)
        var d = merged
        AIM.apply(&d, rows: 4, columns: 8, relaxation: AIM(activity: activity, omega: 1).relaxation(layer: 0, kind: 0))
        #expect(d == merged)
        // ω = 0: the most-activated channel falls back to the base (zero delta), others keep some.
        let rho = AIM(activity: activity, omega: 0).relaxation(layer: 0, kind: 0)
        let top = activity[0][0].indices.max { activity[0][0][$0] < activity[0][0][$1] }!
        d = merged
        AIM.apply(&d, rows: 4, columns: 8, relaxation: rho)
        #expect((0..<4).allSatisfy { d[$0 * 8 + top] == 0 })
        #expect(rho.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    func config(_ method: String, _ models: [String], extra: String = "") -> String {
        "merge_method: \(method)\nmodels:\n" + models.map { "  - model: \($0)\n" }.joined() + extra
    }

    @Test func configsWithErrorsAreRefused() throws {
        func message(_ yaml: String) -> String {
            do {
                _ = try MergeConfig(yaml: yaml)
                return ""
            } catch {
                return "\(error)"
            }
        }
        #expect(message(config("slerp", ["a.gguf"])).contains("unknown merge_method \"slerp\""))
        #expect(message(config("ties", ["a.gguf"], extra: "parameters:\n  lamda: 0.5\n")).contains("unknown key lamda"))
        #expect(message(config("ties", ["a.gguf"], extra: "parameters:\n  density: 1.5\n")).contains("density"))
        #expect(message("merge_method: [ties\n").contains("not valid YAML"))
        #expect(message("models: []\nmerge_method: ties\n").contains("models is empty"))
        let ok = try MergeConfig(yaml: config("ties", ["a.gguf", "b.gguf"], extra: "parameters:\n  density: 0.2\n  trim: model\n"))
        #expect(ok.method == .ties && ok.normalize && !ok.rescale && ok.density(of: 1) == 0.2 && ok.trim == .model)
    }

    @Test func modelsForAnotherBaseAreRefused() throws {
        let base = try LlamaModel(path: try TinyModel.write(seed: 1), threads: 1)
        // A task vector made for another base (sha256), and a missing file.
        let tuned = try TinyModel.write(seed: 9)
        let w = try Compressor.compress(try DeltaSource.fineTunedGGUF(tuned, base: base), base: base, baseSHA256: "another-base",
                                        task: "tiny", description: "", options: CompressionOptions())
        let tv = FileManager.default.temporaryDirectory.appendingPathComponent("braid-merge-\(UUID().uuidString).tv.gguf").path
        try w.write(to: tv)
        #expect(errorText { _ = try MergeSource(path: tv, base: base, baseSHA256: "this-base") }.hasSuffix(".tv.gguf was made for another base model (base sha256 another-base…, the loaded base is this-base…)"))
        #expect(throws: BraidError.fileNotFound(path: "/nonexistent.gguf")) { _ = try MergeSource(path: "/nonexistent.gguf", base: base, baseSHA256: "x") }
        // A fine-tune of another shape.
        var g = GGUFWriter()
        let f = try GGUFFile(path: tuned)
        for k in f.metadataKeys { g.set(k, f.metadata[k]!) }
        g.set("llama.embedding_length", .uint32(32))
        for t in f.tensorList { try g.addTensor(t.name, shape: t.shape, type: t.type, data: Data(bytes: f.data(t), count: t.byteCount)) }
        let other = FileManager.default.temporaryDirectory.appendingPathComponent("braid-merge-\(UUID().uuidString).gguf").path
        try g.write(to: other)
        #expect(errorText { _ = try MergeSource(path: other, base: base, baseSHA256: "this-base") }.contains(".gguf does not have the base model's shape"))
    }

    @Test(arguments: TinyModel.architectures)
    func taskArithmeticMergesFineTunesAndServesAsOneDelta(architecture: String) throws {
        let basePath = try TinyModel.write(seed: 1, architecture: architecture)
        let base = try LlamaModel(path: basePath, threads: 2)
        let tuned = [try TinyModel.write(seed: 21, architecture: architecture), try TinyModel.write(seed: 22, architecture: architecture)]
        let cfg = try MergeConfig(yaml: config("task_arithmetic", tuned, extra: "parameters:\n  lambda: 0.5\noutput:\n  type: delta_f16\n"))
        let merger = try Merger(config: cfg, base: base, baseSHA256: "sha")
        let sources = try tuned.map { try DeltaSource.fineTunedGGUF($0, base: base) }
        let t = try base.gguf.tensor("blk.1.ffn_up.weight")
        let expected = zip(try sources[0].delta(t.name)!, try sources[1].delta(t.name)!).map { 0.5 * ($0 + $1) }
        #expect(try merger.delta(t)! == expected)
        // The same merge written as one delta GGUF loads as a task vector (a route).
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("braid-merged-\(UUID().uuidString).gguf").path
        try MergeOutput.write(merger, to: out, name: "tiny-merge", baseSHA256: "sha")
        let tv = try TaskVector(path: out, base: base, baseSHA256: nil)
        #expect(tv.name == "tiny-merge" && tv.matrices.joined().allSatisfy { $0 != nil })
        // In memory, with per-tensor coefficients (Evolver's path): the same weights as the file.
        let weights = MergedWeights(base: base)
        try weights.fill { try merger.delta($0, coefficients: [0.5, 0.5]) }
        var row = [Float](repeating: 0, count: t.shape[0]), baseRow = row
        weights.weights.layers[1].up.decodeRow(3, into: &row)
        base.weights.layers[1].up.decodeRow(3, into: &baseRow)
        let want = (0..<row.count).map { baseRow[$0] + expected[3 * row.count + $0] }
        #expect(zip(row, want).allSatisfy { abs($0 - $1) < 0.02 })
        // Refilling while the model runs on the merged weights still starts from the base.
        let original = base.weights
        base.weights = weights.weights
        try weights.fill { try merger.delta($0, coefficients: [0.5, 0.5]) }
        var again = row
        weights.weights.layers[1].up.decodeRow(3, into: &again)
        base.weights = original
        #expect(again == row)
    }
}
