/* hw_fast_x86_vnni.c -- x86 fast paths for order-independent accumulation.
 *
 * Takes a GEMM or conv2d call only when its result provably equals the
 * portable kernel's, bit for bit, for ANY summation order:
 *
 *  EXACT   the group stage cannot overflow (group * max|x'| * max|w'| fits
 *          group_bits), and either the accumulator wraps at 32 bits, or a bound
 *          |bias| + |folded term| + K * max|x'w'| proves no accumulator step can
 *          overflow acc_bits (and the value fits int32).  Then the result is the
 *          exact sum mod 2^32, whatever the order and zero-point placement:
 *            acc = D[m,n] - zw[n] * RS[m] + CC[n]   (mod 2^32)
 *            D   = sum_k a'[m,k] * w[n,k]   with a' = x + 128 (s8) or x (u8):
 *                  VPDPBUSD on u8 x s8, exact products, wrapping int32 adds
 *            RS  = sum_k a'[m,k],  CS[n] = sum_k w[n,k],  c = 128*[s8] + zx
 *            CC  = bias[n] - c * CS[n] + K * c * zw[n]
 *          (this is sum_k (x - zx)(w - zw) + bias, regrouped; every term exact
 *          mod 2^32).  Needs AVX512_VNNI.
 *  PAIRSAT the x86-avx2 profile: group 2, group_bits 16 saturate, acc 32 wrap,
 *          raw u8 activations (zero point folded, or 0), s8 weights without
 *          zero points.  VPMADDUBSW computes sat16(a[2i]w[2i] + a[2i+1]w[2i+1])
 *          for exactly the documented pairs (2i, 2i+1); VPMADDWD with ones and
 *          VPADDD add the pair sums exactly mod 2^32; CC = bias - zx * CS.
 *          Needs AVX512BW.
 *
 * Anything else (s16 activations, u8 weights, narrow saturating accumulators
 * that a bound cannot clear, grouped conv, depthwise) returns 0 and the
 * portable kernel (or another fast path) runs.
 *
 * Layout: weights are packed once (hw_pack_gemm_b / hw_pack_conv2d_w) into
 * panels of 64 output channels; within a panel, for each k4 = k/4, 256 bytes:
 * four zmm of 16 channels x 4 consecutive k.  Activations are copied per panel
 * of MP rows into a u8 buffer (s8 XOR 0x80 = x + 128; conv: im2col of those
 * rows in (ky, kx, ci) order with padding taps = zx), K padded with zeros to a
 * multiple of 4 (zero weights there, so padding adds nothing).  A 6 x 64 tile
 * lives in 24 zmm accumulators for the whole K loop.
 *
 * Epilogue: + CC (and - zw*RS), acc_out (sign-extended), then requantisation
 * vectorised for FLOAT32 / DOUBLE_ROUNDING / SRDHM_HALF_UP / SINGLE_ROUNDING
 * (hw_fast_x86_requant.h), every other scheme through hw_requantize_one.
 *
 * Counters: max_abs_acc and out_events exactly (scalar epilogue when asked);
 * group_events are 0 in EXACT mode; acc_events are 0 when the bound holds.
 * Calls asking for events this file cannot count (acc_events with 32-bit wrap,
 * group_events with PAIRSAT) are declined.
 *
 * Threads: tasks are (row panel, column block) pairs; each output is computed
 * by exactly one task with the same instructions, so bits never depend on
 * n_threads.
 */
#include <stdlib.h>
#include <string.h>
#include "hw_kernels.h"
#include "hw_dispatch.h"
#include "hw_parallel.h"
#include "hw_fixedpoint.h"
#include "hw_fast_x86_requant.h"
#include "hw_requantize.h"

/* ---- packed weights (all architectures: the handle API always exists) ---- */

#define HW_VNNI_PACK_MAGIC 0x31504b494e4e5648ull /* "HVNNIKP1" */

