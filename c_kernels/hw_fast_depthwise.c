/* hw_fast_depthwise.c -- fast path for depthwise convolution (groups == in_c,
 * depth multiplier dm = out_c / in_c) on AVX-512BW + VNNI.
 *
 * Reproduces the portable hw_conv2d bit for bit.  NHWC keeps channels
 * contiguous, so the vectors run ACROSS output channels and every lane keeps
 * its own tap order (ky, then kx; one input channel per group), which is exact
 * even for saturating accumulators.  Per block of 16 (int32) channels:
 *   - EXACT: no narrowing in the k loop can change a value, proven per
 *     channel by |start| + max|a| * sum_t |w'_t| <= the accumulator's (and
 *     group's) maximum, or the accumulator wraps at <= 32 bits (the int32 sum
 *     wrapped to acc_bits equals the chain of wraps) and no acc events were
 *     asked for.  Order is then free: VPDPBUSD on 4-tap quads (kx .. kx+3) of
 *     the raw 8-bit x when dm = 1 and w' fits s8 (zero point and +128 folded
 *     into the starting value, exact mod 2^32), else VPDPWSSD on tap pairs.
 *   - CLAMP: acc_bits 8..31 saturate: per tap VPMADDWD (a, a') x (w', 0) = a*w',
 *     VPADDD, VPMINSD/VPMAXSD to the width -- one narrowing per step.
 * and for acc_bits 16 saturate (every product fits int16) the whole call runs
 * on int16 lanes, 32 channels a vector: VPMULLW + VPADDSW = sat16(acc + p).
 *
 * Operands a = x - zx (IN_MAC) or x (FOLDED); channel o reads input channel
 * o / dm; padding taps hold x = zx.  Each thread converts the padded input rows
 * it needs into a small ring of rows (int16 a; int32 pairs (a[x], a[x+dw]);
 * or u8 quads (x, x+dw, x+2dw, x+3dw)) so that a tap (pair, quad) is one
 * vector load and the rows stay in cache.  Pixels go 4 at a time so the
 * accumulator chains overlap.
 * Per output work (correction, counters, acc_out, requantisation) is in
 * hw_fast_narrow_common.h.
 */
#include "hw_dispatch.h"

#if !defined(__x86_64__)

int hw_conv2d_fast_depthwise(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                             const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                             int64_t *acc_out, hw_counters_t *counters)
{
    (void)args; (void)acc; (void)rq; (void)out_dtype; (void)out; (void)acc_out; (void)counters;
    return 0;
}

#else

#include <immintrin.h>
#include "hw_parallel.h"
#include "hw_fast_narrow_common.h"

#define DW_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

enum { DW_MODE_EXACT = 0, DW_MODE_CLAMP = 1 };

typedef struct {
    const hw_conv2d_args_t *a;
    int s16;                   /* 1: int16 lanes (sat16); 0: int32 lanes, per-vector mode */
    int quad;                  /* 1: every vector EXACT on 8-bit x: VPDPBUSD over tap quads */
    int64_t O, Opad, PH, PW, dm;
    int64_t ring;              /* rows in a thread's ring: (kernel_h - 1) * dilation_h + 1 */
    int16_t pad_a;             /* a of a padding tap */
    int32_t sub;               /* zx (IN_MAC) or 0 */
    const uint8_t *mode;       /* [Opad / 16] DW_MODE_* (int32 lanes) */
    const int16_t *w16;        /* s16: [taps][Opad] w' */
    const int32_t *wsingle;    /* int32: [taps][Opad] (w', 0) */
    const int32_t *wpair;      /* int32: [kernel_h][npairs][Opad] (w'[kx], w'[kx+1]) */
    int64_t npairs;            /* (kernel_w + 1) / 2 */
    const int32_t *start;      /* [Opad] */
    const int32_t *wquad;      /* quad: [kernel_h][nquads][Opad] s8 (w'[kx .. kx+3]) */
    int64_t nquads;            /* (kernel_w + 3) / 4 */
    const int32_t *start_q;    /* quad: start - c * sum_t w'_t (mod 2^32), c = the u8 offset of a */
    int32_t lo, hi;            /* clamp range */
    const nw_epilogue_t *epi;
    const nw_count_scratch_t *cs;
    int counting;
    void *thread_mem;          /* per thread: ring rows, row ids, a conversion area, acc/ev rows */
    int64_t conv_bytes;
    int64_t thread_bytes;
} dw_run_t;

