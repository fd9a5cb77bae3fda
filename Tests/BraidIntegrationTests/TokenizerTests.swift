import Foundation
import Testing
import Braid

/// The tokenizer read from the real GGUF against llama.cpp's tokenisation.
@Suite(.enabled(if: Fixtures.haveReference, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh) and ../shared/reference"))
struct TokenizerTests {
    static let loaded = Result { try Tokenizer(gguf: GGUFFile(path: Fixtures.modelPath)) }

    @Test(arguments: ["a", "b", "c", "d", "e"])
    func chatPromptsMatchLlamaCpp(prompt: String) throws {
        let tok = try Self.loaded.get()
        let ref = try Fixtures.json("reference.json")
        let chat = (ref["chat"] as! [String: Any])[prompt] as! [String: Any]
        let rendered = chat["rendered_prompt"] as! String
        #expect(ChatTemplate().render([.user(chat["user_message"] as! String)]) == rendered)
        #expect(tok.encode(rendered).map(Int.init) == chat["prompt_token_ids"] as! [Int])
        #expect(tok.decode(tok.encode(rendered)) == rendered)
    }

    @Test func greedyReferenceInputsMatch() throws {
        let tok = try Self.loaded.get()
        for name in ["greedy32_a.json", "greedy32_b.json", "greedy32_c.json", "greedy32_d.json", "greedy32_e.json", "fox_top5_logits.json"] {
            let g = try Fixtures.json(name)
            #expect(tok.encode(g["input"] as! String).map(Int.init) == g["input_token_ids"] as! [Int], "\(name)")
        }
    }

    /// 32 KiB of letters without a space is one word: the ids equal llama-tokenize's.
    @Test func longWordMatchesLlamaCpp() throws {
        let tok = try Self.loaded.get()
        let word = try Fixtures.longWord(model: "SmolLM2-135M-Instruct.Q4_1.gguf")
        let ids = tok.encode(word.text).map(Int.init)
        #expect(ids.count == 18_330)
        #expect(ids == (try #require(word.ids)))
    }

    /// The queue-based merge loop gives the tokens of the plain quadratic one (lowest rank,
    /// leftmost on ties, rescanning every pair after each merge) on long single words, where
    /// the quadratic loop took 52 s for 20,000 characters.
    @Test func longWordsMergeAsTheQuadraticReferenceDoes() throws {
        let tok = try Self.loaded.get()
        let gguf = try GGUFFile(path: Fixtures.modelPath)
        var rank: [String: Int] = [:]
        for (r, m) in try gguf.stringArray("tokenizer.ggml.merges").enumerated() where rank[m] == nil { rank[m] = r }
        func reference(_ word: String) -> [String] {
            var symbols = word.utf8.map { String(ByteEncoderReference.encode($0)) }
            while symbols.count > 1 {
                var best = -1, bestRank = Int.max
                for k in 0..<symbols.count - 1 {
                    if let r = rank[symbols[k] + " " + symbols[k + 1]], r < bestRank { bestRank = r; best = k }
                }
                if best < 0 { break }
                symbols[best] += symbols[best + 1]
                symbols.remove(at: best + 1)
            }
            return symbols
        }
        var rng = Xoshiro256(seed: 11)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzeeeaaiioo")
        for length in [1, 2, 7, 40, 300, 2000] {
            let word = String((0..<length).map { _ in alphabet[Int(rng.nextUnit() * Float(alphabet.count)) % alphabet.count] })
            let ids = tok.encode(word)
            #expect(ids.map { tok.tokens[Int($0)] } == reference(word), "length \(length)")
        }
        let long = String(repeating: "ab", count: 500_000)  // 1 MB, no spaces: a few hundred ms, not minutes
        #expect(tok.decode(tok.encode(long)) == long)
    }

    @Test func templateFromTheGGUFIsChatMLWithSmolLMsSystemPrompt() throws {
        let gguf = try GGUFFile(path: Fixtures.modelPath)
        let t = ChatTemplate.detect(fromTemplate: gguf.metadata["tokenizer.chat_template"]?.stringValue)
        #expect(t.defaultSystemPrompt == ChatTemplate.smolLMSystemPrompt)
    }

    @Test(arguments: [
        "Héllo wörld, naïve café", "日本語のテキストと中文", "مرحبا بالعالم", "emoji 👩‍👩‍👧‍👦 and 🇫🇷 flags 🎉",
        "tabs\tand   spaces   \n\n\n  trailing   ", "func f(x: Int) -> Int {\n    return x * 2 // double\n}",
        "1234567890 and 3.14159", "don't I'LL we've they'd", "<|im_start|> inside text", "   ", "\n", "a\u{0}b",
    ])
    func roundTrips(text: String) throws {
        let tok = try Self.loaded.get()
        #expect(tok.decode(tok.encode(text, parseSpecial: false)) == text)
        #expect(tok.decode(tok.encode(text)) == text)
    }

    @Test func everyDigitIsItsOwnToken() throws {
        let tok = try Self.loaded.get()
        let ids = tok.encode("x 9876543210 y", parseSpecial: false)
        let pieces = ids.map { String(decoding: tok.piece($0), as: UTF8.self) }
        for d in "9876543210" { #expect(pieces.contains(String(d))) }
        #expect(pieces.filter { $0.count == 1 && $0.first!.isNumber }.count == 10)
    }

    @Test func specialTokensParseOnlyWhenAsked() throws {
        let tok = try Self.loaded.get()
        let end = try #require(tok.id(of: "<|im_end|>"))
        #expect(tok.encode("hi<|im_end|>") .last == end)
        #expect(!tok.encode("hi<|im_end|>", parseSpecial: false).contains(end))
        #expect(tok.endOfGeneration.contains(end))
    }

    @Test(arguments: ["emoji 🎉👩‍👩‍👧‍👦 done", "中文字符和日本語", "mixed é ü 🇫🇷"])
    func streamingNeverSplitsACharacter(text: String) throws {
        let tok = try Self.loaded.get()
        var stream = StreamingDetokenizer(tokenizer: tok)
        var out = ""
        for id in tok.encode(text, parseSpecial: false) {
            let chunk = stream.append(id)
            #expect(!chunk.contains("\u{FFFD}"))
            out += chunk
        }
        out += stream.flush()
        #expect(out == text)
    }
}

/// 898 strings (hand-picked and random mixed-script) tokenised by an independent Python
/// re-implementation of the same rules (`regex` module + a plain merge loop) that reproduces
/// llama.cpp's goldens.
@Suite(.enabled(if: Fixtures.haveModel, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (run scripts/setup.sh)"))
struct TokenizerCrossCheckTests {
    @Test func matchesIndependentImplementation() throws {
        let tok = try TokenizerTests.loaded.get()
        let url = Fixtures.root.appendingPathComponent("Tests/BraidTests/Fixtures/tokenizer_cases.json")
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [[String: Any]]
        var mismatches = 0
        for c in cases {
            let ids = tok.encode(c["text"] as! String, parseSpecial: c["parse_special"] as! Bool).map(Int.init)
            if ids != c["ids"] as! [Int] {
                mismatches += 1
                print("mismatch: \(String(reflecting: c["text"] as! String)) special=\(c["parse_special"]!) braid \(ids) reference \(c["ids"]!)")
            }
        }
        #expect(cases.count == 898)
        #expect(mismatches == 0)
    }
}

/// GPT-2's byte-to-character map, for the reference merge loop (printable bytes map to themselves).
enum ByteEncoderReference {
    static func encode(_ b: UInt8) -> Character {
        let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
        if printable { return Character(Unicode.Scalar(b)) }
        var n = 0
        for x in 0..<Int(b) where !((0x21...0x7E).contains(x) || (0xA1...0xAC).contains(x) || (0xAE...0xFF).contains(x)) { n += 1 }
        return Character(Unicode.Scalar(UInt32(256 + n))!)
    }
}

