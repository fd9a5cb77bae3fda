import Foundation

/// Where a fine-tune's float deltas come from: a delta GGUF (tuned = base + delta, as in
/// ../shared/models/deltas) or a full fine-tuned GGUF of the same architecture (delta =
/// tuned − base, both decoded to float32).
public struct DeltaSource {
    public let path: String
    let file: GGUFFile
    let subtractBase: Bool
    let base: LlamaModel

    public static func deltaGGUF(_ path: String, base: LlamaModel) throws -> DeltaSource {
        let f = try GGUFFile(path: path)
        guard f.metadata["general.type"]?.stringValue == "delta" else {
            throw BraidError.invalidArgument("\(path) is not a delta GGUF (general.type = delta); use --fine-tuned for a full model")
        }
        return try DeltaSource(path: path, file: f, subtractBase: false, base: base)
    }

    public static func fineTunedGGUF(_ path: String, base: LlamaModel) throws -> DeltaSource {
        let f = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: f)
        guard config == base.config else {
            throw BraidError.invalidArgument("\(path) does not have the base model's shape (\(config) vs \(base.config))")
        }
        return try DeltaSource(path: path, file: f, subtractBase: true, base: base)
    }

    init(path: String, file: GGUFFile, subtractBase: Bool, base: LlamaModel) throws {
        self.path = path
        self.file = file
        self.subtractBase = subtractBase
        self.base = base
        for t in file.tensorList {
            guard let b = base.gguf.tensors[t.name] else {
                throw BraidError.invalidArgument("\(path): tensor \(t.name) is not in the base model")
            }
            guard b.shape == t.shape else { throw BraidError.tensorShape(name: t.name, expected: b.shape, found: t.shape) }
            guard t.type != .i8 else { throw BraidError.ggufUnsupportedTensorType(name: t.name, type: t.type.rawValue) }
        }
    }

    public func contains(_ name: String) -> Bool { file.tensors[name] != nil }

    /// The task the file names (`delta.task`), else its file name.
    public var taskName: String {
        file.metadata["delta.task"]?.stringValue
            ?? URL(fileURLWithPath: path).lastPathComponent.components(separatedBy: ".").first ?? "task"
    }

    /// The float delta of tensor `name` (row-major, ne0 contiguous), nil when the source leaves it alone.
    public func delta(_ name: String) throws -> [Float]? {
        guard let t = file.tensors[name] else { return nil }
        var out = [Float](repeating: 0, count: t.elementCount)
        out.withUnsafeMutableBufferPointer { BlockCodec.decode(t.type, file.data(t), into: $0.baseAddress!, count: t.elementCount) }
        if subtractBase {
            let b = try base.gguf.tensor(name)
            var baseValues = [Float](repeating: 0, count: b.elementCount)
            baseValues.withUnsafeMutableBufferPointer { BlockCodec.decode(b.type, base.gguf.data(b), into: $0.baseAddress!, count: b.elementCount) }
            for i in out.indices { out[i] -= baseValues[i] }
            if out.allSatisfy({ $0 == 0 }) { return nil }
        }
        return out
    }

    /// sha256 of the source file.
    public var sha256: String { SHA256.hex(file.map.bytes) }
}
