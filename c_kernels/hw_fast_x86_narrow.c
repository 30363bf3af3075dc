/* hw_fast_x86_narrow.c -- fast paths for narrow saturating accumulators
 * (GEMM and non-grouped conv2d) on AVX-512BW.
 *
 * Reproduces the portable kernels (hw_gemm.c, hw_conv2d.c) bit for bit for
 * specs with group 1 (the group stage must be the identity for every product
 * that can occur) and a saturating accumulator:
 *   - acc_bits 16:        int16 lanes, VPMULLW (exact: every product fits int16)
 *                         then VPADDSW, which is sat16(acc + p) -- one k step.
 *   - acc_bits 8..31:     int32 lanes, VPMADDWD of (a, a) x (w, 0) = a*w exactly,
 *                         VPADDD, then VPMINSD/VPMAXSD clamp to the width.
 *   - guarded (acc_bits 17..31, 8-bit activations, w' in s8, K (conv: in_c) a
 *     multiple of 4): per block of NW_GUARD_K = 128 k steps and register tile,
 *     if max_lane |acc| + sum_k |a_k| * max_n |w'_kn| <= 2^(bits-1) - 1 for
 *     every row then no prefix of the block can saturate, the block sum is
 *     exact and runs on VPDPBUSD (x as u8, the zero point / +128 corrected per
 *     block, exact mod 2^32); otherwise the block is replayed step by step from
 *     the same u8 rows and weight quads, with the clamp after every step.
 *   The guard's bound: GEMM rows exactly per k; convolutions per tap piece of a
 *   block, sum_c |a_c| (once per input pixel) times the piece's largest max_n
 *   |w'| -- looser, never changing a bit (an unproven block is replayed).
 * Packed weights: hw_pack_gemm_b / hw_pack_conv2d_w with a narrow saturating
 * spec store w' = w - zw (zero points given at pack time), its range and row
 * sums, and the panels that spec takes (int16 steps; int32 steps; or the
 * guarded quads, per-block sums of w' and per-k maxima) in the handle's narrow
 * part (hw_packed.h); a call with the same shape and zero points borrows them
 * and computes only its own terms (bias, zero-point corrections, bounds).
 * Saturation makes the summation order part of the result, so the vectors run
 * ACROSS output channels (32 or 16 lanes) and k stays sequential per lane:
 * k = 0, 1, ..., K-1 for GEMM; (ky, kx, ci) with ci fastest for conv, padding
 * taps reading x = zx from a padded copy of the input.
 * Everything per output (bias, folded zero point term, counters, acc_out,
 * requantisation) is scalar, in hw_fast_narrow_common.h.
 *
 * Entry points return 1 when they computed the whole call, 0 to decline
 * (then the portable kernel runs).  On non-x86 builds they always decline.
 */
#include "hw_dispatch.h"

#include "hw_packed.h"

#if !defined(__x86_64__)

void *hw_narrow_pack(hw_dtype_t dt, const void *w, int64_t n, int64_t k, int64_t ld, const int32_t *zp,
                     int32_t per_channel, const hw_accum_spec_t *acc, int *nomem)
{
    (void)dt; (void)w; (void)n; (void)k; (void)ld; (void)zp; (void)per_channel; (void)acc;
    *nomem = 0;
    return NULL;
}

void hw_narrow_pack_free(void *p) { (void)p; }

int hw_gemm_fast_narrow(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                        const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                        int64_t *acc_out, hw_counters_t *counters)
{
    (void)args; (void)acc; (void)rq; (void)out_dtype; (void)out; (void)acc_out; (void)counters;
    return 0;
}

int hw_conv2d_fast_narrow(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
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

/* ---- the problem in GEMM form ------------------------------------------------
 * Row m is one output pixel (conv) or one row of A (GEMM); its k sequence is
 * nseg segments of seglen consecutive elements of abuf starting at
 * row_offset(m) + seg_off[s].  GEMM: one segment of K.  Conv: one segment per
 * tap (ky, kx), seglen = in_c, over the padded input. */
typedef struct {
    int64_t M, N, K;
    int64_t out_h, out_w, PH, PW, C, sh, sw;
    int64_t nseg, seglen;
    const int64_t *seg_off;
    const int32_t *abuf;          /* step kernels: (a, a) int16 pairs, a = x - zx (IN_MAC) or x (FOLDED) */
    const uint8_t *abuf_u8;       /* guarded path instead: xu = x (+128 for s8), same indexing */
    int32_t guard_c;              /* guarded path: a = xu - guard_c */
} nw_problem_t;

static inline int64_t nw_row_offset(const nw_problem_t *p, int64_t m)
{
    int64_t plane = p->out_h * p->out_w;
    int64_t b = m / plane, r = m - b * plane;
    int64_t oy = r / p->out_w, ox = r - oy * p->out_w;
    return ((b * p->PH + oy * p->sh) * p->PW + ox * p->sw) * p->C;
}

/* Kernel kinds. */
enum { NW_KIND_S16 = 0, NW_KIND_S32 = 1 };

/* Weights rearranged for the k loop: panel p covers channels
 * [p * panel_lanes, ...) and stores, for each k, nr_p * VL lanes contiguously
 * (zero-filled past N).  S16: int16 w'.  S32: int32 words holding (w', 0) as
 * int16 pairs, so VPMADDWD with (a, a) gives a * w'. */
typedef struct {
    int kind;
    int vl;                 /* lanes per vector: 32 (S16) or 16 (S32) */
    int nr_max;             /* vectors per full panel */
    int64_t panel_lanes;    /* vl * nr_max */
    int64_t n_panels;
    void *w;                /* [n_panels][K][panel_lanes] elements (16 or 32 bit) */
    int64_t *start;         /* [n_panels * panel_lanes] starting accumulators (0 past N) */
    int32_t *start32;       /* the same as int32 (they lie in the accumulator's range, <= 31 bits) */
    int16_t *start16;       /* and as int16 (S16 kind) */
    /* guarded path (S32 kind only), NULL when off */
    int8_t *wq;             /* [n_panels][K4/4][panel_lanes][4] s8 w' quads */
    int32_t *bsum;          /* [n_panels][n_blocks][panel_lanes]: sum_{k in block} w' */
    int32_t *qcorr;         /* the same times this call's c (mod 2^32) */
    int32_t *wmax;          /* [K]: max over n of |w'[n, k]| */
    int64_t K4;
    int own_weights;        /* 0: w, wq, bsum, wmax are borrowed from a packed handle */
} nw_packed_t;

static inline int nw_panel_nr(const nw_packed_t *pk, int64_t N, int64_t p)
{
    int64_t left = N - p * pk->panel_lanes;
    int64_t nv = (left + pk->vl - 1) / pk->vl;
    return (int)(nv < pk->nr_max ? nv : pk->nr_max);
}

/* Rows per register tile for a panel of nr vectors. */
static inline int nw_tile_rows(int nr, int counting)
{
    static const int plain[5] = {0, 8, 8, 5, 4};
    static const int count[5] = {0, 8, 4, 2, 2};
    return counting ? count[nr] : plain[nr];
}

#define NW_ROW_BLOCK 48   /* rows per parallel task */
#define NW_PANEL_GROUP 4  /* panels per parallel task (so few rows still give every thread work) */
#define NW_GUARD_K 128    /* k steps per guarded block (a multiple of 4) */

/* ---- kernel bodies (inlined with constant MR, NR) ------------------------- */

#define NW_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define NW_INLINE static inline __attribute__((always_inline)) NW_TARGET

typedef struct {
    const nw_problem_t *p;
    const int32_t *rows[8];   /* row_offset(m) applied */
    const uint8_t *rows_u8[8];
    const void *w;            /* this panel */
    int64_t wstride;          /* elements per k in this panel (nr * vl) */
    int64_t lo, hi;           /* accumulator range */
} nw_tile_args_t;

/* acc[r][c] (int16 lanes) through steps k0 .. k1-1; ev (counting) gets the
 * number of steps per lane whose saturating add differed from the wrapping one
 * (k1 - k0 <= 32767 so the int16 counts cannot overflow). */
NW_INLINE void nw_s16_body(const nw_tile_args_t *t, int64_t k0, int64_t k1, int16_t *tile, int64_t tstride,
                           int16_t *ev, const int MR, const int NR, const int COUNT)
{
    __m512i acc[8][4], cnt[8][4];
    const __m512i minus1 = _mm512_set1_epi16(-1);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            acc[r][c] = _mm512_loadu_si512((const void *)(tile + r * tstride + 32 * c));
            cnt[r][c] = _mm512_setzero_si512();
        }
    const nw_problem_t *p = t->p;
    const int16_t *w = (const int16_t *)t->w;
    int64_t k = k0;
    while (k < k1) {
        int64_t s = k / p->seglen, kk = k - s * p->seglen;
        int64_t n = p->seglen - kk;
        if (n > k1 - k) n = k1 - k;
        const int32_t *a[8];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) a[r] = t->rows[r] + p->seg_off[s] + kk;
        const int16_t *wk = w + k * t->wstride;
        for (int64_t j = 0; j < n; j++, wk += t->wstride) {
            __m512i b[4];
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++) b[c] = _mm512_loadu_si512((const void *)(wk + 32 * c));
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                __m512i av = _mm512_set1_epi32(a[r][j]);
#pragma GCC unroll 4
                for (int c = 0; c < NR; c++) {
                    __m512i prod = _mm512_mullo_epi16(av, b[c]);
                    __m512i sat = _mm512_adds_epi16(acc[r][c], prod);
                    if (COUNT) {
                        __m512i wrap = _mm512_add_epi16(acc[r][c], prod);
                        __mmask32 diff = _mm512_cmpneq_epi16_mask(sat, wrap);
                        cnt[r][c] = _mm512_mask_sub_epi16(cnt[r][c], diff, cnt[r][c], minus1);
                    }
                    acc[r][c] = sat;
                }
            }
        }
        k += n;
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            _mm512_storeu_si512((void *)(tile + r * tstride + 32 * c), acc[r][c]);
            if (COUNT) _mm512_storeu_si512((void *)(ev + r * tstride + 32 * c), cnt[r][c]);
        }
}

