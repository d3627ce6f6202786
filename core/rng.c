/* core/rng.c — splitmix64 and Box–Muller (see include/qinx/rng.h). */
#include <math.h>

#include "qinx/rng.h"

uint64_t qx_rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double qx_rng_uniform(uint64_t *s) { return (double)(qx_rng_next(s) >> 11) * 0x1.0p-53; }

double qx_rng_normal(uint64_t *s) {
    double u1 = ((double)(qx_rng_next(s) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1]: log is finite */
    double u2 = qx_rng_uniform(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
