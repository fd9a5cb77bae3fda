/// Turns a stream of token ids into text without ever splitting a UTF-8 character: bytes of
/// an incomplete character are held back until the tokens that finish it arrive.
public struct StreamingDetokenizer {
    private let tokenizer: BPETokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: BPETokenizer) { self.tokenizer = tokenizer }

    public mutating func append(_ id: Int32) -> String {
        pending.append(contentsOf: tokenizer.piece(id))
        let complete = Self.completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever is left (an unfinished character becomes U+FFFD).
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a multi-byte character.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        var i = b.count
        // Look back at most 3 bytes for the lead byte of a sequence still open at the end.
        var back = 0
        while back < 4 && i - back - 1 >= 0 {
            let byte = b[i - back - 1]
            if byte & 0xC0 != 0x80 {
                let need = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
                if need > back + 1 { i -= back + 1 }
                break
            }
            back += 1
        }
        return i
    }
}
