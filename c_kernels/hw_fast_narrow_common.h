/* hw_fast_narrow_common.h -- private: what the narrow-accumulator and depthwise
 * fast paths share (operand loading, range analysis, the scalar start/finish
 * terms of one output, and the per-output epilogue).
 *
 * Only the k loop is vectorised in the fast paths; everything that happens
 * once per output (bias, folded zero-point term, counters, acc_out,
 * requantisation) is done here in scalar C with hw_fixedpoint.h's narrowing,
 * in exactly the order the portable kernel uses:
 *   bias_first = 1:  acc = 0 -> + bias -> + fold -> k loop
 *   bias_first = 0:  acc = 0 -> k loop -> + bias -> + fold
 * where fold = narrow(-zx * sum_k (w - zw)) (FOLDED placement only) and each
 * "+" is narrowed to acc_bits with acc_overflow and counted as an acc event
 * when it changed the value.
 */
#ifndef HW_FAST_NARROW_COMMON_H
#define HW_FAST_NARROW_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hw_types.h"
#include "hw_fixedpoint.h"
/* The requantiser comes from the prims branch; until it is merged the fast
 * paths decline every call that asks for requantised outputs. */
#if defined(__has_include)
#if __has_include("hw_requantize.h")
#include "hw_requantize.h"
#define NW_HAVE_REQUANT 1
#endif
#endif

/* Largest |bias| and |fold| the fast paths accept: keeps every scalar sum in
 * int64 exact (|acc| <= 2^31 here).  Larger values go to the portable kernel. */
#define NW_TERM_LIMIT ((int64_t)1 << 60)

/* Element i of an operand array of dtype dt (S8, U8, S16); other dtypes never
 * reach here (callers check nw_operand_dtype_ok first). */
static inline int32_t nw_load(hw_dtype_t dt, const void *p, int64_t i)
{
    switch (dt) {
    case HW_DT_S8: return ((const int8_t *)p)[i];
    case HW_DT_U8: return ((const uint8_t *)p)[i];
    default: return ((const int16_t *)p)[i];
    }
}

static inline int nw_operand_dtype_ok(hw_dtype_t dt)
{
    return dt == HW_DT_S8 || dt == HW_DT_U8 || dt == HW_DT_S16;
}

/* Weight zero point of output channel n. */
static inline int32_t nw_zw(const int32_t *zp, int32_t per_channel, int64_t n)
{
    if (zp == NULL) return 0;
    return per_channel ? zp[n] : zp[0];
}

/* Closed integer range [lo, hi], used to bound products. */
typedef struct {
    int64_t lo;
    int64_t hi;
} nw_range_t;

static inline nw_range_t nw_range_empty(void)
{
    nw_range_t r = {INT64_MAX, INT64_MIN};
    return r;
}

static inline void nw_range_add(nw_range_t *r, int64_t v)
{
    if (v < r->lo) r->lo = v;
    if (v > r->hi) r->hi = v;
}

static inline void nw_range_merge(nw_range_t *r, nw_range_t o)
{
    if (o.lo < r->lo) r->lo = o.lo;
    if (o.hi > r->hi) r->hi = o.hi;
}

/* Range of a * b for a in ra, b in rb (both non-empty, |values| < 2^31). */
static inline nw_range_t nw_range_mul(nw_range_t ra, nw_range_t rb)
{
    int64_t c[4] = {ra.lo * rb.lo, ra.lo * rb.hi, ra.hi * rb.lo, ra.hi * rb.hi};
    nw_range_t r = nw_range_empty();
    for (int i = 0; i < 4; i++) nw_range_add(&r, c[i]);
    return r;
}

static inline int64_t nw_range_absmax(nw_range_t r)
{
    int64_t a = r.lo < 0 ? -r.lo : r.lo, b = r.hi < 0 ? -r.hi : r.hi;
    return a > b ? a : b;
}

/* Does every value of r fit a signed `bits`-wide integer? */
static inline int nw_range_fits(nw_range_t r, int bits)
{
    return r.lo >= hw_min_s(bits) && r.hi <= hw_max_s(bits);
}

/* The group stage of a group-1 spec is the identity when every product fits
 * group_bits; the fast paths require that (so group events are 0). */
static inline int nw_group_stage_is_identity(const hw_accum_spec_t *acc, nw_range_t prod)
{
    if (acc->group != 1) return 0;
    return acc->group_bits >= 64 || nw_range_fits(prod, acc->group_bits);
}

/* acc = narrow(acc + v) to acc_bits; counts an event when the narrowing changed
 * the value.  |acc| <= 2^63 - NW_TERM_LIMIT and |v| <= NW_TERM_LIMIT keep the
 * sum exact in int64. */
static inline int64_t nw_add_narrow(int64_t acc, int64_t v, const hw_accum_spec_t *s, int64_t *events)
{
    int64_t sum = acc + v;
    int64_t r = hw_narrow_signed(sum, s->acc_bits, s->acc_overflow);
    if (r != sum) (*events)++;
    return r;
}

/* Per-output-channel terms that do not depend on the k loop. */
typedef struct {
    const hw_accum_spec_t *spec;
    const int64_t *bias;   /* NULL or N entries */
    const int64_t *fold;   /* NULL or N entries: exact -zx * sum_k (w - zw) (FOLDED) */
} nw_terms_t;

/* Bias then folded term, each narrowed (the order the portable kernel uses). */
static inline int64_t nw_apply_terms(const nw_terms_t *t, int64_t acc, int64_t n, int64_t *events)
{
    if (t->bias != NULL) acc = nw_add_narrow(acc, t->bias[n], t->spec, events);
    if (t->fold != NULL) {
        int64_t f = t->fold[n];
        int64_t fn = hw_narrow_signed(f, t->spec->acc_bits, t->spec->acc_overflow);
        if (fn != f) (*events)++;
        acc = nw_add_narrow(acc, fn, t->spec, events);
    }
    return acc;
}

