/* STUB: array entry points of the primitives. */
#include "hw_kernels.h"
hw_status_t hw_round_shift_s64(const int64_t *x, int64_t n, int32_t shift, hw_rounding_t mode,
                               uint64_t seed, int64_t *out)
{ (void)x; (void)n; (void)shift; (void)mode; (void)seed; (void)out; return HW_ERR_UNSUPPORTED; }
hw_status_t hw_narrow_s64(const int64_t *x, int64_t n, int32_t bits, int32_t is_signed,
                          hw_overflow_t overflow, int64_t *out, int64_t *events)
{ (void)x; (void)n; (void)bits; (void)is_signed; (void)overflow; (void)out; (void)events; return HW_ERR_UNSUPPORTED; }
hw_status_t hw_srdhm_s32(const int32_t *a, const int32_t *b, int64_t n, int32_t *out)
{ (void)a; (void)b; (void)n; (void)out; return HW_ERR_UNSUPPORTED; }
hw_status_t hw_rdbpot_s32(const int32_t *x, const int32_t *exponent, int64_t n, int32_t *out)
{ (void)x; (void)exponent; (void)n; (void)out; return HW_ERR_UNSUPPORTED; }