/* acc[r][c] (int32 lanes) through steps k0 .. k1-1, clamped to [lo, hi] after
 * every step; ev (counting) += steps whose clamp changed the sum. */
NW_INLINE void nw_s32_body(const nw_tile_args_t *t, int64_t k0, int64_t k1, int32_t *tile, int64_t tstride,
                           int32_t *ev, const int MR, const int NR, const int COUNT)
{
    __m512i acc[8][4], cnt[8][4];
    const __m512i lo = _mm512_set1_epi32((int32_t)t->lo), hi = _mm512_set1_epi32((int32_t)t->hi);
    const __m512i minus1 = _mm512_set1_epi32(-1);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            acc[r][c] = _mm512_loadu_si512((const void *)(tile + r * tstride + 16 * c));
            cnt[r][c] = COUNT ? _mm512_loadu_si512((const void *)(ev + r * tstride + 16 * c))
                              : _mm512_setzero_si512();
        }
    const nw_problem_t *p = t->p;
    const int32_t *w = (const int32_t *)t->w;
    int64_t k = k0;
    while (k < k1) {
        int64_t s = k / p->seglen, kk = k - s * p->seglen;
        int64_t n = p->seglen - kk;
        if (n > k1 - k) n = k1 - k;
        const int32_t *a[8];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) a[r] = t->rows[r] + p->seg_off[s] + kk;
        const int32_t *wk = w + k * t->wstride;
        for (int64_t j = 0; j < n; j++, wk += t->wstride) {
            __m512i b[4];
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++) b[c] = _mm512_loadu_si512((const void *)(wk + 16 * c));
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                __m512i av = _mm512_set1_epi32(a[r][j]);
#pragma GCC unroll 4
                for (int c = 0; c < NR; c++) {
                    __m512i sum = _mm512_add_epi32(acc[r][c], _mm512_madd_epi16(av, b[c]));
                    __m512i cl = _mm512_max_epi32(_mm512_min_epi32(sum, hi), lo);
                    if (COUNT) {
                        __mmask16 diff = _mm512_cmpneq_epi32_mask(sum, cl);
                        cnt[r][c] = _mm512_mask_sub_epi32(cnt[r][c], diff, cnt[r][c], minus1);
                    }
                    acc[r][c] = cl;
                }
            }
        }
        k += n;
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            _mm512_storeu_si512((void *)(tile + r * tstride + 16 * c), acc[r][c]);
            if (COUNT) _mm512_storeu_si512((void *)(ev + r * tstride + 16 * c), cnt[r][c]);
        }
}

/* Guarded path, a block that must be replayed: the step kernel of
 * nw_s32_body on the guarded data -- a = xu - c from the u8 rows, w' the
 * sign-extended byte j of each VPDPBUSD weight quad.  (a, 0) x (w', sign)
 * through VPMADDWD is a * w' exactly.  k0, k1 and seglen are multiples of 4. */
NW_INLINE void nw_q32_body(const nw_tile_args_t *t, int64_t k0, int64_t k1, const int8_t *wq, int32_t *tile,
                           int64_t tstride, int32_t *ev, const int MR, const int NR, const int COUNT)
{
    __m512i acc[8][4], cnt[8][4];
    const __m512i lo = _mm512_set1_epi32((int32_t)t->lo), hi = _mm512_set1_epi32((int32_t)t->hi);
    const __m512i minus1 = _mm512_set1_epi32(-1);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            acc[r][c] = _mm512_loadu_si512((const void *)(tile + r * tstride + 16 * c));
            cnt[r][c] = COUNT ? _mm512_loadu_si512((const void *)(ev + r * tstride + 16 * c))
                              : _mm512_setzero_si512();
        }
    const nw_problem_t *p = t->p;
    const int64_t qstride = (int64_t)NR * 64;
    const int32_t gc = p->guard_c;
    int64_t k = k0;
    while (k < k1) {
        int64_t s = k / p->seglen, kk = k - s * p->seglen;
        int64_t n = p->seglen - kk;
        if (n > k1 - k) n = k1 - k;
        const uint8_t *a[8];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) a[r] = t->rows_u8[r] + p->seg_off[s] + kk;
        const int8_t *wk = wq + (k / 4) * qstride;
        for (int64_t j = 0; j < n; j += 4, wk += qstride) {
            __m512i b[4];
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++) b[c] = _mm512_loadu_si512((const void *)(wk + 64 * c));
#pragma GCC unroll 4
            for (int jj = 0; jj < 4; jj++) {
                __m512i w[4];
#pragma GCC unroll 4
                for (int c = 0; c < NR; c++)
                    w[c] = _mm512_srai_epi32(_mm512_slli_epi32(b[c], (unsigned)(24 - 8 * jj)), 24);
#pragma GCC unroll 8
                for (int r = 0; r < MR; r++) {
                    __m512i av = _mm512_set1_epi32((int32_t)(uint16_t)(int16_t)((int32_t)a[r][j + jj] - gc));
#pragma GCC unroll 4
                    for (int c = 0; c < NR; c++) {
                        __m512i sum = _mm512_add_epi32(acc[r][c], _mm512_madd_epi16(av, w[c]));
                        __m512i cl = _mm512_max_epi32(_mm512_min_epi32(sum, hi), lo);
                        if (COUNT) {
                            __mmask16 diff = _mm512_cmpneq_epi32_mask(sum, cl);
                            cnt[r][c] = _mm512_mask_sub_epi32(cnt[r][c], diff, cnt[r][c], minus1);
                        }
                        acc[r][c] = cl;
                    }
                }
            }
        }
        k += n;
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            _mm512_storeu_si512((void *)(tile + r * tstride + 16 * c), acc[r][c]);
            if (COUNT) _mm512_storeu_si512((void *)(ev + r * tstride + 16 * c), cnt[r][c]);
        }
}

/* The whole guarded k loop of one tile with the accumulators in registers:
 * per block, the guard from the registers (max |acc| per row) and the rows'
 * precomputed bounds asum; a safe block runs on VPDPBUSD, an unsafe one is
 * stored, replayed by nw_q32 (step by step, counting into ev when COUNT),
 * and reloaded. */
typedef void (*nw_replay_fn)(const nw_tile_args_t *t, int mr, int nr, int64_t k0, int64_t k1, const int8_t *wq,
                             int32_t *tile, int64_t ts, int32_t *ev);

NW_INLINE void nw_guarded_body(const nw_tile_args_t *t, const int8_t *wq, const int32_t *qcorr, int64_t corr_stride,
                               const int64_t *const *asum_rows, int64_t n_blocks, nw_replay_fn replay,
                               int32_t *tile, int64_t tstride, int32_t *ev, const int MR, const int NR)
{
    __m512i acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) acc[r][c] = _mm512_loadu_si512((const void *)(tile + r * tstride + 16 * c));
    const nw_problem_t *p = t->p;
    const int64_t qstride = (int64_t)NR * 64;
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        const int64_t k0 = blk * NW_GUARD_K, k1 = k0 + NW_GUARD_K < p->K ? k0 + NW_GUARD_K : p->K;
        /* max_lane |acc| + asum <= hi  <=>  every lane's |acc| <= hi - asum (as
         * unsigned: |INT32_MIN| = 2^31 exceeds any limit): lane compares, no
         * horizontal reduction per row */
        __mmask16 over[8];
        int safe = 1;
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const int64_t room = t->hi - asum_rows[r][blk];
            safe &= room >= 0;
            __m512i m = _mm512_abs_epi32(acc[r][0]);
