/// One tensor of a GGUF file: its name, shape (ne0 first, the contiguous dimension, as in ggml),
/// encoding, and where its bytes lie in the mapped file.
public struct TensorInfo: Sendable {
    public let name: String
    public let shape: [Int]
    public let type: GGMLType
    /// Offset from the start of the file (not of the data section).
    public let fileOffset: Int
    public let byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
    /// Length of a row (the contiguous dimension).
    public var columns: Int { shape[0] }
    /// Number of rows (all other dimensions flattened).
    public var rows: Int { shape.dropFirst().reduce(1, *) }
}
