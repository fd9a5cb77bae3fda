/// Splits text at the special tokens written in it, with the result of llama.cpp's
/// `tokenizer_st_partition`: special tokens are taken in order of priority (longest text first,
/// then lowest id), each claiming its leftmost non-overlapping occurrences in the text no
/// earlier token has claimed. Control and unknown tokens take part only with `parseSpecial`;
/// user-defined tokens always do.
///
/// Taking every token in turn would cost (number of specials) × (text length): Gemma has 6,400.
/// Instead each position of the text holds one candidate, its longest special token, in a heap
/// ordered by (priority, position); a popped candidate is claimed if its bytes are free, dropped
/// if its first byte is taken, and otherwise replaced by the longest special token at that
/// position that ends before the first taken byte. Candidates of one token therefore come out
/// left to right after every token of higher priority, as in llama.cpp's passes.
struct SpecialTokens: Sendable {
    /// A piece of the split text: bytes `start..<end`, or one special token (`token` ≥ 0).
    struct Fragment: Equatable {
        var start: Int, end: Int, token: Int32
    }

    /// Special tokens by priority (their index): longest first, then lowest id.
    private let texts: [[UInt8]]
    private let ids: [Int32]
    /// Trie over the texts: node → its children as (byte << 32 | child), and the priority of the
    /// token ending there (−1: none) among all specials and among the user-defined ones.
    private let children: [[UInt64]]
    private let terminalAll: [Int32]
    private let terminalUserDefined: [Int32]
    private let hasUserDefined: Bool

    /// Control (3), unknown (2) and user-defined (4) tokens: their text is their piece and they
    /// are split out of the text.
    static func isSpecial(_ type: Int) -> Bool {
        type == Tokenizer.TokenType.unknown || type == Tokenizer.TokenType.control || type == Tokenizer.TokenType.userDefined
    }

    init(tokens: [String], types: [Int]) {
        var entries: [(text: [UInt8], id: Int32, userDefined: Bool)] = []
        for (i, t) in tokens.enumerated() where i < types.count && Self.isSpecial(types[i]) && !t.isEmpty {
            entries.append((Array(t.utf8), Int32(i), types[i] == Tokenizer.TokenType.userDefined))
        }
        entries.sort { $0.text.count != $1.text.count ? $0.text.count > $1.text.count : $0.id < $1.id }
        texts = entries.map(\.text)
        ids = entries.map(\.id)
        hasUserDefined = entries.contains { $0.userDefined }
        var children: [[UInt64]] = [[]]
        var all: [Int32] = [-1], userDefined: [Int32] = [-1]
        for (priority, e) in entries.enumerated() {
            var node = 0
            for b in e.text {
                if let edge = children[node].first(where: { $0 >> 32 == UInt64(b) }) {
                    node = Int(edge & 0xFFFF_FFFF)
                } else {
                    children[node].append(UInt64(b) << 32 | UInt64(children.count))
                    node = children.count
                    children.append([])
                    all.append(-1)
                    userDefined.append(-1)
                }
            }
            // Entries come in priority order: the first to end at a node wins (equal texts).
            if all[node] < 0 { all[node] = Int32(priority) }
            if e.userDefined && userDefined[node] < 0 { userDefined[node] = Int32(priority) }
        }
        self.children = children
        terminalAll = all
        terminalUserDefined = userDefined
    }

    /// The highest-priority special token whose text starts at `i` and is at most `maxLength` bytes.
    private func longest(at i: Int, in bytes: UnsafeBufferPointer<UInt8>, maxLength: Int, parseSpecial: Bool) -> Int32? {
        var node = 0, best: Int32 = -1
        var k = i
        let end = maxLength >= bytes.count - i ? bytes.count : i + maxLength
        while k < end {
            let b = UInt64(bytes[k])
            guard let edge = children[node].first(where: { $0 >> 32 == b }) else { break }
            node = Int(edge & 0xFFFF_FFFF)
            k += 1
            let t = parseSpecial ? terminalAll[node] : terminalUserDefined[node]
            if t >= 0 { best = t }  // deeper is longer, so of higher priority
        }
        return best >= 0 ? best : nil
    }

    /// `bytes` as text fragments and special tokens, in order.
    func split(_ bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        guard !bytes.isEmpty else { return [] }
        guard !texts.isEmpty, parseSpecial || hasUserDefined else { return [Fragment(start: 0, end: bytes.count, token: -1)] }
        struct Candidate: Comparable {
            var priority: Int32, position: Int
            static func < (a: Candidate, b: Candidate) -> Bool {
                a.priority != b.priority ? a.priority < b.priority : a.position < b.position
            }
        }
        let n = bytes.count
        var claimed: [(start: Int, priority: Int32)] = []
        bytes.withUnsafeBufferPointer { buf in
            var heap = MinHeap<Candidate>()
            var starts = [Bool](repeating: false, count: 256)
            for edge in children[0] { starts[Int(edge >> 32)] = true }
            for i in 0..<n where starts[Int(buf[i])] {
                if let p = longest(at: i, in: buf, maxLength: Int.max, parseSpecial: parseSpecial) {
                    heap.push(Candidate(priority: p, position: i))
                }
            }
            guard !heap.isEmpty else { return }
            var taken = [Bool](repeating: false, count: n)
            while let c = heap.pop() {
                let i = c.position
                if taken[i] { continue }
                let length = texts[Int(c.priority)].count
                var firstTaken = i + length
                for k in i..<(i + length) where taken[k] {
                    firstTaken = k
                    break
                }
                if firstTaken == i + length {
                    for k in i..<(i + length) { taken[k] = true }
                    claimed.append((i, c.priority))
                } else if let p = longest(at: i, in: buf, maxLength: firstTaken - i, parseSpecial: parseSpecial) {
                    heap.push(Candidate(priority: p, position: i))
                }
            }
        }
        claimed.sort { $0.start < $1.start }
        var out: [Fragment] = []
        var at = 0
        for c in claimed {
            if at < c.start { out.append(Fragment(start: at, end: c.start, token: -1)) }
            at = c.start + texts[Int(c.priority)].count
            out.append(Fragment(start: c.start, end: at, token: ids[Int(c.priority)]))
        }
        if at < n { out.append(Fragment(start: at, end: n, token: -1)) }
        return out
    }
}
