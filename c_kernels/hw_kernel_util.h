/* hw_kernel_util.h -- internal: operand access, size arithmetic, the output
 * stage and counter scratch shared by the portable kernels hw_gemm.c and
 * hw_conv2d.c.  Not read by cffi. */
#ifndef HW_KERNEL_UTIL_H
#define HW_KERNEL_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hw_types.h"
#include "hw_requantize.h"

/* a * b into *out when both are >= 0 and the product fits int64 (and size_t
 * for allocations); 0 otherwise. */
static inline int hw_mul_size(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0) return 0;
    if (a != 0 && b > INT64_MAX / a) return 0;
    if ((uint64_t)(a * b) > (uint64_t)SIZE_MAX) return 0;
    *out = a * b;
    return 1;
}

/* Range of an operand dtype; 0 when the dtype is not an operand type. */
static inline int hw_operand_range(hw_dtype_t dt, int32_t *lo, int32_t *hi)
{
    switch (dt) {
    case HW_DT_S8: *lo = -128; *hi = 127; return 1;
    case HW_DT_U8: *lo = 0; *hi = 255; return 1;
    case HW_DT_S16: *lo = -32768; *hi = 32767; return 1;
    default: return 0;
    }
}

/* Range of an output dtype (S8, U8, S16, S32); 0 for any other. */
static inline int hw_output_range(hw_dtype_t dt, int64_t *lo, int64_t *hi)
{
    switch (dt) {
    case HW_DT_S8: *lo = -128; *hi = 127; return 1;
    case HW_DT_U8: *lo = 0; *hi = 255; return 1;
    case HW_DT_S16: *lo = -32768; *hi = 32767; return 1;
    case HW_DT_S32: *lo = INT32_MIN; *hi = INT32_MAX; return 1;
    default: return 0;
    }
}

/* Element i of an operand array of dtype dt (S8, U8 or S16). */
static inline int32_t hw_load_operand(const void *p, hw_dtype_t dt, int64_t i)
{
    switch (dt) {
    case HW_DT_S8: return ((const int8_t *)p)[i];
    case HW_DT_U8: return ((const uint8_t *)p)[i];
    default: return ((const int16_t *)p)[i];
    }
}

/* Store v (already inside the output dtype's range) as element i. */
static inline void hw_store_output(void *p, hw_dtype_t dt, int64_t i, int64_t v)
{
    switch (dt) {
    case HW_DT_S8: ((int8_t *)p)[i] = (int8_t)v; break;
    case HW_DT_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case HW_DT_S16: ((int16_t *)p)[i] = (int16_t)v; break;
    default: ((int32_t *)p)[i] = (int32_t)v; break;
    }
}

/* Check the requantisation arguments shared by the kernels: rq == NULL needs
 * out == NULL; otherwise a valid spec with 1 or n_out_channels channels, a
 * non-NULL out and [out_min, out_max] inside out_dtype. */
static inline hw_status_t hw_output_args_check(const hw_requant_spec_t *rq, hw_dtype_t out_dtype,
                                               const void *out, int64_t n_out_channels)
{
    if (!rq) return out ? HW_ERR_ARG : HW_OK;
    if (!out) return HW_ERR_ARG;
    if (rq->n_channels != 1 && (int64_t)rq->n_channels != n_out_channels) return HW_ERR_ARG;
    int64_t lo, hi;
    if (!hw_output_range(out_dtype, &lo, &hi)) return HW_ERR_ARG;
    if (rq->out_min < lo || rq->out_max > hi || rq->out_min > rq->out_max) return HW_ERR_ARG;
    return hw_requant_spec_check(rq);
}

/* Weights of one kernel call, converted once: wz[c*K + k] = w[c, k] - zw[c],
 * with wsum[c] = sum_k wz and wmax[c] = max_k |wz|; wz16 is an int16 copy of
 * wz, or NULL when some value does not fit int16. */
typedef struct {
    int32_t *wz;
    int16_t *wz16;
    int64_t *wsum;
    int64_t *wmax;
} hw_weights_t;

static inline void hw_weights_free(hw_weights_t *w)
{
    free(w->wz);
    free(w->wz16);
    free(w->wsum);
    free(w->wmax);
    w->wz = 0;
    w->wz16 = 0;
    w->wsum = 0;
    w->wmax = 0;
}

