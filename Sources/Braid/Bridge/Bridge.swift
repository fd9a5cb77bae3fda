import COpenBLAS
import Foundation

/// LLM Modules (METHODS.md §7): trained cross-attention layers through which the small model
/// reads a larger frozen model (the source) over the user's message. The source's final-norm
/// hidden states are projected to the small model's width; at chosen blocks an Enhanced
/// Cross-Attention layer (pre-norms, multi-head attention from the small model's residual stream
/// to the projected states, an adapter, a sigmoid gate) adds γ ⊙ A into the residual stream at
/// the block's input. The output projection and the adapter's last layer start at zero, so an
/// untrained bridge leaves the small model exactly as it was.
///
/// braid's choices against the paper: the small model is the pre-trained base with its own
/// tokenizer, embeddings and head (not a new decoder on the source's vocabulary — that would need
/// the small model retrained from scratch, and a bridge that adds into the base's residual stream
/// is one more route the runtime serves beside the base and its task vectors); the bridge is added
/// into several blocks instead of replacing the input embeddings; it writes only positions from
/// the user's turn on (the system prompt's keys and values stay the base's and are shared); and
/// the source sees only the user's message, never the answer, so the label leak METHODS.md
/// describes cannot happen.
/// @unchecked Sendable: read-only after loading.
public final class Bridge: @unchecked Sendable {
    public static let fileType = "braid_bridge"
    public static let formatVersion = 1

    /// One Enhanced Cross-Attention layer; matrices row-major, out × in.
    public struct Layer: Sendable {
        /// The block whose input it adds to.
        public let block: Int
        public var queryNorm: [Float]     // d
        public var memoryNorm: [Float]    // d
        public var query: [Float]         // a × d
        public var key: [Float]           // a × d
        public var value: [Float]         // a × d
        public var output: [Float]        // d × a
        public var down: [Float]          // r × d (adapter)
        public var downBias: [Float]      // r
        public var up: [Float]            // d × r
        public var upBias: [Float]        // d
        public var gate: [Float]          // d × 2d, input [h; A]
        public var gateBias: [Float]      // d
    }

    /// The small model's width, the source's, the attention's, its heads, the adapter's width.
    public let width: Int, sourceWidth: Int, attentionWidth: Int, heads: Int, adapterWidth: Int
    public let eps: Float
    public var projection: [Float]        // d × ds
    public var projectionBias: [Float]    // d
    public var layers: [Layer]
    /// sha256 of the small model's and the source model's GGUF files.
    public let smallSHA256: String
    public let sourceSHA256: String
    /// The source model's file name (looked up beside the bridge, then in models/).
    public let sourceFile: String
    /// The text the source reads, with `{}` standing for the user's message: a pretrained
    /// source needs a completion frame ("Q: …\nA:") to hold an answer at its last position.
    public var sourceTemplate = "{}"
    public let name: String

    /// An untrained bridge: random attention and gate, zero output projection and adapter output
    /// (`seed` nil: every weight zero, for a loader to fill).
    public init(width d: Int, sourceWidth ds: Int, blocks: [Int], heads: Int, attentionWidth a: Int, adapterWidth r: Int,
                eps: Float, smallSHA256: String, sourceSHA256: String, sourceFile: String, name: String = "bridge", seed: UInt64? = 1) {
        width = d
        sourceWidth = ds
        attentionWidth = a
        self.heads = heads
        adapterWidth = r
        self.eps = eps
        self.smallSHA256 = smallSHA256
        self.sourceSHA256 = sourceSHA256
        self.sourceFile = sourceFile
        self.name = name
        var rng = Xoshiro256(seed: seed ?? 0)
        func random(_ count: Int, fanIn: Int) -> [Float] {
            guard seed != nil else { return [Float](repeating: 0, count: count) }
            let scale = 1 / Float(fanIn).squareRoot()
            return (0..<count).map { _ in (Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1) * scale }
        }
        projection = random(d * ds, fanIn: ds)
        projectionBias = [Float](repeating: 0, count: d)
        layers = blocks.map { b in
            Layer(block: b, queryNorm: [Float](repeating: 1, count: d), memoryNorm: [Float](repeating: 1, count: d),
                  query: random(a * d, fanIn: d), key: random(a * d, fanIn: d), value: random(a * d, fanIn: d),
                  output: [Float](repeating: 0, count: d * a), down: random(r * d, fanIn: d), downBias: [Float](repeating: 0, count: r),
                  up: [Float](repeating: 0, count: d * r), upBias: [Float](repeating: 0, count: d),
                  gate: random(d * 2 * d, fanIn: 2 * d), gateBias: [Float](repeating: 0, count: d))
        }
    }

