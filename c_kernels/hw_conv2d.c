/* hw_conv2d.c -- the portable 2-D convolution, NHWC activations x[batch, in_h,
 * in_w, in_c], weights w[out_c, kernel_h, kernel_w, in_c / groups], output
 * [batch, out_h, out_w, out_c].
 *
 * Output channel o belongs to group g = o / (out_c / groups) and reads input
 * channels g * Cg .. g * Cg + Cg - 1 (Cg = in_c / groups); depthwise is
 * groups == in_c (depth multiplier out_c / in_c).  For output pixel (oy, ox)
 * the accumulation sequence is k = (ky * kernel_w + kx) * Cg + ci (ky, then kx,
 * then ci fastest), with the input tap at
 *   iy = oy * stride_h - pad_top + ky * dilation_h,  ix = ox * stride_w - pad_left + kx * dilation_w;
 * a tap outside the input holds x = x_zero_point and stays in the sequence, so
 * padding never shifts the grouping of later taps.  Each output's accumulator
 * then follows hw_accumulate.h exactly as hw_gemm does (one GEMM row per pixel
 * and group).  out_h = (in_h + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1)
 * / stride_h + 1 (floor), likewise out_w; both must be >= 1 and equal the
 * values passed.  Threads split the output pixels; results are identical for
 * any n_threads. */
#include "hw_kernels.h"
#include "hw_dispatch.h"
#include "hw_parallel.h"
#include "hw_accumulate.h"
#include "hw_kernel_util.h"

typedef struct {
    const hw_conv2d_args_t *args;
    const hw_accum_spec_t *spec;
    const hw_requant_spec_t *rq;
    hw_dtype_t out_dtype;
    void *out;
    int64_t *acc_out;
    const hw_weights_t *w;
    const int64_t *corr;           /* [out_c] */
    const int64_t *corr_events;    /* [out_c] */
    int64_t K;                     /* kernel_h * kernel_w * Cg */
    int32_t *patches;              /* [chunks][groups * K]: one pixel's taps, per group */
    int16_t *patches16;            /* the same as int16, or NULL when values may not fit */
    int64_t *abs_sums;             /* [chunks][groups] sums of |patch| */
    int64_t *blocks;               /* [chunks][groups][n_blocks] per-block sums of |patch| */
    int64_t n_blocks;              /* ceil(K / HW_ACC_BLOCK) */
    hw_counter_scratch_t *scratch;
} conv_ctx_t;

/* Gather the taps of output pixel (b, oy, ox) into patch[g * K + k] (value
 * x - zx for IN_MAC, raw x for FOLDED; padding = zx before that subtraction). */
static void gather_patch(const conv_ctx_t *c, int64_t b, int64_t oy, int64_t ox, int32_t *patch)
{
    const hw_conv2d_args_t *a = c->args;
    const int64_t C = a->in_c, Cg = C / a->groups, K = c->K;
    const int32_t sub = c->spec->input_zero_point == HW_ZP_IN_MAC ? a->x_zero_point : 0;
    const int32_t pad_value = a->x_zero_point - sub;
    for (int64_t ky = 0; ky < a->kernel_h; ky++) {
        int64_t iy = oy * a->stride_h - a->pad_top + ky * a->dilation_h;
        for (int64_t kx = 0; kx < a->kernel_w; kx++) {
            int64_t ix = ox * a->stride_w - a->pad_left + kx * a->dilation_w;
            int inside = iy >= 0 && iy < a->in_h && ix >= 0 && ix < a->in_w;
            int64_t base = inside ? ((b * a->in_h + iy) * a->in_w + ix) * C : 0;
            int64_t tap = (ky * a->kernel_w + kx) * Cg;
            for (int64_t ci = 0; ci < C; ci++) {
                int32_t v = inside ? hw_load_operand(a->x, a->x_dtype, base + ci) - sub : pad_value;
                patch[(ci / Cg) * K + tap + ci % Cg] = v;
            }
        }
    }
}

