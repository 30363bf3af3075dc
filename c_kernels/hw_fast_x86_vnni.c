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
 *          mod 2^32).  u8 weights are stored as w - 128 (s8) with zero point
 *          zw - 128, which leaves every (w - zw) unchanged.  Needs AVX512_VNNI
 *          (zmm tiles) or AVX-VNNI (ymm tiles).
 *  PAIRSAT the x86-avx2 profile: group 2, group_bits 16 saturate, acc 32 wrap,
 *          raw u8 activations (zero point folded, or 0), s8 weights without
 *          zero points.  VPMADDUBSW computes sat16(a[2i]w[2i] + a[2i+1]w[2i+1])
 *          for exactly the documented pairs (2i, 2i+1); VPMADDWD with ones and
 *          VPADDD (or VPDPWSSD by 1) add the pair sums exactly mod 2^32;
 *          CC = bias - zx * CS.  Needs AVX512BW (zmm) or AVX2 (ymm).
 *
 * Anything else (s16 activations, narrow saturating accumulators that the
 * bound cannot clear, grouped conv, depthwise) returns 0 and the portable
 * kernel (or another fast path) runs.
 *
 * Packing: a call without a usable handle (hw_packed.h) decides whether it
 * takes the call from a range scan of the weights BEFORE packing them, so a
 * declined call (e.g. a saturating accumulator no bound clears) costs no copy.
 * Layout: weights are packed once (hw_pack_gemm_b / hw_pack_conv2d_w) into
 * panels of 64 output channels; within a panel, for each k4 = k/4, 256 bytes:
 * four zmm of 16 channels x 4 consecutive k.  Activations are read in place
 * when they already are u8 rows of a multiple of 4 bytes (GEMM), or through a
 * tap offset table into the input with its padding materialised once (conv,
 * in_c % 4 == 0; s8 flipped to u8, padding taps = zx).  Otherwise (s8 GEMM, K or
 * in_c not a multiple of 4, weight zero points: row sums needed) each panel of
 * MP rows is copied into a u8 buffer (conv: im2col of those rows in (ky, kx, ci)
 * order), K padded with zeros to a multiple of 4 (zero weights there, so the
 * padding adds nothing).  A 6 x 64 tile lives in 24 zmm accumulators (AVX-512)
 * or in 12 ymm per 16 columns (AVX-VNNI) for the whole K loop.
 *
 * Epilogue: + CC (and - zw*RS), acc_out (sign-extended), then requantisation
 * vectorised for FLOAT32 / DOUBLE_ROUNDING / SRDHM_HALF_UP / SINGLE_ROUNDING
 * (hw_fast_x86_requant.h; 256-bit paths: FLOAT32 only), every other scheme
 * through hw_requantize_one_at.
 *
 * Counters: max_abs_acc and out_events exactly (scalar epilogue when asked);
 * group_events are 0 in EXACT mode; acc_events are 0 when the bound holds.
 * Calls asking for events this file cannot count (acc_events with 32-bit wrap,
 * group_events with PAIRSAT) are declined.
 *
 * Threads: tasks are (row panel, column block) pairs, claimed by one worker
 * per thread from a shared counter; each output is computed by exactly one task
 * with the same instructions, so bits never depend on n_threads or on which
 * worker ran which task.
 */
#include <stdlib.h>
#include <string.h>
#include "hw_kernels.h"
#include "hw_dispatch.h"
#include "hw_packed.h"
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
    int32_t wmin, wmax;    /* range of the stored weight values */
    int32_t wflip;         /* 0x80: u8 weights stored as w - 128 (s8), else 0 */
    int64_t *colsum;       /* N entries: sum_k of the stored w[n, k] (exact) */
    int8_t *data;          /* npad/64 panels of (kpad/4) x 256 bytes, 64-byte aligned */
} hw_vnni_packed_t;

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* One allocation: header, column sums, aligned panel data.  u8 weights
 * (flip 0x80) are stored as the s8 value w - 128 that VPDPBUSD takes; the
 * call then uses the weight zero point zw - 128, so (w - zw) is unchanged. */
