import Foundation

/// Builds a GGUF v3 file: metadata in insertion order, tensors aligned to `alignment`.
public struct GGUFWriter {
    public var alignment: Int = 32
    private var metadata: [(String, GGUFValue)] = []
    private var tensors: [(name: String, shape: [Int], type: GGMLType, data: Data)] = []

    public init() {}

    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.0 == key }) {
            metadata[i].1 = value
        } else {
            metadata.append((key, value))
        }
    }

    /// Adds a tensor whose `data` is already encoded in `type` (shape ne0 first).
    public mutating func addTensor(_ name: String, shape: [Int], type: GGMLType, data: Data) throws {
        let expected = type.rowBytes(shape[0]) * shape.dropFirst().reduce(1, *)
        guard shape[0] % type.blockSize == 0, data.count == expected else {
            throw BraidError.invalidArgument("tensor \(name): \(data.count) bytes do not encode shape \(shape) as \(type.name)")
        }
        tensors.append((name, shape, type, data))
    }

    /// Adds a float32 tensor.
    public mutating func addTensor(_ name: String, shape: [Int], floats: [Float]) throws {
        let data = floats.withUnsafeBufferPointer { Data(buffer: $0) }
        try addTensor(name, shape: shape, type: .f32, data: data)
    }

    public func encoded() -> Data {
        var out = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); out.append(contentsOf: Array(s.utf8)) }
        func value(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): out.append(x)
            case .int8(let x): out.append(UInt8(bitPattern: x))
            case .uint16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .int16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .uint32(let x): u32(x)
            case .int32(let x): u32(UInt32(bitPattern: x))
            case .uint64(let x): u64(x)
            case .int64(let x): u64(UInt64(bitPattern: x))
            case .float32(let x): u32(x.bitPattern)
            case .float64(let x): u64(x.bitPattern)
            case .bool(let b): out.append(b ? 1 : 0)
            case .string(let s): str(s)
            case .array(let t, let a):
                u32(t.rawValue)
                u64(UInt64(a.count))
                for e in a { value(e) }
            }
        }
        func pad() {
            let r = out.count % alignment
            if r != 0 { out.append(contentsOf: [UInt8](repeating: 0, count: alignment - r)) }
        }

        u32(0x4655_4747)
        u32(3)
        u64(UInt64(tensors.count))
        var meta = metadata
        if alignment != 32, !meta.contains(where: { $0.0 == "general.alignment" }) {
            meta.append(("general.alignment", .uint32(UInt32(alignment))))
        }
        u64(UInt64(meta.count))
        for (k, v) in meta {
            str(k)
            u32(v.type.rawValue)
            value(v)
        }
        var offset = 0
        for t in tensors {
            str(t.name)
            u32(UInt32(t.shape.count))
            for d in t.shape { u64(UInt64(d)) }
            u32(t.type.rawValue)
            u64(UInt64(offset))
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        pad()
        for t in tensors {
            out.append(t.data)
            pad()
        }
        return out
    }

    public func write(to path: String) throws {
        try AtomicFile.write(encoded(), to: path)
    }
}
