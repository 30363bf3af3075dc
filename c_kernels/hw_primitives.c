/* hw_primitives.c -- array entry points of the fixed-point primitives, so that
 * Python (and tests) reach exactly the inline code the kernels use. */
#include <stddef.h>
#include "hw_fixedpoint.h"
#include "hw_kernels.h"

/* out[i] = round(x[i] / 2^shift) with `mode`; shift in [0, 63]; stochastic
 * draws use index i (see hw_round_div_pow2). */
hw_status_t hw_round_shift_s64(const int64_t *x, int64_t n, int32_t shift, hw_rounding_t mode,
                               uint64_t seed, int64_t *out)
{
    if (n < 0 || shift < 0 || shift > 63) return HW_ERR_ARG;
    if ((int)mode < HW_ROUND_FLOOR || (int)mode > HW_ROUND_STOCHASTIC) return HW_ERR_ARG;
    if (n == 0) return HW_OK;
    if (x == NULL || out == NULL) return HW_ERR_ARG;
    for (int64_t i = 0; i < n; i++) out[i] = hw_round_div_pow2(x[i], shift, mode, seed, (uint64_t)i);
    return HW_OK;
}

/* out[i] = x[i] narrowed to `bits` with `overflow`: signed bits in [2, 64],
 * unsigned bits in [1, 63] (saturate: clamp to [0, 2^bits - 1]; wrap: mod
 * 2^bits).  *events (may be NULL) = number of i with out[i] != x[i]. */
hw_status_t hw_narrow_s64(const int64_t *x, int64_t n, int32_t bits, int32_t is_signed,
                          hw_overflow_t overflow, int64_t *out, int64_t *events)
{
    if (n < 0 || (is_signed != 0 && is_signed != 1)) return HW_ERR_ARG;
    if (is_signed ? (bits < 2 || bits > 64) : (bits < 1 || bits > 63)) return HW_ERR_ARG;
    if (overflow != HW_OVERFLOW_WRAP && overflow != HW_OVERFLOW_SATURATE) return HW_ERR_ARG;
    if (n > 0 && (x == NULL || out == NULL)) return HW_ERR_ARG;
    int64_t changed = 0;
    int64_t umax = is_signed ? 0 : (int64_t)(((uint64_t)1 << bits) - 1u);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = x[i], y;
        if (is_signed) y = hw_narrow_signed(v, bits, overflow);
        else if (overflow == HW_OVERFLOW_WRAP) y = hw_wrap_u64(v, bits);
        else y = v < 0 ? 0 : (v > umax ? umax : v);
        out[i] = y;
        changed += y != v;
    }
    if (events) *events = changed;
    return HW_OK;
}

/* out[i] = SRDHM(a[i], b[i]) (gemmlowp SaturatingRoundingDoublingHighMul). */
hw_status_t hw_srdhm_s32(const int32_t *a, const int32_t *b, int64_t n, int32_t *out)
{
    if (n < 0) return HW_ERR_ARG;
    if (n > 0 && (a == NULL || b == NULL || out == NULL)) return HW_ERR_ARG;
    for (int64_t i = 0; i < n; i++) out[i] = hw_srdhm_s32_one(a[i], b[i]);
    return HW_OK;
}

/* out[i] = RDBPOT(x[i], exponent[i]), exponent[i] in [0, 31]; nothing is
 * written when an exponent is out of range. */
hw_status_t hw_rdbpot_s32(const int32_t *x, const int32_t *exponent, int64_t n, int32_t *out)
{
    if (n < 0) return HW_ERR_ARG;
    if (n > 0 && (x == NULL || exponent == NULL || out == NULL)) return HW_ERR_ARG;
    for (int64_t i = 0; i < n; i++)
        if (exponent[i] < 0 || exponent[i] > 31) return HW_ERR_ARG;
    for (int64_t i = 0; i < n; i++) out[i] = hw_rdbpot_s32_one(x[i], exponent[i]);
    return HW_OK;
}