typedef struct {
    uint64_t magic;
    int64_t n, k;          /* logical shape [N, K] */
    int64_t kpad, npad;    /* K rounded up to 4, N rounded up to 64 */
    int32_t wmin, wmax;    /* range of the weight values */
    int64_t *colsum;       /* N entries: sum_k w[n, k] (exact) */
    int8_t *data;          /* npad/64 panels of (kpad/4) x 256 bytes, 64-byte aligned */
} hw_vnni_packed_t;

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* One allocation: header, column sums, aligned panel data. */
static hw_vnni_packed_t *pack_weights(const int8_t *b, int64_t ldb, int64_t n, int64_t k)
{
    int64_t kpad = round_up(k, 4), npad = round_up(n, 64);
    if (n <= 0 || k <= 0 || ldb < k || npad > (INT64_MAX / 2) / kpad) return NULL;
    size_t head = (sizeof(hw_vnni_packed_t) + 63) / 64 * 64;
    size_t sums = ((size_t)n * sizeof(int64_t) + 63) / 64 * 64;
    size_t bytes = head + sums + (size_t)(npad * kpad) + 64;
    unsigned char *mem = (unsigned char *)malloc(bytes);
    if (!mem) return NULL;
    hw_vnni_packed_t *p = (hw_vnni_packed_t *)mem;
    p->magic = HW_VNNI_PACK_MAGIC;
    p->n = n;
    p->k = k;
    p->kpad = kpad;
    p->npad = npad;
    p->colsum = (int64_t *)(mem + head);
    uintptr_t d = (uintptr_t)(mem + head + sums);
    p->data = (int8_t *)(d + ((64 - d % 64) % 64));
    memset(p->data, 0, (size_t)(npad * kpad));
    int32_t wmin = 127, wmax = -128;
    for (int64_t j = 0; j < n; j++) {
        const int8_t *row = b + j * ldb;
        int8_t *panel = p->data + (j / 64) * kpad * 64 + ((j % 64) / 16) * 64 + (j % 16) * 4;
        int64_t s = 0;
        for (int64_t kk = 0; kk < k; kk++) {
            int8_t w = row[kk];
            s += w;
            if (w < wmin) wmin = w;
            if (w > wmax) wmax = w;
            panel[(kk / 4) * 256 + kk % 4] = w;
        }
        p->colsum[j] = s;
    }
    p->wmin = wmin;
    p->wmax = wmax;
    return p;
}

static const hw_vnni_packed_t *packed_handle(const void *h, int64_t n, int64_t k)
{
    const hw_vnni_packed_t *p = (const hw_vnni_packed_t *)h;
    if (!p || p->magic != HW_VNNI_PACK_MAGIC || p->n != n || p->k != k) return NULL;
    return p;
}

void hw_packed_free(void *packed)
{
    hw_vnni_packed_t *p = (hw_vnni_packed_t *)packed;
    if (!p || p->magic != HW_VNNI_PACK_MAGIC) return;
    p->magic = 0;
    free(p);
}

static int pack_supported(void)
{
#if defined(__x86_64__)
    return (hw_active_features() & HW_ISA_AVX512BW) != 0;
#else
    return 0;
#endif
}

hw_status_t hw_pack_gemm_b(const hw_gemm_args_t *args, const hw_accum_spec_t *acc, void **packed)
{
    (void)acc;   /* the layout serves every spec this file takes; the call decides */
    if (!packed) return HW_ERR_ARG;
    *packed = NULL;
    if (!args || args->N <= 0 || args->K <= 0 || !args->b || args->ldb < args->K) return HW_ERR_ARG;
    if (args->b_dtype != HW_DT_S8 || !pack_supported()) return HW_OK;
    *packed = pack_weights((const int8_t *)args->b, args->ldb, args->N, args->K);
    return *packed ? HW_OK : HW_ERR_NOMEM;
}

hw_status_t hw_pack_conv2d_w(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc, void **packed)
{
    (void)acc;
    if (!packed) return HW_ERR_ARG;
    *packed = NULL;
    if (!args || !args->w || args->out_c <= 0 || args->kernel_h <= 0 || args->kernel_w <= 0
        || args->in_c <= 0 || args->groups <= 0 || args->in_c % args->groups != 0)
        return HW_ERR_ARG;
    if (args->w_dtype != HW_DT_S8 || args->groups != 1 || !pack_supported()) return HW_OK;
    int64_t k = args->kernel_h * args->kernel_w * args->in_c;
    *packed = pack_weights((const int8_t *)args->w, k, args->out_c, k);
    return *packed ? HW_OK : HW_ERR_NOMEM;
}

#if !defined(__x86_64__)

int hw_gemm_fast_vnni(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                      const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                      int64_t *acc_out, hw_counters_t *counters)
{
    (void)args; (void)acc; (void)rq; (void)out_dtype; (void)out; (void)acc_out; (void)counters;
    return 0;
}

int hw_conv2d_fast_vnni(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                        const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                        int64_t *acc_out, hw_counters_t *counters)
{
    (void)args; (void)acc; (void)rq; (void)out_dtype; (void)out; (void)acc_out; (void)counters;
    return 0;
}

#else /* __x86_64__ */

#include <immintrin.h>

#define HW_TGT_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

enum { MODE_NONE = 0, MODE_EXACT = 1, MODE_PAIRSAT = 2 };

#define MR 6      /* rows per register tile */
#define NR 64     /* columns per register tile (4 zmm) */
#define MP 48     /* rows per activation panel (a multiple of MR) */
#define B_BLOCK_BYTES (384 * 1024)   /* packed weight block kept in L2 */

/* ---- classification: which mode (if any) is exact for this call ---- */

typedef struct {
    int64_t m, n, k;
    hw_dtype_t a_dtype;
    int32_t zx;
    const int32_t *zw;       /* NULL = 0 */
    int zw_per_channel;
    const int64_t *bias;
} problem_t;

