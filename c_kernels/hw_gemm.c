/* hw_gemm.c -- the portable GEMM: out[m, n] = requant(acc[m, n]) with
 * acc[m, n] the accumulator of hw_accumulate.h over
 *   x_k = A[m, k] (activations, zero point a_zero_point),
 *   w_k = B[n, k] (weights, one output channel per row, zero point b_zero_point[n]),
 *   k = 0 .. K-1 in order, bias[n].
 * This is the reference every fast path must equal bit for bit; the fast
 * paths (hw_gemm_fast) are tried first and this code runs when they decline.
 * Threads split the rows m; each row's outputs and counters depend only on
 * that row, so results are identical for any n_threads. */
#include "hw_kernels.h"
#include "hw_dispatch.h"
#include "hw_parallel.h"
#include "hw_accumulate.h"
#include "hw_kernel_util.h"

typedef struct {
    const hw_gemm_args_t *args;
    const hw_accum_spec_t *spec;
    const hw_requant_spec_t *rq;
    hw_dtype_t out_dtype;
    void *out;
    int64_t *acc_out;
    const hw_weights_t *w;
    const int64_t *corr;          /* [N] correction (bias, folded zero point) */
    const int64_t *corr_events;   /* [N] acc events the correction causes per output */
    int32_t *a_rows;              /* [chunks][K] one converted row per thread */
    int16_t *a_rows16;            /* the same as int16, or NULL when values may not fit */
    int64_t *blocks;              /* [chunks][n_blocks] per-block sums of |a_k| */
    int64_t n_blocks;             /* ceil(K / HW_ACC_BLOCK) */
    hw_counter_scratch_t *scratch; /* NULL: counters not requested */
} gemm_ctx_t;

static void gemm_rows(void *p, int64_t begin, int64_t end, int thread)
{
    const gemm_ctx_t *c = (const gemm_ctx_t *)p;
    const hw_gemm_args_t *g = c->args;
    const int64_t K = g->K, N = g->N;
    const int32_t zx = c->spec->input_zero_point == HW_ZP_IN_MAC ? g->a_zero_point : 0;
    int32_t *a = c->a_rows + (int64_t)thread * K;
    int16_t *a16 = c->a_rows16 ? c->a_rows16 + (int64_t)thread * K : 0;
    int64_t *blocks = c->blocks + (int64_t)thread * c->n_blocks;
    int64_t *cnt[4] = {0, 0, 0, 0};
    if (c->scratch)
        for (int i = 0; i < 4; i++) cnt[i] = hw_scratch_slot(c->scratch, thread, i);

    for (int64_t m = begin; m < end; m++) {
        for (int64_t k = 0; k < K; k++) a[k] = hw_load_operand(g->a, g->a_dtype, m * g->lda + k) - zx;
        if (a16)
            for (int64_t k = 0; k < K; k++) a16[k] = (int16_t)a[k];
        hw_acc_row_t row = {a, a16, 0, blocks};
        hw_acc_row_stats(a, K, blocks, &row.abs_sum);
        for (int64_t n = 0; n < N; n++) {
            int64_t gev = 0, aev = 0;
            hw_acc_wrow_t wrow = {c->w->wz + n * K, c->w->wz16 ? c->w->wz16 + n * K : 0, c->w->wmax[n]};
            int64_t acc = hw_acc_output(&row, &wrow, K, c->spec, c->corr[n], c->corr_events[n], &gev, &aev);
            int64_t idx = m * N + n;
            if (c->acc_out) c->acc_out[idx] = acc;
            int changed = 0;
            if (c->rq) {
                int32_t ch = c->rq->n_channels > 1 ? (int32_t)n : 0;
                hw_store_output(c->out, c->out_dtype, idx, hw_requantize_one_at(acc, ch, (uint64_t)idx, c->rq, &changed));
            }
            if (cnt[0]) {
                int64_t aa = hw_acc_abs(acc);
                cnt[HW_CNT_GROUP][n] += gev;
                cnt[HW_CNT_ACC][n] += aev;
                cnt[HW_CNT_OUT][n] += changed != 0;
                if (aa > cnt[HW_CNT_MAXABS][n]) cnt[HW_CNT_MAXABS][n] = aa;
            }
        }
    }
}

