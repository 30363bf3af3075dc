/* hw_fast_x86_requant.h -- private: AVX-512 requantisation of 16 int32
 * accumulators at a time, for the tile epilogues of hw_fast_x86_vnni.c.
 *
 * Each routine reproduces hw_requantize_one (hw_requantize.h) bit for bit for
 * the cases its plan was built for (rq_plan_init in hw_fast_x86_vnni.c
 * declines everything else to the scalar routine):
 *   FLOAT32         fl32(acc) * fl32(scale) with round-to-nearest-even, clamp to
 *                   [out_min - zp, out_max - zp] in float, convert with the
 *                   spec's rounding (half_even / floor / ceil / trunc, set
 *                   explicitly per instruction, never read from MXCSR), + zp.
 *   DOUBLE_ROUNDING t = wrap_32(acc * 2^ls); u = SRDHM(t, M) (ties up, INT32_MIN^2
 *                   saturates); round_half_away(u / 2^rs); + zp; clamp.
 *   SRDHM_HALF_UP   the same with a half-up final shift.
 *   SINGLE_ROUNDING (acc * M + 2^(T-1)) >> T, T = 31 - shift; + zp; clamp.
 * Shifts: ls = max(shift, 0) and rs = max(-shift, 0) in [0, 31]; T in [1, 62].
 * Fixed-point work runs in 64-bit lanes, so no intermediate can overflow.
 * Only out_overflow == saturate is vectorised. */
#ifndef HW_FAST_X86_REQUANT_H
#define HW_FAST_X86_REQUANT_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include "hw_types.h"

#define HW_TGT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

enum {
    RQV_NONE = 0,     /* no requantisation: accumulators only */
    RQV_F32 = 1,
    RQV_DOUBLE = 2,
    RQV_HALFUP = 3,
    RQV_SINGLE = 4,
    RQV_SCALAR = 5    /* through hw_requantize_one, one value at a time */
};

/* Per-column parameters are expanded to one entry per (padded) column so a
 * 16-lane load never reads past the arrays. */
typedef struct {
    int kind;
    hw_rounding_t f32_rounding;
    const float *scale;       /* RQV_F32 */
    const int32_t *mult;      /* fixed point: Q31 multiplier */
    const int32_t *shift_l;   /* DOUBLE/HALFUP: ls */
    const int32_t *shift_r;   /* DOUBLE/HALFUP: rs; SINGLE: T */
    int32_t zp;
    int64_t out_min, out_max;
    float f_lo, f_hi;         /* float clamp bounds, exact (|bound| <= 2^24) */
} hw_rq_plan_t;

/* Expand rq's per-channel parameters into `plan`'s per-column tables (npad
 * entries: padded columns repeat channel 0), in one malloc'ed block that the
 * caller frees.  Returns the block, or NULL when out of memory. */
static inline int32_t *hw_rq_plan_tables(hw_rq_plan_t *plan, const hw_requant_spec_t *rq, int64_t npad)
{
    int32_t *mem = (int32_t *)malloc((size_t)npad * 4 * sizeof(int32_t));
    if (!mem) return NULL;
    float *scale = (float *)(void *)mem;   /* one block: scale | mult | shift_l | shift_r */
    int32_t *mult = mem + npad, *shl = mem + 2 * npad, *shr = mem + 3 * npad;
    const int64_t nch = rq->n_channels;
    for (int64_t n = 0; n < npad; n++) {
        int64_t c = nch > 1 ? (n < nch ? n : 0) : 0;
        if (plan->kind == RQV_F32) {
            scale[n] = rq->scale_f32[c];
            mult[n] = shl[n] = shr[n] = 0;
        } else {
            int32_t sh = rq->shift[c];
            scale[n] = 0.0f;
            mult[n] = rq->multiplier[c];
            shl[n] = sh > 0 ? sh : 0;
            shr[n] = plan->kind == RQV_SINGLE ? 31 - sh : (sh < 0 ? -sh : 0);
        }
    }
    plan->scale = scale;
    plan->mult = mult;
    plan->shift_l = shl;
    plan->shift_r = shr;
    return mem;
}