#pragma GCC unroll 4
            for (int c = 1; c < NR; c++) m = _mm512_max_epu32(m, _mm512_abs_epi32(acc[r][c]));
            over[r] = _mm512_cmpgt_epu32_mask(m, _mm512_set1_epi32((int32_t)(room >= 0 ? room : 0)));
        }
#pragma GCC unroll 8
        for (int r = 1; r < MR; r++) over[0] |= over[r];
        safe &= over[0] == 0;
        if (!safe) {
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
                for (int c = 0; c < NR; c++) _mm512_storeu_si512((void *)(tile + r * tstride + 16 * c), acc[r][c]);
            replay(t, MR, NR, k0, k1, wq, tile, tstride, ev);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
                for (int c = 0; c < NR; c++) acc[r][c] = _mm512_loadu_si512((const void *)(tile + r * tstride + 16 * c));
            continue;
        }
        const int32_t *corr = qcorr + blk * corr_stride;
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++)
                acc[r][c] = _mm512_sub_epi32(acc[r][c], _mm512_loadu_si512((const void *)(corr + 16 * c)));
        int64_t k = k0;
        int64_t s = k0 / p->seglen, kk = k0 - s * p->seglen;   /* one division per block */
        while (k < k1) {
            int64_t n = p->seglen - kk;
            if (n > k1 - k) n = k1 - k;
            const uint8_t *a[8];
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) a[r] = t->rows_u8[r] + p->seg_off[s] + kk;
            const int8_t *wk = wq + (k / 4) * qstride;
            for (int64_t j = 0; j < n; j += 4, wk += qstride) {
                __m512i b[4];
#pragma GCC unroll 4
                for (int c = 0; c < NR; c++) b[c] = _mm512_loadu_si512((const void *)(wk + 64 * c));
#pragma GCC unroll 8
                for (int r = 0; r < MR; r++) {
                    int32_t quad;
                    memcpy(&quad, a[r] + j, 4);
                    __m512i av = _mm512_set1_epi32(quad);
#pragma GCC unroll 4
                    for (int c = 0; c < NR; c++) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], av, b[c]);
                }
            }
            k += n;
            s++;        /* the next segment, from its start (or the block is done) */
            kk = 0;
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) _mm512_storeu_si512((void *)(tile + r * tstride + 16 * c), acc[r][c]);
}

/* Instantiations for every (MR, NR) a tile can have. */
#define NW_CASES(X)                                                                                     \
    X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(8, 1)                                     \
    X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2) X(8, 2)                                     \
    X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(1, 4) X(2, 4) X(3, 4) X(4, 4) X(5, 4) X(6, 4)

#define NW_S16_PLAIN(MR, NR) case MR * 8 + NR: nw_s16_body(t, k0, k1, tile, ts, ev, MR, NR, 0); return;
#define NW_S16_COUNT(MR, NR) case MR * 8 + NR: nw_s16_body(t, k0, k1, tile, ts, ev, MR, NR, 1); return;
#define NW_S32_PLAIN(MR, NR) case MR * 8 + NR: nw_s32_body(t, k0, k1, tile, ts, ev, MR, NR, 0); return;
#define NW_S32_COUNT(MR, NR) case MR * 8 + NR: nw_s32_body(t, k0, k1, tile, ts, ev, MR, NR, 1); return;
#define NW_Q32_PLAIN(MR, NR) case MR * 8 + NR: nw_q32_body(t, k0, k1, wq, tile, ts, ev, MR, NR, 0); return;
#define NW_Q32_COUNT(MR, NR) case MR * 8 + NR: nw_q32_body(t, k0, k1, wq, tile, ts, ev, MR, NR, 1); return;
#define NW_GUARDED(MR, NR) case MR * 8 + NR: \
    nw_guarded_body(t, wq, qcorr, corr_stride, asum_rows, n_blocks, replay, tile, ts, ev, MR, NR); return;

NW_TARGET static void nw_s16_run(const nw_tile_args_t *t, int mr, int nr, int64_t k0, int64_t k1, int16_t *tile,
                                 int64_t ts, int16_t *ev)
{
    if (ev == NULL) {
        switch (mr * 8 + nr) { NW_CASES(NW_S16_PLAIN) default: return; }
    }
    switch (mr * 8 + nr) { NW_CASES(NW_S16_COUNT) default: return; }
}

NW_TARGET static void nw_s32_run(const nw_tile_args_t *t, int mr, int nr, int64_t k0, int64_t k1, int32_t *tile,
                                 int64_t ts, int32_t *ev)
{
    if (ev == NULL) {
        switch (mr * 8 + nr) { NW_CASES(NW_S32_PLAIN) default: return; }
    }
    switch (mr * 8 + nr) { NW_CASES(NW_S32_COUNT) default: return; }
}

NW_TARGET static void nw_q32_run(const nw_tile_args_t *t, int mr, int nr, int64_t k0, int64_t k1,
                                 const int8_t *wq, int32_t *tile, int64_t ts, int32_t *ev)
{
    if (ev == NULL) {
        switch (mr * 8 + nr) { NW_CASES(NW_Q32_PLAIN) default: return; }
    }
    switch (mr * 8 + nr) { NW_CASES(NW_Q32_COUNT) default: return; }
}

NW_TARGET static void nw_guarded_run(const nw_tile_args_t *t, int mr, int nr, const int8_t *wq, const int32_t *qcorr,
                                     int64_t corr_stride, const int64_t *const *asum_rows, int64_t n_blocks,
                                     nw_replay_fn replay, int32_t *tile, int64_t ts, int32_t *ev)
{
    switch (mr * 8 + nr) { NW_CASES(NW_GUARDED) default: return; }
}


/* ---- driver -------------------------------------------------------------------- */

typedef struct {
    const nw_problem_t *p;
    const nw_packed_t *pk;
    const nw_epilogue_t *epi;
    const hw_accum_spec_t *spec;
    int64_t lo, hi;
    int counting;                 /* acc events requested */
    const nw_count_scratch_t *cs; /* NULL: no counters */
    const int64_t *asum;          /* guarded: [M][n_blocks] sum_k |a_mk| * wmax_k, else NULL */
    int64_t n_blocks;
    int64_t n_rb;                 /* row blocks of NW_ROW_BLOCK rows */
    void *scratch;                /* per thread: tile + ev, 2 * 8 * 64 words of 32 bits */
} nw_run_t;


