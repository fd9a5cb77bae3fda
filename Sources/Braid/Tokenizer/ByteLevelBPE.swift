import Synchronization

/// Byte-level BPE over a GGUF vocabulary (`tokenizer.ggml.model = gpt2`): text is split into
/// words by the file's pre-tokenizer, each word's bytes become GPT-2's byte characters, and the
/// lowest-ranked merge is applied until none is left.
final class ByteLevelBPE: Sendable {
    /// (left id, right id) packed → (rank, merged id)
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Token of each byte, −1 where the vocabulary has none.
    private let byteTokens: [Int32]
    /// Words already merged, keyed by their bytes (String equality is canonical equivalence,
    /// which would merge "é" and "e\u{301}").
    private let cache = Mutex<[[UInt8]: [Int32]]>([:])
    private let style: PreTokenizer.Style
    /// Token ids by their text, for styles that take a whole word that is a token as it is.
    private let wholeWords: [String: Int32]

    private init(merges: [UInt64: (rank: Int32, id: Int32)], byteTokens: [Int32], style: PreTokenizer.Style, wholeWords: [String: Int32]) {
        self.merges = merges
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
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(mergeList.count)
        for (rank, m) in mergeList.enumerated() {
            guard let space = m.firstIndex(of: " ") else { continue }
            let a = String(m[..<space]), b = String(m[m.index(after: space)...])
            guard let ia = ids[a], let ib = ids[b], let im = ids[a + b] else { continue }
            let key = UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))
            if table[key] == nil { table[key] = (Int32(rank), im) }
        }
        // A vocabulary may lack a few byte tokens (SmolLM2 has none for some control bytes and
        // bytes that never start a character in use); like llama.cpp, such bytes are dropped.
        let byteTokens = (0..<256).map { ids[String(ByteEncoder.encode[$0])] ?? -1 }
        return (ByteLevelBPE(merges: table, byteTokens: byteTokens, style: style, wholeWords: style.wholeWordsFirst ? ids : [:]), pieces)
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
        var heap = MinHeap<UInt64>()
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
}

/// A 4-ary min-heap (the merge queues and the special-token split): half the depth of a binary
/// heap, and a node's four children are adjacent in memory, which matters once a 1 MiB text
/// puts a million candidate pairs in it.
struct MinHeap<Element: Comparable> {
    private var items: [Element] = []

    init() {}

    /// A heap of `elements`, built in O(n).
    init(heapifying elements: consuming [Element]) {
        items = elements
        guard items.count > 1 else { return }
        items.withUnsafeMutableBufferPointer { buf in
            for i in stride(from: (buf.count - 2) / 4, through: 0, by: -1) { Self.siftDown(buf, from: i) }
        }
    }

    var isEmpty: Bool { items.isEmpty }

    mutating func reserveCapacity(_ n: Int) { items.reserveCapacity(n) }

    mutating func push(_ x: Element) {
        items.append(x)
        items.withUnsafeMutableBufferPointer { buf in
            var i = buf.count - 1
            while i > 0 {
                let parent = (i - 1) / 4
                guard x < buf[parent] else { break }
                buf[i] = buf[parent]
                i = parent
            }
            buf[i] = x
        }
    }

    mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items.withUnsafeMutableBufferPointer { buf in
            buf[0] = last
            Self.siftDown(buf, from: 0)
        }
        return top
    }

    private static func siftDown(_ buf: UnsafeMutableBufferPointer<Element>, from start: Int) {
        let n = buf.count
        let x = buf[start]
        var i = start
        while true {
            let first = 4 * i + 1
            if first >= n { break }
            var m = first
            let end = min(first + 4, n)
            var k = first + 1
            while k < end {
                if buf[k] < buf[m] { m = k }
                k += 1
            }
            guard buf[m] < x else { break }
            buf[i] = buf[m]
            i = m
        }
        buf[i] = x
    }
}
