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
