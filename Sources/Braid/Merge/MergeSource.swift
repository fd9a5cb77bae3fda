import Foundation

/// One model of a merge, whatever file it comes in: a delta GGUF (tuned = base + delta), a
/// full fine-tuned GGUF (delta = tuned − base) or a braid task vector (1-bit or dense). All
/// three answer the same question: the float delta of a base tensor.
/// @unchecked Sendable: immutable after init (read-only maps and decoded arrays); readers share it freely.
public final class MergeSource: @unchecked Sendable {
    public let path: String
    public let name: String
    private let kind: Kind

    private enum Kind {
        case file(DeltaSource)
        case vector(TaskVector)
    }

    /// Opens `path` for `base`; refuses files made for another base (sha256 of a task vector,
    /// tensor names and shapes of any file).
    public init(path: String, base: LlamaModel, baseSHA256: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw BraidError.fileNotFound(path: path) }
        self.path = path
        let type = try GGUFFile(path: path).metadata["general.type"]?.stringValue
        switch type {
        case "task_vector":
            let v = try TaskVector(path: path, base: base, baseSHA256: baseSHA256)
            kind = .vector(v)
            name = v.name
        case "delta":
            let s = try DeltaSource.deltaGGUF(path, base: base)
            kind = .file(s)
            name = s.taskName
        default:
            let s = try DeltaSource.fineTunedGGUF(path, base: base)
            kind = .file(s)
            name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        }
    }

    /// Whether this model names base tensor `tensor` (its delta may still be all zeros).
    public func contains(_ tensor: String) -> Bool {
        switch kind {
        case .file(let s): return s.contains(tensor)
        case .vector(let v):
            if tensor == "output_norm.weight" { return v.outputNorm != nil }
            let parts = tensor.split(separator: ".")
            guard parts.count == 4, parts[0] == "blk", let l = Int(parts[1]), l < v.matrices.count else { return false }
            if let kind = VectorKind(tensorStem: parts[2...].joined(separator: ".")) { return v.vectors[l][kind] != nil }
            guard let k = TaskVector.matrixKinds.firstIndex(of: String(parts[2])) else { return false }
            return v.matrices[l][k] != nil
        }
    }

    /// The float delta of base tensor `tensor` (row-major), nil when this model leaves it alone.
    public func delta(_ tensor: String) throws -> [Float]? {
        switch kind {
        case .file(let s):
            return try s.delta(tensor)
        case .vector(let v):
            if tensor == "output_norm.weight" { return v.outputNorm }
            let parts = tensor.split(separator: ".")
            guard parts.count == 4, parts[0] == "blk", let l = Int(parts[1]), l < v.matrices.count else { return nil }
            if let kind = VectorKind(tensorStem: parts[2...].joined(separator: ".")) { return v.vectors[l][kind] }
            guard let k = TaskVector.matrixKinds.firstIndex(of: String(parts[2])), let m = v.matrices[l][k] else { return nil }
            var out = [Float](repeating: 0, count: m.rows * m.columns)
            out.withUnsafeMutableBufferPointer { p in
                for r in 0..<m.rows { m.decodeRow(r, into: p.baseAddress! + r * m.columns) }
            }
            return out
        }
    }
}