static hw_vnni_packed_t *pack_weights(const uint8_t *b, int64_t ldb, int64_t n, int64_t k, uint8_t flip)
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
    p->wflip = flip;
    p->colsum = (int64_t *)(mem + head);
    uintptr_t d = (uintptr_t)(mem + head + sums);
    p->data = (int8_t *)(d + ((64 - d % 64) % 64));
    /* Within a panel, the 256 bytes of one k4 are simply 64 channels x 4 bytes
     * (channel jj at 4*jj).  Transposed in blocks of 64 channels x 64 k-bytes,
     * so both the rows read and the 4 KiB written stay in L1; every word is
     * written once (zeros past K and for the channels past N). */
    const uint32_t flip4 = (uint32_t)flip * 0x01010101u;
    for (int64_t pn = 0; pn < npad / 64; pn++) {
        uint8_t *panel = (uint8_t *)p->data + pn * kpad * 64;
        for (int64_t k0 = 0; k0 < kpad; k0 += 64) {
            const int64_t k1 = k0 + 64 < kpad ? k0 + 64 : kpad;
            for (int64_t jj = 0; jj < 64; jj++) {
                const int64_t j = pn * 64 + jj;
                const uint8_t *row = j < n ? b + j * ldb : b;
                uint8_t *dst = panel + jj * 4;
                for (int64_t kk = k0; kk < k1; kk += 4) {
                    uint32_t word = 0;
                    if (j < n && kk + 4 <= k) {
                        memcpy(&word, row + kk, 4);
                        word ^= flip4;
                    } else if (j < n) {
                        uint8_t last[4] = {0, 0, 0, 0};
                        for (int64_t i = 0; kk + i < k; i++) last[i] = (uint8_t)(row[kk + i] ^ flip);
                        memcpy(&word, last, 4);
                    }
                    memcpy(dst + kk * 64, &word, 4);
                }
            }
        }
    }
    /* statistics of the stored s8 values (sum, min, max), in loops simple
     * enough to vectorise: s8 rows as int8, u8 rows as uint8 minus 128 */
    int32_t wmin = 127, wmax = -128;
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *row = b + j * ldb;
        int64_t sum = 0;
        int32_t lo, hi;
        if (!flip) {
            const int8_t *r = (const int8_t *)row;
            int8_t l = 127, h = -128;
            for (int64_t kk = 0; kk < k; kk++) {
                l = r[kk] < l ? r[kk] : l;
                h = r[kk] > h ? r[kk] : h;
            }
            for (int64_t k0 = 0; k0 < k; k0 += 65536) {   /* int32 partial sums cannot overflow */
                const int64_t k1 = k0 + 65536 < k ? k0 + 65536 : k;
                int32_t part = 0;
                for (int64_t kk = k0; kk < k1; kk++) part += r[kk];
                sum += part;
            }
            lo = l;
            hi = h;
        } else {
            uint8_t l = 255, h = 0;
            for (int64_t kk = 0; kk < k; kk++) {
                l = row[kk] < l ? row[kk] : l;
                h = row[kk] > h ? row[kk] : h;
            }
            for (int64_t k0 = 0; k0 < k; k0 += 65536) {
                const int64_t k1 = k0 + 65536 < k ? k0 + 65536 : k;
                int32_t part = 0;
                for (int64_t kk = k0; kk < k1; kk++) part += row[kk];
                sum += part;
            }
            sum -= 128 * k;
            lo = (int32_t)l - 128;
            hi = (int32_t)h - 128;
        }
        p->colsum[j] = sum;
        if (lo < wmin) wmin = lo;
        if (hi > wmax) wmax = hi;
    }
    p->wmin = wmin;
    p->wmax = wmax;
    return p;
}

void hw_vnni_pack_free(void *packed)
{
    hw_vnni_packed_t *p = (hw_vnni_packed_t *)packed;
    if (!p || p->magic != HW_VNNI_PACK_MAGIC) return;
    p->magic = 0;
    free(p);
}

static int pack_supported(void)
{
#if defined(__x86_64__)
    return (hw_active_features() & (HW_ISA_AVX512BW | HW_ISA_AVX2)) != 0;
#else
    return 0;
#endif
}

void *hw_vnni_pack(hw_dtype_t dt, const void *b, int64_t ldb, int64_t n, int64_t k, int *nomem)
{
    *nomem = 0;
    if ((dt != HW_DT_S8 && dt != HW_DT_U8) || !pack_supported() || !b || n <= 0 || k <= 0 || ldb < k)
        return NULL;
    void *p = pack_weights((const uint8_t *)b, ldb, n, k, dt == HW_DT_U8 ? 0x80 : 0);
    *nomem = p == NULL;
    return p;
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

/* The caller's handle if it was packed for an [n, k] weight matrix, else NULL
 * (then the call packs its own copy). */
static const hw_vnni_packed_t *packed_handle(const void *h, int64_t n, int64_t k, int32_t flip)
{
    const hw_packed_t *c = hw_packed_handle(h);
    const hw_vnni_packed_t *p = c ? (const hw_vnni_packed_t *)c->vnni : NULL;
    if (!p || p->magic != HW_VNNI_PACK_MAGIC || p->n != n || p->k != k || p->wflip != flip) return NULL;
    return p;
}


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

static int problem_has_zw(const problem_t *p)
{
    for (int64_t i = 0; i < p->n; i++)
        if (zw_of(p, i) != 0) return 1;
    return 0;
}

/* *bounded = 1 when no accumulator step can overflow (events are then 0). */
static int classify(const problem_t *p, const hw_accum_spec_t *acc, int32_t wmin, int32_t wmax,
                    uint32_t feats, int *bounded, int *wide)
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

    const uint32_t vnni512 = HW_ISA_AVX512BW | HW_ISA_AVX512_VNNI, vnni256 = HW_ISA_AVX2 | HW_ISA_AVX_VNNI;
    *wide = (feats & vnni512) == vnni512;
    if (group_exact && (*wide || (feats & vnni256) == vnni256)
        && (*bounded || (acc->acc_bits == 32 && acc->acc_overflow == HW_OVERFLOW_WRAP)))
        return MODE_EXACT;
    *wide = (feats & HW_ISA_AVX512BW) != 0;
    if ((feats & (HW_ISA_AVX512BW | HW_ISA_AVX2)) && acc->group == 2 && acc->group_bits == 16
        && acc->group_overflow == HW_OVERFLOW_SATURATE && acc->acc_bits == 32
        && acc->acc_overflow == HW_OVERFLOW_WRAP && p->a_dtype == HW_DT_U8 && !has_zw
        && (!in_mac || zx == 0)) {
        *bounded = 0;
        return MODE_PAIRSAT;
    }
    *bounded = 0;
    return MODE_NONE;
}

