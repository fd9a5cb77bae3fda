import Foundation
import Testing
import Braid

/// Gemma 3's SentencePiece tokenizer (GGUF `llama`) read from the real file against llama.cpp:
/// Tests/BraidTests/Fixtures/gemma3_tokens.json holds 561 strings and llama-tokenize's ids for
/// each in both modes (special tokens parsed, its default, and not), made by
/// scripts/reference/gemma3_tokens.py.
@Suite(.enabled(if: Fixtures.haveGemma3, "needs models/gemma-3-270m-q4_k_m.gguf (run bash scripts/setup.sh --model gemma3-270m)"))
struct GemmaTokenizerTests {
    /// The metadata alone: the tokenizer needs no tensor.
    static let loaded = Result { try Tokenizer(gguf: GGUFFile(path: Fixtures.gemma3Path, metadataOnly: true)) }

    struct Case: Decodable {
        let text: String, parseSpecial: Bool, ids: [Int]
        enum CodingKeys: String, CodingKey { case text, parseSpecial = "parse_special", ids }
    }

    /// JSONDecoder, not JSONSerialization: the latter drops a U+FEFF that starts a string.
    static func cases() throws -> [Case] {
        struct Document: Decodable { let cases: [Case] }
        let url = Fixtures.root.appendingPathComponent("Tests/BraidTests/Fixtures/gemma3_tokens.json")
        return try JSONDecoder().decode(Document.self, from: Data(contentsOf: url)).cases
    }

    @Test func vocabularyIsGemmas() throws {
        let tok = try Self.loaded.get()
        #expect(tok.kind == .sentencePiece)
        #expect(tok.vocabularySize == 262_144)
        #expect(tok.bosID == 2 && tok.eosID == 1 && tok.addBOS && !tok.addSpacePrefix)
        #expect(tok.endOfGeneration.contains(try #require(tok.id(of: "<end_of_turn>"))))
        #expect(tok.piece(try #require(tok.id(of: "<0x41>"))) == [0x41])
        #expect(tok.piece(try #require(tok.id(of: "▁the"))) == Array(" the".utf8))
    }

    @Test func everyStringMatchesLlamaCpp() throws {
        let tok = try Self.loaded.get()
        let cases = try Self.cases()
        var mismatches = 0
        for c in cases {
            let ids = tok.encode(c.text, parseSpecial: c.parseSpecial).map(Int.init)
            if ids != c.ids {
                mismatches += 1
                if mismatches <= 10 {
                    print("mismatch: \(String(reflecting: c.text)) special=\(c.parseSpecial) braid \(ids) llama.cpp \(c.ids)")
                }
            }
        }
        print("Gemma tokenizer: \(cases.count - mismatches) of \(cases.count) cases equal llama.cpp's ids")
        #expect(cases.count == 1122)
        #expect(mismatches == 0)
    }

    /// decode(encode(x)) == x for every string but those holding "▁" itself: SentencePiece
    /// writes a space as "▁", so a "▁" in the text decodes as a space. With add_space_prefix
    /// off (Gemma) nothing is put before the text, so leading spaces are kept as written:
    /// " a" is "▁a" and decodes to " a" again. The BOS is left out (decode writes control tokens'
    /// text); special-token text decodes to itself in both modes.
    @Test func decodeInvertsEncode() throws {
        let tok = try Self.loaded.get()
        var checked = 0
        for c in try Self.cases() where !c.text.unicodeScalars.contains("\u{2581}") {
            let ids = tok.encode(c.text, parseSpecial: c.parseSpecial, addBOS: false)
            #expect(tok.decode(ids) == c.text, "\(String(reflecting: c.text))")
            checked += 1
        }
        #expect(checked > 1000)
        #expect(tok.decode(tok.encode(" Hello")) == "<bos> Hello")
        #expect(tok.encode(" Hello", addBOS: false) != tok.encode("Hello", addBOS: false))
        #expect(tok.decode(tok.encode("▁", addBOS: false)) == " ")
    }

    @Test(arguments: ["emoji 🎉👩‍👩‍👧‍👦 done", "中文字符和日本語", "𐀀 byte fallback 𒀀", "<start_of_turn>user\nHi<end_of_turn>\n"])
    func streamingEqualsDecode(text: String) throws {
        let tok = try Self.loaded.get()
        var stream = StreamingDetokenizer(tokenizer: tok)
        var out = ""
        let ids = tok.encode(text, addBOS: false)
        for id in ids {
            let chunk = stream.append(id)
            #expect(!chunk.contains("\u{FFFD}"))
            out += chunk
        }
        out += stream.flush()
        #expect(out == text && out == tok.decode(ids))
    }

    /// 32 KiB of letters without a space is one SentencePiece sequence with thousands of merges
    /// at every length, some characters only as bytes: the ids equal llama-tokenize's.
    @Test func longWordMatchesLlamaCpp() throws {
        let tok = try Self.loaded.get()
        let word = try Fixtures.longWord(model: "gemma-3-270m-q4_k_m.gguf")
        let ids = tok.encode(word.text).map(Int.init)
        #expect(ids.count == 15_817)
        #expect(ids == (try #require(word.ids)))
    }

    /// 1 MiB without a space is one SentencePiece sequence: the merge queue keeps it O(n log n).
    @Test func oneMebibyteWithoutSpaces() throws {
        let tok = try Self.loaded.get()
        var rng = Xoshiro256(seed: 5)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz")
        let text = String((0..<(1 << 20)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
        // Wall time counts the tests running beside this one; this thread's CPU time does not.
        func cpuSeconds() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        }
        let clock = ContinuousClock()
        var ids: [Int32] = []
        let cpu0 = cpuSeconds()
        let elapsed = clock.measure { ids = tok.encode(text, addBOS: false) }
        let cpu = cpuSeconds() - cpu0
        print("Gemma tokenizer: 1 MiB without spaces → \(ids.count) tokens, \(String(format: "%.3f", cpu)) s CPU (\(elapsed) wall)")
        #expect(tok.decode(ids) == text)
    }
}
