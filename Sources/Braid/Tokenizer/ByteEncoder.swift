/// GPT-2's reversible map between bytes and printable characters, in which byte-level BPE
/// vocabularies are written (e.g. a space is "Ġ").
enum ByteEncoder {
    /// byte → scalar
    static let encode: [Unicode.Scalar] = {
        var printable = Set<UInt8>()
        for r in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] { for b in r { printable.insert(UInt8(b)) } }
        var map = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if printable.contains(UInt8(b)) {
                map[b] = Unicode.Scalar(UInt32(b))!
            } else {
                map[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return map
    }()

    /// scalar → byte
    static let decode: [UInt32: UInt8] = {
        var d: [UInt32: UInt8] = [:]
        for (b, s) in encode.enumerated() { d[s.value] = UInt8(b) }
        return d
    }()
}