/* The packed weights for a call (the caller's handle or a fresh copy in *tmp)
 * and, for u8 weights, the shifted zero points zw - 128 in *zw_u8 (n entries)
 * that make the stored w - 128 give the same (w - zw). */
/* Range of the stored s8 values (w, or w - 128 for u8 weights), as pack_weights
 * records it in wmin / wmax. */
static void stored_weight_range(const uint8_t *b, int64_t ldb, int64_t n, int64_t k, uint8_t flip, int32_t *wmin,
                                int32_t *wmax)
{
    int32_t lo = 127, hi = -128;
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *row = b + j * ldb;
        if (!flip) {
            const int8_t *r = (const int8_t *)row;
            int8_t l = 127, h = -128;
            for (int64_t kk = 0; kk < k; kk++) {
                l = r[kk] < l ? r[kk] : l;
                h = r[kk] > h ? r[kk] : h;
            }
            lo = l < lo ? l : lo;
            hi = h > hi ? h : hi;
        } else {
            uint8_t l = 255, h = 0;
            for (int64_t kk = 0; kk < k; kk++) {
                l = row[kk] < l ? row[kk] : l;
                h = row[kk] > h ? row[kk] : h;
            }
            lo = (int32_t)l - 128 < lo ? (int32_t)l - 128 : lo;
            hi = (int32_t)h - 128 > hi ? (int32_t)h - 128 : hi;
        }
    }
    *wmin = lo;
    *wmax = hi;
}

/* 0 when the call asks for events this file cannot count in `mode`. */
static int counters_countable(const hw_counters_t *counters, int mode, int bounded)
{
    if (!counters) return 1;
    if (counters->acc_events && !bounded) return 0;
    if (counters->group_events && mode != MODE_EXACT) return 0;
    return 1;
}

static const hw_vnni_packed_t *call_weights(const void *w, hw_dtype_t dt, int64_t ldw, const void *handle,
                                            problem_t *pr, const hw_accum_spec_t *acc,
                                            const hw_counters_t *counters, hw_vnni_packed_t **tmp,
                                            int32_t **zw_u8)
{
    const int32_t flip = dt == HW_DT_U8 ? 0x80 : 0;
    *tmp = NULL;
    *zw_u8 = NULL;
    if (flip) {
        *zw_u8 = (int32_t *)malloc((size_t)pr->n * sizeof(int32_t));
        if (!*zw_u8) return NULL;
        for (int64_t i = 0; i < pr->n; i++) (*zw_u8)[i] = zw_of(pr, i) - 128;
        pr->zw = *zw_u8;
        pr->zw_per_channel = 1;
    }
    const hw_vnni_packed_t *pk = packed_handle(handle, pr->n, pr->k, flip);
    if (pk) return pk;
    /* Decide before packing: a declined call (e.g. a saturating accumulator the
     * bound cannot clear) must not pay for a copy it never reads.  The range
     * scan is the only weight pass classify needs, and far cheaper than packing. */
    int32_t wmin, wmax;
    stored_weight_range((const uint8_t *)w, ldw, pr->n, pr->k, (uint8_t)flip, &wmin, &wmax);
    int bounded = 0, wide = 0;
    int mode = classify(pr, acc, wmin, wmax, hw_active_features(), &bounded, &wide);
    if (mode == MODE_NONE || !counters_countable(counters, mode, bounded)) return NULL;
    *tmp = pack_weights((const uint8_t *)w, ldw, pr->n, pr->k, (uint8_t)flip);
    return *tmp;
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
    s->mem = hw_rq_plan_tables(&s->v, rq, npad);
    return s->mem != NULL;
}

/* ---- the job: one GEMM-shaped problem over (row panel, column block) tasks ---- */

typedef struct {
    int mode;
    int has_vnni;            /* PAIRSAT: VPDPWSSD available */
    int wide;                /* 1: AVX-512 tiles and epilogue; 0: 256-bit tiles, C epilogue */
    int64_t m, n, k, kpad, nc, n_nb;
    const hw_vnni_packed_t *pk;
    /* activations: GEMM rows or conv im2col rows */
    const hw_conv2d_args_t *conv;
    const uint8_t *a;
    int64_t lda;
    uint8_t flip;            /* 0x80 for s8 (x + 128 as u8), else 0 */
    uint8_t pad_byte;        /* conv padding tap: zx as a' */
    int need_rowsum;
    /* direct: rows read in place (GEMM: a + m*lda; conv: the padded input at
     * the output pixel's top-left tap) instead of being copied to abuf */
    int direct;
    const uint8_t *src;
    int64_t src_h, src_w, src_c;   /* conv: padded input geometry */
    const int64_t *seg_off;        /* segment offsets: one (0) or one per tap */
    int64_t nseg, seg_k4;
    int64_t seg_one;
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
    int64_t n_tasks;         /* (row panel, column block) pairs, row panel major */
    int64_t next_task;       /* shared counter the workers claim tasks from */
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

/* The register tiles read row r's k4-th group of 4 activation bytes at
 * rows[r] + seg_off[s] + 4*j for segment s = k4 / seg_k4, j = k4 % seg_k4:
 * one segment of the whole row for GEMM / im2col rows, one segment per tap
 * (ky, kx) for a convolution read straight from its (padded) input.  The
 * packed weights advance continuously, 256 bytes per k4. */
#define HW_TILE_DECLARE                                                       \
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00;    \
    __m512i c10 = c00, c11 = c00, c12 = c00, c13 = c00;                       \
    __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00;                       \
    __m512i c30 = c00, c31 = c00, c32 = c00, c33 = c00;                       \
    __m512i c40 = c00, c41 = c00, c42 = c00, c43 = c00;                       \
    __m512i c50 = c00, c51 = c00, c52 = c00, c53 = c00;
#define HW_TILE_LOOP(STEP)                                                    \
    for (int64_t sg = 0; sg < nseg; sg++) {                                   \
        const uint8_t *a0 = rows[0] + seg_off[sg], *a1 = rows[1] + seg_off[sg]; \
        const uint8_t *a2 = rows[2] + seg_off[sg], *a3 = rows[3] + seg_off[sg]; \
        const uint8_t *a4 = rows[4] + seg_off[sg], *a5 = rows[5] + seg_off[sg]; \
        for (int64_t kk = 0; kk < seg_k4; kk++, b += 256) {                   \
            __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64); \
            __m512i b2 = _mm512_loadu_si512(b + 128), b3 = _mm512_loadu_si512(b + 192); \
            int32_t v;                                                        \
            __m512i av;                                                       \
            STEP(a0, c00, c01, c02, c03)                                      \
            STEP(a1, c10, c11, c12, c13)                                      \
            STEP(a2, c20, c21, c22, c23)                                      \
            STEP(a3, c30, c31, c32, c33)                                      \
            STEP(a4, c40, c41, c42, c43)                                      \
            STEP(a5, c50, c51, c52, c53)                                      \
        }                                                                     \
    }
