import Braid
import Foundation

/// The ordinary build's command line: replay files through a target, list the targets, write
/// the generated seeds.
enum Replay {
    static func main(_ args: [String], target: FuzzTarget?, targets: [FuzzTarget]) -> Int32 {
        var paths: [String] = []
        var verbose = false
        var i = 0
        while i < args.count {
            let a = args[i]
            switch a {
            case "--list":
                for t in targets { print("\(t.name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(t.summary)") }
                return 0
            case "--write-seeds":
                guard i + 1 < args.count else { fatal("--write-seeds needs a folder") }
                Seeds.write(to: args[i + 1])
                return 0
            case "-v", "--verbose":
                verbose = true
                FuzzMain.verbose = true
            case "-h", "--help":
                print("""
                usage: \(CommandLine.arguments[0]) --target=NAME FILE_OR_FOLDER...   replay inputs (or BRAID_FUZZ_TARGET=NAME)
                       \(CommandLine.arguments[0]) --list                             the targets
                       \(CommandLine.arguments[0]) --write-seeds FOLDER               the generated seeds, FOLDER/TARGET/FILE
                A libFuzzer build (scripts/fuzz.sh) takes libFuzzer's flags instead.
                """)
                return 0
            default:
                if !a.hasPrefix("--target=") { paths.append(a) }
            }
            i += 1
        }
        guard let target else { fatal("no target") }
        guard !paths.isEmpty else { fatal("nothing to replay: give files or folders") }
        target.prepare()
        var count = 0
        for file in paths.flatMap(files) {
            guard let data = FileManager.default.contents(atPath: file) else { fatal("cannot read \(file)") }
            if verbose { FileHandle.standardError.write(Data("\(target.name): \(file) (\(data.count) bytes)\n".utf8)) }
            data.withUnsafeBytes { target.run($0) }
            count += 1
        }
        print("\(target.name): \(count) inputs replayed, no crash")
        return 0
    }

    /// The regular files at `path` (a file, or every file below a folder, sorted).
    static func files(_ path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { fatal("no such file: \(path)") }
        guard isDirectory.boolValue else { return [path] }
        let all = FileManager.default.enumerator(atPath: path)?.compactMap { $0 as? String } ?? []
        return all.sorted().map { "\(path)/\($0)" }.filter {
            var d: ObjCBool = false
            return FileManager.default.fileExists(atPath: $0, isDirectory: &d) && !d.boolValue
        }
    }
}

/// Seeds made in code (the binary ones: GGUF models, task vectors, a gate, safetensors), each
/// a few KB. The text seeds come from the repository's files (scripts/fuzz-seeds.sh).
enum Seeds {
    static func write(to root: String) {
        func put(_ target: String, _ name: String, _ data: Data) {
            let dir = "\(root)/\(target)"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            do { try data.write(to: URL(fileURLWithPath: "\(dir)/\(name)")) } catch { fatal("writing \(dir)/\(name): \(error)") }
            print("\(dir)/\(name): \(data.count) bytes")
        }
        // A whole model, one block wide enough for the kernels, with a tokenizer in its metadata.
        let small = LlamaConfig(blockCount: 1, embeddingLength: 32, feedForwardLength: 32, headCount: 1, headCountKV: 1,
                                contextLength: 16, vocabularySize: 40)
        put("gguf", "tiny-model.gguf", Fixtures.tinyModel(config: small, seed: 3).encoded())
        var q40 = Fixtures.tinyModel(config: small, seed: 4, matrixType: .q4_0)
        q40.alignment = 64
        put("gguf", "tiny-model-q4_0-align64.gguf", q40.encoded())
        // The real base's metadata (the model is not committed), its vocabulary cut to 100 tokens and merges.
        if let real = try? GGUFFile(path: Fixtures.modelPath) {
            var w = GGUFWriter()
            for k in real.metadataKeys {
                guard var v = real.metadata[k] else { continue }
                if case .array(let t, let a) = v { v = .array(t, Array(a.prefix(100))) }
                w.set(k, v)
            }
            put("gguf", "smollm2-metadata.gguf", w.encoded())
        }
        // Task vectors for the tiny base: 1-bit with router data, half the rows kept, a Q4_0
        // ffn_down, and a plain delta GGUF.
        put("taskvector", "arith-router.tv.gguf", Fixtures.taskVectorFile(task: "arith", tunedSeed: 9).encoded())
        put("taskvector", "rows-half.tv.gguf", Fixtures.taskVectorFile(task: "json", tunedSeed: 10, rowDensity: 0.5, router: false).encoded())
        put("taskvector", "delta.gguf", deltaFile())
        put("gate", "arith.gate.gguf", Fixtures.gateFile())
        // Router data as `braid router fit` stores it in a task vector (braid.router).
        put("router", "centroid-early.json", Data(Fixtures.routerJSON(seed: 9).utf8))
        put("router", "linear.json", Data(Fixtures.routerJSON(seed: 10, classifier: "linear", early: false).utf8))
        put("safetensors", "tiny-hf.safetensors", safetensorsFile())
    }

