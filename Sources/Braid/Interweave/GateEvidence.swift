import COpenBLAS
import Foundation

/// What a gate could have known and done at each teacher-forced answer position (issue 18): both
/// streams' confidence, and whether each candidate output — the tuned stream, the base, or a
/// hidden-space mix λ·h_b + (1 − λ)·h_t — puts the target token on top. Greedy decoding writes
/// an answer exactly when every one of its positions does, so a gate rule can be scored on these
/// rows without decoding again (scripts/select-gate.py).
public struct GateEvidence: Sendable {
    public var tuned: StreamConfidence
    public var base: StreamConfidence
    /// Whether the target is the top token of: the tuned stream, the base, then each mix in `blends` order.
    public var hits: [Bool]

    /// Evidence for every row of `rows` (from `GateTrainer.collect`); `head` is the LM head (vocab × d).
    public static func collect(_ rows: GateTrainer.Rows, dim d: Int, blends: [Float], head: UnsafePointer<Float>, vocab: Int) -> [GateEvidence] {
        let w = 4 * d, n = rows.targets.count, chunk = 64
        var out: [GateEvidence] = []
        out.reserveCapacity(n)
        var logits = [Float](repeating: 0, count: chunk * vocab)
        var mixed = [Float](repeating: 0, count: chunk * d)
        for start in stride(from: 0, to: n, by: chunk) {
            let m = min(chunk, n - start)
            // Candidate c's hidden states for the chunk's rows, then its logits.
            func run(_ c: Int) -> [(StreamConfidence, Bool)] {
                for p in 0..<m {
                    let v = (start + p) * w
                    for j in 0..<d {
                        let hb = rows.inputs[v + d + j], ht = rows.inputs[v + 2 * d + j]
                        let l: Float = c == 0 ? 0 : c == 1 ? 1 : blends[c - 2]
                        mixed[p * d + j] = l * hb + (1 - l) * ht
                    }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(vocab), Int32(d),
                            1, mixed, Int32(d), head, Int32(d), 0, &logits, Int32(vocab))
                return (0..<m).map { p in
                    let s = logits.withUnsafeBufferPointer { StreamConfidence(logits: UnsafeBufferPointer(rebasing: $0[(p * vocab)..<((p + 1) * vocab)])) }
                    return (s, s.token == Int(rows.targets[start + p]))
                }
            }
            let tuned = run(0), base = run(1), mixes = blends.indices.map { run($0 + 2) }
            for p in 0..<m {
                out.append(GateEvidence(tuned: tuned[p].0, base: base[p].0, hits: [tuned[p].1, base[p].1] + mixes.map { $0[p].1 }))
            }
        }
        return out
    }
}