/* Fill *out from weights w (rows x K, row stride ld elements, dtype dt) and
 * their zero points zp (NULL = 0; per_channel: `rows` entries, else 1), which
 * must lie in dt's range.  HW_OK, HW_ERR_ARG or HW_ERR_NOMEM. */
static inline hw_status_t hw_weights_prepare(const void *w, hw_dtype_t dt, int64_t rows, int64_t K, int64_t ld,
                                             const int32_t *zp, int32_t per_channel, hw_weights_t *out)
{
    int32_t lo, hi;
    int64_t n;
    out->wz = 0;
    out->wz16 = 0;
    out->wsum = 0;
    out->wmax = 0;
    if (!hw_operand_range(dt, &lo, &hi)) return HW_ERR_ARG;
    if (zp) {
        int64_t nz = per_channel ? rows : 1;
        for (int64_t i = 0; i < nz; i++)
            if (zp[i] < lo || zp[i] > hi) return HW_ERR_ARG;
    }
    if (!hw_mul_size(rows, K, &n) || !hw_mul_size(n, (int64_t)sizeof(int32_t), &n)) return HW_ERR_NOMEM;
    out->wz = (int32_t *)malloc((size_t)n);
    out->wsum = (int64_t *)malloc((size_t)rows * sizeof(int64_t));
    out->wmax = (int64_t *)malloc((size_t)rows * sizeof(int64_t));
    if (!out->wz || !out->wsum || !out->wmax) {
        hw_weights_free(out);
        return HW_ERR_NOMEM;
    }
    int fits16 = 1;
    for (int64_t c = 0; c < rows; c++) {
        int32_t z = zp ? zp[per_channel ? c : 0] : 0;
        int64_t sum = 0, mx = 0;
        int32_t *dst = out->wz + c * K;
        for (int64_t k = 0; k < K; k++) {
            int32_t v = hw_load_operand(w, dt, c * ld + k) - z;   /* |v| <= 65535 */
            dst[k] = v;
            sum += v;
            int64_t a = v < 0 ? -(int64_t)v : v;
            if (a > mx) mx = a;
        }
        out->wsum[c] = sum;
        out->wmax[c] = mx;
        if (mx > 32767) fits16 = 0;
    }
    if (fits16) {
        out->wz16 = (int16_t *)malloc((size_t)(n / 2));   /* n = rows * K * sizeof(int32_t) */
        if (out->wz16)   /* without it the kernels still run, on the int32 values */
            for (int64_t i = 0; i < rows * K; i++) out->wz16[i] = (int16_t)out->wz[i];
    }
    return HW_OK;
}

/* 1 when every x - sub for x in [lo, hi] (an operand dtype's range, shifted by
 * the zero point it is stored with) and the padding value fit int16. */
static inline int hw_fits_int16(int32_t lo, int32_t hi, int32_t sub, int32_t pad)
{
    int64_t a = (int64_t)lo - sub, b = (int64_t)hi - sub;
    return a >= -32767 && b <= 32767 && pad >= -32767 && pad <= 32767;
}

/* Per-thread counter scratch: 4 arrays of n entries for each of `chunks`
 * threads, reduced in thread order (sums and a max, so any order gives the
 * same bits; the fixed order keeps that obvious). */
typedef struct {
    int64_t *buf;
    int64_t n;
} hw_counter_scratch_t;

static inline int64_t *hw_scratch_slot(hw_counter_scratch_t *s, int thread, int which)
{
    return s->buf + ((int64_t)thread * 4 + which) * s->n;
}

static inline void hw_scratch_reduce(hw_counter_scratch_t *s, int chunks, hw_counters_t *c)
{
    int64_t *dst[4] = {c->group_events, c->acc_events, c->out_events, c->max_abs_acc};
    for (int which = 0; which < 4; which++) {
        if (!dst[which]) continue;
        for (int64_t i = 0; i < s->n; i++) {
            int64_t v = 0;
            for (int t = 0; t < chunks; t++) {
                int64_t x = hw_scratch_slot(s, t, which)[i];
                if (which == 3) v = x > v ? x : v;
                else v += x;
            }
            dst[which][i] = v;
        }
    }
}

#define HW_CNT_GROUP 0
#define HW_CNT_ACC 1
#define HW_CNT_OUT 2
#define HW_CNT_MAXABS 3

#endif
