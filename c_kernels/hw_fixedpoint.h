/* hw_fixedpoint.h -- the ONLY place where rounding, wrap/saturate to N bits and
 * multiply-high live.  Every function is static inline and free of undefined
 * behaviour: intentional wrap-around goes through uint64_t, signed right
 * shifts through hw_asr_s64.
 *
 * Part 1: narrowing to N bits.
 * Part 2: rounding of x / 2^n in every hwsim rounding mode (SEMANTICS.md
 *         section 0), including the counter-based stochastic mode.
 * Part 3: gemmlowp / ARM NEON fixed-point primitives (SRDHM, RDBPOT, SQDMULH,
 *         SRSHL, SSHL) on int32 values, computed exactly in int64.
 * Part 4: rounding of a finite double to an integer in every mode (the float
 *         requantisation schemes).
 */
#ifndef HW_FIXEDPOINT_H
#define HW_FIXEDPOINT_H
#include <math.h>
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

/* Wrapping shift left: x * 2^n modulo 2^64, n in [0, 63].  Two's complement,
 * like a hardware shifter; UB-free because the shift happens on uint64_t. */
static inline int64_t hw_shl_wrap_s64(int64_t x, int n)
{
    return (int64_t)((uint64_t)x << n);
}

/* ---- Part 2: rounding of x / 2^n ---- */

/* SplitMix64 output function (Steele, Lea, Flood 2014): a bijective mixer of
 * 64-bit words.  Constants are checked by tests/unit/test_semantics_vectors.py
 * against the published first outputs of SplitMix64 seeded with 0. */
#define HW_SPLITMIX_GAMMA 0x9E3779B97F4A7C15ull
static inline uint64_t hw_splitmix64_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The 64 random bits of element `index` for stochastic rounding:
 *   z = mix(seed + (index + 1) * 0x9E3779B97F4A7C15)   (mod 2^64),
 * i.e. the (index+1)-th output of a SplitMix64 generator seeded with `seed`.
 * Keyed by (seed, index) only, so a result never depends on thread count,
 * blocking or call order. */
static inline uint64_t hw_stochastic_bits(uint64_t seed, uint64_t index)
{
    return hw_splitmix64_mix(seed + (index + 1u) * HW_SPLITMIX_GAMMA);
}

/* The rounding decision shared by the integer and float paths.  The value is
 * q + f with q = floor(value) and fraction f in [0, 1); the caller describes f:
 *   f_vs_half: -1 if f < 1/2, 0 if f == 1/2, +1 if f > 1/2;
 *   f_nonzero: f != 0;  neg: the value is < 0;  q_odd: q is odd;
 *   stoch_up:  the stochastic draw says "round up" (u < f).
 * Returns the carry (0 or 1) that the mode adds to q (SEMANTICS.md section 0). */
static inline int64_t hw_round_carry(hw_rounding_t mode, int f_vs_half, int f_nonzero, int neg,
                                     int q_odd, int stoch_up)
{
    switch (mode) {
    case HW_ROUND_FLOOR: return 0;
    case HW_ROUND_CEIL: return f_nonzero;
    case HW_ROUND_TRUNC: return neg && f_nonzero;
    case HW_ROUND_HALF_UP: return f_vs_half >= 0;
    case HW_ROUND_HALF_DOWN: return f_vs_half > 0;
    case HW_ROUND_HALF_EVEN: return f_vs_half > 0 || (f_vs_half == 0 && q_odd);
    case HW_ROUND_HALF_AWAY: return f_vs_half > 0 || (f_vs_half == 0 && !neg);
    case HW_ROUND_HALF_ZERO: return f_vs_half > 0 || (f_vs_half == 0 && neg);
    case HW_ROUND_STOCHASTIC: return stoch_up;
    }
    return 0;
}

/* round(x / 2^n) with `mode`; n in [0, 63]; == the exact rational rounding.
 * Computed as q + carry with q = x >> n and remainder r = x mod 2^n, so no
 * intermediate can overflow (an "add half, then shift" in the accumulator
 * width could).  |q| <= 2^62 for n >= 1, so q + 1 fits.
 * Stochastic: with z = hw_stochastic_bits(seed, index), round up iff
 * (z >> (64 - n)) < r, i.e. with probability exactly r / 2^n. */
