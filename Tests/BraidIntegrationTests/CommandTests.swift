import Foundation
import Testing
import Braid

/// Each command end to end on the real model, checked by what it writes, not only by its exit.
extension CLITests {
    func tempDir(_ label: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("braid-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func jsonLines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    func shippedVector(_ task: String) -> String { Fixtures.root.appendingPathComponent("models/\(task).tv.gguf").path }

    /// Good lines are answered and scored, bad ones become error records in their place, and the
    /// run goes on to the end with a non-zero exit and a summary of what failed.
    @Test func runRecordsBadLinesAndGoesOn() throws {
        let input = """
        {"id": "sum", "task": "arith", "prompt": "What is 12 + 35?", "answer": "47"}
        this is not json
        {"id": "empty", "prompt": ""}

        {"id": "hi", "prompt": "Say hello."}
        {"id": "sum", "prompt": "What is 1 + 1?"}
        """
        let out = try tempDir("run").appendingPathComponent("answers.jsonl").path
        let r = try braid(["run", "-m", Fixtures.modelPath, "-i", try temp(Data(input.utf8)), "-o", out, "-n", "8", "-q"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("3 of 5 lines failed"))
        let rows = try jsonLines(out)
        #expect(rows.map { $0["id"] as? String } == ["sum", "2", "empty", "hi", "sum"])
        #expect(rows[0]["output"] as? String == "47" && rows[0]["correct"] as? Bool == true)
        #expect((rows[0]["route"] as? [String: Any])?["task"] as? String == "arith")
        #expect(rows[1]["error"] as? String == #"not a JSON object with a "prompt" string"# && rows[1]["line"] as? Int == 2)
        #expect(rows[2]["error"] as? String == "empty prompt")
        #expect((rows[3]["output"] as? String)?.isEmpty == false && rows[3]["error"] == nil)
        #expect(rows[4]["error"] as? String == "id sum repeats line 1" && rows[4]["line"] as? Int == 6)

        let strict = try braid(["run", "-m", Fixtures.modelPath, "-i", try temp(Data(input.utf8)), "-o", out, "--fail-fast", "-q"])
        #expect(strict.status != 0 && strict.stderr.contains(":2: not a JSON object"))
    }

    /// A pipe is input (`-i /dev/stdin`); --resume skips answered ids and drops a line a crash cut short.
    @Test func runReadsAPipeAndResumes() throws {
        let input = (1...3).map { #"{"id": "q\#($0)", "prompt": "What is \#($0) + \#($0)?"}"# }.joined(separator: "\n")
        let out = try tempDir("resume").appendingPathComponent("answers.jsonl").path
        let whole = try braid(["run", "-m", Fixtures.modelPath, "-i", "/dev/stdin", "-o", out, "-n", "6", "-q"], stdin: Data(input.utf8))
        #expect(whole.status == 0)
        let full = try jsonLines(out)
        #expect(full.map { $0["id"] as? String } == ["q1", "q2", "q3"])
        // Keep the first answer and half of the second, as a SIGKILL mid-write would.
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        try Data((lines[0] + "\n" + lines[1].prefix(20)).utf8).write(to: URL(fileURLWithPath: out))
        let resumed = try braid(["run", "-m", Fixtures.modelPath, "-i", "/dev/stdin", "-o", out, "-n", "6", "-q", "--resume"], stdin: Data(input.utf8))
        #expect(resumed.status == 0 && resumed.stderr.contains("1 of 3 lines already in"))
        let rows = try jsonLines(out)
        #expect(rows.map { $0["id"] as? String } == ["q1", "q2", "q3"])
        #expect(rows.map { $0["output"] as? String } == full.map { $0["output"] as? String })
        let noFile = try braid(["run", "-m", Fixtures.modelPath, "-i", "/dev/stdin", "--resume"], stdin: Data(input.utf8))
        #expect(noFile.status != 0 && noFile.stderr.contains("--resume needs --output FILE"))
    }

    /// An output path that cannot be written fails before any generation (and so loses none).
    @Test func runRefusesAnUnwritableOutputAtOnce() throws {
        let r = try braid(["run", "-m", Fixtures.modelPath, "-i", try temp(Data(#"{"prompt": "hi"}"#.utf8)), "-o", "/nonexistent/dir/a.jsonl"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("cannot write /nonexistent/dir/a.jsonl: No such file or directory"))
        #expect(!r.stderr.contains("run:"))
    }

    @Test func aTaskGivenTwiceIsRefused() throws {
        let r = try braid(["generate", "-m", Fixtures.modelPath, "--task", "json", "--task", "json", "-p", "x"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("task json is given twice (") && r.stderr.contains("/models/json.tv.gguf)"))
    }

    @Test func twoVectorsOfOneTaskInAFolderAreRefused() throws {
        let dir = try tempDir("dup")
        for name in ["json.tv.gguf", "json-copy.tv.gguf"] {
            try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent(name).path, withDestinationPath: shippedVector("json"))
        }
        let r = try braid(["generate", "-m", Fixtures.modelPath, "--task-dir", dir.path, "-p", "x"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("task json comes from two files: \(dir.path)/json-copy.tv.gguf and \(dir.path)/json.tv.gguf"))
    }

    /// The shipped json vector solves the first test examples the base fails.
    @Test func evalScoresTheVectorAgainstTheBase() throws {
        let r = try braid(["eval", "-m", Fixtures.modelPath, "--tasks", "json,spell", "--limit", "4", "--config", "tv=tv:\(Fixtures.root.path)/models",
                           "--config", "base=base", "--json", "-q"])
        #expect(r.status == 0)
        let results = try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["results"] as? [[String: Any]])
        func accuracy(_ config: String, _ task: String) -> Double? {
            ((results.first { $0["config"] as? String == config }?["tasks"] as? [String: Any])?[task] as? [String: Any])?["accuracy"] as? Double
        }
        #expect(accuracy("tv", "json") == 100 && accuracy("tv", "spell") == 100)
        #expect(accuracy("base", "json") == 0 && accuracy("base", "spell") == 0)
    }

    /// A fine-tune compressed from its delta carries the skill: eval with the new vector scores as the fine-tune does.
    @Test func compressMakesAVectorThatServesTheTask() throws {
        let dir = try tempDir("compress")
        let out = dir.appendingPathComponent("json.tv.gguf").path
        let delta = Fixtures.shared.appendingPathComponent("models/deltas/json.delta.Q4_0.gguf").path
        let c = try braid(["compress", "-m", Fixtures.modelPath, "--delta", delta, "--task", "json", "-o", out, "-q"])
        #expect(c.status == 0 && c.stderr.contains("wrote \(out)"))
        let model = try Fixtures.model()
        let vector = try TaskVector(path: out, base: model, baseSHA256: try BaseIdentity.sha256(of: model))
        #expect(vector.name == "json")
        let e = try braid(["eval", "-m", Fixtures.modelPath, "--tasks", "json", "--limit", "4", "--config", "new=tv:\(dir.path)", "--json", "-q"])
        #expect(e.status == 0 && e.stdout.contains(#""accuracy" : 100"#))
    }

    /// A router fitted on a few prompts per task stores itself in the vectors and routes by them.
    @Test func routerFitStoresARouterThatRoutes() throws {
        let dir = try tempDir("router"), suites = dir.appendingPathComponent("suites"), vectors = dir.appendingPathComponent("vectors")
        try FileManager.default.createDirectory(at: suites, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: vectors, withIntermediateDirectories: true)
        func head(_ file: String, _ n: Int, to: URL) throws {
            let lines = try String(contentsOf: Fixtures.shared.appendingPathComponent("tasks/\(file)"), encoding: .utf8).split(separator: "\n").prefix(n)
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: to)
        }
        for t in ["arith", "json", "sentiment", "spell"] {
            try head("\(t).dev.jsonl", 12, to: suites.appendingPathComponent("\(t).dev.jsonl"))
            try head("\(t).test.jsonl", 4, to: suites.appendingPathComponent("\(t).test.jsonl"))
            try FileManager.default.copyItem(atPath: shippedVector(t), toPath: vectors.appendingPathComponent("\(t).tv.gguf").path)
        }
        try head("general.dev.jsonl", 12, to: dir.appendingPathComponent("general.jsonl"))
        let fit = try braid(["router", "fit", "-m", Fixtures.modelPath, "--task-dir", vectors.path, "--suites", suites.path,
                             "--general", dir.appendingPathComponent("general.jsonl").path, "--check", "none", "-q"])
        #expect(fit.status == 0 && fit.stdout.contains("test splits: arith 100.0% (4)"), "\(fit.stdout)\(fit.stderr)")
        #expect(try Data(contentsOf: vectors.appendingPathComponent("json.tv.gguf")) != Data(contentsOf: URL(fileURLWithPath: shippedVector("json"))))
        let arith = try braid(["generate", "-m", Fixtures.modelPath, "--task-dir", vectors.path, "-p", "What is 12 + 35?", "-n", "4"])
        #expect(arith.stdout == "47\n" && arith.stderr.contains("route arith"))
        let general = try braid(["generate", "-m", Fixtures.modelPath, "--task-dir", vectors.path, "-p", "Who wrote Hamlet?", "-n", "2"])
        #expect(general.stderr.contains("route base"))
    }

    /// A gate trained on a few examples is written, refused for another vector, and served.
    @Test func trainGateWritesAGateThatServes() throws {
        let dir = try tempDir("gate")
        try FileManager.default.copyItem(atPath: shippedVector("json"), toPath: dir.appendingPathComponent("json.tv.gguf").path)
        let general = dir.appendingPathComponent("general.jsonl")
        let lines = try String(contentsOf: Fixtures.shared.appendingPathComponent("tasks/general.dev.jsonl"), encoding: .utf8).split(separator: "\n").prefix(4)
        try Data(lines.joined(separator: "\n").utf8).write(to: general)
        let t = try braid(["train-gate", "-m", Fixtures.modelPath, "--task", "json", "--task-dir", dir.path, "--examples", "8", "--epochs", "1",
                           "--general", general.path, "-q"])
        #expect(t.status == 0 && t.stderr.contains("train-gate json: ") && t.stderr.contains("json.gate.gguf"), "\(t.stderr)")
        let gate = dir.appendingPathComponent("json.gate.gguf").path
        #expect(FileManager.default.fileExists(atPath: gate))
        let prompt = "Extract the name, age and city as JSON: Amara Khan, aged 80, works as a farmer in Manila."
        let g = try braid(["generate", "-m", Fixtures.modelPath, "--task-dir", dir.path, "--task", "json", "--interweave", "learned", "-p", prompt, "-n", "32"])
        #expect(g.status == 0 && g.stderr.contains("interweave learned"))
        #expect(Scorer.isCorrect(task: "json", output: g.stdout, answer: #"{"name": "Amara Khan", "age": 80, "city": "Manila"}"#), "\(g.stdout)")
    }

    /// Outside its task the adaptive and guarded gates keep the base's next tokens; the vector alone does not.
    @Test func agreementMeasuresTheGateAgainstTheBase() throws {
        let r = try braid(["agreement", "-m", Fixtures.modelPath, "-i", Fixtures.root.appendingPathComponent("prompts/general.jsonl").path,
                           "--limit", "3", "--task", "json", "--modes", "off,adaptive,guarded", "-n", "4", "--json", "-q"])
        #expect(r.status == 0)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        let byMode = Dictionary(rows.map { ($0["interweave"] as! String, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byMode["adaptive"]?["agreement"] as? Double == 100 && byMode["adaptive"]?["steps"] as? Int == 12)
        #expect(byMode["guarded"]?["agreement"] as? Double == 100 && byMode["guarded"]?["steps"] as? Int == 12)
        let off = try #require(byMode["off"]?["agreement"] as? Double)
        #expect(off < 100 && (byMode["off"]?["mean_kl"] as? Double ?? 0) > 0.1)
    }

    /// Base + a task vector takes less disk and memory than the fine-tune as its own model.
    @Test func footprintMeasuresEachConfiguration() throws {
        let dir = try tempDir("footprint")
        let r = try braid(["footprint", "-m", Fixtures.modelPath, "--tasks", "json", "--tokens", "4", "--work-dir", dir.path, "--json", "-q"])
        #expect(r.status == 0)
        let rows = try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["results"] as? [[String: Any]])
        func row(_ config: String) -> [String: Any]? { rows.first { $0["config"] as? String == config } }
        let vectors = try #require(row("base + 1 task vectors")), q8 = try #require(row("1 separate models, Q8_0")), f16 = try #require(row("1 separate models, F16"))
        func size(_ p: String) throws -> Int { try FileManager.default.attributesOfItem(atPath: p)[.size] as! Int }
        #expect(vectors["disk_bytes"] as? Int == (try size(Fixtures.modelPath) + size(shippedVector("json"))))
        #expect(q8["disk_bytes"] as? Int == (try size(dir.appendingPathComponent("json.Q8_0.gguf").path)))
        #expect((vectors["disk_bytes"] as! Int) < (q8["disk_bytes"] as! Int) && (q8["disk_bytes"] as! Int) < (f16["disk_bytes"] as! Int))
        #expect((vectors["peak_rss_bytes"] as! Int) < (f16["peak_rss_bytes"] as! Int))
    }
}