/* Fixed-point requantisation of 8 accumulators in 64-bit lanes; columns n..n+7. */
HW_TGT_AVX512 static inline __m512i hw_rqv_fixed8(const hw_rq_plan_t *p, __m256i acc8, int64_t n)
{
    const __m512i one = _mm512_set1_epi64(1);
    __m512i m = _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(p->mult + n)));
    __m512i r;
    if (p->kind == RQV_SINGLE) {
        __m512i x = _mm512_cvtepi32_epi64(acc8);
        __m512i t = _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(p->shift_r + n)));
        __m512i prod = _mm512_mul_epi32(x, m);                 /* exact: |x*M| <= 2^62 */
        prod = _mm512_add_epi64(prod, _mm512_sllv_epi64(one, _mm512_sub_epi64(t, one)));
        r = _mm512_srav_epi64(prod, t);
    } else {
        /* VPSLLVD wraps to 32 bits exactly like wrap_32(x * 2^ls), ls in [0, 31]. */
        __m256i ls = _mm256_loadu_si256((const __m256i *)(p->shift_l + n));
        __m512i t = _mm512_cvtepi32_epi64(_mm256_sllv_epi32(acc8, ls));
        __m512i prod = _mm512_mul_epi32(t, m);
        /* SRDHM = floor((t*M + 2^30) / 2^31), except INT32_MIN * INT32_MIN -> INT32_MAX */
        __m512i u = _mm512_srai_epi64(_mm512_add_epi64(prod, _mm512_set1_epi64((int64_t)1 << 30)), 31);
        u = _mm512_min_epi64(u, _mm512_set1_epi64(INT32_MAX));
        __m512i rs = _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(p->shift_r + n)));
        __m512i pow2 = _mm512_sllv_epi64(one, rs);
        if (p->kind == RQV_DOUBLE) {
            /* RoundingDivideByPOT: ties away from zero, q + (rem > thr) */
            __m512i mask = _mm512_sub_epi64(pow2, one);
            __m512i rem = _mm512_and_si512(u, mask);
            __m512i thr = _mm512_add_epi64(_mm512_srli_epi64(mask, 1), _mm512_srli_epi64(u, 63));
            __m512i q = _mm512_srav_epi64(u, rs);
            __mmask8 up = _mm512_cmpgt_epi64_mask(rem, thr);
            r = _mm512_mask_add_epi64(q, up, q, one);
        } else {
            /* half up: floor((u + 2^(rs-1)) / 2^rs), exact in 64 bits */
            r = _mm512_srav_epi64(_mm512_add_epi64(u, _mm512_srli_epi64(pow2, 1)), rs);
        }
    }
    r = _mm512_add_epi64(r, _mm512_set1_epi64(p->zp));
    r = _mm512_max_epi64(r, _mm512_set1_epi64(p->out_min));
    return _mm512_min_epi64(r, _mm512_set1_epi64(p->out_max));
}

/* Requantise 16 accumulators (columns n..n+15) into int32 outputs already in
 * [out_min, out_max]. */
HW_TGT_AVX512 static inline __m512i hw_rqv16(const hw_rq_plan_t *p, __m512i acc, int64_t n)
{
    if (p->kind == RQV_F32) {
        const __m512 s = _mm512_loadu_ps(p->scale + n);
        __m512 f = _mm512_cvt_roundepi32_ps(acc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        f = _mm512_mul_round_ps(f, s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        f = _mm512_max_ps(f, _mm512_set1_ps(p->f_lo));
        f = _mm512_min_ps(f, _mm512_set1_ps(p->f_hi));
        __m512i q;
        switch (p->f32_rounding) {
        case HW_ROUND_FLOOR: q = _mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); break;
        case HW_ROUND_CEIL: q = _mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC); break;
        case HW_ROUND_TRUNC: q = _mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); break;
        default: q = _mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); break;
        }
        /* q is in [out_min - zp, out_max - zp], so + zp cannot overflow. */
        return _mm512_add_epi32(q, _mm512_set1_epi32(p->zp));
    }
    __m512i lo = hw_rqv_fixed8(p, _mm512_castsi512_si256(acc), n);
    __m512i hi = hw_rqv_fixed8(p, _mm512_extracti64x4_epi64(acc, 1), n + 8);
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(lo)), _mm512_cvtepi64_epi32(hi), 1);
}

#endif /* __x86_64__ */
#endif