static void conv_pixels(void *p, int64_t begin, int64_t end, int thread)
{
    const conv_ctx_t *c = (const conv_ctx_t *)p;
    const hw_conv2d_args_t *a = c->args;
    const int64_t K = c->K, O = a->out_c, Og = O / a->groups;
    int32_t *patch = c->patches + (int64_t)thread * a->groups * K;
    int16_t *patch16 = c->patches16 ? c->patches16 + (int64_t)thread * a->groups * K : 0;
    int64_t *blocks = c->blocks + (int64_t)thread * a->groups * c->n_blocks;
    int64_t *abs_sum = c->abs_sums + (int64_t)thread * a->groups;
    int64_t *cnt[4] = {0, 0, 0, 0};
    if (c->scratch)
        for (int i = 0; i < 4; i++) cnt[i] = hw_scratch_slot(c->scratch, thread, i);

    for (int64_t pix = begin; pix < end; pix++) {
        int64_t ox = pix % a->out_w, oy = (pix / a->out_w) % a->out_h, b = pix / (a->out_w * a->out_h);
        gather_patch(c, b, oy, ox, patch);
        if (patch16)
            for (int64_t i = 0; i < a->groups * K; i++) patch16[i] = (int16_t)patch[i];
        for (int64_t g = 0; g < a->groups; g++)
            hw_acc_row_stats(patch + g * K, K, blocks + g * c->n_blocks, abs_sum + g);
        for (int64_t o = 0; o < O; o++) {
            int64_t g = o / Og;
            int64_t gev = 0, aev = 0;
            hw_acc_row_t row = {patch + g * K, patch16 ? patch16 + g * K : 0, abs_sum[g], blocks + g * c->n_blocks};
            hw_acc_wrow_t wrow = {c->w->wz + o * K, c->w->wz16 ? c->w->wz16 + o * K : 0, c->w->wmax[o]};
            int64_t acc = hw_acc_output(&row, &wrow, K, c->spec, c->corr[o], c->corr_events[o], &gev, &aev);
            int64_t idx = pix * O + o;
            if (c->acc_out) c->acc_out[idx] = acc;
            int changed = 0;
            if (c->rq) {
                int32_t ch = c->rq->n_channels > 1 ? (int32_t)o : 0;
                hw_store_output(c->out, c->out_dtype, idx, hw_requantize_one_at(acc, ch, (uint64_t)idx, c->rq, &changed));
            }
            if (cnt[0]) {
                int64_t aa = hw_acc_abs(acc);
                cnt[HW_CNT_GROUP][o] += gev;
                cnt[HW_CNT_ACC][o] += aev;
                cnt[HW_CNT_OUT][o] += changed != 0;
                if (aa > cnt[HW_CNT_MAXABS][o]) cnt[HW_CNT_MAXABS][o] = aa;
            }
        }
    }
}

/* out = (in + pad_a + pad_b - dilation * (kernel - 1) - 1) / stride + 1, or -1
 * when the dilated kernel does not fit the padded input.  Arguments already
 * checked positive / non-negative and below 2^31, so nothing overflows. */
static int64_t conv_out_size(int64_t in, int64_t pad_a, int64_t pad_b, int64_t kernel, int64_t dilation,
                             int64_t stride)
{
    int64_t span = in + pad_a + pad_b - dilation * (kernel - 1) - 1;
    return span < 0 ? -1 : span / stride + 1;
}

static hw_status_t conv_check(const hw_conv2d_args_t *a, const hw_accum_spec_t *acc, int64_t *K)
{
    const int64_t lim = INT32_MAX;
    int32_t lo, hi;
    int64_t t;
    if (!a || hw_accum_spec_check(acc) != HW_OK) return HW_ERR_ARG;
    if (!a->x || !a->w) return HW_ERR_ARG;
    int64_t pos[] = {a->batch, a->in_h, a->in_w, a->in_c, a->out_h, a->out_w, a->out_c, a->kernel_h,
                     a->kernel_w, a->stride_h, a->stride_w, a->dilation_h, a->dilation_w, a->groups};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i] < 1 || pos[i] > lim) return HW_ERR_ARG;
    int64_t pads[] = {a->pad_top, a->pad_left, a->pad_bottom, a->pad_right};
    for (size_t i = 0; i < 4; i++)
        if (pads[i] < 0 || pads[i] > lim) return HW_ERR_ARG;
    if (a->in_c % a->groups != 0 || a->out_c % a->groups != 0) return HW_ERR_ARG;
    if (conv_out_size(a->in_h, a->pad_top, a->pad_bottom, a->kernel_h, a->dilation_h, a->stride_h) != a->out_h)
        return HW_ERR_ARG;
    if (conv_out_size(a->in_w, a->pad_left, a->pad_right, a->kernel_w, a->dilation_w, a->stride_w) != a->out_w)
        return HW_ERR_ARG;
    /* every element count the kernel indexes must fit int64 and size_t */
    if (!hw_mul_size(a->kernel_h, a->kernel_w, K) || !hw_mul_size(*K, a->in_c / a->groups, K) || *K > lim)
        return HW_ERR_ARG;
    if (!hw_mul_size(a->batch, a->in_h, &t) || !hw_mul_size(t, a->in_w, &t) || !hw_mul_size(t, a->in_c, &t))
        return HW_ERR_ARG;
    if (!hw_mul_size(a->batch, a->out_h, &t) || !hw_mul_size(t, a->out_w, &t) || !hw_mul_size(t, a->out_c, &t))
        return HW_ERR_ARG;
    if (!hw_mul_size(a->out_c, *K, &t) || !hw_mul_size(*K, a->groups, &t)) return HW_ERR_ARG;
    if (!hw_operand_range(a->x_dtype, &lo, &hi)) return HW_ERR_ARG;
    if (a->x_zero_point < lo || a->x_zero_point > hi) return HW_ERR_ARG;
    if (!hw_operand_range(a->w_dtype, &lo, &hi)) return HW_ERR_ARG;
    if (a->w_zp_per_channel != 0 && a->w_zp_per_channel != 1) return HW_ERR_ARG;
    if (a->w_zero_point) {
        int64_t nz = a->w_zp_per_channel ? a->out_c : 1;
        for (int64_t i = 0; i < nz; i++)
            if (a->w_zero_point[i] < lo || a->w_zero_point[i] > hi) return HW_ERR_ARG;
    }
    if (a->n_threads < 1) return HW_ERR_ARG;
    return HW_OK;
}

