import Foundation
import Braid

/// Writes a random Llama GGUF small enough for unit tests (mergekit's pico models,
/// mlx's tiny EvalTests model), with quantised matrices like the real base.
enum TinyModel {
    static let config = LlamaConfig(blockCount: 2, embeddingLength: 64, feedForwardLength: 128, headCount: 4,
                                    headCountKV: 2, ropeFreqBase: 10_000, rmsEpsilon: 1e-5, contextLength: 64, vocabularySize: 96)

    /// A Gemma 3 of about the same size with everything that sets it apart from Llama: q/k norms
    /// and post-norms, GeGLU, NeoX RoPE, the √d embedding scale, heads of 32 (q is 128 wide for
    /// d = 64), one KV head for four queries, and a 4-token sliding window on two of three blocks.
    static let gemma3Config: LlamaConfig = {
        var c = LlamaConfig(architecture: "gemma3", blockCount: 3, embeddingLength: 64, feedForwardLength: 96, headCount: 4,
                            headCountKV: 1, headDim: 32, ropeFreqBase: 1_000_000, rmsEpsilon: 1e-6, contextLength: 64, vocabularySize: 96)
        c.activation = .geluTanh
        c.ropeNeoX = true
        c.embeddingScale = Float(64).squareRoot()
        c.hasQKNorm = true
        c.hasPostNorms = true
        c.slidingWindow = 4
        c.localLayers = [true, true, false]
        c.ropeFreqBaseLocal = 10_000
        return c
    }()

    /// A Qwen2: NeoX RoPE and q/k/v biases, four query heads to one KV head.
    static let qwen2Config: LlamaConfig = {
        var c = LlamaConfig(architecture: "qwen2", blockCount: 2, embeddingLength: 64, feedForwardLength: 128, headCount: 4,
                            headCountKV: 1, ropeFreqBase: 1_000_000, rmsEpsilon: 1e-6, contextLength: 64, vocabularySize: 96)
        c.ropeNeoX = true
        return c
    }()

    /// The architectures every pipeline test runs on.
    static let architectures = ["llama", "qwen2", "gemma3"]

    static func config(_ architecture: String) -> LlamaConfig {
        ["gemma3": gemma3Config, "qwen2": qwen2Config][architecture] ?? config
    }

    /// With `fineTuneOf`, a fine-tune of the model of that seed: its weights plus 20 % noise drawn
    /// from `seed` (the token embedding left alone, as the shipped fine-tunes froze it).
    static func write(seed: UInt64 = 1, matrixType: GGMLType = .q4_1, architecture: String = "llama", fineTuneOf: UInt64? = nil) throws -> String {
        var rng = Xoshiro256(seed: fineTuneOf ?? seed), noise = Xoshiro256(seed: seed)
        func random(_ n: Int, _ scale: Float, tuned: Bool = true) -> [Float] {
            (0..<n).map { _ in
                let v = (rng.nextUnit() * 2 - 1) * scale
                return fineTuneOf != nil && tuned ? v + 0.2 * (noise.nextUnit() * 2 - 1) * scale : v
            }
        }
        let c = config(architecture)
        let a = c.architecture
        var w = GGUFWriter()
        w.set("general.architecture", .string(a))
        w.set("\(a).block_count", .uint32(UInt32(c.blockCount)))
        w.set("\(a).embedding_length", .uint32(UInt32(c.embeddingLength)))
        w.set("\(a).feed_forward_length", .uint32(UInt32(c.feedForwardLength)))
        w.set("\(a).attention.head_count", .uint32(UInt32(c.headCount)))
        w.set("\(a).attention.head_count_kv", .uint32(UInt32(c.headCountKV)))
        w.set("\(a).rope.freq_base", .float32(c.ropeFreqBase))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(c.rmsEpsilon))
        w.set("\(a).context_length", .uint32(UInt32(c.contextLength)))
        w.set("\(a).vocab_size", .uint32(UInt32(c.vocabularySize)))
        if a == "gemma3" {
            w.set("gemma3.attention.key_length", .uint32(UInt32(c.headDim)))
            w.set("gemma3.attention.value_length", .uint32(UInt32(c.headDim)))
            w.set("gemma3.attention.sliding_window", .uint32(UInt32(c.slidingWindow)))
            w.set("gemma3.attention.sliding_window_pattern", .uint32(3))
            w.set("gemma3.rope.freq_base_swa", .float32(c.ropeFreqBaseLocal))
        }
        func matrix(_ name: String, rows: Int, cols: Int, type: GGMLType, tuned: Bool = true) throws {
            let values = random(rows * cols, 1 / Float(cols).squareRoot() * 2, tuned: tuned)
            try w.addTensor(name, shape: [cols, rows], type: type, data: Data(BlockCodec.encode(type, values)))
        }
        let d = c.embeddingLength
        try matrix("token_embd.weight", rows: c.vocabularySize, cols: d, type: .q8_0, tuned: false)
        try w.addTensor("output_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
        for l in 0..<c.blockCount {
            let p = "blk.\(l)."
            try w.addTensor(p + "attn_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
            try w.addTensor(p + "ffn_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
            if c.hasQKNorm {
                try w.addTensor(p + "attn_q_norm.weight", shape: [c.headDim], floats: random(c.headDim, 0.2).map { 1 + $0 })
                try w.addTensor(p + "attn_k_norm.weight", shape: [c.headDim], floats: random(c.headDim, 0.2).map { 1 + $0 })
            }
            if c.hasPostNorms {
                try w.addTensor(p + "post_attention_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
                try w.addTensor(p + "post_ffw_norm.weight", shape: [d], floats: random(d, 0.2).map { 1 + $0 })
            }
            if a == "qwen2" {
                try w.addTensor(p + "attn_q.bias", shape: [c.queryDim], floats: random(c.queryDim, 0.5))
                try w.addTensor(p + "attn_k.bias", shape: [c.kvDim], floats: random(c.kvDim, 0.5))
                try w.addTensor(p + "attn_v.bias", shape: [c.kvDim], floats: random(c.kvDim, 0.5))
            }
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

    /// A tiny base (seed 1) and `count` task vectors compressed from tiny models of seeds
    /// `firstSeed`, `firstSeed + 1`, … (each another random model: a large "fine-tune").
    static func baseWithVectors(_ count: Int, firstSeed: UInt64, architecture: String = "llama") throws -> (LlamaModel, [TaskVector]) {
        let base = try LlamaModel(path: try write(seed: 1, architecture: architecture), threads: 2)
        let vectors = try (0..<count).map { i -> TaskVector in
            let source = try DeltaSource.fineTunedGGUF(try write(seed: firstSeed + UInt64(i), architecture: architecture), base: base)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-tv\(i)-\(UUID().uuidString).tv.gguf").path
            try Compressor.compress(source, base: base, baseSHA256: "s", task: "t\(i)", description: "", options: CompressionOptions()).write(to: path)
            return try TaskVector(path: path, base: base, baseSHA256: "s")
        }
        return (base, vectors)
    }
}
