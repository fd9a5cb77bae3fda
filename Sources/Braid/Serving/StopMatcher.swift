/// Finds stop strings in streamed text: text that could still be the start of a stop string is
/// held back until the next piece rules it in or out, so a client never sees part of one.
public struct StopMatcher: Sendable {
    private let stops: [[UInt8]]
    private var text: [UInt8] = []
    /// Bytes of `text` already handed out.
    private var emitted = 0
    public private(set) var matched = false

    public init(_ stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// Appends a piece; returns the text that is now safe to show. After a match, the text up to
    /// the stop string and `matched` is set (the stop string itself is never shown).
    public mutating func feed(_ piece: String) -> String {
        guard !matched else { return "" }
        text.append(contentsOf: piece.utf8)
        guard !stops.isEmpty else { return take(upTo: text.count) }
        let longest = stops.map(\.count).max()!
        let from = max(0, emitted - longest + 1)
        var first: Int?
        for s in stops {
            if let at = Self.find(s, in: text, from: from), at < (first ?? Int.max) { first = at }
        }
        if let first {
            matched = true
            return take(upTo: max(first, emitted))
        }
        // Hold back the longest tail that is a prefix of some stop string.
        var hold = 0
        for s in stops {
            for n in stride(from: min(s.count - 1, text.count - emitted), to: hold, by: -1) where text[(text.count - n)...].elementsEqual(s[..<n]) {
                hold = n
                break
            }
        }
        return take(upTo: text.count - hold)
    }

    /// What is still held back (at the end of generation without a match).
    public mutating func flush() -> String {
        matched ? "" : take(upTo: text.count)
    }

    private mutating func take(upTo end: Int) -> String {
        guard end > emitted else { return "" }
        defer { emitted = end }
        return String(decoding: text[emitted..<end], as: UTF8.self)
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
