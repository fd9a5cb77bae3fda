/// The weights of one transformer block, by their GGUF names.
public struct LayerWeights: Sendable {
    /// Norm weights, and the q/k/v biases where the file has them (Qwen2).
    public internal(set) var vectors: BlockVectors
    public internal(set) var q: WeightMatrix
    public internal(set) var k: WeightMatrix
    public internal(set) var v: WeightMatrix
    public internal(set) var o: WeightMatrix
    public internal(set) var gate: WeightMatrix
    public internal(set) var up: WeightMatrix
    public internal(set) var down: WeightMatrix

    public init(vectors: BlockVectors, q: WeightMatrix, k: WeightMatrix, v: WeightMatrix, o: WeightMatrix,
                gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix) {
        self.vectors = vectors
        (self.q, self.k, self.v, self.o, self.gate, self.up, self.down) = (q, k, v, o, gate, up, down)
    }

    /// The seven matrices with their GGUF tensor name suffixes.
    public var matrices: [(String, WeightMatrix)] {
        [("attn_q", q), ("attn_k", k), ("attn_v", v), ("attn_output", o), ("ffn_gate", gate), ("ffn_up", up), ("ffn_down", down)]
    }

    /// This block with its seven matrices replaced, in `matrices` order.
    public func replacingMatrices(_ m: [WeightMatrix]) -> LayerWeights {
        precondition(m.count == 7)
        var out = self
        (out.q, out.k, out.v, out.o, out.gate, out.up, out.down) = (m[0], m[1], m[2], m[3], m[4], m[5], m[6])
        return out
    }
}

/// All weights of a Llama model, viewed in place in the mapped GGUF.
public struct LlamaWeights: Sendable {
    public internal(set) var tokenEmbedding: WeightMatrix
    public internal(set) var output: WeightMatrix
    public internal(set) var outputNorm: [Float]
    public internal(set) var layers: [LayerWeights]
    /// True when the LM head is the token embedding (no `output.weight`).
    public let tiedOutput: Bool
    /// Llama 3's RoPE frequency factors (`rope_freqs.weight`): pair i turns by θ_i / factor[i].
    public let ropeFactors: [Float]?
    /// Owns the repacked copies the matrices point into (nil: none).
    private(set) var packedStorage: PackedWeightStorage?

    /// Reads every tensor of `gguf`: one the forward pass would not use (an output bias, an
    /// MLP bias …) is refused rather than left out of the sums.
    public init(gguf: GGUFFile, config c: LlamaConfig) throws {
        var used: Set<String> = []
        func matrix(_ name: String, rows: Int, columns: Int) throws -> WeightMatrix {
            let t = try gguf.tensor(name)
            guard t.shape.count == 2, t.shape[0] == columns, t.shape[1] == rows else {
                throw BraidError.tensorShape(name: name, expected: [columns, rows], found: t.shape)
            }
            used.insert(name)
            return WeightMatrix(type: t.type, rows: rows, columns: columns, data: gguf.data(t))
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] {
            let t = try gguf.tensor(name)
            guard t.elementCount == n, t.shape.count == 1 else {
                throw BraidError.tensorShape(name: name, expected: [n], found: t.shape)
            }
            used.insert(name)
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer { BlockCodec.decode(t.type, gguf.data(t), into: $0.baseAddress!, count: n) }
            return out
        }
        func optionalVector(_ name: String, _ n: Int) throws -> [Float]? {
            gguf.tensors[name] == nil ? nil : try vector(name, n)
        }
        let d = c.embeddingLength
        tokenEmbedding = try matrix("token_embd.weight", rows: c.vocabularySize, columns: d)
        if gguf.tensors["output.weight"] != nil {
            output = try matrix("output.weight", rows: c.vocabularySize, columns: d)
            tiedOutput = false
        } else {
            output = tokenEmbedding
            tiedOutput = true
        }
        outputNorm = try vector("output_norm.weight", d)
        ropeFactors = try optionalVector("rope_freqs.weight", c.ropeDimensions / 2)
        layers = try (0..<c.blockCount).map { i in
            let p = "blk.\(i)."
            var vectors = BlockVectors(attention: try vector(p + "attn_norm.weight", d), ffn: try vector(p + "ffn_norm.weight", d))
            if c.hasQKNorm {
                vectors[.query] = try vector(p + "attn_q_norm.weight", c.headDim)
                vectors[.key] = try vector(p + "attn_k_norm.weight", c.headDim)
            }
            if c.hasPostNorms {
                vectors[.postAttention] = try vector(p + "post_attention_norm.weight", d)
                vectors[.postFFN] = try vector(p + "post_ffw_norm.weight", d)
            }
            vectors[.queryBias] = try optionalVector(p + "attn_q.bias", c.queryDim)
            vectors[.keyBias] = try optionalVector(p + "attn_k.bias", c.kvDim)
            vectors[.valueBias] = try optionalVector(p + "attn_v.bias", c.kvDim)
            return LayerWeights(
                vectors: vectors,
                q: try matrix(p + "attn_q.weight", rows: c.queryDim, columns: d),
                k: try matrix(p + "attn_k.weight", rows: c.kvDim, columns: d),
                v: try matrix(p + "attn_v.weight", rows: c.kvDim, columns: d),
                o: try matrix(p + "attn_output.weight", rows: d, columns: c.queryDim),
                gate: try matrix(p + "ffn_gate.weight", rows: c.feedForwardLength, columns: d),
                up: try matrix(p + "ffn_up.weight", rows: c.feedForwardLength, columns: d),
                down: try matrix(p + "ffn_down.weight", rows: d, columns: c.feedForwardLength))
        }
        let unused = gguf.tensorList.map(\.name).filter { !used.contains($0) }
        guard unused.isEmpty else {
            throw BraidError.invalidArgument("\(gguf.path): braid's \(c.architecture) forward pass has no use for tensor \(unused[0])"
                + (unused.count > 1 ? " (and \(unused.count - 1) more)" : "") + "; running without it would give wrong results")
        }
    }

    /// These weights with every matrix whose encoding has an 8-row layout repacked for the interleaved kernels (the copies
    /// live as long as the returned weights; the originals' pages are released from `map`).
    public func withInterleavedRows(releasing map: MappedFile? = nil) -> LlamaWeights {
        let storage = PackedWeightStorage()
        func packed(_ m: WeightMatrix) -> WeightMatrix { m.withInterleavedRows(storage, releasing: map) }
        var w = self
        // The head repacked too; a tied embedding then looks its rows up in the copy.
        w.output = packed(output)
        if tiedOutput { w.tokenEmbedding = w.output }
        w.layers = layers.map { $0.replacingMatrices($0.matrices.map { packed($0.1) }) }
        w.packedStorage = storage
        return w
    }

    /// Bytes of weights read to decode one token (every matrix once, plus one embedding row).
    public var bytesPerToken: Int {
        layers.reduce(0) { $0 + $1.matrices.reduce(0) { $0 + $1.1.byteCount } } + output.byteCount + tokenEmbedding.rowBytes
    }
}

/// Memory holding repacked weight copies, freed with the last weights that use it.
/// @unchecked Sendable: written once while weights are repacked, read-only afterwards.
public final class PackedWeightStorage: @unchecked Sendable {
    private var buffers: [UnsafeMutableRawPointer] = []

    public init() {}

    func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        buffers.append(p)
        return p
    }

    deinit { for p in buffers { p.deallocate() } }
}
