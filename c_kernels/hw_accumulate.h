/* hw_accumulate.h -- internal: the MAC arithmetic of hw_accum_spec_t, shared by
 * the portable kernels (hw_gemm.c, hw_conv2d.c) and any fast path that wants
 * the reference behaviour for one output.  Not read by cffi.
 *
 * One output accumulator, for output channel c (SEMANTICS.md sections 2.4, 3.2):
 *
 *   a_k   = x_k - zx   (HW_ZP_IN_MAC)        w_k = w[c, k] - zw[c]
 *         = x_k        (HW_ZP_FOLDED)
 *   p_k   = a_k * w_k                                  exact
 *   s_g   = p_{g*G} + ... + p_{g*G+G-1}                exact, G = group; a short last
 *                                                       group just has fewer products
 *   s_g'  = narrow(s_g, group_bits, group_overflow)     one group event if s_g' != s_g
 *   acc   = narrow(acc + s_g', acc_bits, acc_overflow)  one acc event if it changed
 *
 * The correction that carries the bias (and, for FOLDED, the input zero point):
 *
 *   T     = -zx * sum_k w_k   (FOLDED; 0 for IN_MAC)   exact
 *   t     = narrow(T, acc_bits, acc_overflow)          acc event if changed
 *   corr  = narrow(t + bias[c], acc_bits, acc_overflow) acc event if changed
 *
 * bias_first = 1: the accumulator starts at corr and the groups follow.
 * bias_first = 0: the accumulator starts at 0; after the last group
 *                 acc = narrow(acc + corr) (acc event if changed).
 * The correction's events are counted once per output element (as if every
 * accumulator computed it), so counts scale with the number of outputs.
 *
 * Every "narrow(u + v)" means: the exact mathematical sum, then narrowed.
 * When acc_bits or group_bits is 64 the int64 addition itself can overflow;
 * hw_acc_add below recovers the exact answer from the wrapped sum.
 *
 * Operand ranges (checked by the kernels): |a_k| <= 65535 and |w_k| <= 65535
 * (zero points within their operand's dtype range), so |p_k| < 2^32 and a group
 * sum of at most 4 products is exact in int64.
 */
#ifndef HW_ACCUMULATE_H
#define HW_ACCUMULATE_H
#include <stdint.h>
#include "hw_types.h"
#include "hw_fixedpoint.h"

/* narrow(u + v, bits, ovf) for the exact sum u + v of two int64 values,
 * bits in [2, 64]; adds 1 to *events when the result differs from u + v.
 * The int64 add wraps (UB-free) and is detected: a true sum beyond int64 is
 * beyond every narrower format too, so saturation goes to the side of u's
 * sign, and wrapping mod 2^64 then mod 2^bits equals wrapping the exact sum. */
static inline int64_t hw_acc_add(int64_t u, int64_t v, int bits, hw_overflow_t ovf, int64_t *events)
{
    int64_t s = hw_wrapping_add_s64(u, v);
    int beyond_int64 = ((u < 0) == (v < 0)) && ((s < 0) != (u < 0));
    int64_t r;
    if (beyond_int64 && ovf == HW_OVERFLOW_SATURATE)
        r = u < 0 ? hw_min_s(bits) : hw_max_s(bits);
    else
        r = hw_narrow_signed(s, bits, ovf);
    if (beyond_int64 || r != s) (*events)++;
    return r;
}

/* The correction `corr` above for one output channel.
 * wsum = sum_k (w[c, k] - zw[c]) (exact); bias = bias[c] or 0. */
static inline int64_t hw_acc_correction(const hw_accum_spec_t *spec, int32_t zx, int64_t wsum,
                                        int64_t bias, int64_t *acc_events)
{
    int64_t t = 0;
    if (spec->input_zero_point == HW_ZP_FOLDED) {
        /* |zx| <= 2^16 and |wsum| < 2^47 (K < 2^31, |w_k| <= 65535): exact */
        int64_t exact = -(int64_t)zx * wsum;
        t = hw_narrow_signed(exact, spec->acc_bits, spec->acc_overflow);
        if (t != exact) (*acc_events)++;
    }
    return hw_acc_add(t, bias, spec->acc_bits, spec->acc_overflow, acc_events);
}

/* The group/accumulator reduction over k = 0..K-1 starting from acc, step by
 * step exactly as described at the top of this file. */