hw_status_t hw_conv2d(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                      const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                      int64_t *acc_out, hw_counters_t *counters)
{
    int64_t K = 0;
    hw_status_t st = conv_check(args, acc, &K);
    if (st != HW_OK) return st;
    st = hw_output_args_check(rq, out_dtype, out, args->out_c);
    if (st != HW_OK) return st;
    if (hw_conv2d_fast(args, acc, rq, out_dtype, out, acc_out, counters)) return HW_OK;

    const int64_t O = args->out_c, G = args->groups;
    const int64_t pixels = args->batch * args->out_h * args->out_w;
    const int chunks = hw_parallel_chunks(pixels, args->n_threads);
    hw_weights_t w;
    st = hw_weights_prepare(args->w, args->w_dtype, O, K, K, args->w_zero_point, args->w_zp_per_channel, &w);
    if (st != HW_OK) return st;

    int64_t *corr = (int64_t *)malloc((size_t)O * 2 * sizeof(int64_t));
    int32_t *patches = (int32_t *)malloc((size_t)chunks * (size_t)G * (size_t)K * sizeof(int32_t));
    int64_t *abs_sums = (int64_t *)malloc((size_t)chunks * (size_t)G * sizeof(int64_t));
    const int64_t n_blocks = (K + HW_ACC_BLOCK - 1) / HW_ACC_BLOCK;
    int64_t *blocks = (int64_t *)malloc((size_t)chunks * (size_t)G * (size_t)n_blocks * sizeof(int64_t));
    int32_t lo = 0, hi = 0;
    hw_operand_range(args->x_dtype, &lo, &hi);   /* valid: checked above */
    int32_t sub = acc->input_zero_point == HW_ZP_IN_MAC ? args->x_zero_point : 0;
    int16_t *patches16 = 0;
    if (w.wz16 && hw_fits_int16(lo, hi, sub, args->x_zero_point - sub))   /* optional speed-up */
        patches16 = (int16_t *)malloc((size_t)chunks * (size_t)G * (size_t)K * sizeof(int16_t));
    hw_counter_scratch_t scratch = {0, O};
    int want_counters = counters && (counters->group_events || counters->acc_events ||
                                     counters->out_events || counters->max_abs_acc);
    if (want_counters) scratch.buf = (int64_t *)calloc((size_t)chunks * 4 * (size_t)O, sizeof(int64_t));
    if (!corr || !patches || !abs_sums || !blocks || (want_counters && !scratch.buf)) {
        st = HW_ERR_NOMEM;
        goto done;
    }
    for (int64_t o = 0; o < O; o++) {
        int64_t ev = 0;
        corr[o] = hw_acc_correction(acc, args->x_zero_point, w.wsum[o], args->bias ? args->bias[o] : 0, &ev);
        corr[O + o] = ev;
    }
    conv_ctx_t ctx = {args, acc, rq, out_dtype, out, acc_out, &w, corr, corr + O, K, patches, patches16,
                      abs_sums, blocks, n_blocks, want_counters ? &scratch : 0};
    int used = hw_parallel_for(pixels, args->n_threads, conv_pixels, &ctx);
    if (want_counters) hw_scratch_reduce(&scratch, used, counters);
done:
    free(scratch.buf);
    free(blocks);
    free(abs_sums);
    free(patches16);
    free(patches);
    free(corr);
    hw_weights_free(&w);
    return st;
}
