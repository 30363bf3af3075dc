/* hw_kernels.h -- the public C API of hwsim's integer core.
 *
 * The one header cffi reads (after hw_types.h); lines starting with '#' are
 * dropped before cdef, so declarations here must not depend on macros.
 * Every function validates its arguments and returns HW_ERR_ARG rather than
 * reading out of bounds; Python validates first and names the culprit.
 */
#ifndef HW_KERNELS_H
#define HW_KERNELS_H
#include "hw_types.h"

/* ---- primitives over arrays (the same inline code the kernels use) ---- */

/* out[i] = round(x[i] / 2^shift) with `mode`, shift in [0, 63].  Exact: no
 * intermediate can overflow.  Stochastic rounding draws its bits from a
 * counter-based generator keyed by (seed, i), so results do not depend on
 * thread count or call order. */
hw_status_t hw_round_shift_s64(const int64_t *x, int64_t n, int32_t shift, hw_rounding_t mode,
                               uint64_t seed, int64_t *out);

/* out[i] = x[i] narrowed to a `bits`-wide (2..64) signed or unsigned format with
 * `overflow`; *events (may be NULL) receives the number of values changed. */
hw_status_t hw_narrow_s64(const int64_t *x, int64_t n, int32_t bits, int32_t is_signed,
                          hw_overflow_t overflow, int64_t *out, int64_t *events);

/* gemmlowp SaturatingRoundingDoublingHighMul, element-wise. */
hw_status_t hw_srdhm_s32(const int32_t *a, const int32_t *b, int64_t n, int32_t *out);

/* gemmlowp RoundingDivideByPOT, element-wise, exponent[i] in [0, 31]. */
hw_status_t hw_rdbpot_s32(const int32_t *x, const int32_t *exponent, int64_t n, int32_t *out);

/* Requantise accumulators acc[rows, cols] (channel = column when
 * spec->n_channels > 1) into out (S8, U8, S16 or S32). */
hw_status_t hw_requantize_s64(const int64_t *acc, int64_t rows, int64_t cols,
                              const hw_requant_spec_t *spec, hw_dtype_t out_dtype, void *out,
                              hw_counters_t *counters);

/* ---- kernels ---- */

/* out[m, n] = requant(sum_k A[m, k] * B[n, k] + bias[n]) under `acc`.
 * rq == NULL: no requantisation, `out` must be NULL.  acc_out (may be NULL)
 * receives the final accumulators [M, N] as int64, sign-extended from acc_bits.
 * The exact accumulation order and event counting are in hw_accumulate.h;
 * requantisation is hw_requantize_one_at with index = the element's flat
 * row-major position in `out` (so stochastic rounding is thread-independent). */
hw_status_t hw_gemm(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                    const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                    int64_t *acc_out, hw_counters_t *counters);

/* NHWC convolution; out [batch, out_h, out_w, out_c]; acc_out likewise. */
hw_status_t hw_conv2d(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                      const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                      int64_t *acc_out, hw_counters_t *counters);

/* Pre-pack weights once per model for the fast paths.  *packed is NULL when no
 * fast path applies (the kernels then read B/W directly).  Free with hw_packed_free.
 * acc: the spec the calls will use (NULL = the int32 accumulator); a narrow
 * saturating spec also packs the narrow path's formats, with the zero points in
 * args (b_zero_point / w_zero_point, NULL = 0).  A call whose spec, shape or zero
 * points differ prepares what it lacks itself: packing never changes a result. */
hw_status_t hw_pack_gemm_b(const hw_gemm_args_t *args, const hw_accum_spec_t *acc, void **packed);
hw_status_t hw_pack_conv2d_w(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc, void **packed);
void hw_packed_free(void *packed);

/* ---- dispatch ---- */

/* Bit mask of the ISA features found at run time (HW_ISA_* values in hw_dispatch.h:
 * 1 AVX2, 2 AVX512BW, 4 AVX512_VNNI, 8 AVX_VNNI, 16 NEON, 32 NEON dot-product). */
uint32_t hw_cpu_features(void);

/* Limit the kernels to the features in `mask` (0 = portable C only) and return
 * the previous limit.  Tests use it to hold every fast path to the portable one. */
uint32_t hw_set_feature_limit(uint32_t mask);

/* Number of kernel calls a fast path has computed since the library was
 * loaded (the rest ran the portable kernels).  For tests and benchmarks. */
uint64_t hw_fast_calls(void);

#endif
