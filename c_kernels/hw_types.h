/* hw_types.h -- the vocabulary shared by every hwsim kernel.
 *
 * This header is read twice: by the C compiler (through hw_kernels.h) and by
 * cffi's cdef parser, which does not run the preprocessor.  The build script
 * drops lines that start with '#', so keep this file free of macros,
 * conditionals and includes other than the guard.
 *
 * Enum values are part of the Python contract: hwsim/types.py holds the same
 * numbers and a test asserts that both agree.
 */
#ifndef HW_TYPES_H
#define HW_TYPES_H
#include <stdint.h>

typedef enum {
    HW_OK = 0,
    HW_ERR_ARG = 1,          /* a shape, stride, width or pointer is invalid */
    HW_ERR_UNSUPPORTED = 2,  /* valid, but this build has no kernel for it */
    HW_ERR_NOMEM = 3
} hw_status_t;

/* Rounding of a real value r to an integer (SEMANTICS.md section 0). */
typedef enum {
    HW_ROUND_FLOOR = 0,       /* toward -inf (arithmetic shift right) */
    HW_ROUND_CEIL = 1,        /* toward +inf */
    HW_ROUND_TRUNC = 2,       /* toward 0 */
    HW_ROUND_HALF_UP = 3,     /* nearest, ties toward +inf (SQRDMULH, SRSHL) */
    HW_ROUND_HALF_DOWN = 4,   /* nearest, ties toward -inf */
    HW_ROUND_HALF_EVEN = 5,   /* nearest, ties to even (rint, CVTPS2DQ) */
    HW_ROUND_HALF_AWAY = 6,   /* nearest, ties away from 0 (std::round, RoundingDivideByPOT) */
    HW_ROUND_HALF_ZERO = 7,   /* nearest, ties toward 0 */
    HW_ROUND_STOCHASTIC = 8   /* up with probability frac; seeded, counter-based, reproducible */
} hw_rounding_t;

typedef enum {
    HW_OVERFLOW_WRAP = 0,     /* two's complement modulo 2^bits */
    HW_OVERFLOW_SATURATE = 1  /* clamp to [min, max] of the format */
} hw_overflow_t;

/* Where the input zero point enters a MAC array. */
typedef enum {
    HW_ZP_IN_MAC = 0,  /* products are (x - zx) * (w - zw): TFLite reference, SDOT kernels */
    HW_ZP_FOLDED = 1   /* products are x * (w - zw); -zx * sum_k (w - zw) is computed exactly,
                          narrowed to acc_bits and added with the bias, before the reduction
                          when bias_first, after it otherwise (hw_accumulate.h has the exact
                          order) (VPMADDUBSW / VPDPBUSD on raw u8) */
} hw_zp_placement_t;

typedef enum {
    HW_DT_S8 = 0,
    HW_DT_U8 = 1,
    HW_DT_S16 = 2,
    HW_DT_S32 = 3,
    HW_DT_S64 = 4
} hw_dtype_t;

/* Accumulator -> output schemes (SEMANTICS.md sections 1.6, 1.7, 2.3, 3.6, 10.2). */
typedef enum {
    HW_REQ_DOUBLE_ROUNDING = 0,  /* gemmlowp: SRDHM (ties up) then RoundingDivideByPOT (ties away) */
    HW_REQ_SINGLE_ROUNDING = 1,  /* TFLITE_SINGLE_ROUNDING / CMSIS-NN: (x*M + 2^(T-1)) >> T, T = 31 - shift */
    HW_REQ_SRDHM_HALF_UP = 2,    /* SRDHM then a half-up rounding shift (NEON without fixup, ruy x86) */
    HW_REQ_NEON_SINGLE = 3,      /* SRSHL(SQDMULH(SSHL(x, ls), M), rs), with the pre-shift wrap */
    HW_REQ_INT64_REDUCED = 4,    /* 16x8 int64 overload: 15-bit multiplier, (x*M' + 2^(T'-1)) >> T' */
    HW_REQ_FLOAT32 = 5,          /* fl32(acc) * fl32(scale), clamp in float, rint (rounding), + zp */
    HW_REQ_FLOAT64_ROUND = 6,    /* round((double)acc * scale) with `rounding` (std::round = half_away), + zp */
    HW_REQ_SHIFT_ONLY = 7        /* round(acc * 2^shift) with `rounding`; shift <= 0 is a right shift */
} hw_requant_scheme_t;

