import Foundation

/// A Hugging Face safetensors file, memory-mapped: an 8-byte little-endian header length, a
/// JSON header {name: {dtype, shape, data_offsets}}, then the raw tensors.
public struct SafetensorsFile: Sendable {
    public struct Entry: Sendable {
        public let dtype: String
        public let shape: [Int]
        public let range: Range<Int>
        public var count: Int { shape.reduce(1, *) }
    }

    public let path: String
    let map: MappedFile
    public let tensors: [String: Entry]
    let dataStart: Int

    public init(path: String) throws {
        map = try MappedFile(path: path)
        self.path = path
        let bytes = map.bytes
        guard bytes.count > 8 else { throw BraidError.invalidArgument("\(path) is too short to be a safetensors file") }
        let headerLength = try CheckedInt.int(bytes.loadUnaligned(as: UInt64.self).littleEndian,
                                              "the header length of \(path)", in: 1...(bytes.count - 8))
        guard let header = try? JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any] else {
            throw BraidError.invalidArgument("\(path) has no valid safetensors header")
        }
        dataStart = 8 + headerLength
        let dataBytes = bytes.count - dataStart
        var tensors: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let t = value as? [String: Any], let dtype = t["dtype"] as? String, let shape = t["shape"] as? [Int],
                  let offsets = t["data_offsets"] as? [Int], offsets.count == 2 else {
                throw BraidError.invalidArgument("\(path): tensor \(name) has a malformed header entry")
            }
            let start = try CheckedInt.int(offsets[0], "the start offset of tensor \(name) in \(path)", in: 0...dataBytes)
            let end = try CheckedInt.int(offsets[1], "the end offset of tensor \(name) in \(path)", in: start...dataBytes)
            guard let size = Self.elementSize[dtype] else {
                throw BraidError.invalidArgument("\(path): tensor \(name) has dtype \(dtype); braid reads F32, F16 and BF16")
            }
            let bytesNeeded = try CheckedInt.product(shape + [size], "the shape of tensor \(name) in \(path)")
            guard bytesNeeded == end - start else {
                throw BraidError.invalidArgument("\(path): tensor \(name) has \(end - start) bytes for shape \(shape)")
            }
            tensors[name] = Entry(dtype: dtype, shape: shape, range: start..<end)
        }
        self.tensors = tensors
    }

    static let elementSize = ["F32": 4, "F16": 2, "BF16": 2]

    /// The tensor as float32, in its stored (row-major) order.
    public func floats(_ e: Entry) -> [Float] {
        let p = map.bytes.baseAddress! + dataStart + e.range.lowerBound
        return (0..<e.count).map { i in
            switch e.dtype {
            case "F32": return p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
            case "F16": return Float(p.loadUnaligned(fromByteOffset: 2 * i, as: Float16.self))
            default: return Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)  // BF16
            }
        }
    }

    public var sha256: String { SHA256.hex(map.bytes) }
}

/// Hugging Face Llama tensor names and layout in GGUF terms (what llama.cpp's converter does):
/// names map one to one, and the rows of q and k are reordered from rotate-half RoPE pairs
/// (i, i + d/2) to adjacent pairs (2i, 2i + 1).
public enum HuggingFaceLlama {
    /// The GGUF name of an HF tensor, or nil when braid has no use for it.
    public static func ggufName(_ hf: String) -> String? {
        let fixed = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"]
        if let n = fixed[hf] { return n }
        let parts = hf.split(separator: ".")
        guard parts.count == 6 || parts.count == 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
        let suffix = parts[3...].joined(separator: ".")
        let names = [
            "input_layernorm.weight": "attn_norm", "post_attention_layernorm.weight": "ffn_norm",
            "self_attn.q_proj.weight": "attn_q", "self_attn.k_proj.weight": "attn_k", "self_attn.v_proj.weight": "attn_v",
            "self_attn.o_proj.weight": "attn_output", "mlp.gate_proj.weight": "ffn_gate", "mlp.up_proj.weight": "ffn_up",
            "mlp.down_proj.weight": "ffn_down",
        ]
        return names[suffix].map { "blk.\(layer).\($0).weight" }
    }

    /// Reorders the rows of an HF q (heads = head count) or k (heads = KV head count) matrix
    /// into GGUF's order: within each head, row h·hd + s·hd/2 + i goes to h·hd + 2i + s.
    public static func permuteRoPERows(_ w: [Float], rows: Int, columns: Int, heads: Int) -> [Float] {
        let hd = rows / heads, half = hd / 2
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads {
            for s in 0..<2 {
                for i in 0..<half {
                    let from = (h * hd + s * half + i) * columns, to = (h * hd + 2 * i + s) * columns
                    for j in 0..<columns { out[to + j] = w[from + j] }
                }
            }
        }
        return out
    }
}
