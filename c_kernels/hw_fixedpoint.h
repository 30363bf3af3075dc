/* hw_fixedpoint.h -- the ONLY place where rounding, wrap/saturate to N bits and
 * multiply-high live.  Every function is static inline and free of undefined
 * behaviour: intentional wrap-around goes through uint64_t, signed right
 * shifts through hw_asr_s64.
 *
 * Part 1: narrowing to N bits (this part is complete).
 * Part 2+: rounding, multiply-high, rounding shifts (see issue 2).
 */
#ifndef HW_FIXEDPOINT_H
#define HW_FIXEDPOINT_H
#include <stdint.h>
#include "hw_types.h"

/* ---- Part 1: narrowing ---- */

/* Arithmetic shift right by n in [0, 63]: floor(x / 2^n).  Written without
 * relying on implementation-defined >> of negative values. */
static inline int64_t hw_asr_s64(int64_t x, int n)
{
    if (x >= 0) return x >> n;
    return -(int64_t)((~(uint64_t)x) >> n) - 1;   /* floor((-x-1)/2^n) = -(floor(x/2^n)) - 1 */
}

/* Two's complement wrap of x to a signed `bits`-wide integer, bits in [2, 64].
 * == ((x + 2^(bits-1)) mod 2^bits) - 2^(bits-1). */
static inline int64_t hw_wrap_s64(int64_t x, int bits)
{
    if (bits >= 64) return x;
    uint64_t m = ((uint64_t)1 << bits) - 1u;
    uint64_t u = (uint64_t)x & m;
    uint64_t sign = (uint64_t)1 << (bits - 1);
    /* sign-extend without signed overflow */
    return (u & sign) ? -(int64_t)((~u & m)) - 1 : (int64_t)u;
}

/* Wrap to an unsigned `bits`-wide integer, bits in [1, 63]: x mod 2^bits. */
static inline int64_t hw_wrap_u64(int64_t x, int bits)
{
    return (int64_t)((uint64_t)x & (((uint64_t)1 << bits) - 1u));
}

static inline int64_t hw_min_s(int bits) { return bits >= 64 ? INT64_MIN : -((int64_t)1 << (bits - 1)); }
static inline int64_t hw_max_s(int bits) { return bits >= 64 ? INT64_MAX : ((int64_t)1 << (bits - 1)) - 1; }

/* Saturate x to a signed `bits`-wide integer, bits in [2, 64]. */
static inline int64_t hw_sat_s64(int64_t x, int bits)
{
    int64_t lo = hw_min_s(bits), hi = hw_max_s(bits);
    return x < lo ? lo : (x > hi ? hi : x);
}

/* Narrow x to a signed `bits`-wide integer with `ovf`. */
static inline int64_t hw_narrow_signed(int64_t x, int bits, hw_overflow_t ovf)
{
    return ovf == HW_OVERFLOW_SATURATE ? hw_sat_s64(x, bits) : hw_wrap_s64(x, bits);
}

/* Wrapping add/sub/mul of int64 (two's complement mod 2^64), UB-free. */
static inline int64_t hw_wrapping_add_s64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t hw_wrapping_sub_s64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t hw_wrapping_mul_s64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

#endif
