import Foundation

/// A GGUF vocabulary and the encoding its `tokenizer.ggml.model` names: `gpt2` → byte-level BPE
/// with llama.cpp's `smollm` pre-tokenizer (``ByteLevelBPE``), `llama` → SentencePiece-style BPE
/// driven by token scores with `<0xXX>` byte fallback (``SentencePieceBPE``). What both share
/// lives here: the vocabulary, special tokens split out of the text as llama.cpp does
/// (``SpecialTokens``), BOS, and decoding ids to bytes.
public final class Tokenizer: Sendable {
    /// The encoding algorithm, by its GGUF name.
    public enum Kind: String, Sendable {
        case byteLevelBPE = "gpt2"
        case sentencePiece = "llama"
    }

    enum Algorithm: Sendable {
        case byteLevel(ByteLevelBPE)
        case sentencePiece(SentencePieceBPE)
    }

    /// GGUF token types (`tokenizer.ggml.token_type`).
    enum TokenType {
        static let normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public let kind: Kind
    public let tokens: [String]
    /// Raw bytes of every token (control, unknown and user-defined tokens: their UTF-8 text).
    private let pieces: [[UInt8]]
    /// Token text → id (for equal texts the later id, as in llama.cpp).
    private let ids: PieceTable
    private let specials: SpecialTokens
    private let algorithm: Algorithm
    public let bosID: Int32?
    public let eosID: Int32
    public let addBOS: Bool
    /// SentencePiece only: a space is put before text that starts the input or follows a special
    /// token, and decoding drops it again (Llama 2 sets it; Gemma does not).
    public let addSpacePrefix: Bool
    /// Tokens that end a turn (eos, <|im_end|>, <|endoftext|>, <end_of_turn> …).
    public let endOfGeneration: Set<Int32>

    public var vocabularySize: Int { tokens.count }

    init(kind: Kind, tokens: [String], ids: PieceTable, tokenTypes: [Int], pieces: [[UInt8]], algorithm: Algorithm,
         bosID: Int32?, eosID: Int32, addBOS: Bool, addSpacePrefix: Bool) {
        self.kind = kind
        self.tokens = tokens
        self.pieces = pieces
        self.algorithm = algorithm
        self.bosID = bosID
        self.eosID = eosID
        self.addBOS = addBOS
        self.addSpacePrefix = addSpacePrefix
        self.ids = ids
        specials = SpecialTokens(tokens: tokens, types: tokenTypes)
        var eog: Set<Int32> = [eosID]
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"] {
            if let id = ids.find(name) { eog.insert(id) }
        }
        endOfGeneration = eog
    }

    /// A byte-level BPE tokenizer (GGUF `gpt2`) from its vocabulary and merges, splitting text in `style`.
    public convenience init(tokens: [String], tokenTypes: [Int], merges: [String], bosID: Int32?, eosID: Int32, addBOS: Bool,
                            style: PreTokenizer.Style = .smollm) throws {
        try Self.checkVocabulary(tokens)
        guard merges.count <= Int(Int32.max) else {
            throw BraidError.invalidArgument("the vocabulary has \(merges.count) merges (ranks are 32-bit)")
        }
        let (bpe, pieces) = ByteLevelBPE.make(tokens: tokens, tokenTypes: tokenTypes, merges: merges, style: style)
        self.init(kind: .byteLevelBPE, tokens: tokens, ids: PieceTable(tokens), tokenTypes: tokenTypes, pieces: pieces, algorithm: .byteLevel(bpe),
                  bosID: bosID, eosID: eosID, addBOS: addBOS, addSpacePrefix: false)
    }

    /// A SentencePiece-style BPE tokenizer (GGUF `llama`) from its vocabulary and scores.
    /// `unknownID` stands for bytes that have no `<0xXX>` token (without it they are dropped).
    public convenience init(tokens: [String], scores: [Float], tokenTypes: [Int], bosID: Int32?, eosID: Int32, unknownID: Int32?,
                            addBOS: Bool, addSpacePrefix: Bool) throws {
        try Self.checkVocabulary(tokens)
        guard scores.count == tokens.count else {
            throw BraidError.invalidArgument("the vocabulary has \(tokens.count) tokens but \(scores.count) scores")
        }
        let ids = PieceTable(tokens)
        let (spm, pieces) = SentencePieceBPE.make(tokens: tokens, table: ids, scores: scores, tokenTypes: tokenTypes, unknownID: unknownID,
                                                  addSpacePrefix: addSpacePrefix)
        self.init(kind: .sentencePiece, tokens: tokens, ids: ids, tokenTypes: tokenTypes, pieces: pieces, algorithm: .sentencePiece(spm),
                  bosID: bosID, eosID: eosID, addBOS: addBOS, addSpacePrefix: addSpacePrefix)
    }

    private static func checkVocabulary(_ tokens: [String]) throws {
        guard !tokens.isEmpty else { throw BraidError.invalidArgument("the vocabulary is empty") }
        guard tokens.count <= Int(Int32.max) else {
            throw BraidError.invalidArgument("the vocabulary has \(tokens.count) tokens (ids are 32-bit)")
        }
    }