static uint64_t sat_mul_u64(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_add_u64(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t abs_u64(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

static int32_t zw_of(const problem_t *p, int64_t n)
{
    if (!p->zw) return 0;
    return p->zw[p->zw_per_channel ? n : 0];
}

/* *bounded = 1 when no accumulator step can overflow (events are then 0). */
static int classify(const problem_t *p, const hw_accum_spec_t *acc, int32_t wmin, int32_t wmax,
                    uint32_t feats, int *bounded)
{
    *bounded = 0;
    if (p->a_dtype != HW_DT_S8 && p->a_dtype != HW_DT_U8) return MODE_NONE;
    if (acc->group < 1 || acc->group_bits < 2 || acc->group_bits > 64 || acc->acc_bits < 2
        || acc->acc_bits > 64)
        return MODE_NONE;
    int64_t xlo = p->a_dtype == HW_DT_S8 ? -128 : 0, xhi = p->a_dtype == HW_DT_S8 ? 127 : 255;
    int in_mac = acc->input_zero_point == HW_ZP_IN_MAC;
    int64_t zx = p->zx;
    uint64_t maxx = in_mac ? abs_u64(xlo - zx) : abs_u64(xlo);
    uint64_t t = in_mac ? abs_u64(xhi - zx) : abs_u64(xhi);
    if (t > maxx) maxx = t;
    int64_t zwmin = 0, zwmax = 0, nzw = p->zw ? (p->zw_per_channel ? p->n : 1) : 0;
    int has_zw = 0;
    for (int64_t i = 0; i < nzw; i++) {
        if (i == 0 || p->zw[i] < zwmin) zwmin = p->zw[i];
        if (i == 0 || p->zw[i] > zwmax) zwmax = p->zw[i];
        if (p->zw[i] != 0) has_zw = 1;
    }
    uint64_t maxw = abs_u64((int64_t)wmin - zwmax);
    t = abs_u64((int64_t)wmax - zwmin);
    if (t > maxw) maxw = t;
    uint64_t maxp = sat_mul_u64(maxx, maxw);
    uint64_t gmax = sat_mul_u64((uint64_t)acc->group, maxp);
    int group_exact = acc->group_bits >= 64 || gmax <= ((uint64_t)1 << (acc->group_bits - 1)) - 1;

    uint64_t total = sat_mul_u64((uint64_t)p->k, maxp);
    if (!in_mac) total = sat_add_u64(total, sat_mul_u64(abs_u64(zx), sat_mul_u64((uint64_t)p->k, maxw)));
    if (p->bias) {
        uint64_t bmax = 0;
        for (int64_t i = 0; i < p->n; i++) {
            uint64_t b = abs_u64(p->bias[i] == INT64_MIN ? INT64_MAX : p->bias[i]);
            if (b > bmax) bmax = b;
        }
        total = sat_add_u64(total, bmax);
    }
    int bits = acc->acc_bits < 32 ? acc->acc_bits : 32;
    *bounded = group_exact && total <= ((uint64_t)1 << (bits - 1)) - 1;

    const uint32_t need_vnni = HW_ISA_AVX512BW | HW_ISA_AVX512_VNNI;
    if (group_exact && (feats & need_vnni) == need_vnni) {
        if (*bounded) return MODE_EXACT;
        if (acc->acc_bits == 32 && acc->acc_overflow == HW_OVERFLOW_WRAP) return MODE_EXACT;
    }
    if ((feats & HW_ISA_AVX512BW) && acc->group == 2 && acc->group_bits == 16
        && acc->group_overflow == HW_OVERFLOW_SATURATE && acc->acc_bits == 32
        && acc->acc_overflow == HW_OVERFLOW_WRAP && p->a_dtype == HW_DT_U8 && !has_zw
        && (!in_mac || zx == 0)) {
        *bounded = 0;
        return MODE_PAIRSAT;
    }
    *bounded = 0;
    return MODE_NONE;
}

/* ---- requantisation plan ---- */

typedef struct {
    hw_rq_plan_t v;
    const hw_requant_spec_t *spec;
    void *mem;
} rq_setup_t;

static int out_range_ok(hw_dtype_t dt, int64_t lo, int64_t hi)
{
    int64_t dlo, dhi;
    switch (dt) {
    case HW_DT_S8: dlo = -128; dhi = 127; break;
    case HW_DT_U8: dlo = 0; dhi = 255; break;
    case HW_DT_S16: dlo = -32768; dhi = 32767; break;
    case HW_DT_S32: dlo = INT32_MIN; dhi = INT32_MAX; break;
    default: return 0;
    }
    return lo <= hi && lo >= dlo && hi <= dhi;
}

/* Returns 0 when the call must be declined (out of memory). */
static int rq_setup(rq_setup_t *s, const hw_requant_spec_t *rq, hw_dtype_t out_dtype, int64_t npad)
{
    memset(s, 0, sizeof(*s));
    s->spec = rq;
    if (!rq) {
        s->v.kind = RQV_NONE;
        return 1;
    }
    if (rq->n_channels < 1 || !out_range_ok(out_dtype, rq->out_min, rq->out_max)) return 0;
    int kind = RQV_SCALAR;
    int64_t nch = rq->n_channels, lo = (int64_t)rq->out_min - rq->zero_point;
    int64_t hi = (int64_t)rq->out_max - rq->zero_point;
    if (rq->out_overflow == HW_OVERFLOW_SATURATE) {
        if (rq->scheme == HW_REQ_FLOAT32 && rq->scale_f32
            && (rq->rounding == HW_ROUND_HALF_EVEN || rq->rounding == HW_ROUND_FLOOR
                || rq->rounding == HW_ROUND_CEIL || rq->rounding == HW_ROUND_TRUNC)
            && lo >= -(1 << 24) && hi <= (1 << 24)) {
            kind = RQV_F32;
            for (int64_t c = 0; c < nch; c++) {
                float f = rq->scale_f32[c];
                if (!(f - f == 0.0f)) kind = RQV_SCALAR;   /* inf or NaN */
            }
        } else if ((rq->scheme == HW_REQ_DOUBLE_ROUNDING || rq->scheme == HW_REQ_SRDHM_HALF_UP
                    || rq->scheme == HW_REQ_SINGLE_ROUNDING) && rq->multiplier && rq->shift) {
            kind = rq->scheme == HW_REQ_DOUBLE_ROUNDING ? RQV_DOUBLE
                 : rq->scheme == HW_REQ_SRDHM_HALF_UP ? RQV_HALFUP : RQV_SINGLE;
            for (int64_t c = 0; c < nch; c++) {
                int32_t sh = rq->shift[c];
                if (kind == RQV_SINGLE ? (sh < -31 || sh > 30) : (sh < -31 || sh > 31)) kind = RQV_SCALAR;
            }
        }
    }
    s->v.kind = kind;
    s->v.f32_rounding = rq->rounding;
    s->v.zp = rq->zero_point;
    s->v.out_min = rq->out_min;
    s->v.out_max = rq->out_max;
    s->v.f_lo = (float)lo;
    s->v.f_hi = (float)hi;
    if (kind == RQV_SCALAR) return 1;
    size_t bytes = (size_t)npad * 4 * sizeof(int32_t);
    int32_t *mem = (int32_t *)malloc(bytes);
    if (!mem) return 0;
    s->mem = mem;
    float *scale = (float *)(void *)mem;   /* one block: scale | mult | shift_l | shift_r */
    int32_t *mult = mem + npad, *shl = mem + 2 * npad, *shr = mem + 3 * npad;
    for (int64_t n = 0; n < npad; n++) {
        int64_t c = nch > 1 ? (n < nch ? n : 0) : 0;
        if (kind == RQV_F32) {
            scale[n] = rq->scale_f32[c];
            mult[n] = shl[n] = shr[n] = 0;
        } else {
            int32_t sh = rq->shift[c];
            scale[n] = 0.0f;
            mult[n] = rq->multiplier[c];
            shl[n] = sh > 0 ? sh : 0;
            shr[n] = kind == RQV_SINGLE ? 31 - sh : (sh < 0 ? -sh : 0);
        }
    }
    s->v.scale = scale;
    s->v.mult = mult;
    s->v.shift_l = shl;
    s->v.shift_r = shr;
    return 1;
}

/* ---- the job: one GEMM-shaped problem over (row panel, column block) tasks ---- */

typedef struct {
    int mode;
    int64_t m, n, k, kpad, nc, n_nb;
    const hw_vnni_packed_t *pk;
    /* activations: GEMM rows or conv im2col rows */
    const hw_conv2d_args_t *conv;
    const uint8_t *a;
    int64_t lda;
    uint8_t flip;            /* 0x80 for s8 (x + 128 as u8), else 0 */
    uint8_t pad_byte;        /* conv padding tap: zx as a' */
    int need_rowsum;
    /* epilogue */
    const int32_t *cc;       /* npad column constants */
    const int32_t *zwcol;    /* npad weight zero points, or NULL */
    const rq_setup_t *rq;
    hw_dtype_t out_dtype;
    void *out;
    int64_t *acc_out;
    int scalar_epilogue;
    int64_t *cnt_max;        /* [chunks][n] or NULL */
    int64_t *cnt_ev;         /* [chunks][n] or NULL */
    uint8_t *abuf;           /* [chunks][MP * kpad] */
    int32_t *rsbuf;          /* [chunks][MP] */
} job_t;

/* Copy len activation bytes as u8 a' (s8 + 128 by flipping the sign bit). */
static void copy_flip(uint8_t *dst, const uint8_t *src, int64_t len, uint8_t flip)
{
    if (!flip) {
        memcpy(dst, src, (size_t)len);
        return;
    }
    for (int64_t i = 0; i < len; i++) dst[i] = src[i] ^ flip;
}

static void pack_rows(const job_t *j, int64_t m0, int64_t rows, uint8_t *dst, int32_t *rs)
{
    const int64_t kpad = j->kpad, k = j->k;
    for (int64_t r = 0; r < MP; r++) {
        uint8_t *d = dst + r * kpad;
        if (r >= rows) {
            memset(d, 0, (size_t)kpad);
            rs[r] = 0;
            continue;
        }
        int64_t m = m0 + r;
        if (!j->conv) {
            copy_flip(d, j->a + m * j->lda, k, j->flip);
        } else {
            const hw_conv2d_args_t *c = j->conv;
            int64_t ox = m % c->out_w, t = m / c->out_w, oy = t % c->out_h, b = t / c->out_h;
            const uint8_t *x = (const uint8_t *)c->x;
            uint8_t *p = d;
            for (int64_t ky = 0; ky < c->kernel_h; ky++) {
                int64_t iy = oy * c->stride_h - c->pad_top + ky * c->dilation_h;
                for (int64_t kx = 0; kx < c->kernel_w; kx++, p += c->in_c) {
                    int64_t ix = ox * c->stride_w - c->pad_left + kx * c->dilation_w;
                    if (iy < 0 || iy >= c->in_h || ix < 0 || ix >= c->in_w)
                        memset(p, j->pad_byte, (size_t)c->in_c);
                    else
                        copy_flip(p, x + ((b * c->in_h + iy) * c->in_w + ix) * c->in_c, c->in_c, j->flip);
                }
            }
        }
        memset(d + k, 0, (size_t)(kpad - k));
        if (j->need_rowsum) {
            uint64_t s = 0;
            for (int64_t i = 0; i < k; i++) s += d[i];
            rs[r] = (int32_t)hw_wrap_s64((int64_t)s, 32);
        }
    }
}

/* 6 x 64 tile, exact u8 x s8 dot products (VPDPBUSD). */
HW_TGT_VNNI static void tile_dpbusd(const uint8_t *a, int64_t lda, const int8_t *b, int64_t k4n,
                                    int32_t *c)
{
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00;
    __m512i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    __m512i c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    __m512i c40 = c00, c41 = c00, c42 = c00, c43 = c00;
    __m512i c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    for (int64_t kk = 0; kk < k4n; kk++) {
        const int8_t *bk = b + kk * 256;
        __m512i b0 = _mm512_loadu_si512(bk), b1 = _mm512_loadu_si512(bk + 64);
        __m512i b2 = _mm512_loadu_si512(bk + 128), b3 = _mm512_loadu_si512(bk + 192);
        const uint8_t *ak = a + 4 * kk;
        int32_t v;
        __m512i av;
#define HW_ROW(r, x0, x1, x2, x3)                                            \
        memcpy(&v, ak + (r) * lda, 4);                                       \
        av = _mm512_set1_epi32(v);                                           \
        x0 = _mm512_dpbusd_epi32(x0, av, b0);                                \
        x1 = _mm512_dpbusd_epi32(x1, av, b1);                                \
        x2 = _mm512_dpbusd_epi32(x2, av, b2);                                \
        x3 = _mm512_dpbusd_epi32(x3, av, b3);
        HW_ROW(0, c00, c01, c02, c03)
        HW_ROW(1, c10, c11, c12, c13)
        HW_ROW(2, c20, c21, c22, c23)
        HW_ROW(3, c30, c31, c32, c33)
        HW_ROW(4, c40, c41, c42, c43)
        HW_ROW(5, c50, c51, c52, c53)
#undef HW_ROW
    }
#define HW_STORE(r, x0, x1, x2, x3)                        \
    _mm512_store_si512((void *)(c + (r) * 64), x0);        \
    _mm512_store_si512((void *)(c + (r) * 64 + 16), x1);   \
    _mm512_store_si512((void *)(c + (r) * 64 + 32), x2);   \
    _mm512_store_si512((void *)(c + (r) * 64 + 48), x3);
    HW_STORE(0, c00, c01, c02, c03)
    HW_STORE(1, c10, c11, c12, c13)
    HW_STORE(2, c20, c21, c22, c23)
    HW_STORE(3, c30, c31, c32, c33)
    HW_STORE(4, c40, c41, c42, c43)
    HW_STORE(5, c50, c51, c52, c53)
}

/* 6 x 64 tile, x86-avx2 pair saturation: sat16 pair sums (VPMADDUBSW), then
 * exact widening (VPMADDWD by 1) and wrapping int32 adds. */
HW_TGT_AVX512 static void tile_maddubs(const uint8_t *a, int64_t lda, const int8_t *b, int64_t k4n,
                                       int32_t *c)
{
    const __m512i ones = _mm512_set1_epi16(1);
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00;
    __m512i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    __m512i c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    __m512i c40 = c00, c41 = c00, c42 = c00, c43 = c00;
    __m512i c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    for (int64_t kk = 0; kk < k4n; kk++) {
        const int8_t *bk = b + kk * 256;
        __m512i b0 = _mm512_loadu_si512(bk), b1 = _mm512_loadu_si512(bk + 64);
        __m512i b2 = _mm512_loadu_si512(bk + 128), b3 = _mm512_loadu_si512(bk + 192);
        const uint8_t *ak = a + 4 * kk;
        int32_t v;
        __m512i av;
#define HW_PAIR(x, bv) x = _mm512_add_epi32(x, _mm512_madd_epi16(_mm512_maddubs_epi16(av, bv), ones));
#define HW_ROW(r, x0, x1, x2, x3)                                            \
        memcpy(&v, ak + (r) * lda, 4);                                       \
        av = _mm512_set1_epi32(v);                                           \
        HW_PAIR(x0, b0) HW_PAIR(x1, b1) HW_PAIR(x2, b2) HW_PAIR(x3, b3)
        HW_ROW(0, c00, c01, c02, c03)
        HW_ROW(1, c10, c11, c12, c13)
        HW_ROW(2, c20, c21, c22, c23)
        HW_ROW(3, c30, c31, c32, c33)
        HW_ROW(4, c40, c41, c42, c43)
        HW_ROW(5, c50, c51, c52, c53)
#undef HW_ROW
#undef HW_PAIR
    }
    HW_STORE(0, c00, c01, c02, c03)
    HW_STORE(1, c10, c11, c12, c13)
    HW_STORE(2, c20, c21, c22, c23)
    HW_STORE(3, c30, c31, c32, c33)
    HW_STORE(4, c40, c41, c42, c43)
    HW_STORE(5, c50, c51, c52, c53)
#undef HW_STORE
}

static void store_out(void *out, hw_dtype_t dt, int64_t idx, int64_t v)
{
    switch (dt) {
    case HW_DT_S8: ((int8_t *)out)[idx] = (int8_t)v; break;
    case HW_DT_U8: ((uint8_t *)out)[idx] = (uint8_t)v; break;
    case HW_DT_S16: ((int16_t *)out)[idx] = (int16_t)v; break;
    default: ((int32_t *)out)[idx] = (int32_t)v; break;
    }
}

/* Finish `rows` x `ncols` accumulators of one tile (row m0, column n0). */
HW_TGT_AVX512 static void epilogue(const job_t *j, int ti, const int32_t *tile, int64_t m0, int64_t rows,
                                   int64_t n0, int64_t ncols, const int32_t *rs)
{
    const int64_t n = j->n;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t m = m0 + r;
        for (int64_t s = 0; s < ncols; s += 16) {
            const int64_t col = n0 + s, nl = ncols - s < 16 ? ncols - s : 16;
            const __mmask16 k = (__mmask16)(nl == 16 ? 0xffffu : ((1u << nl) - 1u));
            __m512i v = _mm512_load_si512((const void *)(tile + r * 64 + s));
            v = _mm512_add_epi32(v, _mm512_loadu_si512((const void *)(j->cc + col)));
            if (j->zwcol)
                v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_loadu_si512((const void *)(j->zwcol + col)),
                                                           _mm512_set1_epi32(rs[r])));
            const int64_t idx = m * n + col;
            if (j->acc_out) {
                _mm512_mask_storeu_epi64(j->acc_out + idx, (__mmask8)(k & 0xff),
                                         _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)));
                _mm512_mask_storeu_epi64(j->acc_out + idx + 8, (__mmask8)(k >> 8),
                                         _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)));
            }
            if (j->scalar_epilogue) {
                int32_t lane[16];
                _mm512_storeu_si512((void *)lane, v);
                for (int64_t i = 0; i < nl; i++) {
                    const int64_t a = lane[i], c = col + i;
                    if (j->cnt_max) {
                        int64_t *mx = j->cnt_max + (int64_t)ti * n + c;
                        int64_t aa = a < 0 ? -a : a;
                        if (aa > *mx) *mx = aa;
                    }
                    if (j->rq->v.kind == RQV_NONE) continue;
                    /* index = flat output position, as hw_requantize_s64 (stochastic rounding) */
                    int changed = 0;
                    int64_t o = hw_requantize_one_at(a, (int32_t)c, (uint64_t)(idx + i), j->rq->spec, &changed);
                    store_out(j->out, j->out_dtype, idx + i, o);
                    if (j->cnt_ev) j->cnt_ev[(int64_t)ti * n + c] += changed != 0;
                }
                continue;
            }
            if (j->rq->v.kind == RQV_NONE) continue;
            __m512i o = hw_rqv16(&j->rq->v, v, col);
            switch (j->out_dtype) {
            case HW_DT_S8: _mm512_mask_cvtepi32_storeu_epi8((int8_t *)j->out + idx, k, o); break;
            case HW_DT_U8: _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)j->out + idx, k, o); break;
            case HW_DT_S16: _mm512_mask_cvtepi32_storeu_epi16((int16_t *)j->out + idx, k, o); break;
            default: _mm512_mask_storeu_epi32((int32_t *)j->out + idx, k, o); break;
            }
        }
    }
}

