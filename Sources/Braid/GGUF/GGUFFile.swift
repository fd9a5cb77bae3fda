import Foundation

/// A memory-mapped GGUF file (versions 2 and 3): its metadata and tensor table, every offset
/// and size checked against the file before it is used.
public final class GGUFFile: Sendable {
    public let path: String
    public let map: MappedFile
    public let version: UInt32
    /// Metadata in file order, and by key.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensors in file order, and by name.
    public let tensorList: [TensorInfo]
    public let tensors: [String: TensorInfo]
    public let alignment: Int
    public let dataOffset: Int

    /// `metadataOnly`: read the header and metadata, not the tensor table (e.g. a tokenizer from a
    /// model whose tensor types braid does not read); `tensorList` is then empty.
    public convenience init(path: String, metadataOnly: Bool = false) throws {
        try self.init(map: MappedFile(path: path), metadataOnly: metadataOnly)
    }

    public init(map: MappedFile, metadataOnly: Bool = false) throws {
        self.map = map
        self.path = map.path
        var r = GGUFReader(bytes: map.bytes, path: map.path)
        guard map.bytes.count >= 4 else { throw BraidError.ggufTruncated(path: path, what: "the header") }
        let magic = try r.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else { throw BraidError.ggufBadMagic(path: path) }  // "GGUF"
        version = try r.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            throw BraidError.ggufUnsupportedVersion(path: path, version: version)
        }
        let tensorCount = try r.readCount("tensor count", minimumBytesEach: 24)
        let kvCount = try r.readCount("metadata count", minimumBytesEach: 12)

        var keys: [String] = []
        var meta: [String: GGUFValue] = [:]
        keys.reserveCapacity(kvCount)
        for _ in 0..<kvCount {
            let key = try r.readString("metadata key")
            let rawType = try r.read(UInt32.self, "type of \(key)")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw BraidError.ggufCorrupt(path: path, what: "metadata \(key) has unknown value type \(rawType)")
            }
            let value = try r.readValue(type, key: key, depth: 0)
            guard meta[key] == nil else {
                throw BraidError.ggufCorrupt(path: path, what: "duplicate metadata key \(key)")
            }
            meta[key] = value
            keys.append(key)
        }
        metadataKeys = keys
        metadata = meta

        var align = 32
        if let a = meta["general.alignment"] {
            // ≥ 8 as well: tensors are read as floats in place, which must be aligned.
            guard let v = a.intValue, v >= 8, v & (v - 1) == 0, v <= 1 << 16 else {
                throw BraidError.ggufCorrupt(path: path, what: "general.alignment must be a power of two from 8 to 65536")
            }
            align = v
        }
        alignment = align
        if metadataOnly {
            dataOffset = r.offset
            tensorList = []
            tensors = [:]
            return
        }

        struct RawTensor { let name: String; let shape: [Int]; let type: GGMLType; let offset: Int }
        var raws: [RawTensor] = []
        raws.reserveCapacity(tensorCount)
        for _ in 0..<tensorCount {
            let name = try r.readString("tensor name")
            let nDims = try r.read(UInt32.self, "dimensions of \(name)")
            guard (1...4).contains(nDims) else {
                throw BraidError.ggufCorrupt(path: path, what: "tensor \(name) has \(nDims) dimensions")
            }
            var shape: [Int] = []
            var elements = 1
            for _ in 0..<nDims {
                let d = try r.read(UInt64.self, "shape of \(name)")
                guard d > 0, d < (1 << 40) else {
                    throw BraidError.ggufCorrupt(path: path, what: "tensor \(name) has dimension \(d)")
                }
                shape.append(Int(d))
                let (m, o) = elements.multipliedReportingOverflow(by: Int(d))
                guard !o, m < (1 << 42) else {
                    throw BraidError.ggufCorrupt(path: path, what: "tensor \(name) is impossibly large")
                }
                elements = m
            }
            let rawType = try r.read(UInt32.self, "type of \(name)")
            guard let type = GGMLType(rawValue: rawType) else {
                throw BraidError.ggufUnsupportedTensorType(name: name, type: rawType)
            }
            guard shape[0] % type.blockSize == 0 else {
                throw BraidError.ggufCorrupt(path: path, what: "tensor \(name): row of \(shape[0]) is not a whole number of \(type.name) blocks")
            }
            let offset = try r.read(UInt64.self, "offset of \(name)")
            guard offset < (1 << 50), Int(offset) % align == 0 else {
                throw BraidError.ggufCorrupt(path: path, what: "tensor \(name) has misaligned offset \(offset)")
            }
            raws.append(RawTensor(name: name, shape: shape, type: type, offset: Int(offset)))
        }
        dataOffset = (r.offset + align - 1) / align * align

        var list: [TensorInfo] = []
        var byName: [String: TensorInfo] = [:]
        for t in raws {
            let bytes = t.type.rowBytes(t.shape[0]) * t.shape.dropFirst().reduce(1, *)
            let start = dataOffset + t.offset
            guard start + bytes <= map.bytes.count else {
                throw BraidError.ggufTruncated(path: path, what: "tensor \(t.name)")
            }
            guard byName[t.name] == nil else {
                throw BraidError.ggufCorrupt(path: path, what: "duplicate tensor \(t.name)")
            }
            let info = TensorInfo(name: t.name, shape: t.shape, type: t.type, fileOffset: start, byteCount: bytes)
            list.append(info)
            byName[t.name] = info
        }
        tensorList = list
        tensors = byName
    }

    /// The bytes of a tensor, inside the mapped file.
    public func data(_ info: TensorInfo) -> UnsafeRawPointer {
        map.bytes.baseAddress! + info.fileOffset
    }

    public func tensor(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else { throw BraidError.missingTensor(name) }
        return t
    }

    // MARK: typed metadata getters

    public func int(_ key: String) throws -> Int {
        guard let v = metadata[key] else { throw BraidError.missingKey(key) }
        guard let i = v.intValue else { throw BraidError.wrongKeyType(key: key, expected: "integer") }
        return i
    }

    public func float(_ key: String) throws -> Double {
        guard let v = metadata[key] else { throw BraidError.missingKey(key) }
        guard let f = v.floatValue else { throw BraidError.wrongKeyType(key: key, expected: "number") }
        return f
    }

    public func string(_ key: String) throws -> String {
        guard let v = metadata[key] else { throw BraidError.missingKey(key) }
        guard let s = v.stringValue else { throw BraidError.wrongKeyType(key: key, expected: "string") }
        return s
    }

    public func stringArray(_ key: String) throws -> [String] {
        guard let v = metadata[key] else { throw BraidError.missingKey(key) }
        guard case .array(.string, let a) = v else {
            throw BraidError.wrongKeyType(key: key, expected: "array of strings")
        }
        return a.map { $0.stringValue! }
    }

    public func floatArray(_ key: String) throws -> [Double] {
        guard let v = metadata[key] else { throw BraidError.missingKey(key) }
        guard case .array(_, let a) = v else { throw BraidError.wrongKeyType(key: key, expected: "array of numbers") }
        return try a.map {
            guard let f = $0.floatValue else { throw BraidError.wrongKeyType(key: key, expected: "array of numbers") }
            return f
        }
    }

    public func intArray(_ key: String) throws -> [Int] {
        guard let v = metadata[key] else { throw BraidError.missingKey(key) }
        guard case .array(_, let a) = v else { throw BraidError.wrongKeyType(key: key, expected: "array of integers") }
        return try a.map {
            guard let i = $0.intValue else { throw BraidError.wrongKeyType(key: key, expected: "array of integers") }
            return i
        }
    }
}

