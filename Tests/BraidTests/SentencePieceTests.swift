import Foundation
import Testing
import Braid

/// The SentencePiece algorithm (GGUF `llama`) on small vocabularies built here: merge order by
/// score, ties to the left, byte fallback, the unknown token, special tokens, the space prefix,
/// and long inputs against a plain quadratic merge loop.
struct SentencePieceTests {
    /// <pad> <eos> <bos> <unk> (control/unknown), "\n\n" (user-defined), optionally the 256 byte
    /// tokens, then `normal` with their scores.
    static func vocabulary(_ normal: [(String, Float)], bytes: Bool = true, specials: [(String, Int)] = [],
                           addSpacePrefix: Bool = false) throws -> Tokenizer {
        var tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "\n\n"]
        var types = [3, 3, 3, 2, 4]
        var scores: [Float] = [0, 0, 0, 0, 0]
        for (t, type) in specials {
            tokens.append(t)
            types.append(type)
            scores.append(0)
        }
        if bytes {
            for b in 0..<256 {
                tokens.append(String(format: "<0x%02X>", b))
                types.append(6)
                scores.append(0)
            }
        }
        for (t, s) in normal {
            tokens.append(t)
            types.append(1)
            scores.append(s)
        }
        return try Tokenizer(tokens: tokens, scores: scores, tokenTypes: types, bosID: 2, eosID: 1, unknownID: 3,
                             addBOS: false, addSpacePrefix: addSpacePrefix)
    }

    static func texts(_ tok: Tokenizer, _ ids: [Int32]) -> [String] { ids.map { tok.tokens[Int($0)] } }

    @Test func higherScoreMergesFirst() throws {
        let base: [(String, Float)] = [("a", -10), ("b", -10), ("c", -10)]
        let bcFirst = try Self.vocabulary(base + [("ab", -2), ("bc", -1)])
        #expect(Self.texts(bcFirst, bcFirst.encode("abc")) == ["a", "bc"])
        let abFirst = try Self.vocabulary(base + [("ab", -1), ("bc", -2)])
        #expect(Self.texts(abFirst, abFirst.encode("abc")) == ["ab", "c"])
        // A merged symbol merges on: "ab" then "abc", which only exists from "ab" + "c".
        let chain = try Self.vocabulary(base + [("ab", -1), ("bc", -2), ("abc", -3)])
        #expect(Self.texts(chain, chain.encode("abc")) == ["abc"])
    }

    @Test func tiesGoToTheLeftmostPair() throws {
        let tok = try Self.vocabulary([("a", -10), ("b", -10), ("c", -10), ("ab", -1), ("bc", -1), ("aa", -1)])
        #expect(Self.texts(tok, tok.encode("abc")) == ["ab", "c"])
        #expect(Self.texts(tok, tok.encode("aaa")) == ["aa", "a"])
        #expect(Self.texts(tok, tok.encode("aaaaa")) == ["aa", "aa", "a"])
    }

    @Test func spacesAreWrittenAsTheMark() throws {
        let tok = try Self.vocabulary([("▁", -5), ("a", -5), ("▁a", -1)])
        #expect(Self.texts(tok, tok.encode(" a a")) == ["▁a", "▁a"])
        #expect(Self.texts(tok, tok.encode("a ")) == ["a", "▁"])
        #expect(tok.decode(tok.encode(" a a ")) == " a a ")
    }

    @Test func charactersWithoutATokenFallBackToBytes() throws {
        let tok = try Self.vocabulary([("a", -1)])
        #expect(Self.texts(tok, tok.encode("aéa")) == ["a", "<0xC3>", "<0xA9>", "a"])
        #expect(Self.texts(tok, tok.encode("𐀀")) == ["<0xF0>", "<0x90>", "<0x80>", "<0x80>"])
        #expect(tok.decode(tok.encode("aé𐀀\u{0}")) == "aé𐀀\u{0}")
        // Byte tokens decode to their byte; half a character is held back by the stream.
        var stream = StreamingDetokenizer(tokenizer: tok)
        #expect(stream.append(try #require(tok.id(of: "<0xC3>"))) == "")
        #expect(stream.append(try #require(tok.id(of: "<0xA9>"))) == "é")
    }

    @Test func withoutByteTokensACharacterIsUnknown() throws {
        let tok = try Self.vocabulary([("a", -1), ("b", -1)], bytes: false)
        #expect(tok.encode("aéb") == [try #require(tok.id(of: "a")), 3, try #require(tok.id(of: "b"))])
        #expect(tok.decode(tok.encode("aéb")) == "a<unk>b")
    }

    @Test func specialTokensSplitTheText() throws {
        let tok = try Self.vocabulary([("a", -1), ("b", -1), ("<", -1), ("e", -1), ("o", -1), ("s", -1), (">", -1)])
        let a = try #require(tok.id(of: "a")), b = try #require(tok.id(of: "b"))
        #expect(tok.encode("a<eos>b") == [a, 1, b])
        #expect(tok.encode("<bos><bos>") == [2, 2])
        #expect(tok.encode("<unk>") == [3])  // unknown tokens are special too
        #expect(!tok.encode("a<eos>b", parseSpecial: false).contains(1))
        // User-defined tokens are split out in both modes.
        #expect(tok.encode("a\n\nb", parseSpecial: false) == [a, 4, b])
        #expect(tok.encode("a\n\n\nb") == [a, 4, try #require(tok.id(of: "<0x0A>")), b])
        #expect(tok.encode("<eos>", addBOS: true) == [2, 1])
    }

    /// llama.cpp takes special tokens longest first, each over the whole text, not the leftmost
    /// match: in "<xy>>>" the longer "y>>>" wins over "<xy", which starts earlier.
    @Test func longerSpecialTokensWinOverEarlierOnes() throws {
        let tok = try Self.vocabulary([("<", -1), ("x", -1), ("y", -1), (">", -1)], specials: [("<xy", 3), ("y>>>", 3)])
        #expect(Self.texts(tok, tok.encode("<xy>>>")) == ["<", "x", "y>>>"])
        #expect(Self.texts(tok, tok.encode("<xy>>")) == ["<xy", ">", ">"])
        // The same token twice, overlapping: the left one, then the rest as text.
        let twice = try Self.vocabulary([("a", -1)], specials: [("aa", 4)])
        #expect(Self.texts(twice, twice.encode("aaa")) == ["aa", "a"])
        #expect(Self.texts(twice, twice.encode("aaaa")) == ["aa", "aa"])
    }

    @Test func spacePrefixGoesBeforeTextThatStartsOrFollowsASpecial() throws {
        let tok = try Self.vocabulary([("▁", -5), ("a", -5), ("▁a", -1)], addSpacePrefix: true)
        #expect(Self.texts(tok, tok.encode("a")) == ["▁a"])
        #expect(Self.texts(tok, tok.encode("a<eos>a")) == ["▁a", "<eos>", "▁a"])
        #expect(Self.texts(tok, tok.encode("a", addBOS: true)) == ["<bos>", "▁a"])
        #expect(tok.decode(tok.encode("a")) == "a")
        #expect(tok.decode(tok.encode("a", addBOS: true)) == "<bos>a")
        var stream = StreamingDetokenizer(tokenizer: tok)
        #expect(tok.encode("a a").map { stream.append($0) }.joined() + stream.flush() == "a a")
    }

    /// The queue-based merge gives the tokens of the plain loop (highest score, leftmost on ties,
    /// every pair rescanned after each merge) on random vocabularies with many equal scores.
    @Test(arguments: [1, 2, 3, 4, 5, 6])
    func mergesAsTheQuadraticReferenceDoes(seed: UInt64) throws {
        var rng = Xoshiro256(seed: seed)
        let alphabet = ["a", "b", "c", "▁", "é"]
        var normal: [(String, Float)] = alphabet.dropLast().map { ($0, -100) }
        var known = Set(normal.map(\.0))
        while normal.count < 60 {
            let t = (0..<(2 + Int(rng.next() % 4))).map { _ in alphabet[Int(rng.next() % 4)] }.joined()
            if known.insert(t).inserted { normal.append((t, -Float(rng.next() % 6))) }  // few distinct scores: ties
        }
        let tok = try Self.vocabulary(normal)
        let score = Dictionary(normal, uniquingKeysWith: { a, _ in a })
        func reference(_ text: String) -> [String] {
            var symbols = text.replacingOccurrences(of: " ", with: "▁").map { String($0) }
            while true {
                var best = -1, bestScore = -Float.infinity
                for k in 0..<max(symbols.count - 1, 0) {
                    if let s = score[symbols[k] + symbols[k + 1]], s > bestScore { bestScore = s; best = k }
                }
                if best < 0 { break }
                symbols[best] += symbols[best + 1]
                symbols.remove(at: best + 1)
            }
            return symbols.flatMap { score[$0] != nil ? [$0] : $0.utf8.map { String(format: "<0x%02X>", $0) } }
        }
        for length in [1, 2, 5, 17, 100, 700] {
            let text = (0..<length).map { _ in ["a", "b", "c", " ", "é"][Int(rng.next() % 5)] }.joined()
            #expect(Self.texts(tok, tok.encode(text)) == reference(text), "\(text)")
        }
    }

    /// A long input without spaces is one sequence: correct at length (its speed is the
    /// integration test's: 1 MiB of Gemma).
    @Test func longInputWithoutSpaces() throws {
        let tok = try Self.vocabulary([("a", -9), ("b", -9), ("ab", -1), ("abab", -2), ("abababab", -3)])
        let text = String(repeating: "ab", count: 100_000) + "a"
        let ids = tok.encode(text)
        #expect(ids.count == 25_001)
        #expect(Self.texts(tok, Array(ids.prefix(2))) == ["abababab", "abababab"])
        #expect(tok.decode(ids) == text)
    }

    @Test func otherTokenizerModelsAreRefused() throws {
        var w = GGUFWriter()
        w.set("tokenizer.ggml.model", .string("bert"))
        w.set("tokenizer.ggml.tokens", .array(.string, [.string("a")]))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-bert-\(UUID().uuidString).gguf").path
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: BraidError.invalidArgument("\(path): tokenizer model bert is not supported (braid reads gpt2, byte-level BPE, and llama, SentencePiece BPE)")) {
            try Tokenizer(gguf: GGUFFile(path: path))
        }
    }

    @Test func scoresMustMatchTheVocabulary() {
        #expect(throws: BraidError.invalidArgument("the vocabulary has 2 tokens but 1 scores")) {
            try Tokenizer(tokens: ["a", "b"], scores: [0], tokenTypes: [], bosID: nil, eosID: 0, unknownID: nil, addBOS: false, addSpacePrefix: false)
        }
    }
}