HW_TGT_AVX512 static void run_tasks(void *ctx, int64_t begin, int64_t end, int ti)
{
    const job_t *j = (const job_t *)ctx;
    uint8_t *abuf = j->abuf + (int64_t)ti * MP * j->kpad;
    int32_t *rs = j->rsbuf + (int64_t)ti * MP;
    int32_t tile[MR * NR] __attribute__((aligned(64)));
    int64_t packed_panel = -1;
    for (int64_t t = begin; t < end; t++) {
        const int64_t mp = t / j->n_nb, nb = t % j->n_nb;
        const int64_t m0 = mp * MP, rows = j->m - m0 < MP ? j->m - m0 : MP;
        if (mp != packed_panel) {
            pack_rows(j, m0, rows, abuf, rs);
            packed_panel = mp;
        }
        const int64_t nbeg = nb * j->nc, nend = nbeg + j->nc < j->n ? nbeg + j->nc : j->n;
        for (int64_t r0 = 0; r0 < rows; r0 += MR) {
            const int64_t tr = rows - r0 < MR ? rows - r0 : MR;
            for (int64_t p = nbeg; p < nend; p += NR) {
                const int8_t *bp = j->pk->data + (p / NR) * j->kpad * NR;
                if (j->mode == MODE_EXACT)
                    tile_dpbusd(abuf + r0 * j->kpad, j->kpad, bp, j->kpad / 4, tile);
                else
                    tile_maddubs(abuf + r0 * j->kpad, j->kpad, bp, j->kpad / 4, tile);
                epilogue(j, ti, tile, m0 + r0, tr, p, nend - p < NR ? nend - p : NR, rs + r0);
            }
        }
    }
}

