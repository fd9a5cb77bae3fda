import Foundation
import Testing
import Braid

/// `--bridge` end to end: an untrained bridge to the real Gemma 3 source changes nothing a
/// command writes, and a bridge for another source is refused with a clear error.
extension CLITests {
    /// An untrained bridge between the base and Gemma 3, written beside nothing (its source is
    /// found in models/ by name).
    func untrainedBridge() throws -> String {
        let small = try GGUFFile(path: Fixtures.modelPath), source = try GGUFFile(path: Fixtures.gemma3Path)
        let bridge = Bridge(width: 576, sourceWidth: 640, blocks: [4, 20], heads: 4, attentionWidth: 64, adapterWidth: 16, eps: 1e-5,
                            smallSHA256: try BaseIdentity.sha256(ofFile: small.path, bytes: small.map.bytes, cacheDirectory: nil),
                            sourceSHA256: try BaseIdentity.sha256(ofFile: source.path, bytes: source.map.bytes, cacheDirectory: nil),
                            sourceFile: URL(fileURLWithPath: Fixtures.gemma3Path).lastPathComponent, name: "untrained")
        bridge.sourceTemplate = "Q: {}\nA:"
        let path = try tempDir("bridge").appendingPathComponent("untrained.bridge.gguf").path
        try bridge.write(to: path)
        return path
    }

    @Test(.enabled(if: Fixtures.haveGemma3, "needs models/gemma-3-270m-q4_k_m.gguf (scripts/setup.sh --model gemma3-270m)"))
    func untrainedBridgeChangesNoAnswer() throws {
        let bridge = try untrainedBridge()
        let args = ["generate", "-m", Fixtures.modelPath, "-p", "What is the capital of Japan?", "-n", "12"]
        let plain = try braid(args), bridged = try braid(args + ["--bridge", bridge])
        #expect(plain.status == 0 && bridged.status == 0)
        #expect(bridged.stdout == plain.stdout && !plain.stdout.isEmpty)
        #expect(bridged.stderr.contains("bridge untrained (source read"))

        let input = """
        {"id": "a", "prompt": "Which continent is Peru in?"}
        {"id": "b", "prompt": "What is the currency of Japan?", "source": "What is the currency of Peru?"}
        """
        let dir = try tempDir("bridge-run")
        let file = try temp(Data(input.utf8))
        let runArgs = ["run", "-m", Fixtures.modelPath, "-i", file, "-n", "10", "--batch", "2", "-q"]
        #expect(try braid(runArgs + ["-o", dir.appendingPathComponent("plain.jsonl").path]).status == 0)
        #expect(try braid(runArgs + ["-o", dir.appendingPathComponent("bridged.jsonl").path, "--bridge", bridge]).status == 0)
        let plainRows = try jsonLines(dir.appendingPathComponent("plain.jsonl").path)
        let bridgedRows = try jsonLines(dir.appendingPathComponent("bridged.jsonl").path)
        #expect(plainRows.map { $0["output"] as? String } == bridgedRows.map { $0["output"] as? String })
        #expect(bridgedRows.allSatisfy { ($0["route"] as? [String: Any])?["bridge"] as? String == "untrained" })
    }

    @Test func bridgeForAnotherSourceIsRefused() throws {
        let fixture = Fixtures.root.appendingPathComponent("Tests/BraidIntegrationTests/Fixtures/bridge/random.bridge.gguf").path
        let missing = try braid(["generate", "-m", Fixtures.modelPath, "-p", "Hi", "-n", "2", "--bridge", fixture])
        #expect(missing.status != 0 && missing.stderr.contains("source model none.gguf is in none of"))
        if Fixtures.haveGemma3 {
            let other = try braid(["generate", "-m", Fixtures.modelPath, "-p", "Hi", "-n", "2", "--bridge", fixture, "--bridge-source", Fixtures.gemma3Path])
            #expect(other.status != 0 && other.stderr.contains("trained with another source model"))
        }
        let notABridge = try braid(["generate", "-m", Fixtures.modelPath, "-p", "Hi", "-n", "2", "--bridge", shippedVector("arith")])
        #expect(notABridge.status != 0 && notABridge.stderr.contains("is not a bridge"))
    }
}