#define HW_STORE(r, x0, x1, x2, x3)                        \
    _mm512_store_si512((void *)(c + (r) * 64), x0);        \
    _mm512_store_si512((void *)(c + (r) * 64 + 16), x1);   \
    _mm512_store_si512((void *)(c + (r) * 64 + 32), x2);   \
    _mm512_store_si512((void *)(c + (r) * 64 + 48), x3);
#define HW_TILE_STORE                                      \
    HW_STORE(0, c00, c01, c02, c03)                        \
    HW_STORE(1, c10, c11, c12, c13)                        \
    HW_STORE(2, c20, c21, c22, c23)                        \
    HW_STORE(3, c30, c31, c32, c33)                        \
    HW_STORE(4, c40, c41, c42, c43)                        \
    HW_STORE(5, c50, c51, c52, c53)

/* 6 x 64 tile, exact u8 x s8 dot products (VPDPBUSD): 24 zmm accumulators. */
HW_TGT_VNNI static void tile_dpbusd(const uint8_t *const rows[MR], const int64_t *seg_off, int64_t nseg,
                                    int64_t seg_k4, const int8_t *b, int32_t *c)
{
#define HW_DOT(ap, x0, x1, x2, x3)                 \
    memcpy(&v, (ap) + 4 * kk, 4);                  \
    av = _mm512_set1_epi32(v);                     \
    x0 = _mm512_dpbusd_epi32(x0, av, b0);          \
    x1 = _mm512_dpbusd_epi32(x1, av, b1);          \
    x2 = _mm512_dpbusd_epi32(x2, av, b2);          \
    x3 = _mm512_dpbusd_epi32(x3, av, b3);
    HW_TILE_DECLARE
    HW_TILE_LOOP(HW_DOT)
    HW_TILE_STORE
#undef HW_DOT
}

/* 6 x 64 tile, x86-avx2 pair saturation: sat16 pair sums (VPMADDUBSW), then
 * exact widening (VPMADDWD by 1) and wrapping int32 adds. */
HW_TGT_AVX512 static void tile_maddubs(const uint8_t *const rows[MR], const int64_t *seg_off, int64_t nseg,
                                       int64_t seg_k4, const int8_t *b, int32_t *c)
{
    const __m512i ones = _mm512_set1_epi16(1);
#define HW_PAIR(x, bv) x = _mm512_add_epi32(x, _mm512_madd_epi16(_mm512_maddubs_epi16(av, bv), ones));
#define HW_PAIRS(ap, x0, x1, x2, x3)               \
    memcpy(&v, (ap) + 4 * kk, 4);                  \
    av = _mm512_set1_epi32(v);                     \
    HW_PAIR(x0, b0) HW_PAIR(x1, b1) HW_PAIR(x2, b2) HW_PAIR(x3, b3)
    HW_TILE_DECLARE
    HW_TILE_LOOP(HW_PAIRS)
    HW_TILE_STORE
#undef HW_PAIRS
#undef HW_PAIR
}

/* 256-bit variants for CPUs without AVX-512: the 6 x 64 tile as eight 6 x 8
 * column groups (ymm; group h reads bytes 32h..32h+31 of each 256-byte k4
 * block, i.e. columns 8h..8h+7 of the panel). */