/* The int16 operand row (padded coordinates) y of batch b into dst[PW][Opad]. */
DW_TARGET static void dw_convert_row(const dw_run_t *r, int64_t b, int64_t y, int16_t *dst)
{
    const hw_conv2d_args_t *a = r->a;
    int64_t iy = y - a->pad_top, Opad = r->Opad, O = r->O;
    if (iy < 0 || iy >= a->in_h) {
        for (int64_t x = 0; x < r->PW; x++) {
            for (int64_t o = 0; o < O; o++) dst[x * Opad + o] = r->pad_a;
            for (int64_t o = O; o < Opad; o++) dst[x * Opad + o] = 0;
        }
        return;
    }
    for (int64_t x = 0; x < r->PW; x++) {
        int16_t *d = dst + x * Opad;
        int64_t ix = x - a->pad_left;
        if (ix < 0 || ix >= a->in_w) {
            for (int64_t o = 0; o < O; o++) d[o] = r->pad_a;
        } else {
            int64_t base = ((b * a->in_h + iy) * a->in_w + ix) * a->in_c;
            int32_t sub = r->sub;
            if (r->dm == 1 && a->x_dtype == HW_DT_U8) {
                const uint8_t *s = (const uint8_t *)a->x + base;
                for (int64_t o = 0; o < O; o++) d[o] = (int16_t)((int32_t)s[o] - sub);
            } else if (r->dm == 1 && a->x_dtype == HW_DT_S8) {
                const int8_t *s = (const int8_t *)a->x + base;
                for (int64_t o = 0; o < O; o++) d[o] = (int16_t)((int32_t)s[o] - sub);
            } else {
                for (int64_t o = 0; o < O; o++) d[o] = (int16_t)(nw_load(a->x_dtype, a->x, base + o / r->dm) - sub);
            }
        }
        for (int64_t o = O; o < Opad; o++) d[o] = 0;
    }
}

/* Pairs (a[x], a[x + dw]) as int32 words, a[x + dw] = 0 past the row. */
DW_TARGET static void dw_pair_row(const dw_run_t *r, const int16_t *p, int32_t *q)
{
    int64_t dw = r->a->dilation_w, Opad = r->Opad;
    for (int64_t x = 0; x < r->PW; x++)
        for (int64_t o = 0; o < Opad; o += 16) {
            __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + x * Opad + o)));
            __m512i hi = x + dw < r->PW
                ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + (x + dw) * Opad + o)))
                : _mm512_setzero_si512();
            _mm512_storeu_si512((void *)(q + x * Opad + o), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
}

#define DW_INLINE static inline __attribute__((always_inline)) DW_TARGET

/* dm = 1 and 8-bit x: pairs (a[x], a[x + dw]) straight from the input row,
 * 16 channels at a time (the common case; dw_convert_row + dw_pair_row do
 * the rest). */
DW_TARGET static void dw_pairs_8bit(const dw_run_t *r, int64_t b, int64_t y, int32_t *q)
{
    const hw_conv2d_args_t *a = r->a;
    const int64_t Opad = r->Opad, O = r->O, PW = r->PW, dw = a->dilation_w, C = a->in_c;
    const int64_t iy = y - a->pad_top;
    const int row_in = iy >= 0 && iy < a->in_h;
    const int s8 = a->x_dtype == HW_DT_S8;
    const int8_t *src = (const int8_t *)a->x + (row_in ? ((b * a->in_h + iy) * a->in_w) * C : 0);
    const __m512i sub = _mm512_set1_epi32(r->sub), pad = _mm512_set1_epi32(r->pad_a);
    const __m512i low16 = _mm512_set1_epi32(0xffff);
    for (int64_t o = 0; o < Opad; o += 16) {
        int64_t left = O - o;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
        __m512i padv = _mm512_maskz_mov_epi32(m, pad);
        /* a[x] for this row and 16 channels, converted once: the pairs of
         * columns x - dw and x share it */
        int32_t *out = q + o;
        for (int64_t x = 0; x < PW; x++) {
            int64_t ix = x - a->pad_left;
            __m512i v;
            if (!row_in || ix < 0 || ix >= a->in_w) {
                v = padv;
            } else {
                __m128i raw = _mm_maskz_loadu_epi8(m, src + ix * C + o);
                v = _mm512_maskz_sub_epi32(m, s8 ? _mm512_cvtepi8_epi32(raw) : _mm512_cvtepu8_epi32(raw), sub);
            }
            /* low half of pair x, high half of pair x - dw */
            __m512i lo16 = _mm512_and_si512(v, low16);
            _mm512_storeu_si512((void *)(out + x * Opad), lo16);
            if (x >= dw) {
                int32_t *prev = out + (x - dw) * Opad;
                __m512i pv = _mm512_loadu_si512((const void *)prev);
                _mm512_storeu_si512((void *)prev, _mm512_or_si512(pv, _mm512_slli_epi32(v, 16)));
            }
        }
    }
}

/* quad rows: the raw 8-bit x as u8 (s8 + 128) of columns x, x + dw, x + 2dw,
 * x + 3dw in the four bytes of one int32 word per channel (0 past the row,
 * zx for padding, 0 in lanes past O), dm = 1.  A tap's a = x - zx (or x) is
 * recovered by the per-channel correction in start_q.  The row is first laid
 * out once as padded bytes (prow), then each word gathers its bytes straight
 * from there (VPMOVZXBD loads); with kernel_w = 3 (the common case) the
 * fourth byte only ever meets a zero weight, so it is left 0. */