/// A bounds-checked cursor over the header of a GGUF file.
struct GGUFReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset = 0

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        let n = MemoryLayout<T>.size
        guard offset + n <= bytes.count else { throw BraidError.ggufTruncated(path: path, what: what) }
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += n
        return v
    }

    /// A 64-bit count that must be satisfiable by the bytes left in the file.
    mutating func readCount(_ what: String, minimumBytesEach: Int) throws -> Int {
        let n = try read(UInt64.self, what)
        guard n <= UInt64((bytes.count - offset) / max(minimumBytesEach, 1)) else {
            throw BraidError.ggufTruncated(path: path, what: "\(what) \(n)")
        }
        return Int(n)
    }

    mutating func readString(_ what: String) throws -> String {
        let n = try readCount(what, minimumBytesEach: 1)
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]), as: UTF8.self)
        offset += n
        return s
    }

    mutating func readValue(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, key))
        case .int8: return .int8(try read(Int8.self, key))
        case .uint16: return .uint16(try read(UInt16.self, key))
        case .int16: return .int16(try read(Int16.self, key))
        case .uint32: return .uint32(try read(UInt32.self, key))
        case .int32: return .int32(try read(Int32.self, key))
        case .uint64: return .uint64(try read(UInt64.self, key))
        case .int64: return .int64(try read(Int64.self, key))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, key)))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, key)))
        case .bool:
            let b = try read(UInt8.self, key)
            guard b <= 1 else { throw BraidError.ggufCorrupt(path: path, what: "metadata \(key) has bool value \(b)") }
            return .bool(b == 1)
        case .string: return .string(try readString(key))
        case .array:
            guard depth < 8 else { throw BraidError.ggufCorrupt(path: path, what: "metadata \(key) nests arrays too deeply") }
            let rawType = try read(UInt32.self, key)
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw BraidError.ggufCorrupt(path: path, what: "metadata \(key) has unknown array element type \(rawType)")
            }
            let count = try readCount("array \(key)", minimumBytesEach: elementType.scalarSize ?? 8)
            var values: [GGUFValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count {
                values.append(try readValue(elementType, key: key, depth: depth + 1))
            }
            return .array(elementType, values)
        }
    }
}
