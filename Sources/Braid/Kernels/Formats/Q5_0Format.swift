/// Q5_0: blocks of 32, fp16 d, 32 high bits, 16 bytes of low nibbles; w = d·(q − 16).
enum Q5_0Format: UnpackedFormat {
    static var blockSize: Int { 32 }
    static var blockBytes: Int { 22 }
    static var signedCodes: Bool { true }
    static var hasMins: Bool { false }

    @inline(__always)
    static func unpack(_ blk: UnsafeRawPointer, codes: UnsafeMutablePointer<UInt8>,
                       scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        let d = halfAt(blk, 0)
        let high = blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
        for j in 0..<16 {
            let q = blk.load(fromByteOffset: 6 + j, as: UInt8.self)
            let lo = (q & 0x0F) | UInt8(truncatingIfNeeded: (high >> j) << 4) & 0x10
            let hi = (q >> 4) | UInt8(truncatingIfNeeded: high >> (j + 12)) & 0x10
            codes[j] = lo &- 16
            codes[j + 16] = hi &- 16
        }
        scales[0] = d
        scales[1] = d
    }
}
