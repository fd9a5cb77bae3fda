import Foundation

/// SentencePiece-style BPE over a GGUF vocabulary (`tokenizer.ggml.model = llama`: Llama 2,
/// Gemma), with the results of llama.cpp's `llm_tokenizer_spm`. Spaces are written "▁" (U+2581);
/// the text between special tokens is split into UTF-8 characters, and the adjacent pair whose
/// concatenation is the vocabulary token of highest score (leftmost on ties) is merged until no
/// pair forms a token. A character left that is no token becomes its bytes' `<0xXX>` tokens
/// (byte fallback); where the vocabulary lacks one of them, the character becomes the unknown
/// token (llama.cpp stops there with an error), or nothing if there is no unknown token.
///
/// O(n log n): the symbols form a linked list and candidate pairs wait in a heap keyed by
/// (score, left position); an entry whose symbols have changed since it was pushed is skipped
/// (a symbol only grows, so the pair is unchanged exactly when its two lengths still add up to
/// the length it had). There is no word cache: the whole text is one sequence, as in llama.cpp.
struct SentencePieceBPE: Sendable {
    private let table: PieceTable
    private let scores: [Float]
    /// Token of each byte (`<0xXX>`, else the byte as text), −1 where none.
    private let byteTokens: [Int32]
    private let unknownID: Int32?
    private let addSpacePrefix: Bool

    /// "▁", which stands for a space in the vocabulary.
    static let spaceMark: [UInt8] = [0xE2, 0x96, 0x81]

    /// The algorithm's tables and every token's bytes: normal tokens with "▁" as a space, byte
    /// tokens as their byte, control, unknown and user-defined tokens as their text, unused ones
    /// as nothing (as llama.cpp's token_to_piece).
    static func make(tokens: [String], scores: [Float], tokenTypes: [Int], unknownID: Int32?, addSpacePrefix: Bool)
        -> (SentencePieceBPE, [[UInt8]]) {
        let texts = tokens.map { Array($0.utf8) }
        let table = PieceTable(texts)
        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(tokens.count)
        for (i, text) in texts.enumerated() {
            let type = i < tokenTypes.count ? tokenTypes[i] : Tokenizer.TokenType.normal
            switch type {
            case Tokenizer.TokenType.normal: pieces.append(unescapeSpaces(text))
            case Tokenizer.TokenType.byte: pieces.append(byteValue(text).map { [$0] } ?? text)
            case _ where SpecialTokens.isSpecial(type): pieces.append(text)
            default: pieces.append([])
            }
        }
        let byteTokens: [Int32] = (0..<256).map { b in
            let hex = Array(String(format: "<0x%02X>", b).utf8)
            if let id = table.find(hex) { return id }
            if b < 0x80, let id = table.find([UInt8(b)]) { return id }
            return -1
        }
        // Equal scores must tie: -0.0 and 0.0 compare equal in llama.cpp.
        let scores = scores.map { $0 == 0 ? 0 : $0 }
        return (SentencePieceBPE(table: table, scores: scores, byteTokens: byteTokens, unknownID: unknownID, addSpacePrefix: addSpacePrefix), pieces)
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

    /// A candidate merge: best score first, then leftmost (llama.cpp's llm_bigram_spm order).
    private struct Bigram: Comparable {
        /// Smaller for a higher score.
        var rank: UInt32
        var left: Int32, right: Int32, size: Int32

        init(score: Float, left: Int, right: Int, size: Int) {
            let bits = score.bitPattern
            let ascending = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
            rank = ~ascending
            self.left = Int32(left)
            self.right = Int32(right)
            self.size = Int32(size)
        }

        static func < (a: Bigram, b: Bigram) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.left < b.left }
        static func == (a: Bigram, b: Bigram) -> Bool { a.rank == b.rank && a.left == b.left }
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

    private func encodeEscaped(_ text: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        let n = text.count
        guard n > 0, let base = text.baseAddress else { return }
        // One symbol per UTF-8 character (a stray byte is a symbol of its own): its start, its
        // length in bytes (0 once merged into its left neighbour), and its neighbours.
        var count = 0
        var offset = 0
        while offset < n {
            let lead = text[offset]
            offset += lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
            count += 1
        }
        let m = count
        let start = UnsafeMutablePointer<Int32>.allocate(capacity: m)
        let length = UnsafeMutablePointer<Int32>.allocate(capacity: m)
        let prev = UnsafeMutablePointer<Int32>.allocate(capacity: m)
        let next = UnsafeMutablePointer<Int32>.allocate(capacity: m)
        defer {
            start.deallocate()
            length.deallocate()
            prev.deallocate()
            next.deallocate()
        }
        offset = 0
        for i in 0..<m {
            let lead = text[offset]
            let len = min(n - offset, lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4)
            start[i] = Int32(offset)
            length[i] = Int32(len)
            prev[i] = Int32(i - 1)
            next[i] = Int32(i + 1)
            offset += len
        }
        next[m - 1] = -1
        table.withLookup { find in
            scores.withUnsafeBufferPointer { scores in
                @inline(__always)
                func candidate(_ left: Int32, _ right: Int32) -> Bigram? {
                    guard left >= 0, right >= 0 else { return nil }
                    let size = Int(length[Int(left)] + length[Int(right)])
                    guard let id = find(base + Int(start[Int(left)]), size) else { return nil }
                    return Bigram(score: scores[Int(id)], left: Int(left), right: Int(right), size: size)
                }
                var initial: [Bigram] = []
                initial.reserveCapacity(m)
                for i in 1..<max(m, 1) {
                    if let b = candidate(Int32(i - 1), Int32(i)) { initial.append(b) }
                }
                var heap = MinHeap(heapifying: consume initial)
                while let b = heap.pop() {
                    let l = Int(b.left), r = Int(b.right)
                    guard length[l] > 0, length[r] > 0, length[l] + length[r] == b.size else { continue }
                    length[l] = b.size
                    length[r] = 0
                    next[l] = next[r]
                    if next[r] >= 0 { prev[Int(next[r])] = b.left }
                    if let c = candidate(prev[l], b.left) { heap.push(c) }
                    if let c = candidate(b.left, next[l]) { heap.push(c) }
                }
                // Merged symbols are tokens; a single character may not be: its bytes then.
                var i: Int32 = 0
                while i >= 0 {
                    let s = Int(start[Int(i)]), len = Int(length[Int(i)])
                    if let id = find(base + s, len) {
                        out.append(id)
                    } else if (s..<(s + len)).allSatisfy({ byteTokens[Int(text[$0])] >= 0 }) {
                        for k in s..<(s + len) { out.append(byteTokens[Int(text[k])]) }
                    } else if let unknownID {
                        out.append(unknownID)
                    } else {
                        for k in s..<(s + len) where byteTokens[Int(text[k])] >= 0 { out.append(byteTokens[Int(text[k])]) }
                    }
                    i = next[Int(i)]
                }
            }
        }
    }
}

/// Token text → id without building a String or an Array per look-up: open addressing over
/// FNV-1a hashes, each slot holding an id whose text is compared byte for byte. For equal texts
/// the later id wins, as in llama.cpp's text-to-token map.
struct PieceTable: Sendable {
    private let bytes: [UInt8]
    private let offsets: [Int]
    private let slots: [Int32]
    private let mask: Int
    /// The longest token text, in bytes.
    let maxLength: Int