    /// What the source reads for `message`.
    public func sourceText(for message: String) -> String {
        sourceTemplate.replacingOccurrences(of: "{}", with: message)
    }

    /// Whether some layer adds to block `l`'s input.
    public func layer(atBlock l: Int) -> Int? { layers.firstIndex { $0.block == l } }

    /// The per-request memory: the source's states projected, normed and turned into each layer's
    /// keys and values once (decoding then reads only these). `states`: count × sourceWidth;
    /// `from`: the first position of the small model's sequence that reads them.
    public func memory(states: [Float], count: Int, from: Int) throws -> BridgeMemory {
        guard count > 0, states.count == count * sourceWidth else {
            throw BraidError.invalidArgument("bridge \(name): \(states.count) source values are not \(count) states of width \(sourceWidth)")
        }
        let d = width, a = attentionWidth
        var projected = [Float](repeating: 0, count: count * d)
        for s in 0..<count { projected.replaceSubrange((s * d)..<((s + 1) * d), with: projectionBias) }
        Self.gemm(count, d, sourceWidth, states, projection, &projected, accumulate: true)
        var keys: [[Float]] = [], values: [[Float]] = []
        var normed = [Float](repeating: 0, count: count * d)
        for layer in layers {
            for s in 0..<count {
                projected.withUnsafeBufferPointer { p in
                    normed.withUnsafeMutableBufferPointer { o in
                        Ops.rmsNorm(p.baseAddress! + s * d, weight: layer.memoryNorm, eps: eps, into: o.baseAddress! + s * d, count: d)
                    }
                }
            }
            var k = [Float](repeating: 0, count: count * a), v = [Float](repeating: 0, count: count * a)
            Self.gemm(count, a, d, normed, layer.key, &k)
            Self.gemm(count, a, d, normed, layer.value, &v)
            keys.append(k)
            values.append(v)
        }
        return BridgeMemory(bridge: self, count: count, from: from, keys: keys, values: values)
    }

