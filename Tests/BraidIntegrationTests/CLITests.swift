import Foundation
import Testing
import Braid

/// The `braid` executable on bad input: a clear message and a non-zero exit, never a crash.
/// `BRAID_BINARY` picks another build (scripts/sanitize.sh runs its sanitized one).
let braidBinary = ProcessInfo.processInfo.environment["BRAID_BINARY"] ?? Fixtures.root.appendingPathComponent(".build/release/braid").path

@Suite(.enabled(if: Fixtures.haveModel && FileManager.default.fileExists(atPath: braidBinary), "needs the model and a release build of braid"))
struct CLITests {
    static let binary = braidBinary

    struct Outcome { let status: Int32; let stdout: String; let stderr: String }

    func braid(_ args: [String], stdin: Data? = nil) throws -> Outcome {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = args
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        try p.run()
        if let d = stdin { input.fileHandleForWriting.write(d) }
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Outcome(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func temp(_ data: Data) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-cli-\(UUID().uuidString)").path
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func generatesGreedilyAndReportsTimings() throws {
        let r = try braid(["generate", "-m", Fixtures.modelPath, "--route", "none", "-p", "What is 12 + 35?", "-n", "8"])
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("12 + 35 = "))
        #expect(r.stderr.contains("tok/s") && r.stderr.contains("route base"))
    }

    /// With the shipped task vectors the router sends arithmetic to the arith vector.
    @Test func routesToTheShippedTaskVector() throws {
        let r = try braid(["generate", "-m", Fixtures.modelPath, "-p", "What is 12 + 35?", "-n", "8"])
        #expect(r.status == 0)
        #expect(r.stdout == "47\n")
        #expect(r.stderr.contains("route arith"))
        let unknown = try braid(["generate", "-m", Fixtures.modelPath, "--task", "no-such-task", "-p", "x"])
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown task no-such-task"))
    }

    @Test func promptFromStdinAndFile() throws {
        let a = try braid(["generate", "-m", Fixtures.modelPath, "-n", "4", "-q"], stdin: Data("What is 12 + 35?".utf8))
        let b = try braid(["generate", "-m", Fixtures.modelPath, "-n", "4", "-q", "-f", try temp(Data("What is 12 + 35?".utf8))])
        #expect(a.status == 0 && b.status == 0 && a.stdout == b.stdout && !a.stdout.isEmpty)
    }

    @Test func invalidUTF8IsRefused() throws {
        let r = try braid(["generate", "-m", Fixtures.modelPath, "-f", try temp(Data([0x48, 0x69, 0xFF, 0xFE]))])
        #expect(r.status != 0)
        #expect(r.stderr.contains("not valid UTF-8"))
    }

    @Test func promptLongerThanTheContextIsRefused() throws {
        let r = try braid(["generate", "-m", Fixtures.modelPath, "-c", "32", "-p", String(repeating: "word ", count: 100)])
        #expect(r.status != 0)
        #expect(r.stderr.contains("context holds 32"))
    }

    @Test func badFlagsAreRefused() throws {
        for args in [["generate", "--no-such-flag"], ["generate", "--temp", "-2", "-p", "x"], ["generate", "--top-p", "0", "-p", "x"], ["bench", "-r", "0"]] {
            let r = try braid(args)
            #expect(r.status != 0, "\(args)")
            #expect(!r.stderr.isEmpty, "\(args)")
        }
    }

    @Test func truncatedOrMissingModelIsAClearError() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixtures.modelPath))
        let truncated = try temp(bytes.prefix(bytes.count / 2))
        let r = try braid(["generate", "-m", truncated, "-p", "hi"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("truncated"))
        let missing = try braid(["generate", "-m", "/nonexistent.gguf", "-p", "hi"])
        #expect(missing.status != 0 && missing.stderr.contains("not found"))
    }

    @Test func chatWorksFromAPipe() throws {
        let r = try braid(["chat", "-m", Fixtures.modelPath, "--temp", "0", "-n", "12", "-q"],
                          stdin: Data("What is 12 + 35?\n/reset\nWhat is 12 + 35?\n/exit\n".utf8))
        #expect(r.status == 0)
        let answers = r.stdout.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(answers.count == 2 && answers[0] == answers[1])
    }

    /// Interweaving inside the task keeps the vector's answer; a missing or foreign gate is a clear error.
    @Test func interweavesWithTheBaseAndChecksItsGates() throws {
        let json = "Extract the name, age and city as JSON: Amara Khan, aged 80, works as a farmer in Manila."
        for mode in ["adaptive", "fixed:0.2"] {
            let r = try braid(["generate", "-m", Fixtures.modelPath, "--task", "json", "--interweave", mode, "-p", json, "-n", "32"])
            #expect(r.status == 0 && r.stderr.contains("interweave \(mode)"), "\(mode): \(r.stderr)")
            #expect(Scorer.isCorrect(task: "json", output: r.stdout, answer: #"{"name": "Amara Khan", "age": 80, "city": "Manila"}"#), "\(mode): \(r.stdout)")
        }
        let bad = try braid(["generate", "-m", Fixtures.modelPath, "--task", "json", "--interweave", "fixed:2", "-p", "x"])
        #expect(bad.status != 0 && bad.stderr.contains("λ must be"))
        // A folder with the json vector and no gate for it.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("braid-gates-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("json.tv.gguf").path,
                                                   withDestinationPath: Fixtures.root.appendingPathComponent("models/json.tv.gguf").path)
        let missing = try braid(["generate", "-m", Fixtures.modelPath, "--task-dir", dir.path, "--task", "json", "--interweave", "learned", "-p", "x"])
        #expect(missing.status != 0 && missing.stderr.contains("no learned gate for task json"))
        // A gate trained for another vector.
        let arithGate = Fixtures.root.appendingPathComponent("models/arith.gate.gguf").path
        try FileManager.default.copyItem(atPath: arithGate, toPath: dir.appendingPathComponent("json.gate.gguf").path)
        let foreign = try braid(["generate", "-m", Fixtures.modelPath, "--task-dir", dir.path, "--task", "json", "--interweave", "learned", "-p", "x"])
        #expect(foreign.status != 0 && foreign.stderr.contains("trained for another task vector"))
    }
}