#define HW_TGT_AVXVNNI __attribute__((target("avx2,avxvnni")))
#define HW_TGT_AVX2 __attribute__((target("avx2")))
#define HW_YMM_TILE(STEP)                                                     \
    for (int h = 0; h < 8; h++) {                                             \
        __m256i y0 = _mm256_setzero_si256(), y1 = y0, y2 = y0, y3 = y0, y4 = y0, y5 = y0; \
        const int8_t *bk = b + 32 * h;                                        \
        for (int64_t sg = 0; sg < nseg; sg++) {                               \
            const uint8_t *a0 = rows[0] + seg_off[sg], *a1 = rows[1] + seg_off[sg]; \
            const uint8_t *a2 = rows[2] + seg_off[sg], *a3 = rows[3] + seg_off[sg]; \
            const uint8_t *a4 = rows[4] + seg_off[sg], *a5 = rows[5] + seg_off[sg]; \
            for (int64_t kk = 0; kk < seg_k4; kk++, bk += 256) {              \
                const __m256i bv = _mm256_loadu_si256((const __m256i *)bk);   \
                int32_t v;                                                    \
                __m256i av;                                                   \
                STEP(a0, y0) STEP(a1, y1) STEP(a2, y2) STEP(a3, y3) STEP(a4, y4) STEP(a5, y5) \
            }                                                                 \
        }                                                                     \
        _mm256_storeu_si256((__m256i *)(c + 0 * NR + 8 * h), y0);             \
        _mm256_storeu_si256((__m256i *)(c + 1 * NR + 8 * h), y1);             \
        _mm256_storeu_si256((__m256i *)(c + 2 * NR + 8 * h), y2);             \
        _mm256_storeu_si256((__m256i *)(c + 3 * NR + 8 * h), y3);             \
        _mm256_storeu_si256((__m256i *)(c + 4 * NR + 8 * h), y4);             \
        _mm256_storeu_si256((__m256i *)(c + 5 * NR + 8 * h), y5);             \
    }

/* AVX-VNNI (VEX VPDPBUSD on ymm): exact u8 x s8 dot products, the tile as
 * four 6 x 16 column groups in 12 ymm accumulators (group h: bytes 64h..64h+63
 * of each k4 block = columns 16h..16h+15). */
HW_TGT_AVXVNNI static void tile_dpbusd_ymm(const uint8_t *const rows[MR], const int64_t *seg_off, int64_t nseg,
                                           int64_t seg_k4, const int8_t *b, int32_t *c)
{
    for (int h = 0; h < 4; h++) {
        __m256i y00 = _mm256_setzero_si256(), y01 = y00, y10 = y00, y11 = y00, y20 = y00, y21 = y00;
        __m256i y30 = y00, y31 = y00, y40 = y00, y41 = y00, y50 = y00, y51 = y00;
        const int8_t *bk = b + 64 * h;
        for (int64_t sg = 0; sg < nseg; sg++) {
            const uint8_t *a0 = rows[0] + seg_off[sg], *a1 = rows[1] + seg_off[sg];
            const uint8_t *a2 = rows[2] + seg_off[sg], *a3 = rows[3] + seg_off[sg];
            const uint8_t *a4 = rows[4] + seg_off[sg], *a5 = rows[5] + seg_off[sg];
            for (int64_t kk = 0; kk < seg_k4; kk++, bk += 256) {
                const __m256i b0 = _mm256_loadu_si256((const __m256i *)bk);
                const __m256i b1 = _mm256_loadu_si256((const __m256i *)(bk + 32));
                int32_t v;
                __m256i av;
#define HW_DOT(ap, x0, x1)                         \
                memcpy(&v, (ap) + 4 * kk, 4);      \
                av = _mm256_set1_epi32(v);         \
                x0 = _mm256_dpbusd_avx_epi32(x0, av, b0); \
                x1 = _mm256_dpbusd_avx_epi32(x1, av, b1);
                HW_DOT(a0, y00, y01) HW_DOT(a1, y10, y11) HW_DOT(a2, y20, y21)
                HW_DOT(a3, y30, y31) HW_DOT(a4, y40, y41) HW_DOT(a5, y50, y51)
#undef HW_DOT
            }
        }
#define HW_ST(r, x0, x1)                                                       \
        _mm256_storeu_si256((__m256i *)(c + (r) * NR + 16 * h), x0);           \
        _mm256_storeu_si256((__m256i *)(c + (r) * NR + 16 * h + 8), x1);
        HW_ST(0, y00, y01) HW_ST(1, y10, y11) HW_ST(2, y20, y21)
        HW_ST(3, y30, y31) HW_ST(4, y40, y41) HW_ST(5, y50, y51)
#undef HW_ST
    }
}

/* AVX2: x86-avx2 pair saturation, VPMADDUBSW + VPMADDWD(1) + VPADDD on ymm. */
HW_TGT_AVX2 static void tile_maddubs_ymm(const uint8_t *const rows[MR], const int64_t *seg_off, int64_t nseg,
                                         int64_t seg_k4, const int8_t *b, int32_t *c)
{
    const __m256i ones = _mm256_set1_epi16(1);
#define HW_PAIRS(ap, y)                            \
    memcpy(&v, (ap) + 4 * kk, 4);                  \
    av = _mm256_set1_epi32(v);                     \
    y = _mm256_add_epi32(y, _mm256_madd_epi16(_mm256_maddubs_epi16(av, bv), ones));
    HW_YMM_TILE(HW_PAIRS)
#undef HW_PAIRS
}

/* The same pair saturation with VPDPWSSD(acc, pairs, 1) = wrap_32(acc + p0 + p1)
 * in place of VPMADDWD + VPADDD: one instruction fewer per 64 bytes. */