static hw_status_t gemm_check(const hw_gemm_args_t *g, const hw_accum_spec_t *acc)
{
    int32_t lo, hi;
    int64_t t;
    if (!g || hw_accum_spec_check(acc) != HW_OK) return HW_ERR_ARG;
    if (g->M < 1 || g->N < 1 || g->K < 1) return HW_ERR_ARG;
    if (g->K > INT32_MAX) return HW_ERR_ARG;   /* keeps the folded term exact (hw_accumulate.h) */
    if (!g->a || !g->b) return HW_ERR_ARG;
    if (g->lda < g->K || g->ldb < g->K) return HW_ERR_ARG;
    if (!hw_mul_size(g->M, g->lda, &t) || !hw_mul_size(g->N, g->ldb, &t) || !hw_mul_size(g->M, g->N, &t))
        return HW_ERR_ARG;
    if (!hw_operand_range(g->a_dtype, &lo, &hi)) return HW_ERR_ARG;
    if (g->a_zero_point < lo || g->a_zero_point > hi) return HW_ERR_ARG;
    if (!hw_operand_range(g->b_dtype, &lo, &hi)) return HW_ERR_ARG;
    if (g->b_zp_per_channel != 0 && g->b_zp_per_channel != 1) return HW_ERR_ARG;
    if (g->b_zero_point) {
        int64_t nz = g->b_zp_per_channel ? g->N : 1;
        for (int64_t i = 0; i < nz; i++)
            if (g->b_zero_point[i] < lo || g->b_zero_point[i] > hi) return HW_ERR_ARG;
    }
    if (g->n_threads < 1) return HW_ERR_ARG;
    return HW_OK;
}

hw_status_t hw_gemm(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                    const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                    int64_t *acc_out, hw_counters_t *counters)
{
    hw_status_t st = gemm_check(args, acc);
    if (st != HW_OK) return st;
    st = hw_output_args_check(rq, out_dtype, out, args->N);
    if (st != HW_OK) return st;
    if (hw_gemm_fast(args, acc, rq, out_dtype, out, acc_out, counters)) return HW_OK;

    const int64_t M = args->M, N = args->N, K = args->K;
    const int chunks = hw_parallel_chunks(M, args->n_threads);
    hw_weights_t w;
    st = hw_weights_prepare(args->b, args->b_dtype, N, K, args->ldb, args->b_zero_point,
                            args->b_zp_per_channel, &w);
    if (st != HW_OK) return st;

    int64_t *corr = (int64_t *)malloc((size_t)N * 2 * sizeof(int64_t));
    int32_t *a_rows = (int32_t *)malloc((size_t)chunks * (size_t)K * sizeof(int32_t));
    int32_t lo = 0, hi = 0;
    hw_operand_range(args->a_dtype, &lo, &hi);   /* valid: checked above */
    int32_t sub = acc->input_zero_point == HW_ZP_IN_MAC ? args->a_zero_point : 0;
    int16_t *a_rows16 = 0;
    if (w.wz16 && hw_fits_int16(lo, hi, sub, 0))   /* optional: NULL just means the int32 path */
        a_rows16 = (int16_t *)malloc((size_t)chunks * (size_t)K * sizeof(int16_t));
    const int64_t n_blocks = (K + HW_ACC_BLOCK - 1) / HW_ACC_BLOCK;
    int64_t *blocks = (int64_t *)malloc((size_t)chunks * (size_t)n_blocks * sizeof(int64_t));
    hw_counter_scratch_t scratch = {0, N};
    int want_counters = counters && (counters->group_events || counters->acc_events ||
                                     counters->out_events || counters->max_abs_acc);
    if (want_counters) scratch.buf = (int64_t *)calloc((size_t)chunks * 4 * (size_t)N, sizeof(int64_t));
    if (!corr || !a_rows || !blocks || (want_counters && !scratch.buf)) {
        st = HW_ERR_NOMEM;
        goto done;
    }
    for (int64_t n = 0; n < N; n++) {
        int64_t ev = 0;
        corr[n] = hw_acc_correction(acc, args->a_zero_point, w.wsum[n], args->bias ? args->bias[n] : 0, &ev);
        corr[N + n] = ev;
    }
    gemm_ctx_t ctx = {args, acc, rq, out_dtype, out, acc_out, &w, corr, corr + N, a_rows, a_rows16, blocks,
                      n_blocks, want_counters ? &scratch : 0};
    int used = hw_parallel_for(M, args->n_threads, gemm_rows, &ctx);
    if (want_counters) hw_scratch_reduce(&scratch, used, counters);
done:
    free(scratch.buf);
    free(blocks);
    free(a_rows16);
    free(a_rows);
    free(corr);
    hw_weights_free(&w);
    return st;
}
