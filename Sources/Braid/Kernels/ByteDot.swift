import CPrefetch
import Foundation
#if AVX2
import _Builtin_intrinsics.intel
#endif

/// How the interleaved kernels sum products of bytes (unsigned weights × signed activations):
/// `vpdpbusd` (AVX-VNNI) multiplies and adds four pairs into a 32-bit lane in one instruction;
/// AVX2 alone needs `maddubs` (pairs into 16 bits) and `madd` (into 32) and an add. Same
/// integer sums either way.
public enum ByteDotKind: Sendable {
    case maddubs
    case vnni

    /// AVX-VNNI where the CPU has it, unless `BRAID_VNNI=0` (to compare the two).
    public static let best: ByteDotKind = {
        #if AVX2 && arch(x86_64)
        if ProcessInfo.processInfo.environment["BRAID_VNNI"] == "0" { return .maddubs }
        return braid_has_avx_vnni() != 0 ? .vnni : .maddubs
        #else
        return .maddubs
        #endif
    }()

    /// Whether this machine can run `kind`.
    public static func isAvailable(_ kind: ByteDotKind) -> Bool {
        #if AVX2 && arch(x86_64)
        return kind == .maddubs || braid_has_avx_vnni() != 0
        #else
        return kind == .maddubs
        #endif
    }
}

#if AVX2
/// One of the two ways, chosen per call by the type parameter of the kernels (no branch inside them).
protocol ByteDot {
    /// True when `dot4` is one instruction (accumulate straight into 32 bits).
    static var fused: Bool { get }
    /// acc + Σ u·s over each group of four bytes, per 32-bit lane.
    static func dot4(_ acc: __m256i, _ u: __m256i, _ s: __m256i) -> __m256i
}

enum MaddubsDot: ByteDot {
    static var fused: Bool { false }
    @inline(__always)
    static func dot4(_ acc: __m256i, _ u: __m256i, _ s: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
    }
}

enum VNNIDot: ByteDot {
    static var fused: Bool { true }
    @inline(__always)
    static func dot4(_ acc: __m256i, _ u: __m256i, _ s: __m256i) -> __m256i { braid_dpbusd(acc, u, s) }
}
#endif
