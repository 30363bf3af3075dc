/* hw_requantize.c -- requantisation spec validation and the array entry point.
 * The arithmetic itself lives in hw_requantize.h (shared with every kernel). */
#include <math.h>
#include <stddef.h>
#include "hw_kernels.h"
#include "hw_requantize.h"

static int is_fixed_point_scheme(hw_requant_scheme_t scheme)
{
    return scheme == HW_REQ_DOUBLE_ROUNDING || scheme == HW_REQ_SINGLE_ROUNDING ||
           scheme == HW_REQ_SRDHM_HALF_UP || scheme == HW_REQ_NEON_SINGLE ||
           scheme == HW_REQ_INT64_REDUCED;
}

static hw_status_t check_shifts(const hw_requant_spec_t *spec)
{
    int lo, hi;
    hw_requant_shift_range(spec->scheme, &lo, &hi);
    if (spec->shift == NULL) return HW_ERR_ARG;
    for (int32_t c = 0; c < spec->n_channels; c++)
        if (spec->shift[c] < lo || spec->shift[c] > hi) return HW_ERR_ARG;
    return HW_OK;
}

hw_status_t hw_requant_spec_check(const hw_requant_spec_t *spec)
{
    if (spec == NULL) return HW_ERR_ARG;
    if ((int)spec->scheme < HW_REQ_DOUBLE_ROUNDING || (int)spec->scheme > HW_REQ_SHIFT_ONLY) return HW_ERR_ARG;
    if ((int)spec->rounding < HW_ROUND_FLOOR || (int)spec->rounding > HW_ROUND_STOCHASTIC) return HW_ERR_ARG;
    if (spec->out_overflow != HW_OVERFLOW_WRAP && spec->out_overflow != HW_OVERFLOW_SATURATE) return HW_ERR_ARG;
    if (spec->n_channels < 1) return HW_ERR_ARG;

    if (is_fixed_point_scheme(spec->scheme)) {
        if (spec->multiplier == NULL) return HW_ERR_ARG;
        for (int32_t c = 0; c < spec->n_channels; c++)
            if (spec->multiplier[c] < 0) return HW_ERR_ARG;
        if (check_shifts(spec) != HW_OK) return HW_ERR_ARG;
    } else if (spec->scheme == HW_REQ_SHIFT_ONLY) {
        if (check_shifts(spec) != HW_OK) return HW_ERR_ARG;
    } else if (spec->scheme == HW_REQ_FLOAT32) {
        if (spec->scale_f32 == NULL) return HW_ERR_ARG;
        for (int32_t c = 0; c < spec->n_channels; c++)
            if (!isfinite(spec->scale_f32[c])) return HW_ERR_ARG;
    } else {
        if (spec->scale_f64 == NULL) return HW_ERR_ARG;
        for (int32_t c = 0; c < spec->n_channels; c++)
            if (!isfinite(spec->scale_f64[c])) return HW_ERR_ARG;
    }

    if (spec->out_signed != 0 && spec->out_signed != 1) return HW_ERR_ARG;
    int64_t fmt_min, fmt_max;
    if (spec->out_signed) {
        if (spec->out_bits < 2 || spec->out_bits > 32) return HW_ERR_ARG;
        fmt_min = hw_min_s(spec->out_bits);
        fmt_max = hw_max_s(spec->out_bits);
    } else {
        if (spec->out_bits < 1 || spec->out_bits > 31) return HW_ERR_ARG;
        fmt_min = 0;
        fmt_max = ((int64_t)1 << spec->out_bits) - 1;
    }
    if (spec->out_min > spec->out_max) return HW_ERR_ARG;
    if (spec->out_min < fmt_min || spec->out_max > fmt_max) return HW_ERR_ARG;
    return HW_OK;
}

/* Range of values an output dtype can hold; 0 for a dtype that is not an output. */
static int dtype_range(hw_dtype_t dt, int64_t *lo, int64_t *hi)
{
    switch (dt) {
    case HW_DT_S8: *lo = INT8_MIN; *hi = INT8_MAX; return 1;
    case HW_DT_U8: *lo = 0; *hi = UINT8_MAX; return 1;
    case HW_DT_S16: *lo = INT16_MIN; *hi = INT16_MAX; return 1;
    case HW_DT_S32: *lo = INT32_MIN; *hi = INT32_MAX; return 1;
    default: return 0;
    }
}

static void store(void *out, int64_t i, hw_dtype_t dt, int64_t v)
{
    switch (dt) {
    case HW_DT_S8: ((int8_t *)out)[i] = (int8_t)v; break;
    case HW_DT_U8: ((uint8_t *)out)[i] = (uint8_t)v; break;
    case HW_DT_S16: ((int16_t *)out)[i] = (int16_t)v; break;
    default: ((int32_t *)out)[i] = (int32_t)v; break;
    }
}

/* Requantise acc[rows, cols] (row-major) into out[rows, cols] of out_dtype.
 * Channel = column when spec->n_channels > 1 (then n_channels == cols).
 * Stochastic index = row * cols + col.  counters (may be NULL; any member may
 * be NULL, each has `cols` entries): out_events[col] += outputs the output
 * stage changed; max_abs_acc[col] = max(itself, |acc|) (|INT64_MIN| counts as
 * INT64_MAX).  group_events / acc_events are not touched. */
hw_status_t hw_requantize_s64(const int64_t *acc, int64_t rows, int64_t cols,
                              const hw_requant_spec_t *spec, hw_dtype_t out_dtype, void *out,
                              hw_counters_t *counters)
{
    int64_t lo, hi;
    if (rows < 0 || cols < 0) return HW_ERR_ARG;
    if (cols > 0 && rows > INT64_MAX / cols) return HW_ERR_ARG;
    if (hw_requant_spec_check(spec) != HW_OK) return HW_ERR_ARG;
    if (spec->n_channels > 1 && spec->n_channels != cols) return HW_ERR_ARG;
    if (!dtype_range(out_dtype, &lo, &hi)) return HW_ERR_ARG;
    if (spec->out_min < lo || spec->out_max > hi) return HW_ERR_ARG;
    if (rows * cols == 0) return HW_OK;
    if (acc == NULL || out == NULL) return HW_ERR_ARG;

    int64_t *events = counters ? counters->out_events : NULL;
    int64_t *max_abs = counters ? counters->max_abs_acc : NULL;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            int64_t i = r * cols + c;
            int changed = 0;
            int64_t y = hw_requantize_one_at(acc[i], (int32_t)c, (uint64_t)i, spec, &changed);
            store(out, i, out_dtype, y);
            if (events) events[c] += changed;
            if (max_abs) {
                int64_t a = acc[i] == INT64_MIN ? INT64_MAX : (acc[i] < 0 ? -acc[i] : acc[i]);
                if (a > max_abs[c]) max_abs[c] = a;
            }
        }
    }
    return HW_OK;
}
