/// Tensor encodings braid reads, with ggml's numbering and block layouts. I8 holds raw bytes
/// (packed sign bits); it is not a weight encoding the matrix kernels multiply.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    /// Raw bytes (braid stores packed sign bits as I8 tensors).
    case i8 = 24
    case bf16 = 30

    /// The block formats read through the generic unpacking kernel (Kernels/Formats): a new
    /// encoding is one file there and one line here.
    var unpackedFormat: (any UnpackedFormat.Type)? {
        switch self {
        case .q5_0: return Q5_0Format.self
        case .q5_1: return Q5_1Format.self
        case .q2_K: return Q2_KFormat.self
        case .q3_K: return Q3_KFormat.self
        case .q4_K: return Q4_KFormat.self
        case .q5_K: return Q5_KFormat.self
        case .q6_K: return Q6_KFormat.self
        case .f32, .f16, .q4_0, .q4_1, .q8_0, .i8, .bf16: return nil
        }
    }

    /// Elements per block.
    public var blockSize: Int {
        if let f = unpackedFormat { return f.blockSize }
        switch self {
        case .f32, .f16, .i8, .bf16: return 1
        default: return 32
        }
    }

    /// Bytes per block.
    public var bytesPerBlock: Int {
        if let f = unpackedFormat { return f.blockBytes }
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .i8: return 1
        case .q4_0: return 18  // fp16 d, 16 bytes of nibbles
        case .q4_1: return 20  // fp16 d, fp16 m, 16 bytes of nibbles
        default: return 34  // q8_0: fp16 d, 32 int8
        }
    }

    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .i8: return "I8"
        default: return String(describing: self).uppercased()
        }
    }

    /// True for encodings whose products use the float activations (no 8-bit blocks).
    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 || self == .i8 }

    /// Bytes of a row of `count` elements (count must be a multiple of the block size).
    public func rowBytes(_ count: Int) -> Int { count / blockSize * bytesPerBlock }
}
