/* hw_fast_narrow_common.h -- private: what the narrow-accumulator and depthwise
 * fast paths share (operand loading, range analysis, the scalar start/finish
 * terms of one output, and the per-output epilogue).
 *
 * Only the k loop is vectorised in the fast paths; everything that happens
 * once per output (the bias / folded zero-point correction, counters,
 * acc_out, requantisation) is scalar here and uses hw_accumulate.h's own
 * functions, so it is the portable kernel's arithmetic by construction:
 *   corr = narrow(narrow(-zx * sum_k (w - zw)) + bias)   (hw_acc_correction)
 *   bias_first = 1:  acc starts at corr, then the k loop
 *   bias_first = 0:  acc starts at 0; after the k loop acc = narrow(acc + corr)
 * The correction's events count once per output.
 */
#ifndef HW_FAST_NARROW_COMMON_H
#define HW_FAST_NARROW_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hw_types.h"
#include "hw_fixedpoint.h"
#include "hw_accumulate.h"
#include "hw_requantize.h"

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

/* Per-output-channel correction (hw_accumulate.h), computed once per call. */
typedef struct {
    const hw_accum_spec_t *spec;
    int64_t *corr;          /* [N] */
    int64_t *corr_events;   /* [N] acc events of the correction, per output */
} nw_terms_t;

/* corr[n] from wsum[n] = sum_k (w[n, k] - zw[n]) and bias (NULL = 0).
 * Returns 0 on allocation failure. */
static inline int nw_terms_init(nw_terms_t *t, const hw_accum_spec_t *spec, int32_t zx, const int64_t *wsum,
                                const int64_t *bias, int64_t N)
{
    t->spec = spec;
    t->corr = (int64_t *)malloc((size_t)N * 2 * sizeof(int64_t));
    if (t->corr == NULL) return 0;
    t->corr_events = t->corr + N;
    for (int64_t n = 0; n < N; n++) {
        t->corr_events[n] = 0;
        t->corr[n] = hw_acc_correction(spec, zx, wsum[n], bias != NULL ? bias[n] : 0, &t->corr_events[n]);
    }
    return 1;
}

static inline void nw_terms_free(nw_terms_t *t)
{
    free(t->corr);
    t->corr = NULL;
}

