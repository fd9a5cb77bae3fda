/// Turns a stream of token ids into text without ever splitting a UTF-8 character: bytes of
/// an incomplete character are held back until the tokens that finish it arrive. The text is
/// the tokenizer's `decode` of the same ids (a space prefix is dropped from the first token).
public struct StreamingDetokenizer {
    private let tokenizer: Tokenizer
    private var pending: [UInt8] = []
    /// Ids seen: the first, and the second after a BOS, may carry the space prefix.
    private var seen: [Int32] = []

    public init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

    public mutating func append(_ id: Int32) -> String {
        let piece = tokenizer.piece(id)
        if tokenizer.addSpacePrefix && seen.count < 2 {
            seen.append(id)
            pending.append(contentsOf: tokenizer.isFirstTextToken(at: seen.count - 1, of: seen) && piece.first == 0x20 ? piece.dropFirst() : piece[...])
        } else {
            pending.append(contentsOf: piece)
        }
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