/* Shared driver for GEMM and conv once the problem is GEMM-shaped. */
static int run_job(job_t *j, const problem_t *pr, const hw_accum_spec_t *acc, const hw_requant_spec_t *rq,
                   hw_dtype_t out_dtype, void *out, int64_t *acc_out, hw_counters_t *counters,
                   int n_threads, const hw_vnni_packed_t *pk)
{
    int bounded = 0;
    int mode = classify(pr, acc, pk->wmin, pk->wmax, hw_active_features(), &bounded);
    if (mode == MODE_NONE) return 0;
    if (counters) {
        if (counters->acc_events && !bounded) return 0;
        if (counters->group_events && mode != MODE_EXACT) return 0;
    }
    rq_setup_t rqs;
    if (!rq_setup(&rqs, rq, out_dtype, pk->npad)) return 0;

    const int64_t n = pr->n, npad = pk->npad, kk = pr->k;
    int want_max = counters && counters->max_abs_acc, want_ev = counters && counters->out_events;
    j->mode = mode;
    j->m = pr->m;
    j->n = n;
    j->k = kk;
    j->kpad = pk->kpad;
    j->pk = pk;
    int64_t nc = B_BLOCK_BYTES / pk->kpad / NR * NR;
    if (nc < NR) nc = NR;
    if (nc > npad) nc = npad;
    j->nc = nc;
    j->n_nb = (n + nc - 1) / nc;
    j->flip = pr->a_dtype == HW_DT_S8 ? 0x80 : 0;
    j->rq = &rqs;
    j->out_dtype = out_dtype;
    j->out = out;
    j->acc_out = acc_out;
    j->scalar_epilogue = want_max || want_ev || rqs.v.kind == RQV_SCALAR;

    /* Column constants CC[n] = bias - c*CS + K*c*zw (mod 2^32), c = 128*[s8] + zx;
     * PAIRSAT has zw = 0 and c = zx (u8, zx is 0 for IN_MAC). */
    const int64_t c = (pr->a_dtype == HW_DT_S8 ? 128 : 0) + (int64_t)pr->zx;
    int has_zw = 0;
    for (int64_t i = 0; i < n; i++) has_zw |= zw_of(pr, i) != 0;
    j->need_rowsum = has_zw;
    const int64_t chunks = hw_parallel_chunks((int64_t)((pr->m + MP - 1) / MP) * j->n_nb, n_threads);
    size_t cbytes = (size_t)npad * 2 * sizeof(int32_t);
    size_t abytes = (size_t)(chunks * MP * pk->kpad) + 64;
    size_t rbytes = (size_t)(chunks * MP) * sizeof(int32_t);
    size_t kbytes = (size_t)(chunks * n) * sizeof(int64_t) * 2;
    unsigned char *mem = (unsigned char *)malloc(cbytes + abytes + rbytes + kbytes + 64);
    if (!mem) {
        free(rqs.mem);
        return 0;
    }
    int32_t *cc = (int32_t *)(void *)mem, *zwcol = cc + npad;
    for (int64_t i = 0; i < npad; i++) {
        int64_t zw = i < n ? zw_of(pr, i) : 0;
        int64_t b = (i < n && pr->bias) ? pr->bias[i] : 0;
        int64_t cs = i < n ? pk->colsum[i] : 0;
        int64_t v = hw_wrapping_sub_s64(b, hw_wrapping_mul_s64(c, cs));
        v = hw_wrapping_add_s64(v, hw_wrapping_mul_s64(hw_wrapping_mul_s64(kk, c), zw));
        cc[i] = (int32_t)hw_wrap_s64(v, 32);
        zwcol[i] = (int32_t)zw;
    }
    j->cc = cc;
    j->zwcol = has_zw ? zwcol : NULL;
    uintptr_t ab = (uintptr_t)(mem + cbytes);
    j->abuf = (uint8_t *)(ab + ((64 - ab % 64) % 64));
    j->rsbuf = (int32_t *)(void *)(mem + cbytes + abytes);
    int64_t *cnt = (int64_t *)(void *)(mem + cbytes + abytes + rbytes);
    memset(cnt, 0, kbytes);
    j->cnt_max = want_max ? cnt : NULL;
    j->cnt_ev = want_ev ? cnt + chunks * n : NULL;

    int used = hw_parallel_for((int64_t)((pr->m + MP - 1) / MP) * j->n_nb, n_threads, run_tasks, j);

    if (counters) {
        for (int64_t i = 0; i < n; i++) {
            int64_t mx = 0, ev = 0;
            for (int t = 0; t < used; t++) {
                if (want_max && j->cnt_max[t * n + i] > mx) mx = j->cnt_max[t * n + i];
                if (want_ev) ev += j->cnt_ev[t * n + i];
            }
            if (counters->max_abs_acc) counters->max_abs_acc[i] = mx;
            if (counters->out_events) counters->out_events[i] = ev;
            if (counters->group_events) counters->group_events[i] = 0;
            if (counters->acc_events) counters->acc_events[i] = 0;
        }
    }
    free(mem);
    free(rqs.mem);
    return 1;
}

