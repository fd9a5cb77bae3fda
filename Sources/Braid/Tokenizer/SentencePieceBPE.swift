import CPrefetch
import Foundation

/// SentencePiece-style BPE over a GGUF vocabulary (`tokenizer.ggml.model = llama`: Llama 2,
/// Gemma), with the results of llama.cpp's `llm_tokenizer_spm`. Spaces are written "▁" (U+2581);
/// the text between special tokens is split into UTF-8 characters, and the adjacent pair whose
/// concatenation is the vocabulary token of highest score (leftmost on ties) is merged until no
/// pair forms a token. A character left that is no token becomes its bytes' `<0xXX>` tokens
/// (byte fallback); where the vocabulary lacks one of them, the character becomes the unknown
/// token (llama.cpp stops there with an error), or nothing if there is no unknown token.
///
/// O(n log n): the symbols form a linked list and candidate pairs wait in a ``MergeQueue``
/// keyed by (score, left position); each symbol records the score of the pair it starts, and a
/// queued pair whose score is no longer the one recorded is skipped (an equal score merges the
/// same way). There is no word cache: the whole text is one sequence, as in llama.cpp.
struct SentencePieceBPE: Sendable {
    private let table: PieceTable
    /// Each token's score as a queue priority: smaller for a higher score, equal for equal scores.
    private let ranks: [UInt32]
    /// Token of each byte (`<0xXX>`, else the byte as text), −1 where none.
    private let byteTokens: [Int32]
    private let unknownID: Int32?
    private let addSpacePrefix: Bool

    /// "▁", which stands for a space in the vocabulary.
    static let spaceMark: [UInt8] = [0xE2, 0x96, 0x81]

    /// The algorithm's tables and every token's bytes: normal tokens with "▁" as a space, byte
    /// tokens as their byte, control, unknown and user-defined tokens as their text, unused ones
    /// as nothing (as llama.cpp's token_to_piece).
    static func make(tokens: [String], table: PieceTable, scores: [Float], tokenTypes: [Int], unknownID: Int32?,
                     addSpacePrefix: Bool) -> (SentencePieceBPE, [[UInt8]]) {
        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(tokens.count)
        for (i, token) in tokens.enumerated() {
            let text = Array(token.utf8)
            let type = i < tokenTypes.count ? tokenTypes[i] : Tokenizer.TokenType.normal
            switch type {
            case Tokenizer.TokenType.normal: pieces.append(unescapeSpaces(text))
            case Tokenizer.TokenType.byte: pieces.append(byteValue(text).map { [$0] } ?? text)
            case _ where SpecialTokens.isSpecial(type): pieces.append(text)
            default: pieces.append([])
            }
        }
        let byteTokens: [Int32] = (0..<256).map { b in
            if let id = table.find(String(format: "<0x%02X>", b)) { return id }
            if b < 0x80, let id = table.find(String(UnicodeScalar(UInt8(b)))) { return id }
            return -1
        }
        return (SentencePieceBPE(table: table, ranks: scores.map(rank), byteTokens: byteTokens, unknownID: unknownID, addSpacePrefix: addSpacePrefix), pieces)
    }

