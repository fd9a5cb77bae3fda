import Foundation
import Testing
import Braid

/// `Perplexity` on prompts/perplexity.txt with the real base against llama-perplexity's numbers
/// (Fixtures/perplexity.json, written by scripts/reference/perplexity.sh): within 1 %.
@Suite(.enabled(if: Fixtures.haveModel, "needs the model"))
struct PerplexityIntegrationTests {
    static let text = Fixtures.root.appendingPathComponent("prompts/perplexity.txt")
    static let reference = Fixtures.root.appendingPathComponent("Tests/BraidIntegrationTests/Fixtures/perplexity.json")

    struct Case: Decodable, CustomTestStringConvertible {
        let ctx: Int
        let chunks: Int
        let ppl: Double
        let stderr: Double
        var testDescription: String { "-c \(ctx) --chunks \(chunks)" }
    }

    static var cases: [Case] {
        struct File: Decodable { let cases: [Case] }
        guard let data = try? Data(contentsOf: reference) else { return [] }
        return (try? JSONDecoder().decode(File.self, from: data).cases) ?? []
    }

    @Test func referenceIsPresent() {
        #expect(!Self.cases.isEmpty, "run scripts/reference/perplexity.sh")
    }

    @Test(arguments: cases)
    func matchesLlamaPerplexity(_ c: Case) throws {
        let model = try Fixtures.model()
        let text = try String(contentsOf: Self.text, encoding: .utf8)
        let (tokens, bos) = try Perplexity.tokenize(text, model: model)
        #expect(bos == nil)  // SmolLM2's vocabulary adds no BOS
        let result = try Perplexity(model: model, context: c.ctx, bos: bos).run(tokens, chunks: c.chunks)
        #expect(result.chunkNLL.count == c.chunks)
        let relative = abs(result.perplexity - c.ppl) / c.ppl
        #expect(relative < 0.01, "braid \(result.perplexity) ± \(result.standardError), llama.cpp \(c.ppl) ± \(c.stderr)")
        #expect(abs(result.standardError - c.stderr) / c.stderr < 0.05)
    }
}

/// `braid perplexity` end to end: the final estimate on stdout, the running line on stderr, refusals.
extension CLITests {
    @Test func perplexityPrintsTheFinalEstimate() throws {
        let text = Fixtures.root.appendingPathComponent("prompts/perplexity.txt").path
        let r = try braid(["perplexity", "-m", Fixtures.modelPath, "-t", "2", "-f", text, "-c", "128", "--chunks", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("Final estimate: PPL = ") && r.stdout.contains(" +/- "))
        #expect(r.stderr.contains("[1]") && r.stderr.contains("[2]") && r.stderr.contains("tokens/s"))
    }

    @Test func perplexityRefusesBadInput() throws {
        let short = try temp(Data("Too short to measure.".utf8))
        let r = try braid(["perplexity", "-m", Fixtures.modelPath, "-f", short])
        #expect(r.status != 0)
        #expect(r.stderr.contains("you need at least 1024 tokens to evaluate perplexity with a context of 512; \(short) tokenizes to only"))
        let empty = try braid(["perplexity", "-m", Fixtures.modelPath, "-f", try temp(Data())])
        #expect(empty.status != 0 && empty.stderr.contains("is empty"))
        let missing = try braid(["perplexity", "-m", Fixtures.modelPath, "-f", "/nonexistent/text.txt"])
        #expect(missing.status != 0 && missing.stderr.contains("file not found: /nonexistent/text.txt"))
        let binary = try braid(["perplexity", "-m", Fixtures.modelPath, "-f", try temp(Data([0x48, 0x69, 0xFF, 0xFE]))])
        #expect(binary.status != 0 && binary.stderr.contains("not valid UTF-8"))
        let text = Fixtures.root.appendingPathComponent("prompts/perplexity.txt").path
        let wide = try braid(["perplexity", "-m", Fixtures.modelPath, "-f", text, "-c", "9000"])
        #expect(wide.status != 0 && wide.stderr.contains("--ctx-size is 9000, out of range"))
    }
}