static inline int64_t hw_acc_reduce(const int32_t *a, const int32_t *w, int64_t K,
                                    const hw_accum_spec_t *spec, int64_t acc,
                                    int64_t *group_events, int64_t *acc_events)
{
    const int64_t G = spec->group;
    const int gbits = spec->group_bits, abits = spec->acc_bits;
    const hw_overflow_t govf = spec->group_overflow, aovf = spec->acc_overflow;
    int64_t gev = 0, aev = 0;
    if (G == 1 && abits <= 62) {
        /* The common scalar MAC, written out so the compiler keeps it tight:
         * |acc| < 2^61 and |p| <= 2^32, so acc + p cannot leave int64 and
         * hw_acc_add's overflow recovery is not needed (same result). */
        for (int64_t k = 0; k < K; k++) {
            int64_t p = (int64_t)a[k] * (int64_t)w[k];
            int64_t g = hw_narrow_signed(p, gbits, govf);
            gev += g != p;
            int64_t s = acc + g;
            acc = hw_narrow_signed(s, abits, aovf);
            aev += acc != s;
        }
    } else {
        for (int64_t k = 0; k < K; k += G) {
            int64_t end = k + G < K ? k + G : K;
            int64_t s = 0;
            for (int64_t j = k; j < end; j++) s += (int64_t)a[j] * (int64_t)w[j];
            int64_t g = hw_narrow_signed(s, gbits, govf);
            gev += g != s;
            acc = hw_acc_add(acc, g, abits, aovf, &aev);
        }
    }
    *group_events += gev;
    *acc_events += aev;
    return acc;
}

/* Plain exact dot product; only valid when hw_acc_product_bound() allowed it. */
static inline int64_t hw_acc_dot_exact(const int32_t *a, const int32_t *w, int64_t K)
{
    int64_t s = 0;
    for (int64_t k = 0; k < K; k++) s += (int64_t)a[k] * (int64_t)w[k];
    return s;
}

/* The same on int16 copies, summed in int32: exact when the caller has shown
 * sum_k |a_k * w_k| <= INT32_MAX.  (A multiply-add of int16 pairs into int32
 * lanes is what compilers vectorise best on every ISA.) */
static inline int64_t hw_acc_dot_exact16(const int16_t *a, const int16_t *w, int64_t K)
{
    int32_t s = 0;
    for (int64_t k = 0; k < K; k++) s += (int32_t)a[k] * (int32_t)w[k];
    return s;
}

/* P = abs_a_sum * max_abs_w, a bound on |every group sum| and on
 * |every partial sum of products|; -1 when it does not fit int64.
 * abs_a_sum = sum_k |a_k|, max_abs_w = max_k |w_k| (both >= 0). */
static inline int64_t hw_acc_product_bound(int64_t abs_a_sum, int64_t max_abs_w)
{
    if (max_abs_w != 0 && abs_a_sum > INT64_MAX / max_abs_w) return -1;
    return abs_a_sum * max_abs_w;
}

/* 1 when no step of hw_acc_reduce starting from `start` can change a value,
 * given the product bound p of the stretch (-1 = unbounded): then the
 * reduction equals start + the exact dot product with no events.  Needs
 * p <= max(group_bits) and |start| + p <= max(acc_bits). */
static inline int hw_acc_bound_safe(const hw_accum_spec_t *spec, int64_t p, int64_t start)
{
    if (p < 0 || p > hw_max_s(spec->group_bits)) return 0;
    if (start == INT64_MIN) return 0;
    int64_t abs_start = start < 0 ? -start : start;
    if (abs_start > INT64_MAX - p) return 0;
    return abs_start + p <= hw_max_s(spec->acc_bits);
}

/* ---- one output, with the proofs that let whole stretches run exactly ----
 *
 * Saturation and wrap-around make the order of steps part of the result, so
 * the reference runs step by step -- except where a bound proves that no step
 * of a stretch can change a value.  Over a stretch of k with
 * B = sum_k |a_k| * max_k |w_k| (a bound on every group sum and on every partial
 * sum of products in it), |acc| + B <= max(acc_bits) and B <= max(group_bits)
 * mean the stretch equals acc + the exact dot product, with no events.  The
 * whole row is tried first, then blocks of HW_ACC_BLOCK steps (a multiple of
 * every group size, so blocks never split a group). */
#define HW_ACC_BLOCK 64

/* The activation side of one output: K values a_k (x - zx, or raw x for
 * FOLDED), an optional int16 copy, sum_k |a_k| and the same sum per block. */
typedef struct {
    const int32_t *v;
    const int16_t *v16;         /* NULL when some value does not fit int16 */
    int64_t abs_sum;
    const int64_t *block_abs;   /* [ceil(K / HW_ACC_BLOCK)] */
} hw_acc_row_t;