DW_TARGET static void dw_quads_8bit(const dw_run_t *r, int64_t b, int64_t y, int32_t *q, int32_t *col)
{
    const hw_conv2d_args_t *a = r->a;
    const int64_t Opad = r->Opad, O = r->O, PW = r->PW, dw = a->dilation_w, C = a->in_c;
    const int64_t iy = y - a->pad_top;
    const int row_in = iy >= 0 && iy < a->in_h;
    const uint8_t flip = a->x_dtype == HW_DT_S8 ? 0x80 : 0;
    const uint8_t padb = (uint8_t)(a->x_zero_point ^ flip);
    uint8_t *prow = (uint8_t *)(void *)col + (PW + 3 * dw) * 64;
    if (!row_in) {
        memset(prow, padb, (size_t)(PW * C));
    } else {
        const uint8_t *src = (const uint8_t *)a->x + ((b * a->in_h + iy) * a->in_w) * C;
        const int64_t left = a->pad_left * C, mid = a->in_w * C;
        memset(prow, padb, (size_t)left);
        if (flip == 0)
            memcpy(prow + left, src, (size_t)mid);
        else
            for (int64_t i = 0; i < mid; i++) prow[left + i] = src[i] ^ flip;
        memset(prow + left + mid, padb, (size_t)(PW * C - left - mid));
    }
    memset(prow + PW * C, 0, (size_t)(3 * dw * C));
    const int64_t step = dw * C;
    const int four = a->kernel_w != 3;
    for (int64_t o = 0; o < Opad; o += 16) {
        int64_t left = O - o;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
        for (int64_t x = 0; x < PW; x++) {
            const uint8_t *p0 = prow + x * C + o;
            __m512i w = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p0));
            w = _mm512_or_si512(w, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p0 + step)), 8));
            w = _mm512_or_si512(w, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p0 + 2 * step)), 16));
            if (four)
                w = _mm512_or_si512(w, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p0 + 3 * step)),
                                                         24));
            _mm512_storeu_si512((void *)(q + x * Opad + o), w);
        }
    }
}

/* quad rows, PX neighbouring pixels: VPDPBUSD over 4 taps at a time (exact). */
DW_INLINE void dw_q_px(const dw_run_t *r, const int32_t *const *rows, int32_t *acc_row, int32_t *ev_row,
                       int64_t cv, int64_t ox, __m512i st, const int PX, const int KW3)
{
    const hw_conv2d_args_t *a = r->a;
    const int64_t kh = a->kernel_h, Opad = r->Opad, nq = KW3 ? 1 : r->nquads;
    const int64_t xstep = a->stride_w * Opad, tstep = 4 * a->dilation_w * Opad;
    __m512i acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < PX; i++) acc[i] = st;
    const int32_t *wt = r->wquad + cv;
    for (int64_t ky = 0; ky < kh; ky++) {
        const int32_t *px = rows[ky] + ox * xstep + cv;
        for (int64_t qd = 0; qd < nq; qd++, wt += Opad) {
            __m512i w = _mm512_loadu_si512((const void *)wt);
            const int32_t *pt = px + qd * tstep;
#pragma GCC unroll 4
            for (int i = 0; i < PX; i++)
                acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_loadu_si512((const void *)(pt + i * xstep)), w);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < PX; i++) {
        _mm512_storeu_si512((void *)(acc_row + (ox + i) * Opad + cv), acc[i]);
        if (ev_row != NULL) _mm512_storeu_si512((void *)(ev_row + (ox + i) * Opad + cv), _mm512_setzero_si512());
    }
}

DW_TARGET static void dw_row_q(const dw_run_t *r, const int32_t *const *rows, int32_t *acc_row, int32_t *ev_row)
{
    /* pixels outer, channel vectors inner: the 4 pixels' quads of every tap are
     * then read as whole contiguous channel runs while they are in L1 (the
     * kernel's quad rows together exceed L1 for wide layers) */
    const int64_t ow = r->a->out_w;
    const int kw3 = r->a->kernel_w <= 4;   /* one quad per kernel row */
    int64_t ox = 0;
    for (; ox + 4 <= ow; ox += 4)
        for (int64_t cv = 0; cv < r->Opad; cv += 16) {
            __m512i st = _mm512_loadu_si512((const void *)(r->start_q + cv));
            if (kw3) dw_q_px(r, rows, acc_row, ev_row, cv, ox, st, 4, 1);
            else dw_q_px(r, rows, acc_row, ev_row, cv, ox, st, 4, 0);
        }
    for (; ox < ow; ox++)
        for (int64_t cv = 0; cv < r->Opad; cv += 16) {
            __m512i st = _mm512_loadu_si512((const void *)(r->start_q + cv));
            if (kw3) dw_q_px(r, rows, acc_row, ev_row, cv, ox, st, 1, 1);
            else dw_q_px(r, rows, acc_row, ev_row, cv, ox, st, 1, 0);
        }
}

/* int16 lanes: PX neighbouring output pixels from ox, channels cv .. cv+31.
 * The PX accumulators are independent chains, so VPADDSW latency overlaps. */
