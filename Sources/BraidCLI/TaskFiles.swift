import ArgumentParser
import Braid
import Foundation

/// File names in a folder, sorted ([] when it cannot be read).
func files(in dir: String, suffix: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(suffix) }.sorted()
}

/// The first TASK.*SUFFIX file of a folder (task vectors, delta GGUFs).
func taskFile(_ dir: String, task: String, suffix: String) throws -> String {
    guard let f = files(in: dir, suffix: suffix).first(where: { $0.hasPrefix(task + ".") }) else {
        throw ValidationError("no \(suffix) file for task \(task) in \(dir)")
    }
    return "\(dir)/\(f)"
}

/// The task vectors of a folder, loaded for the base.
func loadTaskVectors(_ dir: String, model: LlamaModel) throws -> [TaskVector] {
    let names = files(in: dir, suffix: ".tv.gguf")
    guard !names.isEmpty else { throw ValidationError("no task vectors (*.tv.gguf) in \(dir)") }
    let sha = try BaseIdentity.sha256(of: model)
    let vectors = try names.map { try TaskVector(path: "\(dir)/\($0)", base: model, baseSHA256: sha) }
    try TaskVector.requireDistinctNames(vectors)
    return vectors
}