/* One register tile: rows m0 .. m0+mr-1 of panel pnl, whole k loop, then the epilogue. */
NW_TARGET static void nw_tile(const nw_run_t *run, int64_t pnl, int64_t m0, int mr, nw_counts_t *cnt,
                              void *scratch)
{
    const nw_problem_t *p = run->p;
    const nw_packed_t *pk = run->pk;
    int nr = nw_panel_nr(pk, p->N, pnl);
    int64_t ts = (int64_t)nr * pk->vl;   /* tile row stride in lanes */
    nw_tile_args_t t;
    t.p = p;
    t.wstride = ts;
    t.lo = run->lo;
    t.hi = run->hi;
    for (int r = 0; r < mr; r++) {
        int64_t off = nw_row_offset(p, m0 + r);
        t.rows[r] = p->abuf != NULL ? p->abuf + off : NULL;
        t.rows_u8[r] = p->abuf_u8 != NULL ? p->abuf_u8 + off : NULL;
    }
    int64_t n0 = pnl * pk->panel_lanes;
    int64_t nlanes = p->N - n0 < ts ? p->N - n0 : ts;
    int counting = cnt != NULL && run->counting;

    if (pk->kind == NW_KIND_S16) {
        int16_t *tile = (int16_t *)scratch, *ev = tile + 8 * 128;
        t.w = (const int16_t *)pk->w + pnl * p->K * pk->panel_lanes;
        for (int r = 0; r < mr; r++) memcpy(tile + r * ts, pk->start16 + pnl * pk->panel_lanes, (size_t)ts * 2);
        if (!counting) {
            nw_s16_run(&t, mr, nr, 0, p->K, tile, ts, NULL);
        } else {
            for (int64_t k0 = 0; k0 < p->K; k0 += 32767) {
                int64_t k1 = p->K - k0 < 32767 ? p->K : k0 + 32767;
                nw_s16_run(&t, mr, nr, k0, k1, tile, ts, ev);
                for (int r = 0; r < mr; r++)
                    for (int64_t c = 0; c < nlanes; c++) cnt->acc_events[n0 + c] += (uint16_t)ev[r * ts + c];
            }
        }
        int32_t *row32 = (int32_t *)scratch + 8 * 128;   /* past the int16 tile and counts */
        for (int r = 0; r < mr; r++) {
            for (int64_t c = 0; c < ts; c += 32) {
                __m512i v = _mm512_loadu_si512((const void *)(tile + r * ts + c));
                _mm512_storeu_si512((void *)(row32 + c), _mm512_cvtepi16_epi32(_mm512_castsi512_si256(v)));
                _mm512_storeu_si512((void *)(row32 + c + 16), _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(v, 1)));
            }
            nw_epilogue_row(run->epi, m0 + r, n0, nlanes, row32, NULL, cnt);
        }
        return;
    }

    int32_t *tile = (int32_t *)scratch, *ev = tile + 8 * 64;
    t.w = pk->w != NULL ? (const int32_t *)pk->w + pnl * p->K * pk->panel_lanes : NULL;
    for (int r = 0; r < mr; r++) {
        memcpy(tile + r * ts, pk->start32 + pnl * pk->panel_lanes, (size_t)ts * 4);
        if (counting) memset(ev + r * ts, 0, (size_t)ts * 4);
    }
    int32_t *evp = counting ? ev : NULL;
    if (pk->wq == NULL) {
        nw_s32_run(&t, mr, nr, 0, p->K, tile, ts, evp);
    } else {
        /* guarded blocks */
        const int8_t *wq = pk->wq + pnl * (pk->K4 / 4) * pk->panel_lanes * 4;
        const int64_t *asum_rows[8];
        for (int r = 0; r < mr; r++) asum_rows[r] = run->asum + (m0 + r) * run->n_blocks;
        nw_guarded_run(&t, mr, nr, wq, pk->qcorr + pnl * run->n_blocks * pk->panel_lanes, pk->panel_lanes,
                       asum_rows, run->n_blocks, nw_q32_run, tile, ts, evp);
    }
    for (int r = 0; r < mr; r++)
        nw_epilogue_row(run->epi, m0 + r, n0, nlanes, tile + r * ts, counting ? ev + r * ts : NULL, cnt);
}

NW_TARGET static void nw_task(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const nw_run_t *run = (const nw_run_t *)ctx;
    const nw_problem_t *p = run->p;
    nw_counts_t cnt_storage, *cnt = NULL;
    if (run->cs != NULL) {
        cnt_storage = nw_count_scratch_get(run->cs, thread_index);
        cnt = &cnt_storage;
    }
    _Alignas(64) int32_t scratch[3 * 8 * 128];
    /* tasks are (panel group, row block), panel group major: a run of tasks
     * with one panel group is that group's panels over a range of rows */
    for (int64_t t = begin; t < end;) {
        const int64_t pg = t / run->n_rb, rb0 = t - pg * run->n_rb;
        const int64_t rb1 = end - pg * run->n_rb < run->n_rb ? end - pg * run->n_rb : run->n_rb;
        const int64_t p0 = pg * NW_PANEL_GROUP;
        const int64_t p1 = p0 + NW_PANEL_GROUP < run->pk->n_panels ? p0 + NW_PANEL_GROUP : run->pk->n_panels;
        const int64_t m_beg = rb0 * NW_ROW_BLOCK, m_end = rb1 * NW_ROW_BLOCK < p->M ? rb1 * NW_ROW_BLOCK : p->M;
        for (int64_t pnl = p0; pnl < p1; pnl++) {
            int nr = nw_panel_nr(run->pk, p->N, pnl);
            int mrmax = nw_tile_rows(nr, cnt != NULL && run->counting);
            /* guarded blocks mostly run VPDPBUSD: 6 x 4 accumulators load each
             * weight vector for 6 rows (the replays spill a little) */
            if (run->pk->wq != NULL && nr == 4 && !(cnt != NULL && run->counting)) mrmax = 6;
            for (int64_t m0 = m_beg; m0 < m_end; m0 += mrmax) {
                int mr = (int)(m_end - m0 < mrmax ? m_end - m0 : mrmax);
                nw_tile(run, pnl, m0, mr, cnt, scratch);
            }
        }
        t = pg * run->n_rb + rb1;
    }
}

/* ---- preparation ------------------------------------------------------------------ */

/* Frees what this call allocated; parts borrowed from a packed handle stay. */
static void nw_packed_free(nw_packed_t *pk)
{
    if (pk->own_weights) {
        free(pk->w);
        free(pk->wq);
        free(pk->bsum);
        free(pk->wmax);
    }
    free(pk->start);
    free(pk->start32);
    free(pk->start16);
    free(pk->qcorr);
    memset(pk, 0, sizeof *pk);
}

/* Zeroed, 64-byte aligned (free with free()): every zmm load of a panel then
 * stays inside one cache line -- with malloc's 16-byte alignment each one
 * straddles two, which costs the guarded GEMM about a fifth of its speed. */
static void *nw_zalloc64(size_t bytes)
{
    size_t padded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, padded ? padded : 64);
    if (p != NULL) memset(p, 0, padded);
    return p;
}

/* Panel geometry of a kernel kind for N channels. */
static void nw_pack_layout(nw_packed_t *pk, int kind, int64_t N)
{
    memset(pk, 0, sizeof *pk);
    pk->kind = kind;
    pk->vl = kind == NW_KIND_S16 ? 32 : 16;
    pk->nr_max = 4;
    pk->panel_lanes = (int64_t)pk->vl * pk->nr_max;
    pk->n_panels = (N + pk->panel_lanes - 1) / pk->panel_lanes;
    pk->own_weights = 1;
}

/* Step-kernel panels from w'[n][k] = w - zw[n] as int32 (row-major [N][K]).
 * Returns 0 on allocation failure. */
NW_TARGET static int nw_pack_steps(nw_packed_t *pk, const int32_t *wd, int64_t N, int64_t K)
{
    size_t esz = pk->kind == NW_KIND_S16 ? 2 : 4;
    pk->w = nw_zalloc64((size_t)(pk->n_panels * K * pk->panel_lanes) * esz);
    if (pk->w == NULL) return 0;
    for (int64_t pnl = 0; pnl < pk->n_panels; pnl++) {
        int nr = nw_panel_nr(pk, N, pnl);
        int64_t ts = (int64_t)nr * pk->vl, n0 = pnl * pk->panel_lanes;
        int64_t nl = N - n0 < ts ? N - n0 : ts;
        for (int64_t c = 0; c < nl; c++) {
            const int32_t *src = wd + (n0 + c) * K;
            if (pk->kind == NW_KIND_S16) {
                int16_t *dst = (int16_t *)pk->w + pnl * K * pk->panel_lanes + c;
                for (int64_t k = 0; k < K; k++) dst[k * ts] = (int16_t)src[k];
            } else {
                int32_t *dst = (int32_t *)pk->w + pnl * K * pk->panel_lanes + c;
                for (int64_t k = 0; k < K; k++) dst[k * ts] = (int32_t)(uint16_t)(int16_t)src[k];
            }
        }
    }
    return 1;
}

/* Starting accumulators of this call (bias, folded zero point). */
static int nw_pack_starts(nw_packed_t *pk, int64_t N, const nw_terms_t *terms)
{
    int64_t ns = pk->n_panels * pk->panel_lanes;
    pk->start = (int64_t *)calloc((size_t)ns, sizeof(int64_t));
    pk->start32 = (int32_t *)malloc((size_t)ns * sizeof(int32_t));
    pk->start16 = (int16_t *)malloc((size_t)ns * sizeof(int16_t));
    if (pk->start == NULL || pk->start32 == NULL || pk->start16 == NULL) return 0;
    for (int64_t n = 0; n < N; n++) {
        int64_t p = n / pk->panel_lanes, c = n - p * pk->panel_lanes;
        pk->start[p * pk->panel_lanes + c] = nw_start_value(terms, n);
    }
    for (int64_t i = 0; i < ns; i++) {
        pk->start32[i] = (int32_t)pk->start[i];
        pk->start16[i] = (int16_t)pk->start[i];
    }
    return 1;
}

/* Guarded-path weight data (S32 layout, K % 4 == 0, w' in s8): the s8 weight
 * quads, the per-block sums of w' and, per k, max over n of |w'|. */
