import Foundation
import Braid

/// Writes a random Llama GGUF small enough for unit tests (mergekit's pico models,
/// mlx's tiny EvalTests model), with quantised matrices like the real base.
enum TinyModel {
    static let config = LlamaConfig(blockCount: 2, embeddingLength: 64, feedForwardLength: 128, headCount: 4,
                                    headCountKV: 2, ropeFreqBase: 10_000, rmsEpsilon: 1e-5, contextLength: 64, vocabularySize: 96)

    static func write(seed: UInt64 = 1, matrixType: GGMLType = .q4_1) throws -> String {
        var rng = Xoshiro256(seed: seed)
        func random(_ n: Int, _ scale: Float) -> [Float] { (0..<n).map { _ in (rng.nextUnit() * 2 - 1) * scale } }
        let c = config
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("llama.block_count", .uint32(UInt32(c.blockCount)))
        w.set("llama.embedding_length", .uint32(UInt32(c.embeddingLength)))
        w.set("llama.feed_forward_length", .uint32(UInt32(c.feedForwardLength)))
        w.set("llama.attention.head_count", .uint32(UInt32(c.headCount)))
        w.set("llama.attention.head_count_kv", .uint32(UInt32(c.headCountKV)))
        w.set("llama.rope.freq_base", .float32(c.ropeFreqBase))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(c.rmsEpsilon))
        w.set("llama.context_length", .uint32(UInt32(c.contextLength)))
        w.set("llama.vocab_size", .uint32(UInt32(c.vocabularySize)))
        func matrix(_ name: String, rows: Int, cols: Int, type: GGMLType) throws {
            let values = random(rows * cols, 1 / Float(cols).squareRoot() * 2)
            try w.addTensor(name, shape: [cols, rows], type: type, data: Data(BlockCodec.encode(type, values)))
        }
        let d = c.embeddingLength
        try matrix("token_embd.weight", rows: c.vocabularySize, cols: d, type: .q8_0)
        try w.addTensor("output_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
        for l in 0..<c.blockCount {
            let p = "blk.\(l)."
            try w.addTensor(p + "attn_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
            try w.addTensor(p + "ffn_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
            try matrix(p + "attn_q.weight", rows: c.queryDim, cols: d, type: matrixType)
            try matrix(p + "attn_k.weight", rows: c.kvDim, cols: d, type: matrixType)
            try matrix(p + "attn_v.weight", rows: c.kvDim, cols: d, type: matrixType)
            try matrix(p + "attn_output.weight", rows: d, cols: c.queryDim, type: matrixType)
            try matrix(p + "ffn_gate.weight", rows: c.feedForwardLength, cols: d, type: matrixType)
            try matrix(p + "ffn_up.weight", rows: c.feedForwardLength, cols: d, type: matrixType)
            try matrix(p + "ffn_down.weight", rows: d, cols: c.feedForwardLength, type: matrixType)
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-tiny-\(UUID().uuidString).gguf").path
        try w.write(to: path)
        return path
    }
}
