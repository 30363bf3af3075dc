/* hw_requantize.h -- accumulator -> output value: the single source of truth.
 *
 * Every kernel epilogue and fast path requantises through hw_requantize_one_at
 * (or hw_requantize_one), so one accumulator always gives the same output
 * whichever path computed it.  Internal header: not read by cffi.
 *
 * Pipeline for one accumulator `acc` (int64, already narrowed by the kernel):
 *   1. r = scheme(acc)                       exact integer result of the scheme
 *   2. y = r + zero_point                    (int64; wraps mod 2^64, reachable
 *                                             only by SHIFT_ONLY on |acc| ~ 2^63)
 *   3. output stage: saturate: clamp y to [out_min, out_max];
 *                    wrap:     wrap y to out_bits (signed per out_signed),
 *                              then clamp to [out_min, out_max].
 *      *changed = 1 iff step 3 altered y, or FLOAT32 clamped in float.
 *
 * Schemes (multiplier M, shift s per channel; SEMANTICS.md sections in brackets):
 *   DOUBLE_ROUNDING [1.6]  x = wrap_32(acc) (a kernel hands over an int32
 *       accumulator; wider values are wrapped to int32 first, as the int32
 *       TFLite API would receive them); t = wrap_32(x * 2^max(s,0));
 *       r = RDBPOT(SRDHM(t, M), max(-s,0)).  s in [-31, 31].
 *   SINGLE_ROUNDING [1.7]  x = wrap_32(acc); T = 31 - s;
 *       r = floor((x*M + 2^(T-1)) / 2^T) (int64, exact).  s in [-31, 30].
 *   SRDHM_HALF_UP [10.2 double_up]  as DOUBLE_ROUNDING but stage 2 is a half-up
 *       rounding shift (SRSHL without the fixup).  s in [-31, 31].
 *   NEON_SINGLE [2.3]  x = wrap_32(acc); rs = min(s, -1); ls = s - rs;
 *       r = SRSHL(SQDMULH(SSHL(x, ls), M), rs) -- SSHL wraps (vector 8.3 last row).
 *       s in [-31, 30].
 *   INT64_REDUCED [1.7 int64 overload]  x = wrap_48(acc) (TFLite requires
 *       x in [-2^47, 2^47)); M' = M < 0x7FFF0000 ? (M + 2^15) >> 16 : 0x7FFF;
 *       T = 15 - s; r = floor((x*M' + 2^(T-1)) / 2^T).  s in [-31, 14].
 *   FLOAT32 [3.6, 10.1]  v = fl32(fl32(acc) * scale_f32) (int64 -> float32 rounds
 *       to nearest even; one float32 multiply); v = min(max(v, fl32(out_min - zp)),
 *       fl32(out_max - zp)); r = round(v) with `rounding` (half_even = MLAS/XNNPACK).
 *   FLOAT64_ROUND [10.2 f64_round]  v = (double)acc * scale_f64; v clamped to
 *       [-2^62, 2^62] (only reachable when the product is beyond any output, and
 *       keeps the conversion defined); r = round(v) with `rounding`
 *       (half_away = std::round).
 *   SHIFT_ONLY [7]  s <= 0: r = round(acc / 2^-s) with `rounding`, exact;
 *       s > 0: r = acc * 2^s wrapped mod 2^64.  s in [-63, 63]; M unused.
 * The fixed-point schemes require M >= 0 (as TFLite and CMSIS-NN do) and use
 * their own fixed rounding; `rounding` applies to FLOAT32, FLOAT64_ROUND and
 * SHIFT_ONLY.  Stochastic rounding draws hw_stochastic_bits(seed, index) with
 * `index` the flat (row-major) position of the output element.
 */
#ifndef HW_REQUANTIZE_H
#define HW_REQUANTIZE_H
#include <float.h>
#include <math.h>
#include <stdint.h>
#include "hw_fixedpoint.h"
#include "hw_types.h"

/* FLOAT32 must multiply in float32 exactly once (MLAS, XNNPACK); x87 extended
 * precision would round differently. */
_Static_assert(FLT_EVAL_METHOD == 0, "hwsim needs float and double arithmetic evaluated in their own types");

/* Check a requantisation spec once, before any kernel uses it: known scheme,
 * rounding and overflow; n_channels >= 1; the per-channel arrays the scheme
 * needs are non-NULL and in range (M >= 0, shift within the scheme's range,
 * finite scales); out_bits in [2, 32] signed or [1, 31] unsigned; out_signed
 * 0 or 1; out_min <= out_max, both representable in the output format.
 * Returns HW_OK or HW_ERR_ARG. */
hw_status_t hw_requant_spec_check(const hw_requant_spec_t *spec);

/* Inclusive shift range of a fixed-point or shift-only scheme. */
static inline void hw_requant_shift_range(hw_requant_scheme_t scheme, int *lo, int *hi)
{
    switch (scheme) {
    case HW_REQ_SINGLE_ROUNDING:
    case HW_REQ_NEON_SINGLE: *lo = -31; *hi = 30; return;
    case HW_REQ_INT64_REDUCED: *lo = -31; *hi = 14; return;
    case HW_REQ_SHIFT_ONLY: *lo = -63; *hi = 63; return;
    default: *lo = -31; *hi = 31; return;
    }
}

/* Step 1 of the pipeline: the scheme's exact integer result, before the zero
 * point.  *clamped = 1 iff FLOAT32 clamped v in float (an output saturation
 * that happens before rounding), else 0.
 * Preconditions: spec passed hw_requant_spec_check, c < n_channels. */