DW_INLINE void dw_s16_px(const dw_run_t *r, const int16_t *const *rows, int32_t *acc_row, int32_t *ev_row,
                         int64_t cv, int64_t ox, __m512i st, const int PX, const int COUNT)
{
    const hw_conv2d_args_t *a = r->a;
    const int64_t kh = a->kernel_h, Opad = r->Opad;
    const int64_t kw = a->kernel_w == 3 ? 3 : a->kernel_w;   /* lets the common 3-wide loop unroll */
    const int64_t xstep = a->stride_w * Opad, tstep = a->dilation_w * Opad;
    const __m512i minus1 = _mm512_set1_epi16(-1);
    __m512i acc[4], cnt[4];
#pragma GCC unroll 4
    for (int i = 0; i < PX; i++) {
        acc[i] = st;
        cnt[i] = _mm512_setzero_si512();
    }
    const int16_t *wt = r->w16 + cv;
    for (int64_t ky = 0; ky < kh; ky++) {
        const int16_t *px = rows[ky] + ox * xstep + cv;
        for (int64_t kx = 0; kx < kw; kx++, wt += Opad) {
            __m512i w = _mm512_loadu_si512((const void *)wt);
            const int16_t *pt = px + kx * tstep;
#pragma GCC unroll 4
            for (int i = 0; i < PX; i++) {
                __m512i prod = _mm512_mullo_epi16(_mm512_loadu_si512((const void *)(pt + i * xstep)), w);
                __m512i sat = _mm512_adds_epi16(acc[i], prod);
                if (COUNT) {
                    __mmask32 diff = _mm512_cmpneq_epi16_mask(sat, _mm512_add_epi16(acc[i], prod));
                    cnt[i] = _mm512_mask_sub_epi16(cnt[i], diff, cnt[i], minus1);
                }
                acc[i] = sat;
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < PX; i++) {
        int32_t *dst = acc_row + (ox + i) * Opad + cv;
        _mm512_storeu_si512((void *)dst, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc[i])));
        _mm512_storeu_si512((void *)(dst + 16), _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc[i], 1)));
        if (COUNT) {
            int32_t *e = ev_row + (ox + i) * Opad + cv;
            _mm512_storeu_si512((void *)e, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(cnt[i])));
            _mm512_storeu_si512((void *)(e + 16), _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(cnt[i], 1)));
        }
    }
}

/* int16 lanes: one output row; acc / ev rows are int32 [out_w][Opad]. */
DW_TARGET static void dw_row_s16(const dw_run_t *r, const int16_t *const *rows, int32_t *acc_row, int32_t *ev_row)
{
    const int64_t ow = r->a->out_w;
    for (int64_t cv = 0; cv < r->Opad; cv += 32) {
        __m512i st = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm512_cvtepi32_epi16(_mm512_loadu_si512((const void *)(r->start + cv)))),
            _mm512_cvtepi32_epi16(_mm512_loadu_si512((const void *)(r->start + cv + 16))), 1);
        int64_t ox = 0;
        if (ev_row == NULL) {
            for (; ox + 4 <= ow; ox += 4) dw_s16_px(r, rows, acc_row, NULL, cv, ox, st, 4, 0);
            for (; ox < ow; ox++) dw_s16_px(r, rows, acc_row, NULL, cv, ox, st, 1, 0);
        } else {
            for (; ox + 4 <= ow; ox += 4) dw_s16_px(r, rows, acc_row, ev_row, cv, ox, st, 4, 1);
            for (; ox < ow; ox++) dw_s16_px(r, rows, acc_row, ev_row, cv, ox, st, 1, 1);
        }
    }
}

/* int32 lanes, PX neighbouring pixels: EXACT = VPDPWSSD over tap pairs,
 * else clamp after every tap (COUNT: count the clamps that changed a sum). */
