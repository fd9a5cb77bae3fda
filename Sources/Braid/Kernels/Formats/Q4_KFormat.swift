/// Q4_K: super-blocks of 256 — fp16 d and dmin, 12 bytes of 6-bit scale and min pairs, 128
/// bytes of nibbles; w = d·sc·q − dmin·m per 32 elements.
enum Q4_KFormat: InterleavableFormat {
    static var blockSize: Int { 256 }
    static var blockBytes: Int { 144 }
    static var signedCodes: Bool { false }
    static var hasMins: Bool { true }
    static var codeBits: Int { 4 }
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
            let q = blk + 16 + 32 * chunk
            let out = codes + 64 * chunk
            for l in 0..<32 {
                let v = q.load(fromByteOffset: l, as: UInt8.self)
                out[l] = v & 0x0F
                out[32 + l] = v >> 4
            }
        }
    }
}

/// The scale and min layout Q4_K and Q5_K share: fp16 d and dmin at bytes 0 and 2, then eight
/// 6-bit (scale, min) pairs packed in 12 bytes.
enum KQuantScales {
    @inline(__always)
    static func unpack(_ blk: UnsafeRawPointer, scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        let d = halfAt(blk, 0), dmin = halfAt(blk, 2)
        for j in 0..<8 {
            let (sc, m) = pair(blk, j)
            let scale = d * Float(sc), min = -(dmin * Float(m))
            scales[2 * j] = scale; scales[2 * j + 1] = scale
            mins[2 * j] = min; mins[2 * j + 1] = min
        }
    }

    /// The fp16 d and dmin and each 16 elements' 6-bit scale and min (one pair per 32).
    @inline(__always)
    static func integers(_ blk: UnsafeRawPointer) -> (d: UInt16, dmin: UInt16, sc: SIMD16<Int8>, m: SIMD16<UInt8>) {
        var sc = SIMD16<Int8>(), m = SIMD16<UInt8>()
        for j in 0..<8 {
            let p = pair(blk, j)
            sc[2 * j] = Int8(p.sc); sc[2 * j + 1] = Int8(p.sc)
            m[2 * j] = p.m; m[2 * j + 1] = p.m
        }
        return (blk.loadUnaligned(as: UInt16.self), blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self), sc, m)
    }

    /// The j-th (scale, min) pair of 6 bits each.
    @inline(__always)
    static func pair(_ blk: UnsafeRawPointer, _ j: Int) -> (sc: UInt8, m: UInt8) {
        @inline(__always) func byte(_ i: Int) -> UInt8 { blk.load(fromByteOffset: 4 + i, as: UInt8.self) }
        if j < 4 { return (byte(j) & 63, byte(j + 4) & 63) }
        return ((byte(j + 4) & 0x0F) | ((byte(j - 4) >> 6) << 4), (byte(j + 4) >> 4) | ((byte(j) >> 6) << 4))
    }
}
