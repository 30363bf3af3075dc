/* hw_dispatch.c -- run-time ISA detection and the order in which fast paths
 * are tried.  CPU detection is STUB (reports no features) until the fast-path
 * work lands. */
#include <stddef.h>
#include "hw_kernels.h"
#include "hw_dispatch.h"

static uint32_t feature_limit = 0xffffffffu;

uint32_t hw_cpu_features(void) { return 0; }

uint32_t hw_set_feature_limit(uint32_t mask)
{
    uint32_t old = feature_limit;
    feature_limit = mask;
    return old;
}

uint32_t hw_active_features(void) { return hw_cpu_features() & feature_limit; }

int hw_gemm_fast(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                 const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                 int64_t *acc_out, hw_counters_t *counters)
{
    if (hw_active_features() == 0) return 0;
    return hw_gemm_fast_vnni(args, acc, rq, out_dtype, out, acc_out, counters)
        || hw_gemm_fast_narrow(args, acc, rq, out_dtype, out, acc_out, counters);
}

int hw_conv2d_fast(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                   const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                   int64_t *acc_out, hw_counters_t *counters)
{
    if (hw_active_features() == 0) return 0;
    return hw_conv2d_fast_depthwise(args, acc, rq, out_dtype, out, acc_out, counters)
        || hw_conv2d_fast_vnni(args, acc, rq, out_dtype, out, acc_out, counters)
        || hw_conv2d_fast_narrow(args, acc, rq, out_dtype, out, acc_out, counters);
}