static inline int64_t hw_round_div_pow2(int64_t x, int n, hw_rounding_t mode, uint64_t seed,
                                        uint64_t index)
{
    if (n <= 0) return x;
    int64_t q = hw_asr_s64(x, n);
    uint64_t r = (uint64_t)x & (((uint64_t)1 << n) - 1u);
    uint64_t h = (uint64_t)1 << (n - 1);
    int f_vs_half = r < h ? -1 : (r == h ? 0 : 1);
    int stoch_up = 0;
    if (mode == HW_ROUND_STOCHASTIC) stoch_up = (hw_stochastic_bits(seed, index) >> (64 - n)) < r;
    return q + hw_round_carry(mode, f_vs_half, r != 0, x < 0, (int)(q & 1), stoch_up);
}

/* ---- Part 3: fixed-point primitives (int32 operands) ---- */

/* Saturating rounding doubling high multiply: == gemmlowp
 * SaturatingRoundingDoublingHighMul == ARM SQRDMULH.  Returns
 * floor((a*b + 2^30) / 2^31), i.e. a*b / 2^31 rounded half UP (ties toward
 * +inf, not away from zero), except a == b == INT32_MIN -> INT32_MAX (the only
 * saturating case).  a, b: any int32. */
static inline int32_t hw_srdhm_s32_one(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t p = (int64_t)a * (int64_t)b;            /* |p| <= 2^62: exact */
    return (int32_t)hw_asr_s64(p + ((int64_t)1 << 30), 31);
}

/* Saturating doubling high multiply: == ARM SQDMULH.  floor(a*b / 2^31),
 * except a == b == INT32_MIN -> INT32_MAX.  a, b: any int32. */
static inline int32_t hw_sqdmulh_s32_one(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    return (int32_t)hw_asr_s64((int64_t)a * (int64_t)b, 31);
}

/* Correctly rounded division by a power of two, ties away from zero: ==
 * gemmlowp RoundingDivideByPOT (and its NEON form with the "fixup").
 * x: any int32; exponent in [0, 31].  Cannot overflow. */
static inline int32_t hw_rdbpot_s32_one(int32_t x, int exponent)
{
    return (int32_t)hw_round_div_pow2(x, exponent, HW_ROUND_HALF_AWAY, 0, 0);
}

/* ARM SQADD, 32-bit lanes: sat_32(a + b). */
static inline int32_t hw_sqadd_s32_one(int32_t a, int32_t b)
{
    return (int32_t)hw_sat_s64((int64_t)a + b, 32);
}

/* ARM SRSHL (rounding shift left by a signed register amount), 32-bit lanes:
 * s >= 0: wrap_32(x * 2^s) (not saturating; SQRSHL would saturate);
 * s <  0: floor((x + 2^(-s-1)) / 2^-s), the rounding constant added at full
 *         precision, i.e. x / 2^-s rounded half UP.  s in [-63, 63]. */
static inline int32_t hw_srshl_s32_one(int32_t x, int s)
{
    if (s >= 0) return (int32_t)hw_wrap_s64(hw_shl_wrap_s64(x, s), 32);
    return (int32_t)hw_round_div_pow2(x, -s, HW_ROUND_HALF_UP, 0, 0);
}

/* ARM SSHL (shift left by a signed register amount, no rounding), 32-bit lanes:
 * s >= 0: wrap_32(x * 2^s); s < 0: floor(x / 2^-s).  s in [-63, 63]. */
static inline int32_t hw_sshl_s32_one(int32_t x, int s)
{
    if (s >= 0) return (int32_t)hw_wrap_s64(hw_shl_wrap_s64(x, s), 32);
    return (int32_t)hw_asr_s64(x, -s);
}

/* ---- Part 4: rounding a finite double to an integer ---- */

/* round(v) with `mode` for a finite v with |v| <= 2^62 (callers clamp first).
 * f = v - floor(v) is exact in binary floating point, so the decision is the
 * same q + carry rule as Part 2.  Stochastic: u = (z >> 11) * 2^-53 (an exact
 * double in [0, 1)), round up iff u < f. */
static inline int64_t hw_round_double(double v, hw_rounding_t mode, uint64_t seed, uint64_t index)
{
    double fl = floor(v);
    double f = v - fl;
    int64_t q = (int64_t)fl;
    int f_vs_half = f < 0.5 ? -1 : (f == 0.5 ? 0 : 1);
    int stoch_up = 0;
    if (mode == HW_ROUND_STOCHASTIC)
        stoch_up = (double)(hw_stochastic_bits(seed, index) >> 11) * 0x1p-53 < f;
    return q + hw_round_carry(mode, f_vs_half, f != 0.0, v < 0.0, (int)(q & 1), stoch_up);
}

#endif
