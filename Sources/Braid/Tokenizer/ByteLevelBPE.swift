import CPrefetch
import Synchronization

/// Byte-level BPE over a GGUF vocabulary (`tokenizer.ggml.model = gpt2`): text is split into
/// words by the file's pre-tokenizer, each word's bytes become GPT-2's byte characters, and the
/// lowest-ranked merge is applied until none is left.
final class ByteLevelBPE: Sendable {
    /// (left id, right id) packed → rank
    private let merges: [UInt64: Int32]
    /// The token each rank's merge makes (−1 where that line adds no merge).
    private let mergedTokens: [Int32]
    /// Token of each byte, −1 where the vocabulary has none.
    private let byteTokens: [Int32]
    /// Words already merged, keyed by their bytes (String equality is canonical equivalence,
    /// which would merge "é" and "e\u{301}").
    private let cache = Mutex<[[UInt8]: [Int32]]>([:])
    private let style: PreTokenizer.Style
    /// Token ids by their text, for styles that take a whole word that is a token as it is.
    private let wholeWords: [String: Int32]

    private init(merges: [UInt64: Int32], mergedTokens: [Int32], byteTokens: [Int32], style: PreTokenizer.Style, wholeWords: [String: Int32]) {
        self.merges = merges
        self.mergedTokens = mergedTokens
        self.byteTokens = byteTokens
        self.style = style
        self.wholeWords = wholeWords
    }

    /// The algorithm's tables and every token's bytes (control, unknown and user-defined tokens:
    /// their text; the others: GPT-2's byte characters mapped back to bytes).
    static func make(tokens: [String], tokenTypes: [Int], merges mergeList: [String], style: PreTokenizer.Style) -> (ByteLevelBPE, [[UInt8]]) {
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }
        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            let type = i < tokenTypes.count ? tokenTypes[i] : Tokenizer.TokenType.normal
            if SpecialTokens.isSpecial(type) {
                pieces.append(Array(t.utf8))
            } else {
                pieces.append(t.unicodeScalars.map { ByteEncoder.decode[$0.value] ?? 0x3F })
            }
        }
        var table: [UInt64: Int32] = [:]
        table.reserveCapacity(mergeList.count)
        var mergedTokens = [Int32](repeating: -1, count: mergeList.count)
        for (rank, m) in mergeList.enumerated() {
            guard let space = m.firstIndex(of: " ") else { continue }
            let a = String(m[..<space]), b = String(m[m.index(after: space)...])
            guard let ia = ids[a], let ib = ids[b], let im = ids[a + b] else { continue }
            let key = pairKey(ia, ib)
            if table[key] == nil {
                table[key] = Int32(rank)
                mergedTokens[rank] = im
            }
        }
        // A vocabulary may lack a few byte tokens (SmolLM2 has none for some control bytes and
        // bytes that never start a character in use); like llama.cpp, such bytes are dropped.
        let byteTokens = (0..<256).map { ids[String(ByteEncoder.encode[$0])] ?? -1 }
        return (ByteLevelBPE(merges: table, mergedTokens: mergedTokens, byteTokens: byteTokens, style: style,
                             wholeWords: style.wholeWordsFirst ? ids : [:]), pieces)
    }

    /// Text between special tokens → ids.
    func encode(_ bytes: ArraySlice<UInt8>, into out: inout [Int32]) {
        let text = String(decoding: bytes, as: UTF8.self)
        for word in PreTokenizer.split(text, style: style) {
            let key = Array(word.utf8)
            if !wholeWords.isEmpty, let id = wholeWords[String(String.UnicodeScalarView(key.map { ByteEncoder.encode[Int($0)] }))] {
                out.append(id)
                continue
            }
            if key.count <= 64, let cached = cache.withLock({ $0[key] }) {
                out.append(contentsOf: cached)
                continue
            }
            var ids: [Int32] = []
            // Positions are 32-bit: a word of 2 GiB or more is merged in parts.
            for from in stride(from: 0, to: key.count, by: Int(Int32.max)) {
                ids += bpe(key[from..<min(key.count, from + Int(Int32.max))])
            }
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

    /// A symbol of a word being merged: its token (−1 for a byte the vocabulary lacks), its
    /// links, and the rank of the merge it makes with the next symbol (`noPair` if none). A
    /// queued pair is still to be merged exactly when its rank is still recorded: ranks are
    /// unique per pair.
    private struct Symbol {
        var token: Int32
        var prev: Int32, next: Int32
        var pairRank: UInt32
    }

    private static let noPair = UInt32.max

    private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Merges the lowest-ranked adjacent pair (leftmost on ties) until none is left, in
    /// O(n log n): the symbols form a linked list and candidate pairs wait in a ``MergeQueue``
    /// keyed by (rank, position).
    private func bpe(_ bytes: ArraySlice<UInt8>) -> [Int32] {
        let n = bytes.count
        guard n > 1 else { return bytes.map { byteTokens[Int($0)] }.filter { $0 >= 0 } }
        var symbols = bytes.enumerated().map { i, b in
            Symbol(token: byteTokens[Int(b)], prev: Int32(i - 1), next: Int32(i + 1), pairRank: Self.noPair)
        }
        symbols[n - 1].next = -1
        return symbols.withUnsafeMutableBufferPointer { symbols in
            /// Records in `a` the rank of the merge it makes with its right neighbour; the queue key if any.
            func pair(_ a: Int32) -> UInt64? {
                guard a >= 0 else { return nil }
                let b = symbols[Int(a)].next
                guard b >= 0, let rank = merges[Self.pairKey(symbols[Int(a)].token, symbols[Int(b)].token)] else {
                    symbols[Int(a)].pairRank = Self.noPair
                    return nil
                }
                symbols[Int(a)].pairRank = UInt32(rank)
                return UInt64(rank) << 32 | UInt64(UInt32(a))
            }
            var initial: [UInt64] = []
            for a in 0..<(n - 1) {
                if let key = pair(Int32(a)) { initial.append(key) }
            }
            var queue = MergeQueue(positionOrdered: initial)
            while let key = queue.pop() {
                // The sorted pops jump across the word: ask for a symbol well before it is needed.
                if let ahead = queue.upcoming(16) { braid_prefetch(symbols.baseAddress! + Int(ahead & 0xFFFF_FFFF)) }
                let a = Int(key & 0xFFFF_FFFF), rank = UInt32(key >> 32)
                guard symbols[a].pairRank == rank else { continue }
                let b = Int(symbols[a].next)
                let after = symbols[b].next
                symbols[a].token = mergedTokens[Int(rank)]
                symbols[a].next = after
                symbols[b].pairRank = Self.noPair
                if after >= 0 { symbols[Int(after)].prev = Int32(a) }
                if let k = pair(symbols[a].prev) { queue.push(k) }
                if let k = pair(Int32(a)) { queue.push(k) }
            }
            var out: [Int32] = []
            var i: Int32 = 0
            while i >= 0 {
                if symbols[Int(i)].token >= 0 { out.append(symbols[Int(i)].token) }
                i = symbols[Int(i)].next
            }
            return out
        }
    }
}