static inline int64_t hw_requant_scheme_value(int64_t acc, int32_t c, uint64_t index,
                                              const hw_requant_spec_t *spec, int *clamped)
{
    *clamped = 0;
    switch (spec->scheme) {
    case HW_REQ_DOUBLE_ROUNDING:
    case HW_REQ_SRDHM_HALF_UP: {
        int32_t m = spec->multiplier[c];
        int s = spec->shift[c];
        int ls = s > 0 ? s : 0, rs = s > 0 ? 0 : -s;
        int32_t x = (int32_t)hw_wrap_s64(acc, 32);
        int32_t t = (int32_t)hw_wrap_s64(hw_shl_wrap_s64(x, ls), 32);
        int32_t u = hw_srdhm_s32_one(t, m);
        if (spec->scheme == HW_REQ_DOUBLE_ROUNDING) return hw_rdbpot_s32_one(u, rs);
        return hw_round_div_pow2(u, rs, HW_ROUND_HALF_UP, 0, 0);
    }
    case HW_REQ_SINGLE_ROUNDING: {
        int64_t x = hw_wrap_s64(acc, 32);
        int total = 31 - spec->shift[c];                      /* 1..62 */
        /* |x*M| <= 2^62 and 2^(total-1) <= 2^61: the sum fits int64. */
        return hw_asr_s64(x * spec->multiplier[c] + ((int64_t)1 << (total - 1)), total);
    }
    case HW_REQ_NEON_SINGLE: {
        int s = spec->shift[c];
        int rs = s < -1 ? s : -1;
        int ls = s - rs;
        int32_t x = (int32_t)hw_wrap_s64(acc, 32);
        int32_t t = hw_sshl_s32_one(x, ls);
        int32_t u = hw_sqdmulh_s32_one(t, spec->multiplier[c]);
        return hw_srshl_s32_one(u, rs);
    }
    case HW_REQ_INT64_REDUCED: {
        int32_t m = spec->multiplier[c];
        int64_t reduced = m < 0x7FFF0000 ? ((int64_t)m + (1 << 15)) >> 16 : 0x7FFF;  /* m >= 0 */
        int64_t x = hw_wrap_s64(acc, 48);
        int total = 15 - spec->shift[c];                      /* 1..46 */
        /* |x*M'| <= 2^47 * 2^15 = 2^62: the sum fits int64. */
        return hw_asr_s64(x * reduced + ((int64_t)1 << (total - 1)), total);
    }
    case HW_REQ_FLOAT32: {
        float lo = (float)((int64_t)spec->out_min - spec->zero_point);
        float hi = (float)((int64_t)spec->out_max - spec->zero_point);
        float v = (float)acc * spec->scale_f32[c];
        *clamped = v < lo || v > hi;
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        return hw_round_double((double)v, spec->rounding, spec->seed, index);
    }
    case HW_REQ_FLOAT64_ROUND: {
        const double limit = 0x1p62;
        double v = (double)acc * spec->scale_f64[c];
        v = v < -limit ? -limit : v;
        v = v > limit ? limit : v;
        return hw_round_double(v, spec->rounding, spec->seed, index);
    }
    case HW_REQ_SHIFT_ONLY: {
        int s = spec->shift[c];
        if (s > 0) return hw_shl_wrap_s64(acc, s);
        return hw_round_div_pow2(acc, -s, spec->rounding, spec->seed, index);
    }
    }
    return 0;
}

/* Steps 2-3: + zero point, then the output stage.  *changed = 1 iff the output
 * stage clamped or wrapped. */
static inline int64_t hw_requant_output_stage(int64_t r, const hw_requant_spec_t *spec, int *changed)
{
    int64_t y = hw_wrapping_add_s64(r, spec->zero_point);
    int64_t z = y;
    if (spec->out_overflow == HW_OVERFLOW_WRAP)
        z = spec->out_signed ? hw_wrap_s64(z, spec->out_bits) : hw_wrap_u64(z, spec->out_bits);
    z = z < spec->out_min ? spec->out_min : z;
    z = z > spec->out_max ? spec->out_max : z;
    *changed = z != y;
    return z;
}

/* One accumulator -> one output value (in [out_min, out_max]), the complete
 * pipeline above; *changed = 1 iff the value was clamped or wrapped (the output
 * stage, or FLOAT32's clamp in float).  channel: the output channel (ignored when n_channels == 1);
 * index: the flat position of the output element, used only by stochastic
 * rounding (pass the same index hw_requantize_s64 would: row * cols + col).
 * Preconditions: spec passed hw_requant_spec_check; channel < n_channels. */
static inline int64_t hw_requantize_one_at(int64_t acc, int32_t channel, uint64_t index,
                                           const hw_requant_spec_t *spec, int *changed)
{
    int32_t c = spec->n_channels == 1 ? 0 : channel;
    int clamped;
    int64_t y = hw_requant_output_stage(hw_requant_scheme_value(acc, c, index, spec, &clamped), spec, changed);
    *changed |= clamped;
    return y;
}

/* hw_requantize_one_at with index 0: identical for every deterministic
 * rounding; with stochastic rounding all elements would share one draw, so
 * kernels that may see HW_ROUND_STOCHASTIC call hw_requantize_one_at. */
static inline int64_t hw_requantize_one(int64_t acc, int32_t channel, const hw_requant_spec_t *spec,
                                        int *changed)
{
    return hw_requantize_one_at(acc, channel, 0, spec, changed);
}

#endif