    /// Adds layer `i`'s output into the residual columns `x[c·d ..< (c+1)·d]` for c in `columns`,
    /// all reading `memory`.
    func add(layer i: Int, memory: BridgeMemory, x: UnsafeMutablePointer<Float>, columns: [Int]) {
        let n = columns.count, d = width, a = attentionWidth, r = adapterWidth
        let L = layers[i], S = memory.count, hd = a / heads
        var h = [Float](repeating: 0, count: n * d)
        h.withUnsafeMutableBufferPointer { hp in
            for (j, c) in columns.enumerated() {
                Ops.rmsNorm(x + c * d, weight: L.queryNorm, eps: eps, into: hp.baseAddress! + j * d, count: d)
            }
        }
        var q = [Float](repeating: 0, count: n * a)
        Self.gemm(n, a, d, h, L.query, &q)
        // Attention over every source state (the prompt's, all in the past of every position).
        var attended = [Float](repeating: 0, count: n * a)
        var scores = [Float](repeating: 0, count: S)
        let scale = 1 / Float(hd).squareRoot()
        let keys = memory.keys[i], values = memory.values[i]
        for j in 0..<n {
            for head in 0..<heads {
                let qo = j * a + head * hd
                for s in 0..<S {
                    var dot: Float = 0
                    for e in 0..<hd { dot += q[qo + e] * keys[s * a + head * hd + e] }
                    scores[s] = dot * scale
                }
                scores.withUnsafeMutableBufferPointer { Ops.softmax($0.baseAddress!, count: S) }
                for s in 0..<S {
                    let p = scores[s]
                    for e in 0..<hd { attended[qo + e] += p * values[s * a + head * hd + e] }
                }
            }
        }
        var o = [Float](repeating: 0, count: n * d)
        Self.gemm(n, d, a, attended, L.output, &o)
        // Adapter: A = o + up(gelu(down(o))).
        var u = [Float](repeating: 0, count: n * r)
        for j in 0..<n { for k in 0..<r { u[j * r + k] = L.downBias[k] } }
        Self.gemm(n, r, d, o, L.down, &u, accumulate: true)
        for k in u.indices { u[k] = Self.gelu(u[k]) }
        var adapted = o
        for j in 0..<n { for k in 0..<d { adapted[j * d + k] += L.upBias[k] } }
        Self.gemm(n, d, r, u, L.up, &adapted, accumulate: true)
        // Gate γ = σ(W·[h; A] + b); the residual gets γ ⊙ A.
        var both = [Float](repeating: 0, count: n * 2 * d)
        for j in 0..<n {
            both.replaceSubrange((j * 2 * d)..<(j * 2 * d + d), with: h[(j * d)..<((j + 1) * d)])
            both.replaceSubrange((j * 2 * d + d)..<((j + 1) * 2 * d), with: adapted[(j * d)..<((j + 1) * d)])
        }
        var g = [Float](repeating: 0, count: n * d)
        for j in 0..<n { g.replaceSubrange((j * d)..<((j + 1) * d), with: L.gateBias) }
        Self.gemm(n, d, 2 * d, both, L.gate, &g, accumulate: true)
        for (j, c) in columns.enumerated() {
            for k in 0..<d {
                let gamma = 1 / (1 + expf(-g[j * d + k]))
                x[c * d + k] += gamma * adapted[j * d + k]
            }
        }
    }

    /// tanh-approximated GELU (PyTorch's `gelu(approximate="tanh")`, which training uses).
    @inline(__always)
    static func gelu(_ x: Float) -> Float {
        0.5 * x * (1 + tanhf(0.797_884_56 * (x + 0.044_715 * x * x * x)))
    }

    /// y (n × out) (+)= x (n × in) · Wᵀ, W out × in row-major. A decode step's few columns are
    /// dot products on this thread: OpenBLAS's threads, woken for a one-column product, contend
    /// with the model's pool and made a bridged decode step twice as long.
    static func gemm(_ n: Int, _ out: Int, _ input: Int, _ x: [Float], _ w: [Float], _ y: inout [Float], accumulate: Bool = false) {
        if n <= 4 {
            x.withUnsafeBufferPointer { xp in
                w.withUnsafeBufferPointer { wp in
                    y.withUnsafeMutableBufferPointer { yp in
                        for o in 0..<out {
                            let row = UnsafeRawPointer(wp.baseAddress! + o * input)
                            for j in 0..<n {
                                let col = UnsafeRawPointer(xp.baseAddress! + j * input)
                                var acc = SIMD8<Float>()
                                var i = 0
                                while i + 8 <= input {
                                    acc += row.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
                                        * col.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
                                    i += 8
                                }
                                var sum = acc.sum()
                                while i < input { sum += wp[o * input + i] * xp[j * input + i]; i += 1 }
                                yp[j * out + o] = accumulate ? yp[j * out + o] + sum : sum
                            }
                        }
                    }
                }
            }
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(out), Int32(input),
                    1, x, Int32(input), w, Int32(input), accumulate ? 1 : 0, &y, Int32(out))
    }

    /// Parameters, and bytes as loaded (float32).
    public var parameterCount: Int {
        projection.count + projectionBias.count + layers.reduce(0) { sum, l in
            sum + l.queryNorm.count + l.memoryNorm.count + l.query.count + l.key.count + l.value.count + l.output.count
                + l.down.count + l.downBias.count + l.up.count + l.upBias.count + l.gate.count + l.gateBias.count
        }
    }
}
