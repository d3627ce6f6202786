/* qinx/rng.h — a small deterministic generator for generated data and
 * sampling: splitmix64 (Steele, Lea & Flood 2014) and Box–Muller normals.
 * The same seed gives the same stream on every platform. The state is the
 * caller's: reentrant, no global state.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_RNG_H
#define QINX_RNG_H

#include "qinx/defs.h"

#include <stdint.h>

QX_BEGIN_DECLS

/* Next 64 random bits; *state is advanced. Any seed value is fine. */
uint64_t qx_rng_next(uint64_t *state);
/* Uniform in [0, 1) with 53 random bits. */
double qx_rng_uniform(uint64_t *state);
/* Standard normal N(0, 1) (Box–Muller, one draw per call). */
double qx_rng_normal(uint64_t *state);

QX_END_DECLS
#endif
