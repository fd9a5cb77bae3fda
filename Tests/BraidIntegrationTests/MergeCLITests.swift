import Foundation
import Testing
import Braid

/// `braid merge` on the real base: bad configs are refused with a clear message and a non-zero
/// exit; a merge written as one delta GGUF serves as a route.
extension CLITests {
    var deltas: String { Fixtures.shared.appendingPathComponent("models/deltas").path }

    func config(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-merge-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func mergeRefusesUnknownMethodsAndModelsForAnotherBase() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("braid-merge-\(UUID().uuidString).gguf").path
        let unknown = try braid(["merge", "-m", Fixtures.modelPath, "--config",
                                 try config("merge_method: slerp\nmodels:\n  - model: \(deltas)/arith.delta.Q4_0.gguf\n"), "--out", out])
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown merge_method \"slerp\""))
        // A delta whose attention matrix has another shape than the base's.
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("general.type", .string("delta"))
        try w.addTensor("blk.0.attn_q.weight", shape: [64, 64], floats: [Float](repeating: 0, count: 64 * 64))
        let other = out + ".other.gguf"
        try w.write(to: other)
        let mismatch = try braid(["merge", "-m", Fixtures.modelPath, "--config",
                                  try config("merge_method: task_arithmetic\nmodels:\n  - model: \(other)\n"), "--out", out])
        #expect(mismatch.status != 0 && mismatch.stderr.contains("blk.0.attn_q.weight has shape"))
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: Fixtures.shared.appendingPathComponent("models/deltas").path)))
    func mergedDeltaServesAsARoute() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("braid-merge-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let cfg = try config("""
            merge_method: task_arithmetic
            models:
              - model: \(deltas)/sentiment.delta.Q4_0.gguf
              - model: \(deltas)/json.delta.Q4_0.gguf
            parameters: {lambda: 0.3}
            output: {type: delta}
            """)
        let merged = try braid(["merge", "-m", Fixtures.modelPath, "--config", cfg, "--out", out, "-q"])
        #expect(merged.status == 0 && merged.stderr.contains("peak RSS"))
        let r = try braid(["generate", "-m", Fixtures.modelPath, "--task", out, "-n", "4", "-p", "Is 'I loved it' positive or negative?"])
        #expect(r.status == 0 && !r.stdout.isEmpty)
    }
}
