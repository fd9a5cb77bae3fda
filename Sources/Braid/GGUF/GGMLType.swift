/// Tensor encodings braid reads, with ggml's numbering and block layouts. I8 holds raw bytes
/// (packed sign bits); it is not a weight encoding the matrix kernels multiply.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q8_0 = 8
    /// Raw bytes (braid stores packed sign bits as I8 tensors).
    case i8 = 24

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .i8: return 1
        case .q4_0, .q4_1, .q8_0: return 32
        }
    }

    /// Bytes per block.
    public var bytesPerBlock: Int {
        switch self {
        case .f32: return 4
        case .f16: return 2
        case .i8: return 1
        case .q4_0: return 18  // fp16 d, 16 bytes of nibbles
        case .q4_1: return 20  // fp16 d, fp16 m, 16 bytes of nibbles
        case .q8_0: return 34  // fp16 d, 32 int8
        }
    }

    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q8_0: return "Q8_0"
        case .i8: return "I8"
        }
    }

    /// Bytes of a row of `count` elements (count must be a multiple of the block size).
    public func rowBytes(_ count: Int) -> Int { count / blockSize * bytesPerBlock }
}