NW_TARGET static int nw_pack_guard_weights(nw_packed_t *pk, const int32_t *wd, int64_t N, int64_t K)
{
    int64_t nb = (K + NW_GUARD_K - 1) / NW_GUARD_K;
    pk->K4 = (K + 3) / 4 * 4;
    pk->wq = (int8_t *)nw_zalloc64((size_t)(pk->n_panels * pk->K4 * pk->panel_lanes));
    pk->bsum = (int32_t *)calloc((size_t)(pk->n_panels * nb * pk->panel_lanes), sizeof(int32_t));
    pk->wmax = (int32_t *)calloc((size_t)K, sizeof(int32_t));
    if (pk->wq == NULL || pk->bsum == NULL || pk->wmax == NULL) return 0;
    for (int64_t pnl = 0; pnl < pk->n_panels; pnl++) {
        int nr = nw_panel_nr(pk, N, pnl);
        int64_t ts = (int64_t)nr * pk->vl, n0 = pnl * pk->panel_lanes;
        int64_t nl = N - n0 < ts ? N - n0 : ts;
        uint32_t *base = (uint32_t *)(void *)(pk->wq + pnl * pk->K4 * pk->panel_lanes);
        for (int64_t c = 0; c < nl; c++) {
            const int32_t *src = wd + (n0 + c) * K;
            /* one word = the s8 weights of k = 4q .. 4q+3 (K % 4 == 0 here) */
            for (int64_t q = 0; q < K / 4; q++)
                base[q * ts + c] = (uint32_t)(uint8_t)src[4 * q] | (uint32_t)(uint8_t)src[4 * q + 1] << 8 |
                                   (uint32_t)(uint8_t)src[4 * q + 2] << 16 | (uint32_t)(uint8_t)src[4 * q + 3] << 24;
            for (int64_t b = 0; b < nb; b++) {
                int64_t k1 = (b + 1) * NW_GUARD_K < K ? (b + 1) * NW_GUARD_K : K;
                int32_t sum = 0;   /* |sum| <= 128 * 128 */
                for (int64_t k = b * NW_GUARD_K; k < k1; k++) sum += src[k];
                pk->bsum[(pnl * nb + b) * pk->panel_lanes + c] = sum;
            }
        }
    }
    for (int64_t n = 0; n < N; n++) {
        const int32_t *src = wd + n * K;
        for (int64_t k = 0; k < K; k++) {
            int32_t a = src[k] < 0 ? -src[k] : src[k];
            pk->wmax[k] = a > pk->wmax[k] ? a : pk->wmax[k];
        }
    }
    return 1;
}

/* This call's block corrections c * sum_{k in block} w' (exact mod 2^32: they
 * are applied in int32 lanes). */
static int nw_guard_corr(nw_packed_t *pk, int64_t K, int32_t corr_c)
{
    int64_t n = pk->n_panels * ((K + NW_GUARD_K - 1) / NW_GUARD_K) * pk->panel_lanes;
    pk->qcorr = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    if (pk->qcorr == NULL) return 0;
    for (int64_t i = 0; i < n; i++) pk->qcorr[i] = (int32_t)((uint32_t)corr_c * (uint32_t)pk->bsum[i]);
    return 1;
}

/* ---- packed weights (the narrow part of a hw_packed_t handle) ---------------- */

#define NW_WEIGHTS_MAGIC 0x31544757524e5748ull /* "HWNRWGT1" */

typedef struct {
    uint64_t magic;
    hw_dtype_t dt;
    int64_t N, K;
    int32_t *zw;              /* [N] zero points folded into w' */
    nw_range_t wrange;        /* range of w' */
    int64_t *wsum;            /* [N] sum_k w' */
    nw_packed_t steps;        /* step-kernel panels (steps.w), or steps.w == NULL */
    nw_packed_t guard;        /* guarded-path data (guard.wq), or guard.wq == NULL */
} nw_weights_t;

static void nw_weights_free(nw_weights_t *h)
{
    free(h->zw);
    free(h->wsum);
    nw_packed_free(&h->steps);
    nw_packed_free(&h->guard);
    h->magic = 0;
    free(h);
}

/* The handle's narrow part if it was packed for these weights and zero points. */
static const nw_weights_t *nw_weights_for(const void *handle, hw_dtype_t dt, int64_t N, int64_t K, const int32_t *zp,
                                          int32_t per_ch)
{
    const hw_packed_t *c = hw_packed_handle(handle);
    const nw_weights_t *h = c ? (const nw_weights_t *)c->narrow : NULL;
    if (h == NULL || h->magic != NW_WEIGHTS_MAGIC || h->dt != dt || h->N != N || h->K != K) return NULL;
    for (int64_t n = 0; n < N; n++)
        if (h->zw[n] != nw_zw(zp, per_ch, n)) return NULL;
    return h;
}

/* Guard bounds asum[m][blk] >= sum_{k in blk} |a_mk| * wmax_k, row by row:
 * exact per k.  |a| <= 255 and w' fits s8, so a block's bound (<= 128 * 255 *
 * 128) fits int32 and the inner loop vectorises. */
NW_TARGET static void nw_row_bounds(const nw_problem_t *p, const int32_t *wmax, int64_t n_blocks, int64_t *asum,
                                    int64_t m_begin, int64_t m_end)
{
    const int32_t gc = p->guard_c;
    for (int64_t m = m_begin; m < m_end; m++) {
        const uint8_t *row = p->abuf_u8 + nw_row_offset(p, m);
        for (int64_t s = 0; s < p->nseg; s++) {
            const uint8_t *seg = row + p->seg_off[s];
            const int32_t *wm = wmax + s * p->seglen;
            int64_t kk = 0;
            while (kk < p->seglen) {
                /* the part of this segment inside one guard block */
                int64_t blk = (s * p->seglen + kk) / NW_GUARD_K;
                int64_t stop = (blk + 1) * NW_GUARD_K - s * p->seglen;
                if (stop > p->seglen) stop = p->seglen;
                int32_t bound = 0;
                for (int64_t j = kk; j < stop; j++) {
                    int32_t v = (int32_t)seg[j] - gc;
                    bound += (v < 0 ? -v : v) * wm[j];
                }
                asum[m * n_blocks + blk] += bound;
                kk = stop;
            }
        }
    }
}

/* The same bound for a convolution, where every input pixel feeds up to
 * kernel_h * kernel_w output rows: a tap's piece of a block (channels
 * [c0, c1) of one tap, inside one block) is bounded by
 *   sum_{c0 <= c < c1} |a_c| * wmax_(tap, c) <= S(pixel, c0, c1) * max_c wmax_(tap, c)
 * with S = sum |a_c| computed once per padded pixel and channel range.  A looser
 * bound than the per-k one (a block it cannot clear is replayed exactly), so
 * the bits are the same; the cost drops from M * K to one pass over the input
 * plus M * (pieces) products.  Returns 0 when out of memory. */
/* The parallel parts of the bounds: phase 0 the pixel sums (conv), phase 1
 * the rows (conv from the pixel sums; GEMM, pc == NULL, from the rows). Each
 * task writes only its own pixels / rows. */
typedef struct {
    const nw_problem_t *p;
    const int32_t *wmax;
    int64_t n_blocks;
    int64_t *asum;
    const int64_t *pc;
    const int32_t *wpiece;
    int64_t n_pieces;
    const int64_t *rng;
    int64_t n_rng;
    int32_t *sums;
    int phase;
} nw_bounds_ctx_t;

NW_TARGET static void nw_bounds_task(void *vctx, int64_t begin, int64_t end, int thread_index)
{
    const nw_bounds_ctx_t *c = (const nw_bounds_ctx_t *)vctx;
    const nw_problem_t *p = c->p;
    (void)thread_index;
    if (c->pc == NULL) {
        nw_row_bounds(p, c->wmax, c->n_blocks, c->asum, begin, end);
        return;
    }
    const int64_t C = p->seglen, n_rng = c->n_rng;
    if (c->phase == 0) {
        const int32_t gc = p->guard_c;
        for (int64_t px = begin; px < end; px++) {
            const uint8_t *x = p->abuf_u8 + px * C;
            for (int64_t r = 0; r < n_rng; r++) {
                int32_t t = 0;
                for (int64_t ch = c->rng[2 * r]; ch < c->rng[2 * r + 1]; ch++) {
                    int32_t v = (int32_t)x[ch] - gc;
                    t += v < 0 ? -v : v;
                }
                c->sums[px * n_rng + r] = t;
            }
        }
        return;
    }
    for (int64_t m = begin; m < end; m++) {
        const int32_t *sm = c->sums + (nw_row_offset(p, m) / C) * n_rng;
        int64_t *am = c->asum + m * c->n_blocks;
        for (int64_t i = 0; i < c->n_pieces; i++) am[c->pc[5 * i + 3]] += (int64_t)sm[c->pc[5 * i + 1]] * c->wpiece[i];
    }
}

