#if AVX2
import _Builtin_intrinsics.intel
#endif

/// Q5_0: blocks of 32, fp16 d, 32 high bits, 16 bytes of low nibbles; w = d·(q − 16).
enum Q5_0Format: InterleavableFormat {
    static var blockSize: Int { 32 }
    static var blockBytes: Int { 22 }
    static var signedCodes: Bool { true }
    static var hasMins: Bool { false }
    static var codeBits: Int { 5 }
    static var codeOffset: Int { 16 }
    static var subScales: Bool { false }

    @inline(__always)
    static func scaleIntegers(_ blk: UnsafeRawPointer) -> (d: UInt16, dmin: UInt16, sc: SIMD16<Int8>, m: SIMD16<UInt8>) {
        (blk.loadUnaligned(as: UInt16.self), 0, SIMD16(), SIMD16())
    }

    @inline(__always)
    static func unpack(_ blk: UnsafeRawPointer, codes: UnsafeMutablePointer<UInt8>,
                       scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        let d = halfAt(blk, 0)
        let high = blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
        #if AVX2
        // Low nibbles of bytes 0…15 are elements 0…15, high nibbles 16…31; bit j of `high` is
        // element j's fifth bit: spread to one byte per element (each byte of a broadcast word
        // picked by a shuffle, then compared with its own bit), then q − 16.
        let raw = blk.loadUnaligned(fromByteOffset: 6, as: SIMD2<Int64>.self)
        let nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F))
        let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(Int32(bitPattern: high)),
                                         _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0))
        let isSet = _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE)), _mm256_set1_epi64x(-1))
        let q = _mm256_sub_epi8(_mm256_or_si256(nibbles, _mm256_and_si256(isSet, _mm256_set1_epi8(0x10))), _mm256_set1_epi8(16))
        UnsafeMutableRawPointer(codes).storeBytes(of: unsafeBitCast(q, to: SIMD32<UInt8>.self), as: SIMD32<UInt8>.self)
        #else
        for j in 0..<16 {
            let q = blk.load(fromByteOffset: 6 + j, as: UInt8.self)
            let lo = (q & 0x0F) | UInt8(truncatingIfNeeded: (high >> j) << 4) & 0x10
            let hi = (q >> 4) | UInt8(truncatingIfNeeded: high >> (j + 12)) & 0x10
            codes[j] = lo &- 16
            codes[j + 16] = hi &- 16
        }
        #endif
        scales[0] = d
        scales[1] = d
    }
}