    /// A delta GGUF (general.type = delta) with two matrices and a norm of the tiny base.
    static func deltaFile() -> Data {
        let c = Fixtures.tinyConfig
        var w = GGUFWriter()
        w.set("general.type", .string("delta"))
        w.set("delta.task", .string("spell"))
        let q = (0..<(c.queryDim * c.embeddingLength)).map { Float($0 % 13) / 400 - 0.015 }
        try! w.addTensor("blk.0.attn_q.weight", shape: [c.embeddingLength, c.queryDim], type: .q8_0, data: Data(BlockCodec.encode(.q8_0, q)))
        let k = (0..<(c.kvDim * c.embeddingLength)).map { Float($0 % 7) / 300 - 0.01 }
        try! w.addTensor("blk.1.attn_k.weight", shape: [c.embeddingLength, c.kvDim], type: .q4_0, data: Data(BlockCodec.encode(.q4_0, k)))
        try! w.addTensor("blk.1.ffn_norm.weight", shape: [c.embeddingLength], floats: (0..<c.embeddingLength).map { Float($0) / 1000 })
        return w.encoded()
    }

    /// A Hugging Face fine-tune of the tiny base in safetensors: q (F16), k (BF16), the final norm (F32).
    static func safetensorsFile() -> Data {
        let c = Fixtures.tinyConfig
        var tensors: [(name: String, dtype: String, shape: [Int], bytes: [UInt8])] = []
        func values(_ n: Int) -> [Float] { (0..<n).map { Float($0 % 11) / 20 - 0.25 } }
        let q = values(c.queryDim * c.embeddingLength).flatMap { v in withUnsafeBytes(of: Float16(v).bitPattern.littleEndian, Array.init) }
        tensors.append(("model.layers.0.self_attn.q_proj.weight", "F16", [c.queryDim, c.embeddingLength], q))
        let k = values(c.kvDim * c.embeddingLength).flatMap { v in withUnsafeBytes(of: UInt16(v.bitPattern >> 16).littleEndian, Array.init) }
        tensors.append(("model.layers.1.self_attn.k_proj.weight", "BF16", [c.kvDim, c.embeddingLength], k))
        let n = values(c.embeddingLength).map { $0 + 1 }.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
        tensors.append(("model.norm.weight", "F32", [c.embeddingLength], n))
        var header: [String] = [#""__metadata__":{"format":"pt"}"#]
        var offset = 0
        for t in tensors {
            header.append(#""\#(t.name)":{"dtype":"\#(t.dtype)","shape":[\#(t.shape.map(String.init).joined(separator: ","))],"data_offsets":[\#(offset),\#(offset + t.bytes.count)]}"#)
            offset += t.bytes.count
        }
        var json = Array(("{" + header.joined(separator: ",") + "}").utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        for t in tensors { out.append(contentsOf: t.bytes) }
        return out
    }
}
