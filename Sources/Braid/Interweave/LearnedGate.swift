import COpenBLAS
import Foundation

/// IMSM's query-aware gate (METHODS.md §3): g = σ(v·A·B) with v = [q̄_b; h_b; h_t; q̄_t]
/// (query summaries and the current final-norm hidden states of both streams), A ∈ ℝ^{4d×r},
/// B ∈ ℝ^{r×d}, no bias: 5·d·r numbers. Trained for one task vector and refused for any other.
public struct LearnedGate: Sendable {
    public static let fileType = "interweave_gate"
    public static let formatVersion = 1

    public let dim: Int
    public let rank: Int
    /// 4d × r, row-major.
    public var a: [Float]
    /// r × d, row-major.
    public var b: [Float]
    /// The task vector it was trained for: its task name and the sha256 of its weights (`TaskVector.weightsSHA256`).
    public var task: String
    public var taskVectorSHA256: String

    public init(dim: Int, rank: Int, task: String, taskVectorSHA256: String, seed: UInt64 = 1) {
        self.dim = dim
        self.rank = rank
        self.task = task
        self.taskVectorSHA256 = taskVectorSHA256
        // A small and random, B zero: training starts from g = 0.5 everywhere with a live gradient for B.
        var rng = Xoshiro256(seed: seed)
        let scale = 1 / Float(4 * dim).squareRoot()
        a = (0..<(4 * dim * rank)).map { _ in (Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1) * scale }
        b = [Float](repeating: 0, count: rank * dim)
    }

    /// g for one position: `g` receives d values in (0, 1).
    public func gate(queryBase: UnsafePointer<Float>, base: UnsafePointer<Float>, tuned: UnsafePointer<Float>,
                     queryTuned: UnsafePointer<Float>, into g: UnsafeMutablePointer<Float>) {
        let d = dim, r = rank
        var m = [Float](repeating: 0, count: r)
        for (part, x) in [queryBase, base, tuned, queryTuned].enumerated() {
            a.withUnsafeBufferPointer { a in
                for i in 0..<d {
                    let row = a.baseAddress! + (part * d + i) * r
                    let xi = x[i]
                    for k in 0..<r { m[k] += xi * row[k] }
                }
            }
        }
        for j in 0..<d {
            var u: Float = 0
            for k in 0..<r { u += m[k] * b[k * d + j] }
            g[j] = 1 / (1 + expf(-u))
        }
    }

