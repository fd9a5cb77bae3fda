/// Q5_1: blocks of 32, fp16 d and m, 32 high bits, 16 bytes of low nibbles; w = d·q + m.
enum Q5_1Format: InterleavableFormat {
    static var blockSize: Int { 32 }
    static var blockBytes: Int { 24 }
    static var signedCodes: Bool { false }
    static var hasMins: Bool { true }
    static var codeBits: Int { 5 }
    static var codeOffset: Int { 0 }
    static var subScales: Bool { false }

    @inline(__always)
    static func scaleIntegers(_ blk: UnsafeRawPointer) -> (d: UInt16, dmin: UInt16, sc: SIMD16<Int8>, m: SIMD16<UInt8>) {
        (blk.loadUnaligned(as: UInt16.self), blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self), SIMD16(), SIMD16())
    }

    @inline(__always)
    static func unpack(_ blk: UnsafeRawPointer, codes: UnsafeMutablePointer<UInt8>,
                       scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        let d = halfAt(blk, 0), m = halfAt(blk, 2)
        let high = blk.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        for j in 0..<16 {
            let q = blk.load(fromByteOffset: 8 + j, as: UInt8.self)
            codes[j] = (q & 0x0F) | UInt8(truncatingIfNeeded: (high >> j) << 4) & 0x10
            codes[j + 16] = (q >> 4) | UInt8(truncatingIfNeeded: high >> (j + 12)) & 0x10
        }
        scales[0] = d; scales[1] = d
        mins[0] = m; mins[1] = m
    }
}
