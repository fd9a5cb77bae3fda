import Foundation
import Braid

/// Paths of the real model and the shared reference data, relative to this checkout.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let modelPath = root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    static let shared = root.deletingLastPathComponent().appendingPathComponent("shared")
    static let reference = shared.appendingPathComponent("reference/llamacpp")

    static let gemma3Path = root.appendingPathComponent("models/gemma-3-270m-q4_k_m.gguf").path
    static var haveGemma3: Bool { FileManager.default.fileExists(atPath: gemma3Path) }

    static var haveModel: Bool { FileManager.default.fileExists(atPath: modelPath) }
    static var haveReference: Bool { haveModel && FileManager.default.fileExists(atPath: reference.appendingPathComponent("reference.json").path) }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: reference.appendingPathComponent(name))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// The 32 KiB word of Tests/BraidTests/Fixtures/long_word_tokens.json and llama-tokenize's
    /// ids for it with `model` (a file name in models/), made by scripts/reference/long_word_tokens.py.
    static func longWord(model: String) throws -> (text: String, ids: [Int]?) {
        struct Document: Decodable {
            struct Model: Decodable { let ids: [Int] }
            let text: String, models: [String: Model]
        }
        let url = root.appendingPathComponent("Tests/BraidTests/Fixtures/long_word_tokens.json")
        let document = try JSONDecoder().decode(Document.self, from: Data(contentsOf: url))
        return (document.text, document.models[model]?.ids)
    }

    /// A model of its own for each test: tests run concurrently, and a model's scratch buffers
    /// belong to one caller at a time. Loading only maps the file.
    static func model() throws -> LlamaModel { try LlamaModel(path: modelPath, threads: 2) }
}
