// Software prefetch. Swift drops calls to the intrinsics header's _m_prefetch as if they had
// no effect; this header's function survives optimisation.
static inline void braid_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }
