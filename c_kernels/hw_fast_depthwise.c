/* hw_fast_depthwise.c -- fast path for depthwise convolution (groups == in_c,
 * depth multiplier dm = out_c / in_c) on AVX-512BW.
 *
 * Reproduces the portable hw_conv2d bit for bit.  NHWC keeps channels
 * contiguous, so the vectors run ACROSS output channels and every lane keeps
 * its own tap order (ky, kx; one input channel per group), which makes the
 * result exact even for saturating accumulators:
 *   - EXACT: every narrowing in the k loop is provably the identity (the bound
 *     |start| + taps * max|product| fits the accumulator) or the accumulator
 *     wraps at <= 32 bits (wrap of the int32 sum == the chain of wraps) and no
 *     acc events are requested: int32 lanes, VPMADDWD + VPADDD.
 *   - S16: acc_bits 16 saturate, every product fits int16: VPMULLW + VPADDSW.
 *   - S32: acc_bits 8..31 saturate: VPMADDWD + VPADDD + VPMINSD/VPMAXSD.
 * The input is first copied into a padded plane of int16 operands
 * a = x - zx (IN_MAC) or x (FOLDED), channel o holding input channel o / dm
 * and padding holding x = zx, so a tap is one aligned vector load.
 * Per output work (bias, folded term, counters, acc_out, requantisation) is in
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

#define DW_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

enum { DW_EXACT = 0, DW_S16 = 1, DW_S32 = 2 };

typedef struct {
    const hw_conv2d_args_t *a;
    int kind;
    int64_t O, Opad, PH, PW, taps;
    const int16_t *plane;      /* [batch][PH][PW][Opad] */
    const int64_t *tap_off;    /* [taps] element offsets of tap (ky, kx) */
    const void *w;             /* S16: int16 [taps][Opad]; else int32 (w', 0) pairs [taps][Opad] */
    const int32_t *start;      /* [Opad] */
    int64_t lo, hi;            /* S32 clamp range */
    int wrap_bits;             /* EXACT: narrow the int32 sum to this width by wrapping (0: exact) */
    const nw_sink_t *sink;
    const nw_count_scratch_t *cs;
    int counting;
    int32_t *rowbuf;           /* per thread: [chunks][2][out_w * Opad] int32 */
} dw_run_t;

/* One output row (b, oy): the k loop for every pixel and channel vector. */
DW_TARGET static void dw_row_s16(const dw_run_t *r, const int16_t *src, int16_t *acc_row, int16_t *ev_row)
{
    const hw_conv2d_args_t *a = r->a;
    const int16_t *w = (const int16_t *)r->w;
    const __m512i minus1 = _mm512_set1_epi16(-1);
    for (int64_t cv = 0; cv < r->Opad; cv += 32) {
        __m512i st = _mm512_loadu_si512((const void *)(r->start + cv));
        __m512i st16 = _mm512_castsi256_si512(_mm512_cvtepi32_epi16(st));
        st16 = _mm512_inserti64x4(st16, _mm512_cvtepi32_epi16(_mm512_loadu_si512((const void *)(r->start + cv + 16))), 1);
        for (int64_t ox = 0; ox < a->out_w; ox++) {
            const int16_t *px = src + ox * a->stride_w * r->Opad + cv;
            __m512i acc = st16, cnt = _mm512_setzero_si512();
            for (int64_t t = 0; t < r->taps; t++) {
                __m512i x = _mm512_loadu_si512((const void *)(px + r->tap_off[t]));
                __m512i prod = _mm512_mullo_epi16(x, _mm512_loadu_si512((const void *)(w + t * r->Opad + cv)));
                __m512i sat = _mm512_adds_epi16(acc, prod);
                if (ev_row != NULL) {
                    __mmask32 diff = _mm512_cmpneq_epi16_mask(sat, _mm512_add_epi16(acc, prod));
                    cnt = _mm512_mask_sub_epi16(cnt, diff, cnt, minus1);
                }
                acc = sat;
            }
            _mm512_storeu_si512((void *)(acc_row + ox * r->Opad + cv), acc);
            if (ev_row != NULL) _mm512_storeu_si512((void *)(ev_row + ox * r->Opad + cv), cnt);
        }
    }
}

DW_TARGET static void dw_row_s32(const dw_run_t *r, const int16_t *src, int32_t *acc_row, int32_t *ev_row)
{
    const hw_conv2d_args_t *a = r->a;
    const int32_t *w = (const int32_t *)r->w;
    const __m512i lo = _mm512_set1_epi32((int32_t)r->lo), hi = _mm512_set1_epi32((int32_t)r->hi);
    const __m512i minus1 = _mm512_set1_epi32(-1);
    const int exact = r->kind == DW_EXACT;
    for (int64_t cv = 0; cv < r->Opad; cv += 16) {
        __m512i st = _mm512_loadu_si512((const void *)(r->start + cv));
        for (int64_t ox = 0; ox < a->out_w; ox++) {
            const int16_t *px = src + ox * a->stride_w * r->Opad + cv;
            __m512i acc = st, cnt = _mm512_setzero_si512();
            for (int64_t t = 0; t < r->taps; t++) {
                /* sign-extended a as an int16 pair (a, sign) times (w', 0) = a * w' */
                __m512i x = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(px + r->tap_off[t])));
                __m512i prod = _mm512_madd_epi16(x, _mm512_loadu_si512((const void *)(w + t * r->Opad + cv)));
                __m512i sum = _mm512_add_epi32(acc, prod);
                if (exact) {
                    acc = sum;
                } else {
                    __m512i cl = _mm512_max_epi32(_mm512_min_epi32(sum, hi), lo);
                    if (ev_row != NULL) {
                        __mmask16 diff = _mm512_cmpneq_epi32_mask(sum, cl);
                        cnt = _mm512_mask_sub_epi32(cnt, diff, cnt, minus1);
                    }
                    acc = cl;
                }
            }
            _mm512_storeu_si512((void *)(acc_row + ox * r->Opad + cv), acc);
            if (ev_row != NULL) _mm512_storeu_si512((void *)(ev_row + ox * r->Opad + cv), cnt);
        }
    }
}

/* Epilogue of one output row; fast when only acc_out is wanted. */
static void dw_finish_row(const dw_run_t *r, int64_t row0, const void *acc_row, const void *ev_row, nw_counts_t *cnt)
{
    const hw_conv2d_args_t *a = r->a;
    int s16 = r->kind == DW_S16;
    const nw_sink_t *sink = r->sink;
    int simple = cnt == NULL && sink->rq == NULL && sink->terms->spec->bias_first && r->wrap_bits == 0;
    for (int64_t ox = 0; ox < a->out_w; ox++) {
        int64_t row = row0 + ox;
        if (simple) {
            if (sink->acc_out == NULL) continue;
            int64_t *dst = sink->acc_out + row * r->O;
            if (s16) {
                const int16_t *v = (const int16_t *)acc_row + ox * r->Opad;
                for (int64_t o = 0; o < r->O; o++) dst[o] = v[o];
            } else {
                const int32_t *v = (const int32_t *)acc_row + ox * r->Opad;
                for (int64_t o = 0; o < r->O; o++) dst[o] = v[o];
            }
            continue;
        }
        for (int64_t o = 0; o < r->O; o++) {
            int64_t v, e = 0;
            if (s16) {
                v = ((const int16_t *)acc_row)[ox * r->Opad + o];
                if (ev_row != NULL) e = ((const int16_t *)ev_row)[ox * r->Opad + o];
            } else {
                v = ((const int32_t *)acc_row)[ox * r->Opad + o];
                if (ev_row != NULL) e = ((const int32_t *)ev_row)[ox * r->Opad + o];
            }
            if (r->wrap_bits) v = hw_wrap_s64(v, r->wrap_bits);
            if (cnt != NULL) cnt->acc_events[o] += e;
            nw_finish_one(sink, row, o, v, cnt);
        }
    }
}

static void dw_task(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const dw_run_t *r = (const dw_run_t *)ctx;
    const hw_conv2d_args_t *a = r->a;
    nw_counts_t cnt_storage, *cnt = NULL;
    if (r->cs != NULL) {
        cnt_storage = nw_count_scratch_get(r->cs, thread_index);
        cnt = &cnt_storage;
    }
    int64_t rowlen = a->out_w * r->Opad;
    int32_t *acc_row = r->rowbuf + (int64_t)thread_index * 2 * rowlen;
    int32_t *ev_row = r->counting ? acc_row + rowlen : NULL;
    for (int64_t task = begin; task < end; task++) {
        int64_t b = task / a->out_h, oy = task - b * a->out_h;
        const int16_t *src = r->plane + ((b * r->PH + oy * a->stride_h) * r->PW) * r->Opad;
        if (r->kind == DW_S16) dw_row_s16(r, src, (int16_t *)acc_row, (int16_t *)ev_row);
        else dw_row_s32(r, src, acc_row, ev_row);
        dw_finish_row(r, task * a->out_w, acc_row, ev_row, cnt);
    }
}

/* Build the padded operand plane; returns the range of a (incl. padding). */
static void dw_plane(const hw_conv2d_args_t *a, int64_t dm, int64_t Opad, int64_t PH, int64_t PW, int32_t sub,
                     int16_t *plane, nw_range_t *range)
{
    int16_t pad = (int16_t)(a->x_zero_point - sub);
    int any_pad = a->pad_top || a->pad_left || a->pad_bottom || a->pad_right;
    *range = nw_range_empty();
    if (any_pad) nw_range_add(range, pad);
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    int64_t C = a->in_c, O = a->out_c;
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t y = 0; y < PH; y++) {
            int16_t *dst = plane + ((b * PH + y) * PW) * Opad;
            int64_t iy = y - a->pad_top;
            for (int64_t x = 0; x < PW; x++, dst += Opad) {
                int64_t ix = x - a->pad_left;
                if (iy < 0 || iy >= a->in_h || ix < 0 || ix >= a->in_w) {
                    for (int64_t o = 0; o < O; o++) dst[o] = pad;
                } else {
                    int64_t base = ((b * a->in_h + iy) * a->in_w + ix) * C;
                    if (dm == 1 && a->x_dtype == HW_DT_U8) {
                        const uint8_t *s = (const uint8_t *)a->x + base;
                        for (int64_t o = 0; o < O; o++) {
                            int32_t v = (int32_t)s[o] - sub;
                            lo = v < lo ? v : lo;
                            hi = v > hi ? v : hi;
                            dst[o] = (int16_t)v;
                        }
                    } else if (dm == 1 && a->x_dtype == HW_DT_S8) {
                        const int8_t *s = (const int8_t *)a->x + base;
                        for (int64_t o = 0; o < O; o++) {
                            int32_t v = (int32_t)s[o] - sub;
                            lo = v < lo ? v : lo;
                            hi = v > hi ? v : hi;
                            dst[o] = (int16_t)v;
                        }
                    } else {
                        for (int64_t o = 0; o < O; o++) {
                            int32_t v = nw_load(a->x_dtype, a->x, base + o / dm) - sub;
                            lo = v < lo ? v : lo;
                            hi = v > hi ? v : hi;
                            dst[o] = (int16_t)v;   /* range checked before use */
                        }
                    }
                }
                for (int64_t o = O; o < Opad; o++) dst[o] = 0;
            }
        }
    if (lo <= hi) {
        nw_range_add(range, lo);
        nw_range_add(range, hi);
    }
}

static int dw_features_ok(void)
{
    /* TEMPORARY until hw_dispatch.c detects features (fastvnni branch). */
    return __builtin_cpu_supports("avx512bw");
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
    if (a->batch < 1 || a->out_h < 1 || a->out_w < 1) return 0;
    if (a->pad_top < 0 || a->pad_left < 0 || a->pad_bottom < 0 || a->pad_right < 0) return 0;
    if (acc->acc_bits < 8 || acc->acc_bits > 64) return 0;
    int64_t PH = a->in_h + a->pad_top + a->pad_bottom, PW = a->in_w + a->pad_left + a->pad_right;
    if ((a->out_h - 1) * a->stride_h + (a->kernel_h - 1) * a->dilation_h >= PH) return 0;
    if ((a->out_w - 1) * a->stride_w + (a->kernel_w - 1) * a->dilation_w >= PW) return 0;
    int64_t O = a->out_c, dm = a->out_c / a->in_c, taps = a->kernel_h * a->kernel_w;
    if (taps > 4096) return 0;
    if (a->bias != NULL)
        for (int64_t o = 0; o < O; o++)
            if (a->bias[o] > NW_TERM_LIMIT || a->bias[o] < -NW_TERM_LIMIT) return 0;

    /* weights w'[o][t] */
    nw_range_t wrange = nw_range_empty();
    int32_t *wd = (int32_t *)malloc((size_t)(O * taps) * sizeof(int32_t));
    if (wd == NULL) return 0;
    for (int64_t o = 0; o < O; o++) {
        int32_t z = nw_zw(a->w_zero_point, a->w_zp_per_channel, o);
        for (int64_t t = 0; t < taps; t++) {
            wd[o * taps + t] = nw_load(a->w_dtype, a->w, o * taps + t) - z;
            nw_range_add(&wrange, wd[o * taps + t]);
        }
    }
    int in_mac = acc->input_zero_point == HW_ZP_IN_MAC;
    int32_t sub = in_mac ? a->x_zero_point : 0;
    int64_t Opad = (O + 31) / 32 * 32;
    int16_t *plane = (int16_t *)malloc((size_t)(a->batch * PH * PW * Opad) * sizeof(int16_t));
    int64_t *fold = in_mac ? NULL : (int64_t *)malloc((size_t)O * sizeof(int64_t));
    int32_t *start = (int32_t *)calloc((size_t)Opad, sizeof(int32_t));
    int64_t *start_events = (int64_t *)calloc((size_t)O, sizeof(int64_t));
    int64_t *tap_off = (int64_t *)malloc((size_t)taps * sizeof(int64_t));
    void *wp = NULL;
    int32_t *rowbuf = NULL;
    int ok = plane != NULL && (in_mac || fold != NULL) && start != NULL && start_events != NULL && tap_off != NULL;
    int kind = -1, wrap_bits = 0;
    nw_terms_t terms = {acc, a->bias, fold};
    nw_range_t arange = nw_range_empty();
    if (ok) dw_plane(a, dm, Opad, PH, PW, sub, plane, &arange);
    if (ok && nw_range_fits(arange, 16) && nw_range_fits(wrange, 16)) {
        nw_range_t prod = nw_range_mul(arange, wrange);
        int64_t pmax = nw_range_absmax(prod);
        /* group stage: a group of g products is the identity when any sum of g fits */
        int64_t gmax = pmax * acc->group;
        int group_id = acc->group_bits >= 64 || gmax <= hw_max_s(acc->group_bits);
        if (fold != NULL)
            for (int64_t o = 0; o < O; o++) {
                int64_t s = 0;
                for (int64_t t = 0; t < taps; t++) s += wd[o * taps + t];
                fold[o] = -(int64_t)a->x_zero_point * s;
            }
        int64_t smax = 0;
        for (int64_t o = 0; o < O; o++) {
            int64_t s = nw_start_value(&terms, o, &start_events[o]);
            int64_t as = s < 0 ? -s : s;
            if (as > smax) smax = as;
            start[o] = (int32_t)s;   /* used only when it fits (checked below) */
        }
        int64_t lim = hw_max_s(acc->acc_bits) < INT32_MAX ? hw_max_s(acc->acc_bits) : INT32_MAX;
        int want_events = counters != NULL && counters->acc_events != NULL;
        int sat = acc->acc_overflow == HW_OVERFLOW_SATURATE;
        if (group_id && smax + taps * pmax <= lim) {
            kind = DW_EXACT;   /* nothing in the k loop can narrow */
        } else if (group_id && !sat && acc->acc_bits <= 32 && !want_events) {
            kind = DW_EXACT;   /* wrap: the int32 sum wrapped to acc_bits is the chain of wraps */
            wrap_bits = acc->acc_bits < 32 ? acc->acc_bits : 0;
        } else if (acc->group == 1 && group_id && sat && acc->acc_bits == 16 && nw_range_fits(prod, 16) &&
                   taps < 32767) {
            kind = DW_S16;
        } else if (acc->group == 1 && group_id && sat && acc->acc_bits <= 31 &&
                   ((int64_t)1 << (acc->acc_bits - 1)) + pmax <= INT32_MAX) {
            kind = DW_S32;
        }
    }
    if (kind < 0) ok = 0;
    int chunks = hw_parallel_chunks(a->batch * a->out_h, a->n_threads);
    if (ok) {
        size_t esz = kind == DW_S16 ? 2 : 4;
        wp = calloc((size_t)(taps * Opad), esz);
        rowbuf = (int32_t *)malloc((size_t)(chunks * 2 * a->out_w * Opad) * sizeof(int32_t));
        ok = wp != NULL && rowbuf != NULL;
    }
    if (ok) {
        for (int64_t t = 0; t < taps; t++)
            for (int64_t o = 0; o < O; o++) {
                int32_t v = wd[o * taps + t];
                if (kind == DW_S16) ((int16_t *)wp)[t * Opad + o] = (int16_t)v;
                else ((int32_t *)wp)[t * Opad + o] = (int32_t)(uint16_t)(int16_t)v;
            }
        for (int64_t ky = 0; ky < a->kernel_h; ky++)
            for (int64_t kx = 0; kx < a->kernel_w; kx++)
                tap_off[ky * a->kernel_w + kx] = (ky * a->dilation_h * PW + kx * a->dilation_w) * Opad;
        nw_sink_t sink = {&terms, rq, out_dtype, out, acc_out, O};
        nw_count_scratch_t cs;
        int want_counts = counters != NULL;
        if (want_counts && !nw_count_scratch_init(&cs, chunks, O)) ok = 0;
        if (ok) {
            dw_run_t run = {a, kind, O, Opad, PH, PW, taps, plane, tap_off, wp, start,
                            hw_min_s(acc->acc_bits < 32 ? acc->acc_bits : 32),
                            hw_max_s(acc->acc_bits < 32 ? acc->acc_bits : 32), wrap_bits, &sink,
                            want_counts ? &cs : NULL, want_counts && counters->acc_events != NULL, rowbuf};
            hw_parallel_for(a->batch * a->out_h, chunks, dw_task, &run);
            if (want_counts) {
                nw_count_scratch_reduce(&cs, counters, start_events, a->batch * a->out_h * a->out_w);
                nw_count_scratch_free(&cs);
            }
        }
    }
    free(wd);
    free(plane);
    free(fold);
    free(start);
    free(start_events);
    free(tap_off);
    free(wp);
    free(rowbuf);
    return ok;
}

#endif
