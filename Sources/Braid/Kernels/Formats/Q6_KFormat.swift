/// Q6_K: super-blocks of 256 — 128 bytes of low nibbles, 64 bytes of high bit pairs, 16 int8
/// scales, fp16 d; w = d·sc·(q − 32) per 16 elements.
enum Q6_KFormat: InterleavableFormat {
    static var blockSize: Int { 256 }
    static var blockBytes: Int { 210 }
    static var signedCodes: Bool { true }
    static var hasMins: Bool { false }
    static var codeBits: Int { 6 }
    static var codeOffset: Int { 32 }
    static var subScales: Bool { true }

    @inline(__always)
    static func scaleIntegers(_ blk: UnsafeRawPointer) -> (d: UInt16, dmin: UInt16, sc: SIMD16<Int8>, m: SIMD16<UInt8>) {
        (blk.loadUnaligned(fromByteOffset: 208, as: UInt16.self), 0, blk.loadUnaligned(fromByteOffset: 192, as: SIMD16<Int8>.self), SIMD16())
    }

    @inline(__always)
    static func unpack(_ blk: UnsafeRawPointer, codes: UnsafeMutablePointer<UInt8>,
                       scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        let d = halfAt(blk, 208)
        for sub in 0..<16 { scales[sub] = d * Float(blk.load(fromByteOffset: 192 + sub, as: Int8.self)) }
        for half in 0..<2 {
            let ql = blk + 64 * half, qh = blk + 128 + 32 * half
            let out = codes + 128 * half
            for l in 0..<32 {
                let a = ql.load(fromByteOffset: l, as: UInt8.self), b = ql.load(fromByteOffset: l + 32, as: UInt8.self)
                let h = qh.load(fromByteOffset: l, as: UInt8.self)
                out[l] = ((a & 0x0F) | ((h & 3) << 4)) &- 32
                out[l + 32] = ((b & 0x0F) | (((h >> 2) & 3) << 4)) &- 32
                out[l + 64] = ((a >> 4) | (((h >> 4) & 3) << 4)) &- 32
                out[l + 96] = ((b >> 4) | (((h >> 6) & 3) << 4)) &- 32
            }
        }
    }
}