HW_TGT_VNNI static void tile_maddubs_dpwssd(const uint8_t *const rows[MR], const int64_t *seg_off, int64_t nseg,
                                            int64_t seg_k4, const int8_t *b, int32_t *c)
{
    const __m512i ones = _mm512_set1_epi16(1);
#define HW_PAIR(x, bv) x = _mm512_dpwssd_epi32(x, _mm512_maddubs_epi16(av, bv), ones);
#define HW_PAIRS(ap, x0, x1, x2, x3)               \
    memcpy(&v, (ap) + 4 * kk, 4);                  \
    av = _mm512_set1_epi32(v);                     \
    HW_PAIR(x0, b0) HW_PAIR(x1, b1) HW_PAIR(x2, b2) HW_PAIR(x3, b3)
    HW_TILE_DECLARE
    HW_TILE_LOOP(HW_PAIRS)
    HW_TILE_STORE
#undef HW_PAIRS
#undef HW_PAIR
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

/* Counters and scalar requantisation of one final accumulator a (output
 * channel c, flat output index idx); acc_out is written by the caller. */
static void finish_one(const job_t *j, int ti, int64_t a, int64_t idx, int64_t c)
{
    if (j->cnt_max) {
        int64_t *mx = j->cnt_max + (int64_t)ti * j->n + c;
        int64_t aa = a < 0 ? -a : a;
        if (aa > *mx) *mx = aa;
    }
    if (j->rq->v.kind == RQV_NONE) return;
    /* index = flat output position, as hw_requantize_s64 (stochastic rounding) */
    int changed = 0;
    int64_t o = hw_requantize_one_at(a, (int32_t)c, (uint64_t)idx, j->rq->spec, &changed);
    store_out(j->out, j->out_dtype, idx, o);
    if (j->cnt_ev) j->cnt_ev[(int64_t)ti * j->n + c] += changed != 0;
}

/* Plain-C epilogue for the 256-bit paths: the same sums mod 2^32. */
static void epilogue_portable(const job_t *j, int ti, const int32_t *tile, int64_t m0, int64_t rows,
                              int64_t n0, int64_t ncols, const int32_t *rs)
{
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < ncols; i++) {
            const int64_t c = n0 + i, idx = (m0 + r) * j->n + c;
            uint32_t u = (uint32_t)tile[r * NR + i] + (uint32_t)j->cc[c];
            if (j->zwcol) u -= (uint32_t)j->zwcol[c] * (uint32_t)rs[r];
            const int64_t a = hw_wrap_s64((int64_t)u, 32);
            if (j->acc_out) j->acc_out[idx] = a;
            finish_one(j, ti, a, idx, c);
        }
    }
}

/* 256-bit epilogue: sums mod 2^32, acc_out, and FLOAT32 requantisation
 * (rounding explicit in VROUNDPS; the int -> float conversion and the multiply
 * round to nearest even under the default MXCSR, as the scalar C code does). */
HW_TGT_AVX2 static void epilogue_avx2(const job_t *j, int ti, const int32_t *tile, int64_t m0, int64_t rows,
                                      int64_t n0, int64_t ncols, const int32_t *rs)
{
    (void)ti;
    const hw_rq_plan_t *p = &j->rq->v;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t s8 = 0; s8 < ncols; s8 += 8) {
            const int64_t col = n0 + s8, nl = ncols - s8 < 8 ? ncols - s8 : 8, idx = (m0 + r) * j->n + col;
            __m256i v = _mm256_loadu_si256((const __m256i *)(tile + r * NR + s8));
            v = _mm256_add_epi32(v, _mm256_loadu_si256((const __m256i *)(j->cc + col)));
            if (j->zwcol)
                v = _mm256_sub_epi32(v, _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)(j->zwcol + col)),
                                                           _mm256_set1_epi32(rs[r])));
            int32_t lane[8];
            _mm256_storeu_si256((__m256i *)lane, v);
            if (j->acc_out)
                for (int64_t i = 0; i < nl; i++) j->acc_out[idx + i] = lane[i];
            if (p->kind != RQV_F32) continue;
            __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(p->scale + col));
            f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(p->f_lo)), _mm256_set1_ps(p->f_hi));
            switch (p->f32_rounding) {
            case HW_ROUND_FLOOR: f = _mm256_round_ps(f, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); break;
            case HW_ROUND_CEIL: f = _mm256_round_ps(f, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC); break;
            case HW_ROUND_TRUNC: f = _mm256_round_ps(f, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); break;
            default: f = _mm256_round_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); break;
            }
            /* integral and within [out_min - zp, out_max - zp]: the truncating conversion is exact */
            _mm256_storeu_si256((__m256i *)lane, _mm256_add_epi32(_mm256_cvttps_epi32(f), _mm256_set1_epi32(p->zp)));
            for (int64_t i = 0; i < nl; i++) store_out(j->out, j->out_dtype, idx + i, lane[i]);
        }
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
                for (int64_t i = 0; i < nl; i++) finish_one(j, ti, lane[i], idx + i, col + i);
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

/* Start of row m's activations when they are read in place. */
static const uint8_t *direct_row(const job_t *j, int64_t m)
{
    if (!j->conv) return j->src + m * j->lda;
    const hw_conv2d_args_t *c = j->conv;
    int64_t ox = m % c->out_w, t = m / c->out_w, oy = t % c->out_h, b = t / c->out_h;
    return j->src + ((b * j->src_h + oy * c->stride_h) * j->src_w + ox * c->stride_w) * j->src_c;
}

/* One worker per thread; workers claim tasks from a shared counter, so a
 * thread slowed by another process does less of the work.  Which worker runs
 * a task never changes its bits: every output is computed by one task with the
 * same instructions, and counters are per-worker integer sums / maxima. */