    /// The tokenizer stored in a GGUF file; its `tokenizer.ggml.model` chooses the algorithm.
    public convenience init(gguf: GGUFFile) throws {
        let model = try gguf.string("tokenizer.ggml.model")
        guard let kind = Kind(rawValue: model) else {
            throw BraidError.invalidArgument("\(gguf.path): tokenizer model \(model) is not supported (braid reads gpt2, byte-level BPE, and llama, SentencePiece BPE)")
        }
        let tokens = try gguf.stringArray("tokenizer.ggml.tokens")
        guard !tokens.isEmpty else { throw BraidError.invalidArgument("\(gguf.path): the vocabulary is empty") }
        let types = (try? gguf.intArray("tokenizer.ggml.token_type")) ?? []
        // Token ids from the file must name a token of the vocabulary.
        func tokenID(_ key: String) throws -> Int32? {
            guard gguf.metadata[key] != nil else { return nil }
            return Int32(try CheckedInt.int(try gguf.int(key), "\(key) of \(gguf.path)", in: 0...min(tokens.count - 1, Int(Int32.max))))
        }
        func flag(_ key: String) -> Bool? { gguf.metadata[key]?.boolValue }
        switch kind {
        case .byteLevelBPE:
            let merges = try gguf.stringArray("tokenizer.ggml.merges")
            guard let eos = try tokenID("tokenizer.ggml.eos_token_id") else { throw BraidError.missingKey("tokenizer.ggml.eos_token_id") }
            // How text splits into words decides the ids: a split braid lacks would silently differ from llama.cpp's.
            let pre = gguf.metadata["tokenizer.ggml.pre"]?.stringValue ?? "default"
            guard let style = PreTokenizer.Style(pre: pre) else {
                throw BraidError.invalidArgument("\(gguf.path): pre-tokenizer \(pre) (tokenizer.ggml.pre) is not supported; braid splits text as llama.cpp's smollm, llama-bpe (Llama 3) and qwen2 do")
            }
            try self.init(tokens: tokens, tokenTypes: types, merges: merges, bosID: try tokenID("tokenizer.ggml.bos_token_id"),
                          eosID: eos, addBOS: flag("tokenizer.ggml.add_bos_token") ?? false, style: style)
        case .sentencePiece:
            let scores = try gguf.floatArray("tokenizer.ggml.scores").map { Float($0) }
            // llama.cpp's defaults for SentencePiece vocabularies: bos 1, eos 2, unknown 0, BOS added, space prefix on.
            func orDefault(_ id: Int32?, _ fallback: Int32) -> Int32? { id ?? (Int(fallback) < tokens.count ? fallback : nil) }
            guard let eos = orDefault(try tokenID("tokenizer.ggml.eos_token_id"), 2) else {
                throw BraidError.missingKey("tokenizer.ggml.eos_token_id")
            }
            try self.init(tokens: tokens, scores: scores, tokenTypes: types,
                          bosID: orDefault(try tokenID("tokenizer.ggml.bos_token_id"), 1), eosID: eos,
                          unknownID: orDefault(try tokenID("tokenizer.ggml.unknown_token_id"), 0),
                          addBOS: flag("tokenizer.ggml.add_bos_token") ?? true,
                          addSpacePrefix: flag("tokenizer.ggml.add_space_prefix") ?? true)
        }
    }

    public func id(of token: String) -> Int32? { ids.find(token) }

    /// Raw bytes of one token.
    public func piece(_ id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < pieces.count else { return [] }
        return pieces[Int(id)]
    }

    /// Text → ids, as llama.cpp's `llama_tokenize`. With `parseSpecial`, control and unknown
    /// tokens written in the text become their tokens (as chat templates need); user-defined
    /// tokens (Gemma's runs of spaces, newlines and tabs, its HTML tags) always do.
    public func encode(_ text: String, parseSpecial: Bool = true, addBOS: Bool? = nil) -> [Int32] {
        var out: [Int32] = []
        if addBOS ?? self.addBOS, let b = bosID { out.append(b) }
        let bytes = Array(text.utf8)
        var afterSpecial = true  // the start of the text counts as after a special token (space prefix)
        for fragment in specials.split(bytes, parseSpecial: parseSpecial) {
            if fragment.token >= 0 {
                out.append(fragment.token)
                afterSpecial = true
                continue
            }
            let plain = bytes[fragment.start..<fragment.end]
            switch algorithm {
            case .byteLevel(let bpe): bpe.encode(plain, into: &out)
            case .sentencePiece(let spm): spm.encode(plain, afterSpecial: afterSpecial, into: &out)
            }
            afterSpecial = false
        }
        return out
    }

    /// Ids → text, lossless for byte-level and byte-fallback tokens (invalid UTF-8 is replaced by
    /// U+FFFD). With a space prefix, the space encoding put before the text is dropped again.
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for (i, id) in ids.enumerated() {
            let p = piece(id)
            if addSpacePrefix && isFirstTextToken(at: i, of: ids) && p.first == 0x20 {
                bytes.append(contentsOf: p.dropFirst())
            } else {
                bytes.append(contentsOf: p)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether position `i` holds the first token after an optional leading BOS.
    func isFirstTextToken(at i: Int, of ids: [Int32]) -> Bool {
        i == 0 ? ids[0] != bosID : i == 1 && ids[0] == bosID
    }

    /// Strict UTF-8 decoding for user input (prompt files, stdin).
    public static func decodeUTF8Strictly(_ bytes: [UInt8], source: String) throws -> String {
        guard let s = String(validating: bytes, as: UTF8.self) else { throw BraidError.invalidUTF8(source: source) }
        return s
    }
}
