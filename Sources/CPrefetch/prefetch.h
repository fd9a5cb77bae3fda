// What Swift cannot say to the compiler itself.

// Software prefetch. Swift drops calls to the intrinsics header's _m_prefetch as if they had
// no effect; this header's function survives optimisation.
static inline void braid_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#if defined(__x86_64__)
// The 4 bytes at `address` in the low lane of an otherwise zero vector, by a `vmovd` the
// optimiser cannot narrow: given a lone fp16 to convert, it loads 2 bytes with a `vpinsrw`
// that merges into whatever register it picks, which in a dot product's loop was once the
// running sum, chaining every block behind the one before (see DotKernels.blockHalves).
typedef long long braid_v2i64 __attribute__((vector_size(16)));
static inline braid_v2i64 braid_load32(const void *address) {
    braid_v2i64 v;
    __asm__("vmovd %1, %0" : "=x"(v) : "m"(*(const int *)address));
    return v;
}
#endif

#if defined(__x86_64__)
#include <cpuid.h>

// Whether the CPU has AVX-VNNI (CPUID leaf 7, subleaf 1, EAX bit 4): vpdpbusd on 256-bit
// vectors without AVX-512. Not part of the AVX2 baseline braid is built for, so the kernels
// ask at run time.
static inline int braid_has_avx_vnni(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 4) & 1;
}

// acc + Σ of four u8·s8 products per 32-bit lane (vpdpbusd, VEX-encoded). Written as assembly
// so the module is not built for AVX-VNNI as a whole (the compiler could then use it anywhere);
// only callers that checked braid_has_avx_vnni() reach it.
typedef long long braid_v4i64 __attribute__((vector_size(32)));
static inline braid_v4i64 braid_dpbusd(braid_v4i64 acc, braid_v4i64 u, braid_v4i64 s) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "x"(s));
    return acc;
}
#endif