NW_TARGET static int nw_conv_bounds(const nw_problem_t *p, const int32_t *wmax, int64_t n_blocks, int64_t *asum,
                                    int n_threads)
{
    const int64_t C = p->seglen;
    /* pieces (tap s, channels [c0, c1), block): the same for every row */
    int64_t max_pieces = p->nseg * (C / NW_GUARD_K + 2);
    int64_t *pc = (int64_t *)malloc((size_t)max_pieces * 5 * sizeof(int64_t));   /* s, c0, c1, blk, range */
    int64_t *rng = (int64_t *)malloc((size_t)max_pieces * 2 * sizeof(int64_t));  /* distinct [c0, c1) */
    int32_t *wpiece = (int32_t *)malloc((size_t)max_pieces * sizeof(int32_t));
    int64_t n_pieces = 0, n_rng = 0;
    if (pc == NULL || rng == NULL || wpiece == NULL) {
        free(pc);
        free(rng);
        free(wpiece);
        return 0;
    }
    for (int64_t s = 0; s < p->nseg; s++) {
        for (int64_t c0 = 0; c0 < C;) {
            int64_t blk = (s * C + c0) / NW_GUARD_K;
            int64_t c1 = (blk + 1) * NW_GUARD_K - s * C;
            if (c1 > C) c1 = C;
            int64_t r = 0;
            while (r < n_rng && !(rng[2 * r] == c0 && rng[2 * r + 1] == c1)) r++;
            if (r == n_rng) {
                rng[2 * r] = c0;
                rng[2 * r + 1] = c1;
                n_rng++;
            }
            int32_t wm = 0;
            for (int64_t c = c0; c < c1; c++) wm = wmax[s * C + c] > wm ? wmax[s * C + c] : wm;
            int64_t *q = pc + 5 * n_pieces;
            q[0] = s;
            q[1] = c0;
            q[2] = c1;
            q[3] = blk;
            q[4] = r;
            wpiece[n_pieces++] = wm;
            c0 = c1;
        }
    }
    /* S[pixel][range]: a range lies inside one block, so S <= 128 * 255 */
    const int64_t pixels = (p->M / (p->out_h * p->out_w)) * p->PH * p->PW;
    int32_t *sums = (int32_t *)malloc((size_t)(pixels * n_rng) * sizeof(int32_t));
    if (sums == NULL) {
        free(pc);
        free(rng);
        free(wpiece);
        return 0;
    }
    /* per piece: its entry in sums relative to the row's first pixel (the
     * pieces' table is reused as scratch: column 1 <- that offset) */
    for (int64_t i = 0; i < n_pieces; i++) pc[5 * i + 1] = (p->seg_off[pc[5 * i]] / C) * n_rng + pc[5 * i + 4];
    nw_bounds_ctx_t ctx = {p, wmax, n_blocks, asum, pc, wpiece, n_pieces, rng, n_rng, sums, 0};
    hw_parallel_for(pixels, n_threads, nw_bounds_task, &ctx);   /* pixel sums */
    ctx.phase = 1;
    hw_parallel_for(p->M, n_threads, nw_bounds_task, &ctx);     /* rows */
    free(sums);
    free(pc);
    free(rng);
    free(wpiece);
    return 1;
}

/* The common part of GEMM and conv once A has been laid out: choose the
 * kernel, pack, run, reduce counters.  Returns 1 when computed, 0 to decline. */
NW_TARGET static int nw_solve(nw_problem_t *p, nw_range_t arange, const int32_t *wd, nw_range_t wrange,
                    const nw_weights_t *pre, const hw_accum_spec_t *acc, const int64_t *bias, int32_t fold_zx,
                    int32_t guard_c, const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                    int64_t *acc_out, hw_counters_t *counters, int n_threads, int64_t outputs_per_channel)
{
    if (acc->acc_overflow != HW_OVERFLOW_SATURATE || acc->acc_bits < 8 || acc->acc_bits > 31) return 0;
    if (!nw_range_fits(arange, 16) || !nw_range_fits(wrange, 16)) return 0;
    nw_range_t prod = nw_range_mul(arange, wrange);
    if (!nw_group_stage_is_identity(acc, prod)) return 0;
    int kind;
    if (acc->acc_bits == 16 && nw_range_fits(prod, 16)) kind = NW_KIND_S16;
    else if (((int64_t)1 << (acc->acc_bits - 1)) + nw_range_absmax(prod) <= INT32_MAX) kind = NW_KIND_S32;
    else return 0;
    if (p->abuf == NULL && kind != NW_KIND_S32) return 0;   /* the guard runs on int32 lanes only */
    const int guarded = p->abuf_u8 != NULL;

    /* weight data borrowed from the packed handle when it holds what this call needs */
    const nw_packed_t *have = NULL;
    if (pre != NULL) {
        if (guarded && pre->guard.wq != NULL) have = &pre->guard;
        if (!guarded && pre->steps.w != NULL && pre->steps.kind == kind) have = &pre->steps;
    }
    if (have == NULL && wd == NULL) return -1;   /* the caller prepares w' and asks again */

    /* the correction (bias, folded zero point) per channel */
    int64_t *wsum = NULL;
    if (pre == NULL || have == NULL) {
        wsum = (int64_t *)malloc((size_t)p->N * sizeof(int64_t));
        if (wsum == NULL) return 0;
        for (int64_t n = 0; n < p->N; n++) {
            int64_t sw = 0;
            for (int64_t k = 0; k < p->K; k++) sw += wd[n * p->K + k];
            wsum[n] = sw;
        }
    }
    nw_terms_t terms;
    int ok = nw_terms_init(&terms, acc, fold_zx, wsum != NULL ? wsum : pre->wsum, bias, p->N);
    free(wsum);
    if (!ok) return 0;
    nw_sink_t sink = {&terms, rq, out_dtype, out, acc_out, p->N};
    nw_packed_t pk;
    if (have != NULL) {
        pk = *have;
        pk.own_weights = 0;
    } else {
        nw_pack_layout(&pk, kind, p->N);
        ok = guarded ? nw_pack_guard_weights(&pk, wd, p->N, p->K) : nw_pack_steps(&pk, wd, p->N, p->K);
    }
    ok = ok && nw_pack_starts(&pk, p->N, &terms);
    if (ok && guarded) ok = nw_guard_corr(&pk, p->K, guard_c);
    if (!ok) {
        nw_packed_free(&pk);
        nw_terms_free(&terms);
        return 0;
    }
    nw_run_t run;
    memset(&run, 0, sizeof run);
    int64_t *asum = NULL;
    if (guarded) {
        run.n_blocks = (p->K + NW_GUARD_K - 1) / NW_GUARD_K;
        asum = (int64_t *)calloc((size_t)(p->M * run.n_blocks), sizeof(int64_t));
        if (asum == NULL) ok = 0;
        if (ok && p->nseg > 1) {
            ok = nw_conv_bounds(p, pk.wmax, run.n_blocks, asum, n_threads);
        } else if (ok) {
            nw_bounds_ctx_t ctx = {p, pk.wmax, run.n_blocks, asum, NULL, NULL, 0, NULL, 0, NULL, 1};
            hw_parallel_for(p->M, n_threads, nw_bounds_task, &ctx);
        }
    }
    nw_epilogue_t epi;
    int epi_ok = ok && nw_epilogue_init(&epi, &sink, pk.n_panels * pk.panel_lanes, 0);
    ok = ok && epi_ok;
    nw_count_scratch_t cs;
    run.n_rb = (p->M + NW_ROW_BLOCK - 1) / NW_ROW_BLOCK;
    int64_t tasks = run.n_rb * ((pk.n_panels + NW_PANEL_GROUP - 1) / NW_PANEL_GROUP);
    int chunks = hw_parallel_chunks(tasks, n_threads);
    int want_counts = counters != NULL;
    if (ok && want_counts && !nw_count_scratch_init(&cs, chunks, p->N)) ok = 0;
    if (ok) {
        run.p = p;
        run.pk = &pk;
        run.epi = &epi;
        run.spec = acc;
        run.lo = hw_min_s(acc->acc_bits);
        run.hi = hw_max_s(acc->acc_bits);
        run.counting = want_counts && counters->acc_events != NULL;
        run.cs = want_counts ? &cs : NULL;
        run.asum = asum;
        hw_parallel_for(tasks, chunks, nw_task, &run);
        if (want_counts) {
            nw_count_scratch_reduce(&cs, counters, terms.corr_events, outputs_per_channel);
            nw_count_scratch_free(&cs);
        }
    }
    if (epi_ok) nw_epilogue_free(&epi);
    free(asum);
    nw_packed_free(&pk);
    nw_terms_free(&terms);
    return ok;
}

