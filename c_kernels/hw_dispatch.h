/* hw_dispatch.h -- internal: run-time ISA selection and the fast-path hooks.
 * Not read by cffi. */
#ifndef HW_DISPATCH_H
#define HW_DISPATCH_H
#include "hw_types.h"

#define HW_ISA_AVX2 1u
#define HW_ISA_AVX512BW 2u
#define HW_ISA_AVX512_VNNI 4u
#define HW_ISA_AVX_VNNI 8u
#define HW_ISA_NEON 16u
#define HW_ISA_NEON_DOT 32u

/* Features detected on this CPU, masked by hw_set_feature_limit. */
uint32_t hw_active_features(void);

/* Entry points the portable kernels call first.  hw_dispatch.c tries the
 * specialised fast paths below in order.  Each returns 1 when it computed the whole call (bit-identical to
 * the portable kernel), 0 to let the portable kernel run.  Arguments have been
 * validated by the caller. */
int hw_gemm_fast(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                 const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                 int64_t *acc_out, hw_counters_t *counters);
int hw_conv2d_fast(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                   const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                   int64_t *acc_out, hw_counters_t *counters);

/* The specialised fast paths, each in its own file:
 *   hw_fast_x86_vnni.c   : int32-exact accumulation (group 4 / exact int32 wrap) on
 *                          AVX-512 VNNI / AVX-VNNI, and group-2 int16 pair saturation
 *                          (VPMADDUBSW) on AVX2; GEMM and conv (offset table), packing.
 *   hw_fast_x86_narrow.c : narrow saturating accumulators (16 and 24 bit), GEMM and conv.
 *   hw_fast_depthwise.c  : depthwise convolution (groups == in_c).
 * Same contract as hw_gemm_fast: 1 = done, 0 = not applicable. */
int hw_gemm_fast_vnni(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                      const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                      int64_t *acc_out, hw_counters_t *counters);
int hw_conv2d_fast_vnni(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                        const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                        int64_t *acc_out, hw_counters_t *counters);
int hw_gemm_fast_narrow(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                        const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                        int64_t *acc_out, hw_counters_t *counters);
int hw_conv2d_fast_narrow(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                          const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                          int64_t *acc_out, hw_counters_t *counters);
int hw_conv2d_fast_depthwise(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                             const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                             int64_t *acc_out, hw_counters_t *counters);

#endif