int hw_gemm_fast_vnni(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                      const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                      int64_t *acc_out, hw_counters_t *counters)
{
    if (!args || !acc || !(hw_active_features() & HW_ISA_AVX512BW)) return 0;
    if (args->b_dtype != HW_DT_S8 || (args->a_dtype != HW_DT_S8 && args->a_dtype != HW_DT_U8)) return 0;
    if (args->M <= 0 || args->N <= 0 || args->K <= 0 || !args->a || !args->b) return 0;
    if ((rq != NULL) != (out != NULL)) return 0;
    problem_t pr = {args->M, args->N, args->K, args->a_dtype, args->a_zero_point,
                    args->b_zero_point, args->b_zp_per_channel, args->bias};
    const hw_vnni_packed_t *pk = packed_handle(args->packed_b, args->N, args->K);
    hw_vnni_packed_t *tmp = NULL;
    if (!pk) {
        tmp = pack_weights((const int8_t *)args->b, args->ldb, args->N, args->K);
        if (!tmp) return 0;
        pk = tmp;
    }
    job_t j;
    memset(&j, 0, sizeof(j));
    j.a = (const uint8_t *)args->a;
    j.lda = args->lda;
    int done = run_job(&j, &pr, acc, rq, out_dtype, out, acc_out, counters, args->n_threads, pk);
    hw_packed_free(tmp);
    return done;
}