    /// Mean loss of p = softmax(LMHead(g ⊙ h_b + (1 − g) ⊙ h_t)) over `n` positions and its
    /// gradient in A and B, written out by hand (the hidden states and the head are frozen).
    /// The loss is (1 − μ)·cross-entropy to the target token + μ·KL(q ‖ p), q the next-token
    /// distribution of the stream that should lead at that position (`tunedTeaches`: the tuned
    /// one inside the task, the base outside) — the soft term tells the gate which stream to
    /// follow even where both would pick the same token.
    /// `inputs` holds each position's v = [q̄_b; h_b; h_t; q̄_t] (n × 4d); `head` is the LM head (vocab × d).
    public func lossAndGradient(inputs: [Float], targets: [Int32], tunedTeaches: [Bool]? = nil, softWeight μ: Float = 0,
                                head: UnsafePointer<Float>, vocab: Int) -> (loss: Float, gradA: [Float], gradB: [Float]) {
        let d = dim, r = rank, n = targets.count, w = 4 * d
        precondition(inputs.count == n * w)
        var m = [Float](repeating: 0, count: n * r)
        var g = [Float](repeating: 0, count: n * d)
        var h = [Float](repeating: 0, count: n * d)
        var z = [Float](repeating: 0, count: n * vocab)
        gemm(false, false, n, r, w, inputs, a, &m)  // M = V·A
        gemm(false, false, n, d, r, m, b, &g)  // U = M·B
        for p in 0..<n {
            for j in 0..<d {
                let gj = 1 / (1 + expf(-g[p * d + j]))
                g[p * d + j] = gj
                h[p * d + j] = gj * inputs[p * w + d + j] + (1 - gj) * inputs[p * w + 2 * d + j]
            }
        }
        z.withUnsafeMutableBufferPointer { zp in
            h.withUnsafeBufferPointer { hp in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(vocab), Int32(d),
                            1, hp.baseAddress, Int32(d), head, Int32(d), 0, zp.baseAddress, Int32(vocab))
            }
        }
        // The teachers' logits, when the soft term is on.
        var teacher: [Float] = []
        if μ > 0, let tunedTeaches {
            var ht = [Float](repeating: 0, count: n * d)
            for p in 0..<n {
                let from = p * w + (tunedTeaches[p] ? 2 * d : d)
                for j in 0..<d { ht[p * d + j] = inputs[from + j] }
            }
            teacher = [Float](repeating: 0, count: n * vocab)
            teacher.withUnsafeMutableBufferPointer { tp in
                ht.withUnsafeBufferPointer { hp in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(vocab), Int32(d),
                                1, hp.baseAddress, Int32(d), head, Int32(d), 0, tp.baseAddress, Int32(vocab))
                }
            }
        }
        // dZ = (p − (1 − μ)·one-hot − μ·q) / n, in place.
        var loss: Double = 0
        let hard = teacher.isEmpty ? 1 : 1 - μ
        for p in 0..<n {
            let row = Array(z[(p * vocab)..<((p + 1) * vocab)])
            let top = row.max()!
            var sum: Double = 0
            for v in row { sum += Double(expf(v - top)) }
            let logSum = Float(log(sum))
            let t = Int(targets[p])
            loss += Double(hard) * Double(logSum - (row[t] - top))
            for v in 0..<vocab { z[p * vocab + v] = expf(row[v] - top - logSum) / Float(n) }
            z[p * vocab + t] -= hard / Float(n)
            if !teacher.isEmpty {
                let trow = teacher[(p * vocab)..<((p + 1) * vocab)]
                let ttop = trow.max()!
                var tsum: Double = 0
                for v in trow { tsum += Double(expf(v - ttop)) }
                let tlog = Float(log(tsum))
                var kl: Double = 0
                for v in 0..<vocab {
                    let lq = teacher[p * vocab + v] - ttop - tlog
                    let q = expf(lq)
                    kl += Double(q * (lq - (row[v] - top - logSum)))
                    z[p * vocab + v] -= μ * q / Float(n)
                }
                loss += Double(μ) * kl
            }
        }
        var dh = [Float](repeating: 0, count: n * d)
        dh.withUnsafeMutableBufferPointer { dp in
            z.withUnsafeBufferPointer { zp in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(d), Int32(vocab),
                            1, zp.baseAddress, Int32(vocab), head, Int32(d), 0, dp.baseAddress, Int32(d))
            }
        }
        // dU = dH ⊙ (h_b − h_t) ⊙ g(1 − g)
        var du = dh
        for p in 0..<n {
            for j in 0..<d {
                let gj = g[p * d + j]
                du[p * d + j] *= (inputs[p * w + d + j] - inputs[p * w + 2 * d + j]) * gj * (1 - gj)
            }
        }
        var gradB = [Float](repeating: 0, count: r * d)
        var dm = [Float](repeating: 0, count: n * r)
        var gradA = [Float](repeating: 0, count: w * r)
        gemm(true, false, r, d, n, m, du, &gradB)  // dB = Mᵀ·dU
        gemm(false, true, n, r, d, du, b, &dm)  // dM = dU·Bᵀ
        gemm(true, false, w, r, n, inputs, dm, &gradA)  // dA = Vᵀ·dM
        return (Float(loss / Double(n)), gradA, gradB)
    }

    /// c (rows × cols) = op(x) · op(y), row-major, k the inner dimension.
    private func gemm(_ tx: Bool, _ ty: Bool, _ rows: Int, _ cols: Int, _ k: Int, _ x: [Float], _ y: [Float], _ c: inout [Float]) {
        cblas_sgemm(CblasRowMajor, tx ? CblasTrans : CblasNoTrans, ty ? CblasTrans : CblasNoTrans,
                    Int32(rows), Int32(cols), Int32(k), 1, x, Int32(tx ? rows : k), y, Int32(ty ? k : cols), 0, &c, Int32(cols))
    }

    // MARK: file

    /// Writes the gate as a small GGUF (`TASK.gate.gguf` beside the task vector).
    public func write(to path: String, metadata extra: [String: GGUFValue] = [:]) throws {
        var w = GGUFWriter()
        w.set("general.type", .string(Self.fileType))
        w.set("braid.gate.version", .uint32(UInt32(Self.formatVersion)))
        w.set("braid.gate.task", .string(task))
        w.set("braid.gate.task_vector_sha256", .string(taskVectorSHA256))
        w.set("braid.gate.rank", .uint32(UInt32(rank)))
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) { w.set(k, v) }
        try w.addTensor("gate.a", shape: [rank, 4 * dim], floats: a)
        try w.addTensor("gate.b", shape: [dim, rank], floats: b)
        try w.write(to: path)
    }

    /// Loads a gate and checks it belongs to `vector` (the same weights) and to the model's width.
    public init(path: String, for vector: TaskVector, dim: Int) throws {
        try self.init(file: GGUFFile(path: path), for: vector, dim: dim)
    }

    /// The gate in an already parsed GGUF (`file.path` names it).
    public init(file f: GGUFFile, for vector: TaskVector, dim: Int) throws {
        let path = f.path
        guard f.metadata["general.type"]?.stringValue == Self.fileType else {
            throw BraidError.invalidArgument("\(path) is not an interweaving gate (general.type = \(Self.fileType))")
        }
        let version = try f.int("braid.gate.version")
        guard version == Self.formatVersion else {
            throw BraidError.invalidArgument("\(path): gate format version \(version); this braid reads \(Self.formatVersion)")
        }
        task = try f.string("braid.gate.task")
        taskVectorSHA256 = try f.string("braid.gate.task_vector_sha256")
        let sha = vector.weightsSHA256
        guard taskVectorSHA256 == sha else {
            throw BraidError.invalidArgument("\(path) was trained for another task vector (\(task), sha256 \(taskVectorSHA256.prefix(12))…), not \(vector.name) (\(sha.prefix(12))…); retrain it with braid train-gate")
        }
        rank = try f.int("braid.gate.rank")
        self.dim = dim
        func floats(_ name: String, _ shape: [Int]) throws -> [Float] {
            let t = try f.tensor(name)
            guard t.shape == shape, t.type == .f32 else { throw BraidError.tensorShape(name: name, expected: shape, found: t.shape) }
            return Array(UnsafeBufferPointer(start: f.data(t).assumingMemoryBound(to: Float.self), count: t.elementCount))
        }
        a = try floats("gate.a", [rank, 4 * dim])
        b = try floats("gate.b", [dim, rank])
    }
}
