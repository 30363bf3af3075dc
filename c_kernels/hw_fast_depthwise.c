/* STUB: depthwise fast path; always declines. */
#include "hw_dispatch.h"
int hw_conv2d_fast_depthwise(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                             const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                             int64_t *acc_out, hw_counters_t *counters)
{ (void)args; (void)acc; (void)rq; (void)out_dtype; (void)out; (void)acc_out; (void)counters; return 0; }