int hw_conv2d_fast_vnni(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                        const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                        int64_t *acc_out, hw_counters_t *counters)
{
    if (!args || !acc || !(hw_active_features() & HW_ISA_AVX512BW)) return 0;
    if (args->w_dtype != HW_DT_S8 || (args->x_dtype != HW_DT_S8 && args->x_dtype != HW_DT_U8)) return 0;
    if (args->groups != 1 || !args->x || !args->w || (rq != NULL) != (out != NULL)) return 0;
    if (args->batch <= 0 || args->out_h <= 0 || args->out_w <= 0 || args->out_c <= 0 || args->in_c <= 0
        || args->kernel_h <= 0 || args->kernel_w <= 0)
        return 0;
    /* a padding tap holds x = zx; it must be a value of the input type */
    int64_t zx = args->x_zero_point;
    int64_t padv = args->x_dtype == HW_DT_S8 ? zx + 128 : zx;
    if (padv < 0 || padv > 255) return 0;
    int64_t k = args->kernel_h * args->kernel_w * args->in_c;
    problem_t pr = {args->batch * args->out_h * args->out_w, args->out_c, k, args->x_dtype,
                    args->x_zero_point, args->w_zero_point, args->w_zp_per_channel, args->bias};
    const hw_vnni_packed_t *pk = packed_handle(args->packed_w, args->out_c, k);
    hw_vnni_packed_t *tmp = NULL;
    if (!pk) {
        tmp = pack_weights((const int8_t *)args->w, k, args->out_c, k);
        if (!tmp) return 0;
        pk = tmp;
    }
    job_t j;
    memset(&j, 0, sizeof(j));
    j.conv = args;
    j.pad_byte = (uint8_t)padv;
    int done = run_job(&j, &pr, acc, rq, out_dtype, out, acc_out, counters, args->n_threads, pk);
    hw_packed_free(tmp);
    return done;
}

#endif /* __x86_64__ */