    /// "<0xXX>" → XX.
    static func byteValue(_ text: [UInt8]) -> UInt8? {
        guard text.count == 6, text.starts(with: Array("<0x".utf8)), text[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: text[3..<5], as: UTF8.self), radix: 16)
    }

    static func unescapeSpaces(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            if i + 2 < text.count && text[i] == 0xE2 && text[i + 1] == 0x96 && text[i + 2] == 0x81 {
                out.append(0x20)
                i += 3
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }

    /// The score's bits, ordered so that a higher score is a smaller number (below `noPair`).
    /// Equal scores must tie: -0.0 and 0.0 compare equal in llama.cpp.
    static func rank(_ score: Float) -> UInt32 {
        let bits = (score == 0 ? 0 : score).bitPattern
        return min(bits & 0x8000_0000 != 0 ? bits : ~(bits | 0x8000_0000), noPair - 1)
    }

    /// Text between special tokens → ids. `afterSpecial`: the text starts the input or follows a
    /// special token (where the space prefix goes).
    func encode(_ input: ArraySlice<UInt8>, afterSpecial: Bool, into out: inout [Int32]) {
        var text: [UInt8] = []
        text.reserveCapacity(input.count + 16)
        if addSpacePrefix && afterSpecial { text += Self.spaceMark }
        for b in input {
            if b == 0x20 { text += Self.spaceMark } else { text.append(b) }
        }
        // Pieces of 2 GiB and more are encoded in parts (positions are 32-bit).
        let limit = Int(Int32.max) - 8
        var from = 0
        while from < text.count {
            var to = min(text.count, from + limit)
            while to < text.count && text[to] & 0xC0 == 0x80 { to -= 1 }  // not inside a character
            text.withUnsafeBufferPointer { encodeEscaped(UnsafeBufferPointer(rebasing: $0[from..<to]), into: &out) }
            from = to
        }
    }

    /// A symbol of the text being merged, stored at the byte offset where it starts; it ends
    /// where the next one starts (a symbol merged into its left neighbour drops out of the links).
    private struct Symbol {
        var prev: Int32, next: Int32
        /// The rank of the token this symbol forms with the next (`noPair` if none): a queued
        /// pair is still to be merged exactly when the rank it was queued with is still this.
        var pairRank: UInt32
    }

    private static let noPair = UInt32.max

    private func encodeEscaped(_ text: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        let n = text.count
        guard n > 0, let base = text.baseAddress else { return }
        // One 12-byte record per symbol: a pop reads one cache line, where separate arrays cost three.
        let symbols = UnsafeMutablePointer<Symbol>.allocate(capacity: n)
        defer { symbols.deallocate() }
        // One symbol per UTF-8 character (a stray byte is a symbol of its own).
        var offset = 0, last: Int32 = -1
        while offset < n {
            let lead = text[offset]
            let length = min(n - offset, lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4)
            symbols[offset] = Symbol(prev: last, next: Int32(offset + length), pairRank: Self.noPair)
            last = Int32(offset)
            offset += length
        }
        symbols[Int(last)].next = -1
        table.withLookup { find in
            ranks.withUnsafeBufferPointer { ranks in
                @inline(__always)
                func end(_ s: Int32) -> Int {
                    let e = symbols[Int(s)].next
                    return e >= 0 ? Int(e) : n
                }
                /// Records in `left` the rank of the token it forms with its right neighbour; the queue key if any.
                @inline(__always)
                func pair(_ left: Int32) -> UInt64? {
                    guard left >= 0 else { return nil }
                    let right = symbols[Int(left)].next
                    guard right >= 0, let id = find(base + Int(left), end(right) - Int(left)) else {
                        symbols[Int(left)].pairRank = Self.noPair
                        return nil
                    }
                    symbols[Int(left)].pairRank = ranks[Int(id)]
                    return UInt64(ranks[Int(id)]) << 32 | UInt64(UInt32(left))
                }
                var initial: [UInt64] = []
                initial.reserveCapacity(n)
                var s: Int32 = 0
                while s >= 0 {
                    if let key = pair(s) { initial.append(key) }
                    s = symbols[Int(s)].next
                }
                var queue = MergeQueue(positionOrdered: initial)
                while let key = queue.pop() {
                    // The sorted pops jump across the text: ask for a symbol well before it is needed.
                    if let ahead = queue.upcoming(16) { braid_prefetch(symbols + Int(ahead & 0xFFFF_FFFF)) }
                    let l = Int(key & 0xFFFF_FFFF)
                    guard symbols[l].pairRank == UInt32(key >> 32) else { continue }
                    let r = Int(symbols[l].next)
                    let after = symbols[r].next
                    symbols[l].next = after
                    symbols[r].pairRank = Self.noPair
                    if after >= 0 { symbols[Int(after)].prev = Int32(l) }
                    if let k = pair(symbols[l].prev) { queue.push(k) }
                    if let k = pair(Int32(l)) { queue.push(k) }
                }
                // Merged symbols are tokens; a single character may not be: its bytes then.
                s = 0
                while s >= 0 {
                    let from = Int(s), to = end(s)
                    if let id = find(base + from, to - from) {
                        out.append(id)
                    } else if (from..<to).allSatisfy({ byteTokens[Int(text[$0])] >= 0 }) {
                        for k in from..<to { out.append(byteTokens[Int(text[k])]) }
                    } else if let unknownID {
                        out.append(unknownID)
                    } else {
                        for k in from..<to where byteTokens[Int(text[k])] >= 0 { out.append(byteTokens[Int(text[k])]) }
                    }
                    s = symbols[from].next
                }
            }
        }
    }
}