/* Per-thread counter scratch: N entries each (zeroed by the caller). */
typedef struct {
    int64_t *acc_events;
    int64_t *out_events;
    int64_t *max_abs_acc;
} nw_counts_t;

/* Where one output goes. */
typedef struct {
    const nw_terms_t *terms;
    const hw_requant_spec_t *rq;   /* NULL: accumulators only */
    hw_dtype_t out_dtype;
    void *out;                     /* [rows, N] of out_dtype, or NULL */
    int64_t *acc_out;              /* [rows, N] int64, or NULL */
    int64_t N;
} nw_sink_t;

/* Finish output (row, n) whose k loop ended at `acc`: the late terms (when
 * bias_first = 0), acc_out, counters and requantisation. */
static inline void nw_finish_one(const nw_sink_t *s, int64_t row, int64_t n, int64_t acc, nw_counts_t *cnt)
{
    int64_t ev = 0;
    if (!s->terms->spec->bias_first) acc = nw_apply_terms(s->terms, acc, n, &ev);
    int64_t idx = row * s->N + n;
    if (s->acc_out != NULL) s->acc_out[idx] = acc;
    if (cnt != NULL) {
        cnt->acc_events[n] += ev;
        int64_t a = acc < 0 ? -acc : acc;   /* |acc| < 2^63 here: acc_bits <= 32 or bounded */
        if (a > cnt->max_abs_acc[n]) cnt->max_abs_acc[n] = a;
    }
#if defined(NW_HAVE_REQUANT)
    if (s->rq != NULL && s->out != NULL) {
        int changed = 0;
        int64_t v = hw_requantize_one(acc, (int32_t)n, s->rq, &changed);
        if (cnt != NULL) cnt->out_events[n] += changed;
        switch (s->out_dtype) {
        case HW_DT_S8: ((int8_t *)s->out)[idx] = (int8_t)v; break;
        case HW_DT_U8: ((uint8_t *)s->out)[idx] = (uint8_t)v; break;
        case HW_DT_S16: ((int16_t *)s->out)[idx] = (int16_t)v; break;
        case HW_DT_S32: ((int32_t *)s->out)[idx] = (int32_t)v; break;
        default: break;
        }
    }
#endif
}

/* Starting accumulator of channel n (bias_first: the terms; else 0) and the
 * events that start caused (counted once per output). */
static inline int64_t nw_start_value(const nw_terms_t *t, int64_t n, int64_t *events)
{
    *events = 0;
    if (!t->spec->bias_first) return 0;
    return nw_apply_terms(t, 0, n, events);
}

/* Per-thread counter scratch for `chunks` threads, N channels each, zeroed. */
typedef struct {
    int chunks;
    int64_t N;
    int64_t *mem;   /* [chunks][3][N] */
} nw_count_scratch_t;

static inline int nw_count_scratch_init(nw_count_scratch_t *cs, int chunks, int64_t N)
{
    cs->chunks = chunks;
    cs->N = N;
    cs->mem = (int64_t *)calloc((size_t)chunks * 3u * (size_t)N, sizeof(int64_t));
    return cs->mem != NULL;
}

static inline nw_counts_t nw_count_scratch_get(const nw_count_scratch_t *cs, int t)
{
    nw_counts_t c;
    int64_t *base = cs->mem + (int64_t)t * 3 * cs->N;
    c.acc_events = base;
    c.out_events = base + cs->N;
    c.max_abs_acc = base + 2 * cs->N;
    return c;
}

/* Reduce the per-thread counts in thread order into the caller's counters.
 * start_events[n] (events of the bias-first start, per output) times
 * outputs_per_channel is added to acc_events.  Group events are 0 in the fast
 * paths (they require an identity group stage). */
static inline void nw_count_scratch_reduce(const nw_count_scratch_t *cs, hw_counters_t *counters,
                                           const int64_t *start_events, int64_t outputs_per_channel)
{
    if (counters == NULL) return;
    for (int64_t n = 0; n < cs->N; n++) {
        int64_t ae = start_events != NULL ? start_events[n] * outputs_per_channel : 0, oe = 0, mx = 0;
        for (int t = 0; t < cs->chunks; t++) {
            nw_counts_t c = nw_count_scratch_get(cs, t);
            ae += c.acc_events[n];
            oe += c.out_events[n];
            if (c.max_abs_acc[n] > mx) mx = c.max_abs_acc[n];
        }
        if (counters->group_events != NULL) counters->group_events[n] = 0;
        if (counters->acc_events != NULL) counters->acc_events[n] = ae;
        if (counters->out_events != NULL) counters->out_events[n] = oe;
        if (counters->max_abs_acc != NULL) counters->max_abs_acc[n] = mx;
    }
}

static inline void nw_count_scratch_free(nw_count_scratch_t *cs)
{
    free(cs->mem);
    cs->mem = NULL;
}

/* Are the requested outputs something this epilogue writes? */
static inline int nw_out_dtype_ok(const hw_requant_spec_t *rq, hw_dtype_t out_dtype, const void *out)
{
    if (rq == NULL) return out == NULL;
#if !defined(NW_HAVE_REQUANT)
    return 0;
#endif
    return out_dtype == HW_DT_S8 || out_dtype == HW_DT_U8 || out_dtype == HW_DT_S16 || out_dtype == HW_DT_S32;
}

#endif