/* How products are summed.  Reduction order (k-order) is part of the result once
 * a stage can overflow: k runs 0..K-1; products of k = g*group .. g*group+group-1
 * are summed exactly, narrowed to group_bits, then added to the accumulator and
 * narrowed to acc_bits, for g = 0, 1, ... (a short last group is zero-filled). */
typedef struct {
    int32_t group;                  /* 1, 2 or 4 products per group */
    int32_t group_bits;             /* width of a group sum, 2..64 (64: no narrowing) */
    hw_overflow_t group_overflow;
    int32_t acc_bits;               /* 8..64 */
    hw_overflow_t acc_overflow;
    hw_zp_placement_t input_zero_point;
    int32_t bias_first;             /* 1: the accumulator starts at bias (and the folded zero-point
                                       term); 0: they are added after the reduction */
} hw_accum_spec_t;

/* Accumulator -> output.  Per-channel arrays have n_channels entries (1 = per tensor). */
typedef struct {
    hw_requant_scheme_t scheme;
    hw_rounding_t rounding;         /* final rounding where the scheme leaves a choice */
    int32_t n_channels;
    const int32_t *multiplier;      /* Q31 multipliers (fixed-point schemes) */
    const int32_t *shift;           /* signed exponent, positive = left (TFLite convention) */
    const float *scale_f32;         /* HW_REQ_FLOAT32 */
    const double *scale_f64;        /* HW_REQ_FLOAT64_ROUND */
    int32_t zero_point;             /* output zero point, added after rounding */
    int32_t out_min;                /* clamp range: the output format intersected with */
    int32_t out_max;                /*   the fused activation */
    int32_t out_bits;               /* output format width, for HW_OVERFLOW_WRAP */
    int32_t out_signed;
    hw_overflow_t out_overflow;     /* saturate: clamp to [out_min, out_max]; wrap: wrap to
                                       out_bits, then clamp to [out_min, out_max] */
    uint64_t seed;                  /* HW_ROUND_STOCHASTIC */
} hw_requant_spec_t;

/* Optional per-output-channel statistics; any pointer may be NULL.  Counts are
 * events (one per narrowing that changed the value); arrays have N entries. */
typedef struct {
    int64_t *group_events;          /* group-sum narrowings that changed the value */
    int64_t *acc_events;            /* accumulator narrowings that changed the value */
    int64_t *out_events;            /* outputs clamped or wrapped by the output stage */
    int64_t *max_abs_acc;           /* largest |final accumulator| (after bias) */
} hw_counters_t;

/* C = requant(A x B^T).  A: activations [M, K] row stride lda (elements);
 * B: weights [N, K], one output channel per row, row stride ldb. */
typedef struct {
    int64_t M;
    int64_t N;
    int64_t K;
    hw_dtype_t a_dtype;             /* S8, U8 or S16 */
    const void *a;
    int64_t lda;
    int32_t a_zero_point;
    hw_dtype_t b_dtype;             /* S8 (also int4 values) or U8 or S16 */
    const void *b;
    int64_t ldb;
    const int32_t *b_zero_point;    /* NULL = 0, else 1 or N entries */
    int32_t b_zp_per_channel;
    const int64_t *bias;            /* NULL or N entries (int32 and int64 biases alike) */
    const void *packed_b;           /* NULL, or from hw_pack_b for this B and spec */
    int32_t n_threads;              /* 1.. ; results never depend on it */
} hw_gemm_args_t;

/* 2-D convolution, NHWC activations, weights [O, KH, KW, I/groups].
 * k-order within one output: ky, then kx, then ci (ci fastest), padding taps
 * included with value x = zx (they never shift the grouping of later taps). */
typedef struct {
    int64_t batch;
    int64_t in_h;
    int64_t in_w;
    int64_t in_c;
    int64_t out_h;
    int64_t out_w;
    int64_t out_c;
    int64_t kernel_h;
    int64_t kernel_w;
    int64_t stride_h;
    int64_t stride_w;
    int64_t dilation_h;
    int64_t dilation_w;
    int64_t pad_top;
    int64_t pad_left;
    int64_t pad_bottom;
    int64_t pad_right;
    int64_t groups;                 /* in_c % groups == 0, out_c % groups == 0 */
    hw_dtype_t x_dtype;
    const void *x;
    int32_t x_zero_point;
    hw_dtype_t w_dtype;
    const void *w;
    const int32_t *w_zero_point;    /* NULL = 0, else 1 or out_c entries */
    int32_t w_zp_per_channel;
    const int64_t *bias;
    const void *packed_w;
    int32_t n_threads;
} hw_conv2d_args_t;

#endif