static void run_tasks(void *ctx, int64_t begin, int64_t end, int ti)
{
    job_t *j = (job_t *)ctx;
    (void)begin;
    (void)end;
    uint8_t *abuf = j->abuf + (int64_t)ti * MP * j->kpad;
    int32_t *rs = j->rsbuf + (int64_t)ti * MP;
    int32_t tile[MR * NR] __attribute__((aligned(64)));
    int64_t packed_panel = -1;
    for (;;) {
        const int64_t t = __atomic_fetch_add(&j->next_task, 1, __ATOMIC_RELAXED);
        if (t >= j->n_tasks) break;
        const int64_t mp = t / j->n_nb, nb = t % j->n_nb;
        const int64_t m0 = mp * MP, rows = j->m - m0 < MP ? j->m - m0 : MP;
        if (!j->direct && mp != packed_panel) {
            pack_rows(j, m0, rows, abuf, rs);
            packed_panel = mp;
        }
        const int64_t nbeg = nb * j->nc, nend = nbeg + j->nc < j->n ? nbeg + j->nc : j->n;
        for (int64_t r0 = 0; r0 < rows; r0 += MR) {
            const int64_t tr = rows - r0 < MR ? rows - r0 : MR;
            const uint8_t *rp[MR];
            for (int64_t i = 0; i < MR; i++)   /* rows past the end repeat the first (discarded) */
                rp[i] = j->direct ? direct_row(j, m0 + r0 + (i < tr ? i : 0)) : abuf + (r0 + i) * j->kpad;
            for (int64_t p = nbeg; p < nend; p += NR) {
                const int8_t *bp = j->pk->data + (p / NR) * j->kpad * NR;
                const int64_t nc = nend - p < NR ? nend - p : NR;
                if (!j->wide) {
                    if (j->mode == MODE_EXACT)
                        tile_dpbusd_ymm(rp, j->seg_off, j->nseg, j->seg_k4, bp, tile);
                    else
                        tile_maddubs_ymm(rp, j->seg_off, j->nseg, j->seg_k4, bp, tile);
                    if (j->scalar_epilogue)
                        epilogue_portable(j, ti, tile, m0 + r0, tr, p, nc, rs + r0);
                    else
                        epilogue_avx2(j, ti, tile, m0 + r0, tr, p, nc, rs + r0);
                    continue;
                }
                if (j->mode == MODE_EXACT)
                    tile_dpbusd(rp, j->seg_off, j->nseg, j->seg_k4, bp, tile);
                else if (j->has_vnni)
                    tile_maddubs_dpwssd(rp, j->seg_off, j->nseg, j->seg_k4, bp, tile);
                else
                    tile_maddubs(rp, j->seg_off, j->nseg, j->seg_k4, bp, tile);
                epilogue(j, ti, tile, m0 + r0, tr, p, nc, rs + r0);
            }
        }
    }
}

/* Shared driver for GEMM and conv once the problem is GEMM-shaped. */
static int run_job(job_t *j, const problem_t *pr, const hw_accum_spec_t *acc, const hw_requant_spec_t *rq,
                   hw_dtype_t out_dtype, void *out, int64_t *acc_out, hw_counters_t *counters,
                   int n_threads, const hw_vnni_packed_t *pk)
{
    int bounded = 0, wide = 0;
    int mode = classify(pr, acc, pk->wmin, pk->wmax, hw_active_features(), &bounded, &wide);
    if (mode == MODE_NONE || !counters_countable(counters, mode, bounded)) return 0;
    rq_setup_t rqs;
    if (!rq_setup(&rqs, rq, out_dtype, pk->npad)) return 0;

    const int64_t n = pr->n, npad = pk->npad, kk = pr->k;
    int want_max = counters && counters->max_abs_acc, want_ev = counters && counters->out_events;
    j->mode = mode;
    j->has_vnni = (hw_active_features() & HW_ISA_AVX512_VNNI) != 0;
    j->wide = wide;
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
    j->scalar_epilogue = want_max || want_ev || rqs.v.kind == RQV_SCALAR
                         || (!wide && rqs.v.kind != RQV_NONE && rqs.v.kind != RQV_F32);

    /* Column constants CC[n] = bias - c*CS + K*c*zw (mod 2^32), c = 128*[s8] + zx;
     * PAIRSAT has zw = 0 and c = zx (u8, zx is 0 for IN_MAC). */
    const int64_t c = (pr->a_dtype == HW_DT_S8 ? 128 : 0) + (int64_t)pr->zx;
    int has_zw = problem_has_zw(pr);
    j->need_rowsum = has_zw;
    if (has_zw || !j->seg_off) {   /* row sums come from the packing pass */
        j->direct = 0;
        j->seg_one = 0;
        j->seg_off = &j->seg_one;
        j->nseg = 1;
        j->seg_k4 = pk->kpad / 4;
    }
    j->n_tasks = (int64_t)((pr->m + MP - 1) / MP) * j->n_nb;
    j->next_task = 0;
    const int64_t chunks = hw_parallel_chunks(j->n_tasks, n_threads);
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

    int used = hw_parallel_for(chunks, n_threads, run_tasks, j);

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
    if (!args || !acc || !(hw_active_features() & (HW_ISA_AVX512BW | HW_ISA_AVX2))) return 0;
    if ((args->b_dtype != HW_DT_S8 && args->b_dtype != HW_DT_U8)
        || (args->a_dtype != HW_DT_S8 && args->a_dtype != HW_DT_U8))
        return 0;
    if (args->M <= 0 || args->N <= 0 || args->K <= 0 || !args->a || !args->b) return 0;
    if ((rq != NULL) != (out != NULL)) return 0;
    problem_t pr = {args->M, args->N, args->K, args->a_dtype, args->a_zero_point,
                    args->b_zero_point, args->b_zp_per_channel, args->bias};
    hw_vnni_packed_t *tmp;
    int32_t *zw_u8;
    const hw_vnni_packed_t *pk = call_weights(args->b, args->b_dtype, args->ldb, args->packed_b, &pr, acc, counters,
                                                &tmp, &zw_u8);
    if (!pk) {
        free(zw_u8);
        return 0;
    }
    job_t j;
    memset(&j, 0, sizeof(j));
    j.a = (const uint8_t *)args->a;
    j.lda = args->lda;
    /* u8 rows with K % 4 == 0 are already in the layout the tiles read */
    if (args->a_dtype == HW_DT_U8 && args->K % 4 == 0) {
        j.direct = 1;
        j.src = j.a;
        j.seg_one = 0;
        j.seg_off = &j.seg_one;
        j.nseg = 1;
        j.seg_k4 = args->K / 4;
    }
    int done = run_job(&j, &pr, acc, rq, out_dtype, out, acc_out, counters, args->n_threads, pk);
    hw_vnni_pack_free(tmp);
    free(zw_u8);
    return done;
}