    init(_ texts: [[UInt8]]) {
        var bytes: [UInt8] = [], offsets = [0]
        bytes.reserveCapacity(texts.reduce(0) { $0 + $1.count })
        offsets.reserveCapacity(texts.count + 1)
        for t in texts {
            bytes += t
            offsets.append(bytes.count)
        }
        var capacity = 16
        while capacity < 2 * texts.count { capacity *= 2 }
        var slots = [Int32](repeating: -1, count: capacity)
        let mask = capacity - 1
        bytes.withUnsafeBufferPointer { all in
            for (id, t) in texts.enumerated() {
                t.withUnsafeBufferPointer { p in
                    var h = Self.hash(p.baseAddress, p.count) & mask
                    while slots[h] >= 0 {
                        let other = Int(slots[h])
                        let o = all[offsets[other]..<offsets[other + 1]]
                        if o.elementsEqual(p) { break }
                        h = (h + 1) & mask
                    }
                    slots[h] = Int32(id)
                }
            }
        }
        self.bytes = bytes
        self.offsets = offsets
        self.slots = slots
        self.mask = mask
        maxLength = texts.map(\.count).max() ?? 0
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>?, _ count: Int) -> Int {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for i in 0..<count { h = (h ^ UInt64(p![i])) &* 0x0000_0100_0000_01B3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// Runs `body` with a look-up over raw pointers (no array access per call).
    func withLookup<R>(_ body: ((UnsafePointer<UInt8>, Int) -> Int32?) -> R) -> R {
        bytes.withUnsafeBufferPointer { all in
            offsets.withUnsafeBufferPointer { offsets in
                slots.withUnsafeBufferPointer { slots in
                    let mask = self.mask, maxLength = self.maxLength
                    return body { p, count in
                        count <= maxLength ? Self.probe(p, count, all, offsets, slots, mask) : nil
                    }
                }
            }
        }
    }

    func find(_ text: [UInt8]) -> Int32? {
        text.withUnsafeBufferPointer { find($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
    }

    func find(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int32? {
        guard count <= maxLength else { return nil }
        return withLookup { $0(p, count) }
    }

    /// The id of the `count` bytes at `p`: linear probing from their hash until an empty slot.
    @inline(__always)
    static func probe(_ p: UnsafePointer<UInt8>, _ count: Int, _ all: UnsafeBufferPointer<UInt8>, _ offsets: UnsafeBufferPointer<Int>,
                      _ slots: UnsafeBufferPointer<Int32>, _ mask: Int) -> Int32? {
        var h = hash(p, count) & mask
        while true {
            let id = slots[h]
            if id < 0 { return nil }
            let s = offsets[Int(id)], e = offsets[Int(id) + 1]
            if e - s == count && (count == 0 || memcmp(all.baseAddress! + s, p, count) == 0) { return id }
            h = (h + 1) & mask
        }
    }
}
