import Foundation
import Testing
import Braid

/// PEFT LoRA adapters on a tiny random Llama, against transformers + peft (fixtures made by
/// scripts/reference/tiny_lora.py: the base GGUF from llama.cpp's convert_hf_to_gguf.py, two
/// adapters from the real peft library, and the logits at every position of two prompts).
struct LoRATests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/lora").path

    struct Reference: Decodable {
        let prompts: [String]
        let token_ids: [[Int32]]
        let logits: [String: [[[Float]]]]
    }

    static let reference: Reference = {
        let data = FileManager.default.contents(atPath: "\(dir)/reference.json")!
        return try! JSONDecoder().decode(Reference.self, from: data)
    }()

    func base() throws -> LlamaModel { try LlamaModel(path: "\(Self.dir)/tiny-llama.f32.gguf", threads: 2) }

    /// Logits at every position of each reference prompt.
    func logits(_ model: LlamaModel, _ route: Route) throws -> [[[Float]]] {
        try Self.reference.token_ids.map { ids in
            let cache = model.makeCache(capacity: 64)
            return try ids.map { Array(try model.decode($0, cache: cache, route: route)) }
        }
    }

    /// rms of the difference over every position, and whether the top-1 tokens agree wherever
    /// the reference's margin is at least 0.5.
    func compare(_ got: [[[Float]]], _ want: [[[Float]]]) -> (rms: Float, topOneAgrees: Bool, checked: Int) {
        var sum: Float = 0, count = 0, agrees = true, checked = 0
        for (g, w) in zip(got.joined(), want.joined()) {
            for (a, b) in zip(g, w) { sum += (a - b) * (a - b) }
            count += g.count
            let order = w.indices.sorted { w[$0] > w[$1] }
            if w[order[0]] - w[order[1]] >= 0.5 {
                checked += 1
                if g.indices.max(by: { g[$0] < g[$1] }) != order[0] { agrees = false }
            }
        }
        return ((sum / Float(count)).squareRoot(), agrees, checked)
    }

    @Test func baseMatchesTransformers() throws {
        let r = compare(try logits(try base(), .base), Self.reference.logits["base"]!)
        #expect(r.rms < 1e-3 && r.topOneAgrees && r.checked >= 10, "\(r)")
    }

    /// `--task DIR`: the adapter served as its two factors equals transformers + peft (float
    /// weights, float activations for the factors: only summation order differs).
    @Test(arguments: ["lora", "rslora"])
    func adapterServedAsFactorsMatchesPeft(adapter: String) throws {
        let model = try base()
        let vector = try LoRAAdapter(directory: "\(Self.dir)/\(adapter)", base: model).taskVector(base: model, baseSHA256: "s")
        #expect(vector.name == adapter)
        #expect(vector.matrices.joined().contains { if case .lowRank = $0 { true } else { false } })
        let want = Self.reference.logits[adapter]!
        let r = compare(try logits(model, Route([(vector, 1)])), want)
        #expect(r.rms < 1e-3 && r.topOneAgrees && r.checked >= 10, "\(r)")
        // The adapter changes the model: the base is far from it.
        #expect(compare(try logits(model, .base), want).rms > 0.3)
    }

    /// `compress --lora`: scale·B·A per matrix. Kept dense in f32 it serves peft's logits; in
    /// 1 bit (the default) it moves the base toward them.
    @Test(arguments: ["lora", "rslora"])
    func compressedAdapterMatchesPeft(adapter: String) throws {
        let model = try base()
        let source = try DeltaSource.lora("\(Self.dir)/\(adapter)", base: model)
        let want = Self.reference.logits[adapter]!
        func served(_ options: CompressionOptions) throws -> [[[Float]]] {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-lora-\(UUID().uuidString).tv.gguf").path
            try Compressor.compress(source, base: model, baseSHA256: "s", task: adapter, description: "", options: options).write(to: path)
            return try logits(model, Route([(try TaskVector(path: path, base: model, baseSHA256: "s"), 1)]))
        }
        var dense = CompressionOptions()
        dense.denseKinds = Set(TaskVector.matrixKinds)
        dense.denseType = .f32
        let exact = compare(try served(dense), want)
        #expect(exact.rms < 1e-3 && exact.topOneAgrees, "\(exact)")
        let oneBit = compare(try served(CompressionOptions()), want).rms
        let untouched = compare(try logits(model, .base), want).rms
        #expect(oneBit < untouched, "1-bit \(oneBit), base \(untouched)")
    }

    /// The q and k updates are put in GGUF's RoPE row order, as the converter put the base's rows.
    @Test func queryUpdateRowsFollowTheConvertersOrder() throws {
        let model = try base()
        let adapter = try LoRAAdapter(directory: "\(Self.dir)/lora", base: model)
        #expect(adapter.rank == 4 && adapter.scale == 2 && !adapter.rsLoRA)
        let rs = try LoRAAdapter(directory: "\(Self.dir)/rslora", base: model)
        #expect(rs.rank == 8 && rs.rsLoRA && abs(rs.scale - 4 / Float(8).squareRoot()) < 1e-6)
        #expect(rs.matrices == ["blk.0.attn_q.weight", "blk.0.attn_v.weight", "blk.0.ffn_down.weight",
                                "blk.1.attn_q.weight", "blk.1.attn_v.weight", "blk.1.ffn_down.weight"])
        let d = adapter.delta("blk.0.attn_q.weight")!, (a, b) = adapter.factors("blk.0.attn_q.weight")!
        // Row 1 of the GGUF-ordered update is row hd/2 = 8 of the HF one (head 0, second half).
        let columns = a.count / 4
        let unpermuted = (0..<columns).map { j in (0..<4).reduce(Float(0)) { $0 + b[1 * 4 + $1] * a[$1 * columns + j] } }
        #expect(zip(unpermuted, d[columns..<2 * columns]).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    /// Adapters braid cannot serve as LoRA, or made for another model, are refused by name.
    @Test func badAdaptersAreRefused() throws {
        let model = try base()
        func variant(_ edit: (inout [String: Any]) -> Void) throws -> String {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("braid-lora-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(Self.dir)/lora/adapter_model.safetensors", toPath: "\(dir)/adapter_model.safetensors")
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(Self.dir)/lora/adapter_config.json"))) as! [String: Any]
            edit(&config)
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: "\(dir)/adapter_config.json"))
            return dir
        }
        func refusal(_ dir: String) -> String { errorText { _ = try LoRAAdapter(directory: dir, base: model) } }
        #expect(refusal(try variant { $0["use_dora"] = true }).hasSuffix("adapter_config.json: a DoRA adapter (use_dora) is not plain LoRA"))
        #expect(refusal(try variant { $0["r"] = 0 }).hasSuffix("adapter_config.json: r must be an integer in 1…4096"))
        #expect(refusal(try variant { $0["peft_type"] = "IA3" }).hasSuffix("adapter_config.json: peft_type IA3; braid reads LoRA adapters"))
        #expect(refusal(try variant { $0["r"] = 8 }).hasSuffix("adapter_model.safetensors: blk.0.attn_k.weight has factors [4, 64] and [32, 4]; this base with r = 8 needs [8, 64] and [32, 8] (an adapter for another model?)"))
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("braid-lora-none-\(UUID().uuidString)").path
        #expect(refusal(missing) == "file not found: \(missing)/adapter_config.json")
    }
}