/* Read a convolution in place: the input with its padding materialised once
 * (padding taps = zx as a'; s8 flipped to u8), and one segment per tap (ky, kx)
 * at offset (ky*dh*Wp + kx*dw)*C from the output pixel's top-left corner.
 * in_c % 4 == 0, so every k4 group lies inside one tap and the k order is the
 * documented (ky, kx, ci).  Leaves j->direct = 0 when it cannot. */
static void direct_conv_setup(job_t *j, const hw_conv2d_args_t *c, uint8_t **padded, int64_t **taps)
{
    const int64_t hp = c->in_h + c->pad_top + c->pad_bottom, wp = c->in_w + c->pad_left + c->pad_right;
    const int64_t ch = c->in_c, ntap = c->kernel_h * c->kernel_w;
    const int no_pad = !c->pad_top && !c->pad_left && !c->pad_bottom && !c->pad_right;
    if (hp > ((int64_t)1 << 20) || wp > ((int64_t)1 << 20)) return;
    int64_t bytes = c->batch * hp * wp * ch;
    if (bytes > ((int64_t)1 << 32)) return;
    *taps = (int64_t *)malloc((size_t)ntap * sizeof(int64_t));
    if (!*taps) return;
    if (no_pad && !j->flip) {
        j->src = (const uint8_t *)c->x;
    } else {
        *padded = (uint8_t *)malloc((size_t)bytes + 4);
        if (!*padded) {
            free(*taps);
            *taps = NULL;
            return;
        }
        memset(*padded, j->pad_byte, (size_t)bytes);
        const uint8_t *x = (const uint8_t *)c->x;
        for (int64_t b = 0; b < c->batch; b++)
            for (int64_t y = 0; y < c->in_h; y++)
                copy_flip(*padded + ((b * hp + y + c->pad_top) * wp + c->pad_left) * ch,
                          x + (b * c->in_h + y) * c->in_w * ch, c->in_w * ch, j->flip);
        j->src = *padded;
    }
    for (int64_t ky = 0; ky < c->kernel_h; ky++)
        for (int64_t kx = 0; kx < c->kernel_w; kx++)
            (*taps)[ky * c->kernel_w + kx] = (ky * c->dilation_h * wp + kx * c->dilation_w) * ch;
    j->src_h = hp;
    j->src_w = wp;
    j->src_c = ch;
    j->seg_off = *taps;
    j->nseg = ntap;
    j->seg_k4 = ch / 4;
    j->direct = 1;
}

int hw_conv2d_fast_vnni(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                        const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                        int64_t *acc_out, hw_counters_t *counters)
{
    if (!args || !acc || !(hw_active_features() & (HW_ISA_AVX512BW | HW_ISA_AVX2))) return 0;
    if ((args->w_dtype != HW_DT_S8 && args->w_dtype != HW_DT_U8)
        || (args->x_dtype != HW_DT_S8 && args->x_dtype != HW_DT_U8))
        return 0;
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
    hw_vnni_packed_t *tmp;
    int32_t *zw_u8;
    const hw_vnni_packed_t *pk = call_weights(args->w, args->w_dtype, k, args->packed_w, &pr, acc, counters,
                                                &tmp, &zw_u8);
    if (!pk) {
        free(zw_u8);
        return 0;
    }
    job_t j;
    memset(&j, 0, sizeof(j));
    j.conv = args;
    j.pad_byte = (uint8_t)padv;
    j.flip = args->x_dtype == HW_DT_S8 ? 0x80 : 0;
    uint8_t *padded = NULL;
    int64_t *taps = NULL;
    if (args->in_c % 4 == 0 && !problem_has_zw(&pr)) direct_conv_setup(&j, args, &padded, &taps);
    int done = run_job(&j, &pr, acc, rq, out_dtype, out, acc_out, counters, args->n_threads, pk);
    free(padded);
    free(taps);
    hw_vnni_pack_free(tmp);
    free(zw_u8);
    return done;
}

#endif /* __x86_64__ */