DW_INLINE void dw_s32_px(const dw_run_t *r, const int32_t *const *rows, int32_t *acc_row, int32_t *ev_row,
                         int64_t cv, int64_t ox, __m512i st, const int PX, const int EXACT, const int COUNT,
                         const int KW3)
{
    const hw_conv2d_args_t *a = r->a;
    const int64_t kh = a->kernel_h, Opad = r->Opad;
    const int64_t kw = KW3 ? 3 : a->kernel_w;
    const int64_t xstep = a->stride_w * Opad, tstep = a->dilation_w * Opad;
    const __m512i lo = _mm512_set1_epi32(r->lo), hi = _mm512_set1_epi32(r->hi);
    const __m512i minus1 = _mm512_set1_epi32(-1);
    __m512i acc[4], cnt[4];
#pragma GCC unroll 4
    for (int i = 0; i < PX; i++) {
        acc[i] = st;
        cnt[i] = _mm512_setzero_si512();
    }
    if (EXACT) {
        const int32_t *wt = r->wpair + cv;
        for (int64_t ky = 0; ky < kh; ky++) {
            const int32_t *px = rows[ky] + ox * xstep + cv;
            for (int64_t kx = 0; kx < kw; kx += 2, wt += Opad) {
                __m512i w = _mm512_loadu_si512((const void *)wt);
                const int32_t *pt = px + kx * tstep;
#pragma GCC unroll 4
                for (int i = 0; i < PX; i++)
                    acc[i] = _mm512_dpwssd_epi32(acc[i], _mm512_loadu_si512((const void *)(pt + i * xstep)), w);
            }
        }
    } else {
        const int32_t *wt = r->wsingle + cv;
        for (int64_t ky = 0; ky < kh; ky++) {
            const int32_t *px = rows[ky] + ox * xstep + cv;
            for (int64_t kx = 0; kx < kw; kx++, wt += Opad) {
                __m512i w = _mm512_loadu_si512((const void *)wt);
                const int32_t *pt = px + kx * tstep;
#pragma GCC unroll 4
                for (int i = 0; i < PX; i++) {
                    /* (a[x], a[x + dw]) x (w', 0) = a[x] * w' */
                    __m512i sum = _mm512_add_epi32(acc[i], _mm512_madd_epi16(
                        _mm512_loadu_si512((const void *)(pt + i * xstep)), w));
                    __m512i cl = _mm512_max_epi32(_mm512_min_epi32(sum, hi), lo);
                    if (COUNT) {
                        __mmask16 diff = _mm512_cmpneq_epi32_mask(sum, cl);
                        cnt[i] = _mm512_mask_sub_epi32(cnt[i], diff, cnt[i], minus1);
                    }
                    acc[i] = cl;
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < PX; i++) {
        _mm512_storeu_si512((void *)(acc_row + (ox + i) * Opad + cv), acc[i]);
        if (ev_row != NULL) _mm512_storeu_si512((void *)(ev_row + (ox + i) * Opad + cv), cnt[i]);
    }
}

/* int32 lanes: one output row from pair rows. */
DW_TARGET static void dw_row_s32(const dw_run_t *r, const int32_t *const *rows, int32_t *acc_row, int32_t *ev_row)
{
    const int64_t ow = r->a->out_w;
    for (int64_t cv = 0; cv < r->Opad; cv += 16) {
        __m512i st = _mm512_loadu_si512((const void *)(r->start + cv));
        int64_t ox = 0;
        if (r->mode[cv / 16] == DW_MODE_EXACT) {
            if (r->a->kernel_w == 3) {
                for (; ox + 4 <= ow; ox += 4) dw_s32_px(r, rows, acc_row, ev_row, cv, ox, st, 4, 1, 0, 1);
            } else {
                for (; ox + 4 <= ow; ox += 4) dw_s32_px(r, rows, acc_row, ev_row, cv, ox, st, 4, 1, 0, 0);
            }
            for (; ox < ow; ox++) dw_s32_px(r, rows, acc_row, ev_row, cv, ox, st, 1, 1, 0, 0);
        } else if (ev_row == NULL) {
            if (r->a->kernel_w == 3) {
                for (; ox + 4 <= ow; ox += 4) dw_s32_px(r, rows, acc_row, NULL, cv, ox, st, 4, 0, 0, 1);
            } else {
                for (; ox + 4 <= ow; ox += 4) dw_s32_px(r, rows, acc_row, NULL, cv, ox, st, 4, 0, 0, 0);
            }
            for (; ox < ow; ox++) dw_s32_px(r, rows, acc_row, NULL, cv, ox, st, 1, 0, 0, 0);
        } else {
            for (; ox + 4 <= ow; ox += 4) dw_s32_px(r, rows, acc_row, ev_row, cv, ox, st, 4, 0, 1, 0);
            for (; ox < ow; ox++) dw_s32_px(r, rows, acc_row, ev_row, cv, ox, st, 1, 0, 1, 0);
        }
    }
}

DW_TARGET static void dw_task(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const dw_run_t *r = (const dw_run_t *)ctx;
    const hw_conv2d_args_t *a = r->a;
    nw_counts_t cnt_storage, *cnt = NULL;
    if (r->cs != NULL) {
        cnt_storage = nw_count_scratch_get(r->cs, thread_index);
        cnt = &cnt_storage;
    }
    /* thread memory: ring [ring][PW * Opad] (int16 or int32), row ids [ring],
     * conversion row int16 [PW * Opad], acc and ev rows int32 [out_w * Opad] */
    char *mem = (char *)r->thread_mem + (int64_t)thread_index * r->thread_bytes;
    int64_t rowlen = r->PW * r->Opad, esz = r->s16 ? 2 : 4;
    char *ring = mem;
    int64_t *ids = (int64_t *)(void *)(ring + r->ring * rowlen * esz);
    int16_t *conv = (int16_t *)(void *)(ids + r->ring);
    int32_t *acc_row = (int32_t *)(void *)((char *)conv + r->conv_bytes);
    int32_t *ev_row = r->counting ? acc_row + a->out_w * r->Opad : NULL;
    for (int64_t i = 0; i < r->ring; i++) ids[i] = -1;
    const void *rows[64];
    for (int64_t task = begin; task < end; task++) {
        int64_t b = task / a->out_h, oy = task - b * a->out_h;
        for (int64_t ky = 0; ky < a->kernel_h; ky++) {
            int64_t y = oy * a->stride_h + ky * a->dilation_h;
            int64_t slot = y % r->ring, id = b * r->PH + y;
            char *dst = ring + slot * rowlen * esz;
            if (ids[slot] != id) {
                if (r->s16) {
                    dw_convert_row(r, b, y, (int16_t *)(void *)dst);
                } else if (r->quad) {
                    dw_quads_8bit(r, b, y, (int32_t *)(void *)dst, (int32_t *)(void *)conv);
                } else if (r->dm == 1 && (a->x_dtype == HW_DT_U8 || a->x_dtype == HW_DT_S8)) {
                    dw_pairs_8bit(r, b, y, (int32_t *)(void *)dst);
                } else {
                    dw_convert_row(r, b, y, conv);
                    dw_pair_row(r, conv, (int32_t *)(void *)dst);
                }
                ids[slot] = id;
            }
            rows[ky] = dst;
        }
        if (r->s16) dw_row_s16(r, (const int16_t *const *)rows, acc_row, ev_row);
        else if (r->quad) dw_row_q(r, (const int32_t *const *)rows, acc_row, ev_row);
        else dw_row_s32(r, (const int32_t *const *)rows, acc_row, ev_row);
        for (int64_t ox = 0; ox < a->out_w; ox++)
            nw_epilogue_row(r->epi, task * a->out_w + ox, 0, r->O, acc_row + ox * r->Opad,
                            ev_row != NULL ? ev_row + ox * r->Opad : NULL, cnt);
    }
}

/* Range of the activation values (raw x). */
DW_TARGET static nw_range_t dw_x_range(const hw_conv2d_args_t *a)
{
    int64_t n = a->batch * a->in_h * a->in_w * a->in_c;
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    if (a->x_dtype == HW_DT_U8) {
        const uint8_t *s = (const uint8_t *)a->x;
        uint8_t l = 255, h = 0;
        for (int64_t i = 0; i < n; i++) {
            l = s[i] < l ? s[i] : l;
            h = s[i] > h ? s[i] : h;
        }
        lo = l;
        hi = h;
    } else if (a->x_dtype == HW_DT_S8) {
        const int8_t *s = (const int8_t *)a->x;
        int8_t l = 127, h = -128;
        for (int64_t i = 0; i < n; i++) {
            l = s[i] < l ? s[i] : l;
            h = s[i] > h ? s[i] : h;
        }
        lo = l;
        hi = h;
    } else {
        const int16_t *s = (const int16_t *)a->x;
        int16_t l = 32767, h = -32768;
        for (int64_t i = 0; i < n; i++) {
            l = s[i] < l ? s[i] : l;
            h = s[i] > h ? s[i] : h;
        }
        lo = l;
        hi = h;
    }
    nw_range_t r = nw_range_empty();
    if (n > 0) {
        nw_range_add(&r, lo);
        nw_range_add(&r, hi);
    }
    return r;
}

static int dw_features_ok(void)
{
    uint32_t need = HW_ISA_AVX512BW | HW_ISA_AVX512_VNNI;
    return (hw_active_features() & need) == need;
}

int hw_conv2d_fast_depthwise(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                             const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                             int64_t *acc_out, hw_counters_t *counters)
{
    const hw_conv2d_args_t *a = args;
    if (!dw_features_ok()) return 0;
    if (a->groups != a->in_c || a->in_c < 1 || a->out_c % a->in_c != 0) return 0;
    if (!nw_operand_dtype_ok(a->x_dtype) || !nw_operand_dtype_ok(a->w_dtype)) return 0;
    if (!nw_out_dtype_ok(rq, out_dtype, out)) return 0;
    if (a->batch < 1 || a->out_h < 1 || a->out_w < 1 || a->kernel_h < 1 || a->kernel_w < 1) return 0;
    if (a->kernel_h > 64 || a->kernel_h * a->kernel_w > 4096) return 0;
    if (a->pad_top < 0 || a->pad_left < 0 || a->pad_bottom < 0 || a->pad_right < 0) return 0;
    int64_t PH = a->in_h + a->pad_top + a->pad_bottom, PW = a->in_w + a->pad_left + a->pad_right;
    if ((a->out_h - 1) * a->stride_h + (a->kernel_h - 1) * a->dilation_h >= PH) return 0;
    if ((a->out_w - 1) * a->stride_w + (a->kernel_w - 1) * a->dilation_w >= PW) return 0;
    const int64_t O = a->out_c, taps = a->kernel_h * a->kernel_w, npairs = (a->kernel_w + 1) / 2;
    const int in_mac = acc->input_zero_point == HW_ZP_IN_MAC;
    const int32_t sub = in_mac ? a->x_zero_point : 0;

    /* operand ranges: every a and w' must fit int16.  8-bit x always does
     * (|x - zx| <= 255), so its range is the dtype's and the input is not
     * scanned; int16 x is scanned. */
    nw_range_t xr = nw_range_empty(), ar = nw_range_empty();
    if (a->x_dtype == HW_DT_U8) {
        nw_range_add(&xr, 0);
        nw_range_add(&xr, 255);
    } else if (a->x_dtype == HW_DT_S8) {
        nw_range_add(&xr, -128);
        nw_range_add(&xr, 127);
    } else {
        xr = dw_x_range(a);
    }
    if (xr.lo <= xr.hi) {
        nw_range_add(&ar, xr.lo - sub);
        nw_range_add(&ar, xr.hi - sub);
    }
    if (a->pad_top || a->pad_left || a->pad_bottom || a->pad_right) nw_range_add(&ar, a->x_zero_point - sub);
    if (!nw_range_fits(ar, 16)) return 0;
    int64_t amax = nw_range_absmax(ar);

    int64_t Opad_max = (O + 31) / 32 * 32;
    int32_t *wd = (int32_t *)malloc((size_t)(O * taps) * sizeof(int32_t));
    int64_t *wsum = (int64_t *)malloc((size_t)O * sizeof(int64_t));
    int64_t *wl1 = (int64_t *)malloc((size_t)O * sizeof(int64_t));
    if (wd == NULL || wsum == NULL || wl1 == NULL) {
        free(wd);
        free(wsum);
        free(wl1);
        return 0;
    }
    nw_range_t wr = nw_range_empty();
    for (int64_t o = 0; o < O; o++) {
        int32_t z = nw_zw(a->w_zero_point, a->w_zp_per_channel, o);
        int64_t s = 0, l1 = 0;
        for (int64_t t = 0; t < taps; t++) {
            int32_t v = nw_load(a->w_dtype, a->w, o * taps + t) - z;
            wd[o * taps + t] = v;
            nw_range_add(&wr, v);
            s += v;
            l1 += v < 0 ? -(int64_t)v : v;
        }
        wsum[o] = s;
        wl1[o] = l1;
    }
    nw_terms_t terms;
    int ok = nw_range_fits(wr, 16) && nw_terms_init(&terms, acc, a->x_zero_point, wsum, a->bias, O);
    if (!ok) {
        free(wd);
        free(wl1);
        free(wsum);
        return 0;
    }

    /* choose the arithmetic */
    nw_range_t prod = nw_range_mul(ar, wr);
    int sat = acc->acc_overflow == HW_OVERFLOW_SATURATE;
    int want_events = counters != NULL && counters->acc_events != NULL;
    int64_t acc_lim = hw_max_s(acc->acc_bits) < INT32_MAX ? hw_max_s(acc->acc_bits) : INT32_MAX;
    int64_t grp_lim = acc->group_bits >= 64 ? INT64_MAX : hw_max_s(acc->group_bits);
    int group_id1 = acc->group == 1 && nw_range_fits(prod, acc->group_bits < 64 ? acc->group_bits : 64);
    int s16 = sat && acc->acc_bits == 16 && group_id1 && nw_range_fits(prod, 16) && taps < 32767;
    int clamp_ok = sat && acc->acc_bits <= 31 && group_id1 &&
                   ((int64_t)1 << (acc->acc_bits - 1)) + nw_range_absmax(prod) <= INT32_MAX;
    /* channels padded to whole vectors: 32 int16 lanes or 16 int32 lanes */
    int64_t Opad = s16 ? Opad_max : (O + 15) / 16 * 16;
    uint8_t *mode = (uint8_t *)calloc((size_t)(Opad_max / 16), 1);
    int32_t *start = (int32_t *)calloc((size_t)Opad_max, sizeof(int32_t));
    ok = mode != NULL && start != NULL;
    int wrap_bits = 0;
    for (int64_t cv = 0; ok && !s16 && cv < Opad; cv += 16) {
        int exact = 1, wrap_exact = !sat && acc->acc_bits <= 32 && !want_events;
        for (int64_t o = cv; o < cv + 16 && o < O; o++) {
            int64_t bound = amax * wl1[o];   /* |any prefix or group sum| of the k loop */
            int64_t st = nw_start_value(&terms, o);
            int64_t ast = hw_acc_abs(st);
            if (bound > grp_lim) wrap_exact = exact = 0;
            if (ast > acc_lim || bound > acc_lim - ast) exact = 0;
        }
        if (exact) {
            mode[cv / 16] = DW_MODE_EXACT;
        } else if (wrap_exact) {
            mode[cv / 16] = DW_MODE_EXACT;
            wrap_bits = acc->acc_bits < 32 ? acc->acc_bits : 0;
        } else if (clamp_ok) {
            mode[cv / 16] = DW_MODE_CLAMP;
        } else {
            ok = 0;
        }
    }
    /* a vector proven exact by the bound needs no wrap; wrapping its in-range
     * values is the identity, so one wrap_bits serves every vector */
    for (int64_t o = 0; ok && o < O; o++) start[o] = (int32_t)nw_start_value(&terms, o);
    free(wl1);
    /* every vector exact, 8-bit x, dm = 1, w' in s8: four taps per VPDPBUSD on
     * the raw x as u8 (x + 128 for s8); sum_t (x_t - zx) w'_t = sum_t xu_t w'_t
     * - c * sum_t w'_t with c = zx (IN_MAC) + 128 (s8), exact mod 2^32 */
    int quad = ok && !s16 && O == a->in_c && (a->x_dtype == HW_DT_U8 || a->x_dtype == HW_DT_S8) &&
               wr.lo >= -128 && wr.hi <= 127;
    for (int64_t cv = 0; quad && cv < Opad; cv += 16) quad = mode[cv / 16] == DW_MODE_EXACT;
    const int64_t nquads = (a->kernel_w + 3) / 4;
    const int32_t quad_c = (in_mac ? a->x_zero_point : 0) + (a->x_dtype == HW_DT_S8 ? 128 : 0);
    int32_t *start_q = quad ? (int32_t *)calloc((size_t)Opad, sizeof(int32_t)) : NULL;
    if (quad && start_q == NULL) ok = 0;
    for (int64_t o = 0; ok && quad && o < O; o++)
        start_q[o] = (int32_t)((uint32_t)start[o] - (uint32_t)quad_c * (uint32_t)wsum[o]);
    free(wsum);

    int chunks = hw_parallel_chunks(a->batch * a->out_h, a->n_threads);
    int64_t ring = (a->kernel_h - 1) * a->dilation_h + 1;
    int64_t rowlen = PW * Opad, esz = s16 ? 2 : 4;
    /* conversion area: an int16 row, or the quad builder's padded byte row */
    /* (a multiple of 64 bytes: the int32 acc rows that follow stay aligned) */
    int64_t conv_bytes = (rowlen * 2 + (PW + 3 * a->dilation_w) * (64 + a->in_c) + 64 + 63) / 64 * 64;
    int64_t thread_bytes = ring * rowlen * esz + ring * (int64_t)sizeof(int64_t) + conv_bytes +
                           2 * a->out_w * Opad * 4;
    thread_bytes = (thread_bytes + 63) / 64 * 64;
    void *thread_mem = NULL, *wbuf = NULL;
    int16_t *w16 = NULL;
    int32_t *wsingle = NULL, *wpair = NULL, *wquad = NULL;
    if (ok) {
        thread_mem = malloc((size_t)(chunks * thread_bytes));
        size_t wbytes = s16 ? (size_t)(taps * Opad) * 2
                            : (size_t)((taps + a->kernel_h * (npairs + nquads)) * Opad) * 4;
        wbuf = calloc(wbytes, 1);
        ok = thread_mem != NULL && wbuf != NULL;
    }
    if (ok) {
        if (s16) {
            w16 = (int16_t *)wbuf;
            for (int64_t t = 0; t < taps; t++)
                for (int64_t o = 0; o < O; o++) w16[t * Opad + o] = (int16_t)wd[o * taps + t];
        } else {
            wsingle = (int32_t *)wbuf;
            wpair = wsingle + taps * Opad;
            for (int64_t t = 0; t < taps; t++)
                for (int64_t o = 0; o < O; o++) wsingle[t * Opad + o] = (int32_t)(uint16_t)(int16_t)wd[o * taps + t];
            for (int64_t ky = 0; ky < a->kernel_h; ky++)
                for (int64_t kx = 0; kx < a->kernel_w; kx += 2)
                    for (int64_t o = 0; o < O; o++) {
                        uint32_t w0 = (uint16_t)(int16_t)wd[o * taps + ky * a->kernel_w + kx];
                        uint32_t w1 = kx + 1 < a->kernel_w ? (uint16_t)(int16_t)wd[o * taps + ky * a->kernel_w + kx + 1] : 0;
                        wpair[(ky * npairs + kx / 2) * Opad + o] = (int32_t)(w0 | (w1 << 16));
                    }
            wquad = wpair + a->kernel_h * npairs * Opad;
            uint32_t *wq_bytes = (uint32_t *)(void *)wquad;   /* 4 s8 weights per word */
            for (int64_t ky = 0; quad && ky < a->kernel_h; ky++)
                for (int64_t kx = 0; kx < a->kernel_w; kx++)
                    for (int64_t o = 0; o < O; o++) {
                        uint32_t byte = (uint8_t)(int8_t)wd[o * taps + ky * a->kernel_w + kx];
                        wq_bytes[(ky * nquads + kx / 4) * Opad + o] |= byte << (8 * (kx % 4));
                    }
        }
    }
    nw_sink_t sink = {&terms, rq, out_dtype, out, acc_out, O};
    nw_epilogue_t epi;
    int epi_ok = ok && nw_epilogue_init(&epi, &sink, Opad, wrap_bits);
    ok = ok && epi_ok;
    nw_count_scratch_t cs;
    int want_counts = counters != NULL;
    if (ok && want_counts && !nw_count_scratch_init(&cs, chunks, O)) ok = 0;
    if (ok) {
        int32_t lo = (int32_t)hw_min_s(acc->acc_bits < 32 ? acc->acc_bits : 32);
        int32_t hi = (int32_t)hw_max_s(acc->acc_bits < 32 ? acc->acc_bits : 32);
        dw_run_t run = {a, s16, quad, O, Opad, PH, PW, O / a->in_c, ring,
                        (int16_t)(a->x_zero_point - sub), sub, mode, w16, wsingle, wpair, npairs, start,
                        wquad, nquads, start_q,
                        lo, hi, &epi, want_counts ? &cs : NULL, want_events, thread_mem, conv_bytes,
                        thread_bytes};
        hw_parallel_for(a->batch * a->out_h, chunks, dw_task, &run);
        if (want_counts) {
            nw_count_scratch_reduce(&cs, counters, terms.corr_events, a->batch * a->out_h * a->out_w);
            nw_count_scratch_free(&cs);
        }
    }
    if (epi_ok) nw_epilogue_free(&epi);
    free(thread_mem);
    free(wbuf);
    free(mode);
    free(start);
    free(start_q);
    free(wd);
    nw_terms_free(&terms);
    return ok;
}

#endif
