import Foundation
import Synchronization

/// Byte-level BPE over a GGUF vocabulary (`tokenizer.ggml.model = gpt2`), with llama.cpp's
/// `smollm` pre-tokenizer and its handling of special tokens.
/// @unchecked Sendable: immutable tables; the only mutable state, the piece cache, sits behind a Mutex.
public final class BPETokenizer: @unchecked Sendable {
    public let tokens: [String]
    /// Raw bytes of every token (control tokens: their UTF-8 text).
    private let pieces: [[UInt8]]
    private let ids: [String: Int32]
    /// (left id, right id) packed → (rank, merged id)
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Token of each byte, −1 where the vocabulary has none.
    private let byteTokens: [Int32]
    /// Control and user-defined tokens, longest first, matched as whole tokens in text.
    private let specials: [(text: [UInt8], id: Int32)]
    /// Whether every special token starts with "<" (then only "<" needs a look-up).
    private let specialsStartWithAngle: Bool
    public let bosID: Int32?
    public let eosID: Int32
    public let addBOS: Bool
    /// Tokens that end a turn (eos, <|im_end|>, <|endoftext|> …).
    public let endOfGeneration: Set<Int32>
    /// Pieces already merged, keyed by their bytes (String equality is canonical equivalence,
    /// which would merge "é" and "e\u{301}").
    private let cache = Mutex<[[UInt8]: [Int32]]>([:])

    public var vocabularySize: Int { tokens.count }

    public init(tokens: [String], tokenTypes: [Int], merges mergeList: [String], bosID: Int32?, eosID: Int32, addBOS: Bool) throws {
        guard !tokens.isEmpty else { throw BraidError.invalidArgument("the vocabulary is empty") }
        guard tokens.count <= Int(Int32.max), mergeList.count <= Int(Int32.max) else {
            throw BraidError.invalidArgument("the vocabulary has \(tokens.count) tokens and \(mergeList.count) merges (ids are 32-bit)")
        }
        self.tokens = tokens
        self.bosID = bosID
        self.eosID = eosID
        self.addBOS = addBOS
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }
        self.ids = ids

