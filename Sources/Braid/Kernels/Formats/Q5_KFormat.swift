/// Q5_K: Q4_K's scales and nibbles plus 32 bytes of fifth bits; w = d·sc·q − dmin·m per 32.
enum Q5_KFormat: InterleavableFormat {
    static var blockSize: Int { 256 }
    static var blockBytes: Int { 176 }
    static var signedCodes: Bool { false }
    static var hasMins: Bool { true }
    static var codeBits: Int { 5 }
    static var codeOffset: Int { 0 }
    static var subScales: Bool { true }

    @inline(__always)
    static func scaleIntegers(_ blk: UnsafeRawPointer) -> (d: UInt16, dmin: UInt16, sc: SIMD16<Int8>, m: SIMD16<UInt8>) {
        KQuantScales.integers(blk)
    }

    @inline(__always)
    static func unpack(_ blk: UnsafeRawPointer, codes: UnsafeMutablePointer<UInt8>,
                       scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        KQuantScales.unpack(blk, scales: scales, mins: mins)
        for chunk in 0..<4 {
            let q = blk + 48 + 32 * chunk
            let out = codes + 64 * chunk
            let lowBit = UInt8(1) << (2 * chunk), highBit = UInt8(2) << (2 * chunk)
            for l in 0..<32 {
                let v = q.load(fromByteOffset: l, as: UInt8.self)
                let h = blk.load(fromByteOffset: 16 + l, as: UInt8.self)
                out[l] = (v & 0x0F) | (h & lowBit != 0 ? 16 : 0)
                out[32 + l] = (v >> 4) | (h & highBit != 0 ? 16 : 0)
            }
        }
    }
}
