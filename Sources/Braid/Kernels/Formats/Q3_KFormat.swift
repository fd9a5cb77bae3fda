/// Q3_K: super-blocks of 256 — 32 bytes of high bits, 64 bytes of 2-bit codes, 12 bytes of
/// 6-bit scales, fp16 d; w = d·(sc − 32)·q with q in −4…3, per 16 elements.
enum Q3_KFormat: UnpackedFormat {
    static var blockSize: Int { 256 }
    static var blockBytes: Int { 110 }
    static var signedCodes: Bool { true }
    static var hasMins: Bool { false }

    @inline(__always)
    static func unpack(_ blk: UnsafeRawPointer, codes: UnsafeMutablePointer<UInt8>,
                       scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        let d = halfAt(blk, 108)
        // 16 scales of 6 bits: low nibbles in bytes 0…7, high pairs of bits in bytes 8…11.
        @inline(__always) func byte(_ i: Int) -> UInt8 { blk.load(fromByteOffset: 96 + i, as: UInt8.self) }
        for i in 0..<4 {
            let top = byte(8 + i)
            scales[i] = d * Float(Int((byte(i) & 0x0F) | ((top & 3) << 4)) - 32)
            scales[4 + i] = d * Float(Int((byte(4 + i) & 0x0F) | (((top >> 2) & 3) << 4)) - 32)
            scales[8 + i] = d * Float(Int((byte(i) >> 4) | (((top >> 4) & 3) << 4)) - 32)
            scales[12 + i] = d * Float(Int((byte(4 + i) >> 4) | (((top >> 6) & 3) << 4)) - 32)
        }
        for half in 0..<2 {
            let q = blk + 32 + 32 * half
            for j in 0..<4 {
                let bit = UInt8(1) << (4 * half + j)
                let out = codes + 128 * half + 32 * j
                for l in 0..<32 {
                    let low = Int8((q.load(fromByteOffset: l, as: UInt8.self) >> (2 * j)) & 3)
                    let high = blk.load(fromByteOffset: l, as: UInt8.self) & bit
                    out[l] = UInt8(bitPattern: high != 0 ? low : low - 4)
                }
            }
        }
    }
}
