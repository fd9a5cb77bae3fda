/// Splits text into the pieces BPE works on, as llama.cpp's `smollm` pre-tokenizer does:
/// first every numeric character alone (\p{N}), then within each remaining span the GPT-2
/// pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+.
public enum PreTokenizer {
    enum Class { case letter, number, whitespace, other }

    @inline(__always)
    static func classify(_ s: Unicode.Scalar) -> Class {
        if s.value < 0x80 {
            let v = s.value
            if (v >= 0x61 && v <= 0x7A) || (v >= 0x41 && v <= 0x5A) { return .letter }
            if v >= 0x30 && v <= 0x39 { return .number }
            if v == 0x20 || (v >= 0x09 && v <= 0x0D) { return .whitespace }
            return .other
        }
        let p = s.properties
        if p.isWhitespace { return .whitespace }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Pieces of `text` (as ranges of its scalars).
    public static func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        let classes = scalars.map(classify)
        // Pieces are cut from the UTF-8 bytes at each scalar's offset: appending a 1 MiB word
        // scalar by scalar took half as long as merging it.
        let bytes = Array(text.utf8)
        var offsets = [0]
        offsets.reserveCapacity(scalars.count + 1)
        for s in scalars { offsets.append(offsets[offsets.count - 1] + UTF8.width(s)) }
        var pieces: [String] = []
        func emit(_ r: Range<Int>) {
            pieces.append(String(decoding: bytes[offsets[r.lowerBound]..<offsets[r.upperBound]], as: UTF8.self))
        }
        // Numbers alone; the spans between them go through the GPT-2 rules.
        var start = 0
        for i in 0..<scalars.count where classes[i] == .number {
            if start < i { gpt2(scalars, classes, start..<i, emit) }
            emit(i..<i + 1)
            start = i + 1
        }
        if start < scalars.count { gpt2(scalars, classes, start..<scalars.count, emit) }
        return pieces
    }

    static func gpt2(_ s: [Unicode.Scalar], _ c: [Class], _ span: Range<Int>, _ emit: (Range<Int>) -> Void) {
        let end = span.upperBound
        var pos = span.lowerBound
        func cls(_ i: Int) -> Class? { i < end ? c[i] : nil }
        while pos < end {
            let ch = s[pos]
            // 's 't 're 've 'm 'll 'd
            if ch == "'" && pos + 1 < end {
                let n = s[pos + 1]
                if n == "s" || n == "t" || n == "m" || n == "d" {
                    emit(pos..<pos + 2); pos += 2; continue
                }
                if pos + 2 < end {
                    let nn = s[pos + 2]
                    if (n == "r" && nn == "e") || (n == "v" && nn == "e") || (n == "l" && nn == "l") {
                        emit(pos..<pos + 3); pos += 3; continue
                    }
                }
            }
            // ' ?' followed by a run of one class: letters, numbers, or other non-space symbols
            let lead = (ch == " ") ? 1 : 0
            if let k = cls(pos + lead), k != .whitespace {
                var j = pos + lead + 1
                while j < end && c[j] == k { j += 1 }
                emit(pos..<j); pos = j; continue
            }
            // \s+(?!\S): a whitespace run before a non-space leaves its last char to that token
            var j = pos
            while j < end && c[j] == .whitespace { j += 1 }
            if j - pos > 1 && j < end {
                emit(pos..<j - 1); pos = j - 1; continue
            }
            if j > pos {
                emit(pos..<j); pos = j; continue
            }
            emit(pos..<pos + 1); pos += 1
        }
    }
}
