/// Q2_K: super-blocks of 256 — 16 bytes of 4-bit scale and min pairs, 64 bytes of 2-bit codes,
/// fp16 d and dmin; w = d·sc·q − dmin·m per 16 elements.
enum Q2_KFormat: UnpackedFormat {
    static var blockSize: Int { 256 }
    static var blockBytes: Int { 84 }
    static var signedCodes: Bool { false }
    static var hasMins: Bool { true }

    @inline(__always)
    static func unpack(_ blk: UnsafeRawPointer, codes: UnsafeMutablePointer<UInt8>,
                       scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        let d = halfAt(blk, 80), dmin = halfAt(blk, 82)
        for sub in 0..<16 {
            let sc = blk.load(fromByteOffset: sub, as: UInt8.self)
            scales[sub] = d * Float(sc & 0x0F)
            mins[sub] = -(dmin * Float(sc >> 4))
        }
        // Each 32 bytes of codes hold four runs of 32 elements, two bits apart.
        for half in 0..<2 {
            let q = blk + 16 + 32 * half
            for j in 0..<4 {
                let out = codes + 128 * half + 32 * j
                for l in 0..<32 { out[l] = (q.load(fromByteOffset: l, as: UInt8.self) >> (2 * j)) & 3 }
            }
        }
    }
}
