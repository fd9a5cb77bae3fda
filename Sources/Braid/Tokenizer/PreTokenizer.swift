/// Splits text into the pieces BPE works on, as llama.cpp's pre-tokenizers named by
/// `tokenizer.ggml.pre` do. `smollm`: every numeric character alone (\p{N}), then within each
/// remaining span the GPT-2 pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+.
/// `llama3` (Llama 3's `llama-bpe`) and `qwen2`: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
/// \p{N}{1,3}|…; Qwen2 takes digits one at a time.
public enum PreTokenizer {
    enum Class { case letter, number, whitespace, other }

    public enum Style: Sendable, Equatable {
        case smollm, llama3, qwen2

        /// The style of a GGUF's `tokenizer.ggml.pre`; nil for one braid does not split like llama.cpp.
        public init?(pre: String) {
            switch pre {
            case "smollm": self = .smollm
            case "llama3", "llama-v3", "llama-bpe": self = .llama3
            case "qwen2": self = .qwen2
            default: return nil
            }
        }

        /// llama.cpp takes a word that is itself a token whole, without merging (Llama 3).
        var wholeWordsFirst: Bool { self == .llama3 }
    }

    public static func split(_ text: String, style: Style) -> [String] {
        style == .smollm ? split(text) : splitLlama3(text, digitsPerPiece: style == .qwen2 ? 1 : 3)
    }

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

    /// Llama 3's pattern (Qwen2's with one digit a piece), alternative by alternative:
    /// (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,digits} |
    /// ␠?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
    static func splitLlama3(_ text: String, digitsPerPiece: Int) -> [String] {
        let s = Array(text.unicodeScalars)
        let c = s.map(classify)
        let end = s.count
        var pieces: [String] = []
        func emit(_ r: Range<Int>) {
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s[r])
            pieces.append(String(v))
        }
        func isNewline(_ i: Int) -> Bool { s[i] == "\r" || s[i] == "\n" }
        func lower(_ i: Int) -> Unicode.Scalar? { i < end ? Unicode.Scalar(String(s[i]).lowercased()) : nil }
        var pos = 0
        while pos < end {
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if s[pos] == "'", let n = lower(pos + 1) {
                if n == "s" || n == "t" || n == "m" || n == "d" { emit(pos..<pos + 2); pos += 2; continue }
                if let nn = lower(pos + 2), (n == "r" && nn == "e") || (n == "v" && nn == "e") || (n == "l" && nn == "l") {
                    emit(pos..<pos + 3); pos += 3; continue
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            let lead = (c[pos] != .letter && c[pos] != .number && !isNewline(pos)) ? 1 : 0
            if pos + lead < end, c[pos + lead] == .letter, lead == 1 || c[pos] == .letter {
                var j = pos + lead
                while j < end && c[j] == .letter { j += 1 }
                emit(pos..<j); pos = j; continue
            }
            // \p{N}{1,digits}
            if c[pos] == .number {
                var j = pos
                while j < end && c[j] == .number && j - pos < digitsPerPiece { j += 1 }
                emit(pos..<j); pos = j; continue
            }
            // ␠?[^\s\p{L}\p{N}]+[\r\n]*
            let space = s[pos] == " " ? 1 : 0
            if pos + space < end, c[pos + space] == .other {
                var j = pos + space
                while j < end && c[j] == .other { j += 1 }
                while j < end && isNewline(j) { j += 1 }
                emit(pos..<j); pos = j; continue
            }
            // Whitespace: \s*[\r\n]+ up to the run's last newline, else \s+(?!\S), else \s+.
            var j = pos
            while j < end && c[j] == .whitespace { j += 1 }
            if j == pos { emit(pos..<pos + 1); pos += 1; continue }  // unreachable: every class is handled above
            if let last = (pos..<j).last(where: isNewline) {
                emit(pos..<last + 1); pos = last + 1; continue
            }
            if j - pos > 1 && j < end { emit(pos..<j - 1); pos = j - 1; continue }
            emit(pos..<j); pos = j
        }
        return pieces
    }
}