/* A operand element -> the int16 value entering the products, into (a, a) pairs. */
static inline int32_t nw_pair(int32_t a) { return (int32_t)((uint32_t)(uint16_t)(int16_t)a * 0x10001u); }

/* Convert n elements of src (dtype dt) minus sub into pairs; track the range. */
NW_TARGET static void nw_convert_row(hw_dtype_t dt, const void *src, int64_t n, int32_t sub, int32_t *dst, uint8_t *dst_u8,
                           int32_t u8_add, nw_range_t *range)
{
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (int64_t i = 0; i < n; i++) {
        int32_t x = nw_load(dt, src, i);
        int32_t a = x - sub;
        lo = a < lo ? a : lo;
        hi = a > hi ? a : hi;
        dst[i] = nw_pair(a);
        if (dst_u8 != NULL) dst_u8[i] = (uint8_t)(x + u8_add);
    }
    if (n > 0) {
        nw_range_add(range, lo);
        nw_range_add(range, hi);
    }
}

static int nw_features_ok(void)
{
    uint32_t need = HW_ISA_AVX512BW | HW_ISA_AVX512_VNNI;
    return (hw_active_features() & need) == need;
}

/* Weights minus zero points as int32 [N][K]; range of w'. */
NW_TARGET static int32_t *nw_weights(hw_dtype_t dt, const void *w, int64_t N, int64_t K, int64_t ld, const int32_t *zp,
                           int32_t per_ch, nw_range_t *range)
{
    int32_t *wd = (int32_t *)malloc((size_t)(N * K) * sizeof(int32_t));
    if (wd == NULL) return NULL;
    *range = nw_range_empty();
    for (int64_t n = 0; n < N; n++) {
        int32_t z = nw_zw(zp, per_ch, n), lo = INT32_MAX, hi = INT32_MIN;
        int32_t *dst = wd + n * K;
        if (dt == HW_DT_S8) {
            const int8_t *src = (const int8_t *)w + n * ld;
            for (int64_t k = 0; k < K; k++) dst[k] = (int32_t)src[k] - z;
        } else if (dt == HW_DT_U8) {
            const uint8_t *src = (const uint8_t *)w + n * ld;
            for (int64_t k = 0; k < K; k++) dst[k] = (int32_t)src[k] - z;
        } else {
            const int16_t *src = (const int16_t *)w + n * ld;
            for (int64_t k = 0; k < K; k++) dst[k] = (int32_t)src[k] - z;
        }
        for (int64_t k = 0; k < K; k++) {
            lo = dst[k] < lo ? dst[k] : lo;
            hi = dst[k] > hi ? dst[k] : hi;
        }
        nw_range_add(range, lo);
        nw_range_add(range, hi);
    }
    return wd;
}

/* Guard usable: 8-bit activations and weights w' that fit s8. */
static int nw_guard_possible(const hw_accum_spec_t *acc, hw_dtype_t a_dtype, nw_range_t wrange)
{
    return acc->acc_bits > 16 && (a_dtype == HW_DT_U8 || a_dtype == HW_DT_S8) && wrange.lo >= -128 &&
           wrange.hi <= 127;
}

int hw_gemm_fast_narrow(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                        const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                        int64_t *acc_out, hw_counters_t *counters)
{
    if (!nw_features_ok()) return 0;
    if (acc->acc_overflow != HW_OVERFLOW_SATURATE || acc->acc_bits < 8 || acc->acc_bits > 31 || acc->group != 1)
        return 0;
    if (!nw_operand_dtype_ok(args->a_dtype) || !nw_operand_dtype_ok(args->b_dtype)) return 0;
    if (!nw_out_dtype_ok(rq, out_dtype, out)) return 0;
    if (args->M < 1 || args->N < 1 || args->K < 1 || args->K > ((int64_t)1 << 24)) return 0;

    int64_t M = args->M, N = args->N, K = args->K;
    const nw_weights_t *pre = nw_weights_for(args->packed_b, args->b_dtype, N, K, args->b_zero_point,
                                             args->b_zp_per_channel);
    nw_range_t wrange = pre != NULL ? pre->wrange : nw_range_empty();
    int32_t *wd = NULL;
    if (pre == NULL) {
        wd = nw_weights(args->b_dtype, args->b, N, K, args->ldb, args->b_zero_point, args->b_zp_per_channel, &wrange);
        if (wd == NULL) return 0;
    }
    if (!nw_range_fits(wrange, 16)) {
        free(wd);
        return 0;
    }
    int in_mac = acc->input_zero_point == HW_ZP_IN_MAC;
    int32_t sub = in_mac ? args->a_zero_point : 0;
    int32_t u8_add = args->a_dtype == HW_DT_S8 ? 128 : 0;
    /* guarded: quads of 4 consecutive k stay inside a row when K % 4 == 0 */
    int guard = nw_guard_possible(acc, args->a_dtype, wrange) && K % 4 == 0;
    int32_t *abuf = NULL;
    uint8_t *abuf_u8 = NULL;
    const uint8_t *a_u8 = NULL;
    nw_range_t arange = nw_range_empty();
    if (guard) {
        /* a = xu - c, xu = x as u8 (+128 for s8); the dtype bounds a: no scan */
        nw_range_add(&arange, (args->a_dtype == HW_DT_S8 ? -128 : 0) - sub);
        nw_range_add(&arange, (args->a_dtype == HW_DT_S8 ? 127 : 255) - sub);
        if (args->a_dtype == HW_DT_U8 && args->lda == K) {
            a_u8 = (const uint8_t *)args->a;   /* used in place */
        } else {
            abuf_u8 = (uint8_t *)malloc((size_t)(M * K));
            if (abuf_u8 == NULL) {
                free(wd);
                return 0;
            }
            const uint8_t flip = (uint8_t)u8_add;
            for (int64_t m = 0; m < M; m++) {
                const uint8_t *src = (const uint8_t *)args->a + m * args->lda;
                for (int64_t k = 0; k < K; k++) abuf_u8[m * K + k] = src[k] ^ flip;
            }
            a_u8 = abuf_u8;
        }
    } else {
        abuf = (int32_t *)malloc((size_t)(M * K) * sizeof(int32_t));
        if (abuf == NULL) {
            free(wd);
            return 0;
        }
        for (int64_t m = 0; m < M; m++) {
            const void *src = (const char *)args->a + m * args->lda * (args->a_dtype == HW_DT_S16 ? 2 : 1);
            nw_convert_row(args->a_dtype, src, K, sub, abuf + m * K, NULL, 0, &arange);
        }
    }
    int64_t seg_off = 0;
    /* the exact block sum is sum xu * w' - c * sum w', c = zx (IN_MAC) + 128 (s8) */
    int32_t guard_c = (in_mac ? args->a_zero_point : 0) + u8_add;
    nw_problem_t p = {M, N, K, 1, M, 1, M, K, 1, 1, 1, K, &seg_off, abuf, a_u8, guard_c};
    int ok = nw_solve(&p, arange, wd, wrange, pre, acc, args->bias, args->a_zero_point, guard_c, rq, out_dtype,
                      out, acc_out, counters, args->n_threads, M);
    if (ok < 0) {   /* the handle lacks this call's format: prepare w' here */
        wd = nw_weights(args->b_dtype, args->b, N, K, args->ldb, args->b_zero_point, args->b_zp_per_channel, &wrange);
        ok = wd != NULL && nw_solve(&p, arange, wd, wrange, NULL, acc, args->bias, args->a_zero_point, guard_c, rq,
                                    out_dtype, out, acc_out, counters, args->n_threads, M) == 1;
    }
    free(abuf);
    free(abuf_u8);
    free(wd);
    return ok;
}