/* The weight side: K values w_k - zw, an optional int16 copy, max_k |w_k - zw|. */
typedef struct {
    const int32_t *v;
    const int16_t *v16;
    int64_t max_abs;
} hw_acc_wrow_t;

/* Fill abs_sum and block_abs (caller-owned, ceil(K / HW_ACC_BLOCK) entries). */
static inline void hw_acc_row_stats(const int32_t *v, int64_t K, int64_t *block_abs, int64_t *abs_sum)
{
    int64_t total = 0;
    for (int64_t k0 = 0, b = 0; k0 < K; k0 += HW_ACC_BLOCK, b++) {
        int64_t k1 = k0 + HW_ACC_BLOCK < K ? k0 + HW_ACC_BLOCK : K, s = 0;
        for (int64_t k = k0; k < k1; k++) s += v[k] < 0 ? -(int64_t)v[k] : v[k];
        block_abs[b] = s;
        total += s;
    }
    *abs_sum = total;
}

/* acc + the exact dot product of a[k0..k1) and w[k0..k1), given its bound p. */
static inline int64_t hw_acc_stretch_exact(const hw_acc_row_t *a, const hw_acc_wrow_t *w, int64_t k0, int64_t k1,
                                           int64_t p, int64_t acc)
{
    if (a->v16 && w->v16 && p <= INT32_MAX) return acc + hw_acc_dot_exact16(a->v16 + k0, w->v16 + k0, k1 - k0);
    return acc + hw_acc_dot_exact(a->v + k0, w->v + k0, k1 - k0);
}

/* The final accumulator of one output (see the top of this file).
 * corr from hw_acc_correction; corr_events = the acc events it caused. */
static inline int64_t hw_acc_output(const hw_acc_row_t *a, const hw_acc_wrow_t *w, int64_t K,
                                    const hw_accum_spec_t *spec, int64_t corr, int64_t corr_events,
                                    int64_t *group_events, int64_t *acc_events)
{
    int64_t acc = spec->bias_first ? corr : 0;
    int64_t p = hw_acc_product_bound(a->abs_sum, w->max_abs);
    *acc_events += corr_events;
    if (hw_acc_bound_safe(spec, p, acc)) {
        acc = hw_acc_stretch_exact(a, w, 0, K, p, acc);
    } else {
        for (int64_t k0 = 0, b = 0; k0 < K; k0 += HW_ACC_BLOCK, b++) {
            int64_t k1 = k0 + HW_ACC_BLOCK < K ? k0 + HW_ACC_BLOCK : K;
            int64_t pb = hw_acc_product_bound(a->block_abs[b], w->max_abs);
            if (hw_acc_bound_safe(spec, pb, acc))
                acc = hw_acc_stretch_exact(a, w, k0, k1, pb, acc);
            else
                acc = hw_acc_reduce(a->v + k0, w->v + k0, k1 - k0, spec, acc, group_events, acc_events);
        }
    }
    if (!spec->bias_first)
        acc = hw_acc_add(acc, corr, spec->acc_bits, spec->acc_overflow, acc_events);
    return acc;
}

/* Validate an accumulator spec: HW_OK or HW_ERR_ARG. */
static inline hw_status_t hw_accum_spec_check(const hw_accum_spec_t *spec)
{
    if (!spec) return HW_ERR_ARG;
    if (spec->group != 1 && spec->group != 2 && spec->group != 4) return HW_ERR_ARG;
    if (spec->group_bits < 2 || spec->group_bits > 64) return HW_ERR_ARG;
    if (spec->acc_bits < 8 || spec->acc_bits > 64) return HW_ERR_ARG;
    if (spec->group_overflow != HW_OVERFLOW_WRAP && spec->group_overflow != HW_OVERFLOW_SATURATE) return HW_ERR_ARG;
    if (spec->acc_overflow != HW_OVERFLOW_WRAP && spec->acc_overflow != HW_OVERFLOW_SATURATE) return HW_ERR_ARG;
    if (spec->input_zero_point != HW_ZP_IN_MAC && spec->input_zero_point != HW_ZP_FOLDED) return HW_ERR_ARG;
    if (spec->bias_first != 0 && spec->bias_first != 1) return HW_ERR_ARG;
    return HW_OK;
}

/* |v| for the max_abs_acc counter, INT64_MIN reported as INT64_MAX. */
static inline int64_t hw_acc_abs(int64_t v)
{
    return v == INT64_MIN ? INT64_MAX : (v < 0 ? -v : v);
}

#endif