        var special: [(text: [UInt8], id: Int32)] = []
        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            let type = i < tokenTypes.count ? tokenTypes[i] : 1
            if type == 3 || type == 4 {  // control, user-defined: their text as is
                pieces.append(Array(t.utf8))
                if !t.isEmpty { special.append((Array(t.utf8), Int32(i))) }
            } else {
                pieces.append(t.unicodeScalars.map { ByteEncoder.decode[$0.value] ?? 0x3F })
            }
        }
        self.pieces = pieces
        specials = special.sorted { $0.text.count > $1.text.count }
        specialsStartWithAngle = specials.allSatisfy { $0.text.first == UInt8(ascii: "<") }

        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(mergeList.count)
        for (rank, m) in mergeList.enumerated() {
            guard let space = m.firstIndex(of: " ") else { continue }
            let a = String(m[..<space]), b = String(m[m.index(after: space)...])
            guard let ia = ids[a], let ib = ids[b], let im = ids[a + b] else { continue }
            let key = UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))
            if table[key] == nil { table[key] = (Int32(rank), im) }
        }
        merges = table
        // A vocabulary may lack a few byte tokens (SmolLM2 has none for some control bytes and
        // bytes that never start a character in use); like llama.cpp, such bytes are dropped.
        byteTokens = (0..<256).map { ids[String(ByteEncoder.encode[$0])] ?? -1 }
        var eog: Set<Int32> = [eosID]
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"] {
            if let id = ids[name] { eog.insert(id) }
        }
        endOfGeneration = eog
    }

    /// The tokenizer stored in a GGUF file.
    public convenience init(gguf: GGUFFile) throws {
        let model = try gguf.string("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw BraidError.invalidArgument("tokenizer model \(model) is not supported (braid reads byte-level BPE, gpt2)")
        }
        let tokens = try gguf.stringArray("tokenizer.ggml.tokens")
        guard !tokens.isEmpty else { throw BraidError.invalidArgument("\(gguf.path): the vocabulary is empty") }
        let types = (try? gguf.intArray("tokenizer.ggml.token_type")) ?? []
        let merges = try gguf.stringArray("tokenizer.ggml.merges")
        // Token ids from the file must name a token of the vocabulary.
        func tokenID(_ key: String) throws -> Int32 {
            Int32(try CheckedInt.int(try gguf.int(key), "\(key) of \(gguf.path)", in: 0...min(tokens.count - 1, Int(Int32.max))))
        }
        let bos = gguf.metadata["tokenizer.ggml.bos_token_id"] == nil ? nil : try tokenID("tokenizer.ggml.bos_token_id")
        let eos = try tokenID("tokenizer.ggml.eos_token_id")
        let addBOS = gguf.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? false
        try self.init(tokens: tokens, tokenTypes: types, merges: merges, bosID: bos, eosID: eos, addBOS: addBOS)
    }

    public func id(of token: String) -> Int32? { ids[token] }

    /// Raw bytes of one token.
    public func piece(_ id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < pieces.count else { return [] }
        return pieces[Int(id)]
    }

    /// Text → ids. With `parseSpecial`, special-token strings in the text become their tokens
    /// (as llama.cpp does for chat templates); otherwise they are tokenised as plain text.
    public func encode(_ text: String, parseSpecial: Bool = true, addBOS: Bool? = nil) -> [Int32] {
        var out: [Int32] = []
        if addBOS ?? self.addBOS, let b = bosID { out.append(b) }
        let bytes = Array(text.utf8)
        var start = 0, i = 0
        if parseSpecial && !specials.isEmpty {
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: "<") || !specialsStartWithAngle, let s = special(at: i, bytes) {
                    if start < i { encodePlain(bytes[start..<i], into: &out) }
                    out.append(s.id)
                    i += s.text.count
                    start = i
                } else {
                    i += 1
                }
            }
        }
        if start < bytes.count { encodePlain(bytes[start..<bytes.count], into: &out) }
        return out
    }


    private func special(at i: Int, _ bytes: [UInt8]) -> (text: [UInt8], id: Int32)? {
        for s in specials where i + s.text.count <= bytes.count {
            if bytes[i] == s.text[0] && bytes[i..<i + s.text.count].elementsEqual(s.text) { return s }
        }
        return nil
    }

    private func encodePlain(_ bytes: ArraySlice<UInt8>, into out: inout [Int32]) {
        let text = String(decoding: bytes, as: UTF8.self)
        for word in PreTokenizer.split(text) {
            let key = Array(word.utf8)
            if let cached = cache.withLock({ $0[key] }) {
                out.append(contentsOf: cached)
                continue
            }
            let ids = bpe(key)
            // Bounded: at most 100,000 pieces of at most 64 bytes (longer words are rare and would pin memory).
            if key.count <= 64 {
                cache.withLock {
                    if $0.count >= 100_000 { $0.removeAll(keepingCapacity: true) }
                    $0[key] = ids
                }
            }
            out.append(contentsOf: ids)
        }
    }

    /// Merges the lowest-ranked adjacent pair (leftmost on ties) until none is left, in
    /// O(n log n): the symbols form a linked list, candidate pairs wait in a min-heap keyed by
    /// (rank, position), and an entry whose pair has changed since it was pushed is skipped
    /// (ranks are unique per pair, so a pair with the same rank is the same pair).
    private func bpe(_ bytes: [UInt8]) -> [Int32] {
        var symbols = bytes.map { byteTokens[Int($0)] }
        let n = symbols.count
        guard n > 1 else { return symbols.filter { $0 >= 0 } }
        var next = Array(1...n)
        next[n - 1] = -1
        var prev = Array(-1..<(n - 1))
        var heap = MinHeap()
        func rank(_ a: Int) -> (rank: Int32, id: Int32)? {
            let b = next[a]
            guard b >= 0 else { return nil }
            return merges[UInt64(UInt32(bitPattern: symbols[a])) << 32 | UInt64(UInt32(bitPattern: symbols[b]))]
        }
        func push(_ a: Int) {
            if a >= 0, let m = rank(a) { heap.push(UInt64(UInt32(m.rank)) << 32 | UInt64(a)) }
        }
        for a in 0..<(n - 1) { push(a) }
        while let key = heap.pop() {
            let a = Int(key & 0xFFFF_FFFF)
            guard symbols[a] != Int32.min, let m = rank(a), UInt64(UInt32(m.rank)) == key >> 32 else { continue }
            let b = next[a]
            symbols[a] = m.id
            symbols[b] = Int32.min  // merged away
            next[a] = next[b]
            if next[b] >= 0 { prev[next[b]] = a }
            push(prev[a])
            push(a)
        }
        var out: [Int32] = []
        var i = 0
        while i >= 0 {
            if symbols[i] >= 0 { out.append(symbols[i]) }
            i = next[i]
        }
        return out
    }

    /// Ids → text, lossless for byte-level tokens (invalid UTF-8 is replaced by U+FFFD).
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids { bytes.append(contentsOf: piece(id)) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Strict UTF-8 decoding for user input (prompt files, stdin).
    public static func decodeUTF8Strictly(_ bytes: [UInt8], source: String) throws -> String {
        guard let s = String(validating: bytes, as: UTF8.self) else { throw BraidError.invalidUTF8(source: source) }
        return s
    }
}

/// A binary min-heap of packed keys (the BPE merge queue).
struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ x: UInt64) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i] < items[parent] else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && items[l] < items[m] { m = l }
            if r < items.count && items[r] < items[m] { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}