int hw_conv2d_fast_narrow(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                          const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                          int64_t *acc_out, hw_counters_t *counters)
{
    const hw_conv2d_args_t *a = args;
    if (!nw_features_ok()) return 0;
    if (acc->acc_overflow != HW_OVERFLOW_SATURATE || acc->acc_bits < 8 || acc->acc_bits > 31 || acc->group != 1)
        return 0;
    if (a->groups != 1) return 0;
    if (!nw_operand_dtype_ok(a->x_dtype) || !nw_operand_dtype_ok(a->w_dtype)) return 0;
    if (!nw_out_dtype_ok(rq, out_dtype, out)) return 0;
    if (a->batch < 1 || a->out_h < 1 || a->out_w < 1 || a->out_c < 1 || a->in_c < 1) return 0;
    if (a->pad_top < 0 || a->pad_left < 0 || a->pad_bottom < 0 || a->pad_right < 0) return 0;
    int64_t PH = a->in_h + a->pad_top + a->pad_bottom, PW = a->in_w + a->pad_left + a->pad_right;
    if ((a->out_h - 1) * a->stride_h + (a->kernel_h - 1) * a->dilation_h >= PH) return 0;
    if ((a->out_w - 1) * a->stride_w + (a->kernel_w - 1) * a->dilation_w >= PW) return 0;
    int64_t C = a->in_c, N = a->out_c, K = a->kernel_h * a->kernel_w * C;
    if (K > ((int64_t)1 << 24)) return 0;

    const nw_weights_t *pre = nw_weights_for(a->packed_w, a->w_dtype, N, K, a->w_zero_point, a->w_zp_per_channel);
    nw_range_t wrange = pre != NULL ? pre->wrange : nw_range_empty();
    int32_t *wd = NULL;
    if (pre == NULL) {
        wd = nw_weights(a->w_dtype, a->w, N, K, K, a->w_zero_point, a->w_zp_per_channel, &wrange);
        if (wd == NULL) return 0;
    }
    if (!nw_range_fits(wrange, 16)) {
        free(wd);
        return 0;
    }
    int in_mac = acc->input_zero_point == HW_ZP_IN_MAC;
    int32_t sub = in_mac ? a->x_zero_point : 0;
    int guard = nw_guard_possible(acc, a->x_dtype, wrange) && C % 4 == 0;
    int32_t u8_add = a->x_dtype == HW_DT_S8 ? 128 : 0;
    int64_t plane = a->batch * PH * PW * C;
    int32_t *abuf = guard ? NULL : (int32_t *)malloc((size_t)plane * sizeof(int32_t));
    uint8_t *abuf_u8 = guard ? (uint8_t *)malloc((size_t)plane) : NULL;
    int64_t nseg = a->kernel_h * a->kernel_w;
    int64_t *seg_off = (int64_t *)malloc((size_t)nseg * sizeof(int64_t));
    if ((guard ? abuf_u8 == NULL : abuf == NULL) || seg_off == NULL) {
        free(wd);
        free(abuf);
        free(abuf_u8);
        free(seg_off);
        return 0;
    }
    /* padded input: padding taps hold x = zx, i.e. a = zx - sub */
    nw_range_t arange = nw_range_empty();
    int32_t pad_a = a->x_zero_point - sub;
    int32_t pad_pair = nw_pair(pad_a);
    uint8_t pad_u8 = (uint8_t)(a->x_zero_point + u8_add);
    int any_pad = a->pad_top || a->pad_left || a->pad_bottom || a->pad_right;
    if (any_pad) nw_range_add(&arange, pad_a);
    if (guard) {
        nw_range_add(&arange, (a->x_dtype == HW_DT_S8 ? -128 : 0) - sub);
        nw_range_add(&arange, (a->x_dtype == HW_DT_S8 ? 127 : 255) - sub);
    }
    size_t xsz = a->x_dtype == HW_DT_S16 ? 2 : 1;
    const uint8_t flip = (uint8_t)u8_add;
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t y = 0; y < PH; y++) {
            int64_t base = ((b * PH + y) * PW) * C;
            int64_t iy = y - a->pad_top;
            int inside = iy >= 0 && iy < a->in_h;
            const char *src = (const char *)a->x + (size_t)(((b * a->in_h + (inside ? iy : 0)) * a->in_w) * C) * xsz;
            if (guard) {
                uint8_t *d = abuf_u8 + base;
                if (!inside) {
                    memset(d, pad_u8, (size_t)(PW * C));
                    continue;
                }
                memset(d, pad_u8, (size_t)(a->pad_left * C));
                memset(d + (a->pad_left + a->in_w) * C, pad_u8, (size_t)(a->pad_right * C));
                const uint8_t *s8 = (const uint8_t *)src;
                uint8_t *dd = d + a->pad_left * C;
                if (flip == 0)
                    memcpy(dd, s8, (size_t)(a->in_w * C));
                else
                    for (int64_t i = 0; i < a->in_w * C; i++) dd[i] = s8[i] ^ flip;
                continue;
            }
            if (!inside) {
                for (int64_t i = 0; i < PW * C; i++) abuf[base + i] = pad_pair;
                continue;
            }
            for (int64_t i = 0; i < a->pad_left * C; i++) abuf[base + i] = pad_pair;
            for (int64_t i = (a->pad_left + a->in_w) * C; i < PW * C; i++) abuf[base + i] = pad_pair;
            nw_convert_row(a->x_dtype, src, a->in_w * C, sub, abuf + base + a->pad_left * C, NULL, 0, &arange);
        }
    for (int64_t ky = 0; ky < a->kernel_h; ky++)
        for (int64_t kx = 0; kx < a->kernel_w; kx++)
            seg_off[ky * a->kernel_w + kx] = (ky * a->dilation_h * PW + kx * a->dilation_w) * C;
    int32_t guard_c = (in_mac ? a->x_zero_point : 0) + u8_add;
    nw_problem_t p = {a->batch * a->out_h * a->out_w, N, K, a->out_h, a->out_w, PH, PW, C,
                      a->stride_h, a->stride_w, nseg, C, seg_off, abuf, abuf_u8, guard_c};
    int ok = nw_solve(&p, arange, wd, wrange, pre, acc, a->bias, a->x_zero_point, guard_c, rq, out_dtype, out,
                      acc_out, counters, a->n_threads, p.M);
    if (ok < 0) {   /* the handle lacks this call's format: prepare w' here */
        wd = nw_weights(a->w_dtype, a->w, N, K, K, a->w_zero_point, a->w_zp_per_channel, &wrange);
        ok = wd != NULL && nw_solve(&p, arange, wd, wrange, NULL, acc, a->bias, a->x_zero_point, guard_c, rq,
                                    out_dtype, out, acc_out, counters, a->n_threads, p.M) == 1;
    }
    free(abuf);
    free(abuf_u8);
    free(seg_off);
    free(wd);
    return ok;
}

void *hw_narrow_pack(hw_dtype_t dt, const void *w, int64_t n, int64_t k, int64_t ld, const int32_t *zp,
                     int32_t per_channel, const hw_accum_spec_t *acc, int *nomem)
{
    *nomem = 0;
    if (!nw_features_ok() || acc == NULL || w == NULL || (zp == NULL && per_channel)) return NULL;
    if (acc->acc_overflow != HW_OVERFLOW_SATURATE || acc->acc_bits < 8 || acc->acc_bits > 31 || acc->group != 1)
        return NULL;
    if (!nw_operand_dtype_ok(dt) || n < 1 || k < 1 || k > ((int64_t)1 << 24) || ld < k) return NULL;
    nw_weights_t *h = (nw_weights_t *)calloc(1, sizeof(nw_weights_t));
    if (h == NULL) {
        *nomem = 1;
        return NULL;
    }
    h->magic = NW_WEIGHTS_MAGIC;
    h->dt = dt;
    h->N = n;
    h->K = k;
    int32_t *wd = nw_weights(dt, w, n, k, ld, zp, per_channel, &h->wrange);
    h->zw = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    h->wsum = (int64_t *)malloc((size_t)n * sizeof(int64_t));
    int ok = wd != NULL && h->zw != NULL && h->wsum != NULL;
    for (int64_t j = 0; ok && j < n; j++) {
        int64_t sw = 0;
        for (int64_t kk = 0; kk < k; kk++) sw += wd[j * k + kk];
        h->wsum[j] = sw;
        h->zw[j] = nw_zw(zp, per_channel, j);
    }
    /* the formats a call under this spec takes (nw_solve): 16 bits -> int16 step
     * panels; 17..31 with w' in s8 and K % 4 == 0 -> the guarded data; else int32
     * step panels.  A call needing another one prepares it itself. */
    if (ok && nw_range_fits(h->wrange, 16)) {
        int guard = acc->acc_bits > 16 && h->wrange.lo >= -128 && h->wrange.hi <= 127 && k % 4 == 0;
        if (guard) {
            nw_pack_layout(&h->guard, NW_KIND_S32, n);
            ok = nw_pack_guard_weights(&h->guard, wd, n, k);
        } else {
            nw_pack_layout(&h->steps, acc->acc_bits == 16 ? NW_KIND_S16 : NW_KIND_S32, n);
            ok = nw_pack_steps(&h->steps, wd, n, k);
        }
    }
    free(wd);
    if (!ok) {
        nw_weights_free(h);
        *nomem = 1;
        return NULL;
    }
    return h;
}

void hw_narrow_pack_free(void *p)
{
    nw_weights_t *h = (nw_weights_t *)p;
    if (h != NULL && h->magic == NW_WEIGHTS_MAGIC) nw_weights_free(h);
}

#endif