/* Starting accumulator of channel n. */
static inline int64_t nw_start_value(const nw_terms_t *t, int64_t n)
{
    return t->spec->bias_first ? t->corr[n] : 0;
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

/* Finish output (row, n) whose k loop ended at `acc`: the late correction
 * (bias_first = 0), acc_out, counters and requantisation -- as hw_gemm.c's
 * epilogue does it. */
static inline void nw_finish_one(const nw_sink_t *s, int64_t row, int64_t n, int64_t acc, nw_counts_t *cnt)
{
    const hw_accum_spec_t *spec = s->terms->spec;
    int64_t ev = 0;
    if (!spec->bias_first) acc = hw_acc_add(acc, s->terms->corr[n], spec->acc_bits, spec->acc_overflow, &ev);
    int64_t idx = row * s->N + n;
    if (s->acc_out != NULL) s->acc_out[idx] = acc;
    int changed = 0;
    if (s->rq != NULL) {
        int64_t v = hw_requantize_one_at(acc, (int32_t)n, (uint64_t)idx, s->rq, &changed);
        switch (s->out_dtype) {
        case HW_DT_S8: ((int8_t *)s->out)[idx] = (int8_t)v; break;
        case HW_DT_U8: ((uint8_t *)s->out)[idx] = (uint8_t)v; break;
        case HW_DT_S16: ((int16_t *)s->out)[idx] = (int16_t)v; break;
        default: ((int32_t *)s->out)[idx] = (int32_t)v; break;
        }
    }
    if (cnt != NULL) {
        cnt->acc_events[n] += ev;
        cnt->out_events[n] += changed != 0;
        int64_t a = hw_acc_abs(acc);
        if (a > cnt->max_abs_acc[n]) cnt->max_abs_acc[n] = a;
    }
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
                                           const int64_t *corr_events, int64_t outputs_per_channel)
{
    if (counters == NULL) return;
    for (int64_t n = 0; n < cs->N; n++) {
        int64_t ae = corr_events[n] * outputs_per_channel, oe = 0, mx = 0;
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

/* Are the requested outputs something this epilogue writes?  (hw_gemm /
 * hw_conv2d have checked the spec and the dtype range already.) */
static inline int nw_out_dtype_ok(const hw_requant_spec_t *rq, hw_dtype_t out_dtype, const void *out)
{
    if (rq == NULL) return out == NULL;
    return out != NULL && (out_dtype == HW_DT_S8 || out_dtype == HW_DT_U8 || out_dtype == HW_DT_S16 ||
                           out_dtype == HW_DT_S32);
}


/* ---- vectorised epilogue (x86) ------------------------------------------------ */
#if defined(__x86_64__)
#include <immintrin.h>
#include "hw_fast_x86_requant.h"

#define NW_EPI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

/* How finished int32 accumulators leave a fast path.  The vector route is
 * taken only when it is the scalar route's arithmetic: no counters, a late
 * correction (bias_first = 0) only for acc_bits <= 32 (then narrow(acc + corr)
 * is exact in int64 lanes and fits int32 again), and a requantisation the
 * hw_fast_x86_requant.h routines reproduce (else per output through
 * nw_finish_one / hw_requantize_one_at). */
typedef struct {
    const nw_sink_t *sink;
    hw_rq_plan_t plan;
    void *plan_mem;
    int vector;            /* 1: vector route allowed when counters are off */
    int wrap_bits;         /* > 0: wrap the int32 value to this width first */
    int64_t *late_corr;    /* bias_first = 0 and acc_bits <= 32: corr padded to npad, else NULL */
    int32_t *late_corr32;  /* the same as int32 (|corr| < 2^31 once narrowed to acc_bits <= 32) */
    int late_mode;         /* NW_LATE_* */
} nw_epilogue_t;

enum {
    NW_LATE_NONE = 0,      /* bias_first: nothing after the k loop */
    NW_LATE_SAT32 = 1,     /* saturate, acc_bits <= 31: |acc + corr| < 2^31, int32 add then clamp */
    NW_LATE_WRAP32 = 2,    /* wrap, acc_bits <= 32: int32 add wraps mod 2^32, then wrap to acc_bits */
    NW_LATE_SAT64 = 3      /* saturate, acc_bits = 32: add in int64 lanes, clamp */
};

/* Per-channel requantisation parameters padded to npad entries (a multiple of
 * 16 >= N), the same expansion hw_fast_x86_vnni.c uses.  0: out of memory. */
static inline int nw_epilogue_init(nw_epilogue_t *e, const nw_sink_t *sink, int64_t npad, int wrap_bits)
{
    const hw_requant_spec_t *rq = sink->rq;
    memset(e, 0, sizeof *e);
    e->sink = sink;
    e->wrap_bits = wrap_bits;
    const nw_terms_t *t = sink->terms;
    e->vector = 1;
    if (!t->spec->bias_first) {
        if (t->spec->acc_bits > 32) {
            e->vector = 0;
        } else {
            int sat = t->spec->acc_overflow == HW_OVERFLOW_SATURATE;
            e->late_mode = !sat ? NW_LATE_WRAP32 : t->spec->acc_bits <= 31 ? NW_LATE_SAT32 : NW_LATE_SAT64;
            e->late_corr = (int64_t *)calloc((size_t)npad, sizeof(int64_t));
            e->late_corr32 = (int32_t *)calloc((size_t)npad, sizeof(int32_t));
            if (e->late_corr == NULL || e->late_corr32 == NULL) {
                free(e->late_corr);
                free(e->late_corr32);
                return 0;
            }
            memcpy(e->late_corr, t->corr, (size_t)sink->N * sizeof(int64_t));
            for (int64_t n = 0; n < sink->N; n++) e->late_corr32[n] = (int32_t)t->corr[n];
        }
    }
    e->plan.kind = RQV_NONE;
    if (rq == NULL) return 1;
    int kind = RQV_SCALAR;
    int64_t nch = rq->n_channels, lo = (int64_t)rq->out_min - rq->zero_point;
    int64_t hi = (int64_t)rq->out_max - rq->zero_point;
    if (rq->out_overflow == HW_OVERFLOW_SATURATE) {
        if (rq->scheme == HW_REQ_FLOAT32 && rq->scale_f32 != NULL &&
            (rq->rounding == HW_ROUND_HALF_EVEN || rq->rounding == HW_ROUND_FLOOR ||
             rq->rounding == HW_ROUND_CEIL || rq->rounding == HW_ROUND_TRUNC) &&
            lo >= -(1 << 24) && hi <= (1 << 24)) {
            kind = RQV_F32;
            for (int64_t c = 0; c < nch; c++) {
                float f = rq->scale_f32[c];
                if (!(f - f == 0.0f)) kind = RQV_SCALAR;   /* inf or NaN */
            }
        } else if ((rq->scheme == HW_REQ_DOUBLE_ROUNDING || rq->scheme == HW_REQ_SRDHM_HALF_UP ||
                    rq->scheme == HW_REQ_SINGLE_ROUNDING) && rq->multiplier != NULL && rq->shift != NULL) {
            kind = rq->scheme == HW_REQ_DOUBLE_ROUNDING ? RQV_DOUBLE
                 : rq->scheme == HW_REQ_SRDHM_HALF_UP ? RQV_HALFUP : RQV_SINGLE;
            for (int64_t c = 0; c < nch; c++) {
                int32_t sh = rq->shift[c];
                if (kind == RQV_SINGLE ? (sh < -31 || sh > 30) : (sh < -31 || sh > 31)) kind = RQV_SCALAR;
                if (rq->multiplier[c] < 0) kind = RQV_SCALAR;
            }
        }
    }
    e->plan.kind = kind;
    e->plan.f32_rounding = rq->rounding;
    e->plan.zp = rq->zero_point;
    e->plan.out_min = rq->out_min;
    e->plan.out_max = rq->out_max;
    e->plan.f_lo = (float)lo;
    e->plan.f_hi = (float)hi;
    if (kind == RQV_SCALAR) {
        e->vector = 0;
        return 1;
    }
    int32_t *mem = hw_rq_plan_tables(&e->plan, rq, npad);
    if (mem == NULL) {
        free(e->late_corr);
        free(e->late_corr32);
        e->late_corr = NULL;
        e->late_corr32 = NULL;
        return 0;
    }
    e->plan_mem = mem;
    return 1;
}

static inline void nw_epilogue_free(nw_epilogue_t *e)
{
    free(e->plan_mem);
    free(e->late_corr);
    free(e->late_corr32);
    e->plan_mem = NULL;
    e->late_corr = NULL;
    e->late_corr32 = NULL;
}

/* narrow(acc + corr) to `bits` (<= 32) in 8 int64 lanes: exact, since
 * |acc| <= 2^31 and |corr| <= 2^31 (corr is narrowed to acc_bits). */
NW_EPI_TARGET static inline __m256i nw_late8(__m256i acc8, const int64_t *corr, int bits, int sat)
{
    __m512i v = _mm512_add_epi64(_mm512_cvtepi32_epi64(acc8), _mm512_loadu_si512((const void *)corr));
    if (sat) {
        v = _mm512_max_epi64(v, _mm512_set1_epi64(hw_min_s(bits)));
        v = _mm512_min_epi64(v, _mm512_set1_epi64(hw_max_s(bits)));
    } else {
        unsigned sh = (unsigned)(64 - bits);
        v = _mm512_srai_epi64(_mm512_slli_epi64(v, sh), sh);
    }
    return _mm512_cvtepi64_epi32(v);
}

/* The common route of a quantized model, as one tight loop: FLOAT32
 * requantisation with round-half-even to an 8-bit output, no acc_out, no
 * counters.  The same operations as hw_rqv16 (RQV_F32) in the same order.
 * Returns 0 when the case is not this one. */
NW_EPI_TARGET static inline int nw_epilogue_f32_8bit(const nw_epilogue_t *e, int64_t row, int64_t n0, int64_t nl,
                                                     const int32_t *acc)
{
    const nw_sink_t *s = e->sink;
    const hw_rq_plan_t *p = &e->plan;
    if (p->kind != RQV_F32 || p->f32_rounding != HW_ROUND_HALF_EVEN || s->acc_out != NULL || e->wrap_bits ||
        (s->out_dtype != HW_DT_U8 && s->out_dtype != HW_DT_S8) ||
        e->late_mode == NW_LATE_SAT64)
        return 0;
    const int late = e->late_mode;
    const int bits = s->terms->spec->acc_bits;
    const unsigned wsh = (unsigned)(32 - (bits < 32 ? bits : 32));
    const __m512i amin = _mm512_set1_epi32((int32_t)hw_min_s(bits < 32 ? bits : 32));
    const __m512i amax = _mm512_set1_epi32((int32_t)hw_max_s(bits < 32 ? bits : 32));
    const __m512 flo = _mm512_set1_ps(p->f_lo), fhi = _mm512_set1_ps(p->f_hi);
    const __m512i zp = _mm512_set1_epi32(p->zp);
    int8_t *dst = (int8_t *)s->out + row * s->N + n0;
    for (int64_t c = 0; c < nl; c += 16) {
        int64_t left = nl - c;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __m512i v = _mm512_loadu_si512((const void *)(acc + c));
        if (late == NW_LATE_SAT32) {
            v = _mm512_add_epi32(v, _mm512_loadu_si512((const void *)(e->late_corr32 + n0 + c)));
            v = _mm512_max_epi32(_mm512_min_epi32(v, amax), amin);
        } else if (late == NW_LATE_WRAP32) {
            v = _mm512_add_epi32(v, _mm512_loadu_si512((const void *)(e->late_corr32 + n0 + c)));
            v = _mm512_srai_epi32(_mm512_slli_epi32(v, wsh), wsh);
        }
        __m512 f = _mm512_cvt_roundepi32_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        f = _mm512_mul_round_ps(f, _mm512_loadu_ps(p->scale + n0 + c), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        f = _mm512_min_ps(_mm512_max_ps(f, flo), fhi);
        __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
        _mm512_mask_cvtepi32_storeu_epi8(dst + c, m, q);
    }
    return 1;
}

/* Finish outputs (row, n0 .. n0+nl-1) from int32 accumulators acc[0 .. nl)
 * (readable up to a multiple of 16); ev (or NULL): acc events of the k loop
 * per lane. */
NW_EPI_TARGET static inline void nw_epilogue_row(const nw_epilogue_t *e, int64_t row, int64_t n0, int64_t nl,
                                                 const int32_t *acc, const int32_t *ev, nw_counts_t *cnt)
{
    const nw_sink_t *s = e->sink;
    if (cnt != NULL || !e->vector) {
        for (int64_t c = 0; c < nl; c++) {
            int64_t v = acc[c];
            if (e->wrap_bits) v = hw_wrap_s64(v, e->wrap_bits);
            if (cnt != NULL && ev != NULL) cnt->acc_events[n0 + c] += ev[c];
            nw_finish_one(s, row, n0 + c, v, cnt);
        }
        return;
    }
    if (nw_epilogue_f32_8bit(e, row, n0, nl, acc)) return;
    int64_t idx0 = row * s->N + n0;
    for (int64_t c = 0; c < nl; c += 16) {
        int64_t left = nl - c;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __m512i v = _mm512_maskz_loadu_epi32(m, acc + c);
        if (e->wrap_bits) {
            int sh = 32 - e->wrap_bits;
            v = _mm512_srai_epi32(_mm512_slli_epi32(v, (unsigned)sh), (unsigned)sh);
        }
        if (e->late_mode != NW_LATE_NONE) {
            const int bits = s->terms->spec->acc_bits;
            if (e->late_mode == NW_LATE_SAT32) {
                v = _mm512_add_epi32(v, _mm512_loadu_si512((const void *)(e->late_corr32 + n0 + c)));
                v = _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32((int32_t)hw_max_s(bits))),
                                     _mm512_set1_epi32((int32_t)hw_min_s(bits)));
            } else if (e->late_mode == NW_LATE_WRAP32) {
                v = _mm512_add_epi32(v, _mm512_loadu_si512((const void *)(e->late_corr32 + n0 + c)));
                if (bits < 32) {
                    unsigned sh = (unsigned)(32 - bits);
                    v = _mm512_srai_epi32(_mm512_slli_epi32(v, sh), sh);
                }
            } else {
                __m256i lo = nw_late8(_mm512_castsi512_si256(v), e->late_corr + n0 + c, bits, 1);
                __m256i hi = nw_late8(_mm512_extracti64x4_epi64(v, 1), e->late_corr + n0 + c + 8, bits, 1);
                v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            }
        }
        if (s->acc_out != NULL) {
            int64_t *dst = s->acc_out + idx0 + c;
            _mm512_mask_storeu_epi64(dst, (__mmask8)m, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)));
            _mm512_mask_storeu_epi64(dst + 8, (__mmask8)(m >> 8), _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)));
        }
        if (s->rq != NULL) {
            __m512i q = hw_rqv16(&e->plan, v, n0 + c);
            switch (s->out_dtype) {
            case HW_DT_S8: _mm512_mask_cvtepi32_storeu_epi8((int8_t *)s->out + idx0 + c, m, q); break;
            case HW_DT_U8: _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)s->out + idx0 + c, m, q); break;
            case HW_DT_S16: _mm512_mask_cvtepi32_storeu_epi16((int16_t *)s->out + idx0 + c, m, q); break;
            default: _mm512_mask_storeu_epi32((int32_t *)s->out + idx0 + c, m, q); break;
            }
        }
    }
}
#endif

#endif
