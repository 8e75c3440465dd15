#ifndef CTRIPLINE_SUPPORT_H
#define CTRIPLINE_SUPPORT_H

/// Asks the processor to start loading the cache line at `p` (a hint: never faults, never
/// blocks). Used to overlap the memory latency of the next events' state with the current one.
static inline void tripline_prefetch(const void *p) {
    __builtin_prefetch(p, 1, 3);
}

/// Sine and cosine of one angle in one call (glibc's sincos), half the cost of two calls.
void tripline_sincos(double x, double *s, double *c);

#endif
