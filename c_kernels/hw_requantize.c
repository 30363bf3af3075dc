/* STUB: accumulator -> output. */
#include "hw_kernels.h"
hw_status_t hw_requantize_s64(const int64_t *acc, int64_t rows, int64_t cols,
                              const hw_requant_spec_t *spec, hw_dtype_t out_dtype, void *out,
                              hw_counters_t *counters)
{ (void)acc; (void)rows; (void)cols; (void)spec; (void)out_dtype; (void)out; (void)counters; return HW_ERR_UNSUPPORTED; }
