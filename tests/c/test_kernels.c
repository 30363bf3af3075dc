/* Standalone C test of the portable kernels (hw_gemm, hw_conv2d), meant to run
 * under ASan + UBSan without -fwrapv (tests/kernels/test_kernels_sanitizer.py
 * builds and runs it).  Expected values are the hand-checked vectors of
 * SEMANTICS.md 8.6 / 8.7 and cases worked out in the comments. */
#include <stdio.h>
#include <string.h>
#include "hw_kernels.h"

static int failures = 0;

#define CHECK_EQ(got, want)                                                                           \
    do {                                                                                              \
        long long g_ = (long long)(got), w_ = (long long)(want);                                      \
        if (g_ != w_) {                                                                               \
            fprintf(stderr, "%s:%d: %s = %lld, expected %lld\n", __FILE__, __LINE__, #got, g_, w_);     \
            failures++;                                                                               \
        }                                                                                             \
    } while (0)

static hw_accum_spec_t spec(int group, int gbits, hw_overflow_t govf, int abits, hw_overflow_t aovf,
                            hw_zp_placement_t zp, int bias_first)
{
    hw_accum_spec_t s = {group, gbits, govf, abits, aovf, zp, bias_first};
    return s;
}

/* One output of a 1 x K by 1 x K GEMM; events through *gev / *aev. */
static int64_t gemm1(hw_dtype_t adt, const void *a, hw_dtype_t bdt, const void *b, int64_t K, int32_t zx,
                     const int64_t *bias, hw_accum_spec_t s, int64_t *gev, int64_t *aev)
{
    hw_gemm_args_t g;
    memset(&g, 0, sizeof g);
    g.M = 1;
    g.N = 1;
    g.K = K;
    g.a_dtype = adt;
    g.a = a;
    g.lda = K;
    g.a_zero_point = zx;
    g.b_dtype = bdt;
    g.b = b;
    g.ldb = K;
    g.bias = bias;
    g.n_threads = 1;
    int64_t acc = 0, ge = 0, ae = 0, oe = 0, mx = 0;
    hw_counters_t c = {&ge, &ae, &oe, &mx};
    CHECK_EQ(hw_gemm(&g, &s, 0, HW_DT_S8, 0, &acc, &c), HW_OK);
    if (gev) *gev = ge;
    if (aev) *aev = ae;
    return acc;
}

static void test_semantics_8_6(void)
{
    hw_accum_spec_t avx2 = spec(2, 16, HW_OVERFLOW_SATURATE, 32, HW_OVERFLOW_WRAP, HW_ZP_FOLDED, 0);
    const uint8_t a1[4] = {255, 255, 0, 0};
    const int8_t b1[4] = {127, 127, 0, 0};
    int64_t gev = 0;
    CHECK_EQ(gemm1(HW_DT_U8, a1, HW_DT_S8, b1, 4, 0, 0, avx2, &gev, 0), 32767);
    CHECK_EQ(gev, 1);
    const uint8_t a2[4] = {255, 255, 255, 255};
    const int8_t b2[4] = {-128, -128, -128, -128};
    CHECK_EQ(gemm1(HW_DT_U8, a2, HW_DT_S8, b2, 4, 0, 0, avx2, &gev, 0), -65536);
    CHECK_EQ(gev, 2);
    const uint8_t a5[2] = {211, 171};
    const int8_t b5[2] = {71, 107};
    CHECK_EQ(gemm1(HW_DT_U8, a5, HW_DT_S8, b5, 2, 0, 0, avx2, 0, 0), 32767);
    /* oneDNN s8s8 via +128: [255,255,128,128] x [127,127,0,0], zx = 128 folded -> 32767 - 128*254 = 255 */
    const uint8_t a6[4] = {255, 255, 128, 128};
    CHECK_EQ(gemm1(HW_DT_U8, a6, HW_DT_S8, b1, 4, 128, 0, avx2, 0, 0), 255);
    /* VPDPBUSD(c = 2147483000, [255]*4, [127]*4): wrap -2147354756, saturate 2147483647 */
    const uint8_t a7[4] = {255, 255, 255, 255};
    const int8_t b7[4] = {127, 127, 127, 127};
    const int64_t c7 = 2147483000;
    CHECK_EQ(gemm1(HW_DT_U8, a7, HW_DT_S8, b7, 4, 0, &c7,
                   spec(4, 64, HW_OVERFLOW_WRAP, 32, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 1), 0, 0), -2147354756LL);
    CHECK_EQ(gemm1(HW_DT_U8, a7, HW_DT_S8, b7, 4, 0, &c7,
                   spec(4, 64, HW_OVERFLOW_WRAP, 32, HW_OVERFLOW_SATURATE, HW_ZP_IN_MAC, 1), 0, 0), 2147483647);
}

static void test_semantics_8_7(void)
{
    const int8_t m128[2] = {-128, -128};
    int64_t gev = 0, aev = 0;
    CHECK_EQ(gemm1(HW_DT_S8, m128, HW_DT_S8, m128, 2, 0, 0,
                   spec(2, 16, HW_OVERFLOW_WRAP, 32, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 0), &gev, 0), -32768);
    CHECK_EQ(gev, 1);
    const int8_t p127[4] = {127, 127, 127, 127};
    const int64_t lane = 2147483600;
    CHECK_EQ(gemm1(HW_DT_S8, p127, HW_DT_S8, p127, 4, 0, &lane,
                   spec(4, 64, HW_OVERFLOW_WRAP, 32, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 1), 0, &aev), -2147419180LL);
    CHECK_EQ(aev, 1);
}

static void test_acc64_edges(void)
{
    const int8_t one[1] = {1};
    const int64_t big = INT64_MAX, small = INT64_MIN;
    int64_t aev = 0;
    CHECK_EQ(gemm1(HW_DT_S8, one, HW_DT_S8, one, 1, 0, &big,
                   spec(1, 64, HW_OVERFLOW_WRAP, 64, HW_OVERFLOW_SATURATE, HW_ZP_IN_MAC, 1), 0, &aev), INT64_MAX);
    CHECK_EQ(aev, 1);
    CHECK_EQ(gemm1(HW_DT_S8, one, HW_DT_S8, one, 1, 0, &big,
                   spec(1, 64, HW_OVERFLOW_WRAP, 64, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 0), 0, &aev), INT64_MIN);
    CHECK_EQ(aev, 1);
    /* -1 * 1 added to INT64_MIN: saturates at INT64_MIN, wraps to INT64_MAX */
    const int8_t m1[1] = {-1};
    CHECK_EQ(gemm1(HW_DT_S8, m1, HW_DT_S8, one, 1, 0, &small,
                   spec(1, 64, HW_OVERFLOW_WRAP, 64, HW_OVERFLOW_SATURATE, HW_ZP_IN_MAC, 1), 0, 0), INT64_MIN);
    CHECK_EQ(gemm1(HW_DT_S8, m1, HW_DT_S8, one, 1, 0, &small,
                   spec(1, 64, HW_OVERFLOW_WRAP, 64, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 1), 0, 0), INT64_MAX);
    /* int16 extremes: 4 * 32767^2 = 4294705156 exact; wrap_32 = -262140 */
    const int16_t v[4] = {32767, -32767, 32767, -32767};
    CHECK_EQ(gemm1(HW_DT_S16, v, HW_DT_S16, v, 4, 0, 0,
                   spec(1, 64, HW_OVERFLOW_WRAP, 64, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 0), 0, 0), 4294705156LL);
    CHECK_EQ(gemm1(HW_DT_S16, v, HW_DT_S16, v, 4, 0, 0,
                   spec(1, 64, HW_OVERFLOW_WRAP, 32, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 0), 0, 0), -262140);
    /* s16 extremes with zero points at the far end: (-32768 - 32767) * (-32768 - 32767) = 65535^2 */
    const int16_t lo[1] = {-32768};
    hw_gemm_args_t g;
    memset(&g, 0, sizeof g);
    int32_t zw = 32767;
    g.M = g.N = g.K = 1;
    g.a_dtype = g.b_dtype = HW_DT_S16;
    g.a = g.b = lo;
    g.lda = g.ldb = 1;
    g.a_zero_point = 32767;
    g.b_zero_point = &zw;
    g.n_threads = 1;
    hw_accum_spec_t s = spec(1, 64, HW_OVERFLOW_WRAP, 64, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 0);
    int64_t acc = 0;
    CHECK_EQ(hw_gemm(&g, &s, 0, HW_DT_S8, 0, &acc, 0), HW_OK);
    CHECK_EQ(acc, 4294836225LL);
}

static void test_conv_padding_pairs(void)
{
    /* x = [255, 0] (1x1x2x1 u8), w = [127, 127, 127] (1x1x3x1), one padding column each side, zx = 255
     * folded, int16 pair saturation: -64388 and -32385 (worked in tests/kernels/test_conv2d.py). */
    const uint8_t x[2] = {255, 0};
    const int8_t w[3] = {127, 127, 127};
    hw_conv2d_args_t c;
    memset(&c, 0, sizeof c);
    c.batch = c.in_h = c.in_c = c.out_h = c.out_c = c.kernel_h = 1;
    c.in_w = 2;
    c.out_w = 2;
    c.kernel_w = 3;
    c.stride_h = c.stride_w = c.dilation_h = c.dilation_w = 1;
    c.pad_left = c.pad_right = 1;
    c.groups = 1;
    c.x_dtype = HW_DT_U8;
    c.x = x;
    c.x_zero_point = 255;
    c.w_dtype = HW_DT_S8;
    c.w = w;
    c.n_threads = 2;
    hw_accum_spec_t s = spec(2, 16, HW_OVERFLOW_SATURATE, 32, HW_OVERFLOW_WRAP, HW_ZP_FOLDED, 0);
    int64_t acc[2] = {0, 0};
    CHECK_EQ(hw_conv2d(&c, &s, 0, HW_DT_S8, 0, acc, 0), HW_OK);
    CHECK_EQ(acc[0], -64388);
    CHECK_EQ(acc[1], -32385);
    c.out_w = 3;   /* wrong output size */
    CHECK_EQ(hw_conv2d(&c, &s, 0, HW_DT_S8, 0, acc, 0), HW_ERR_ARG);
}

static void test_requant_and_threads(void)
{
    /* acc = [14, -14] -> M = 2^30, shift -1: double rounding gives 4 and -4 (3.5 ties away) */
    const int8_t a[4] = {1, 3, -1, -3};
    const int8_t b[2] = {2, 4};
    int32_t m = 1 << 30, sh = -1;
    hw_requant_spec_t rq;
    memset(&rq, 0, sizeof rq);
    rq.scheme = HW_REQ_DOUBLE_ROUNDING;
    rq.rounding = HW_ROUND_HALF_AWAY;
    rq.n_channels = 1;
    rq.multiplier = &m;
    rq.shift = &sh;
    rq.out_min = -128;
    rq.out_max = 127;
    rq.out_bits = 8;
    rq.out_signed = 1;
    rq.out_overflow = HW_OVERFLOW_SATURATE;
    hw_gemm_args_t g;
    memset(&g, 0, sizeof g);
    g.M = 2;
    g.N = 1;
    g.K = 2;
    g.a_dtype = g.b_dtype = HW_DT_S8;
    g.a = a;
    g.b = b;
    g.lda = g.ldb = 2;
    g.n_threads = 2;
    hw_accum_spec_t s = spec(1, 64, HW_OVERFLOW_WRAP, 32, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 0);
    int8_t out[2] = {0, 0};
    CHECK_EQ(hw_gemm(&g, &s, &rq, HW_DT_S8, out, 0, 0), HW_OK);
    CHECK_EQ(out[0], 4);
    CHECK_EQ(out[1], -4);
    CHECK_EQ(hw_gemm(&g, &s, &rq, HW_DT_S32 + 1, out, 0, 0), HW_ERR_ARG);   /* not an output dtype */

    /* 1 vs 3 threads, saturating 16-bit accumulator, a pseudo-random 17 x 70 x 5 GEMM */
    enum { M = 17, N = 5, K = 70 };
    static uint8_t A[M * K];
    static int8_t B[N * K];
    uint32_t state = 12345u;
    for (int i = 0; i < M * K; i++) A[i] = (uint8_t)((state = state * 1103515245u + 12345u) >> 24);
    for (int i = 0; i < N * K; i++) B[i] = (int8_t)((state = state * 1103515245u + 12345u) >> 24);
    hw_gemm_args_t big;
    memset(&big, 0, sizeof big);
    big.M = M;
    big.N = N;
    big.K = K;
    big.a_dtype = HW_DT_U8;
    big.a = A;
    big.b_dtype = HW_DT_S8;
    big.b = B;
    big.lda = big.ldb = K;
    big.a_zero_point = 100;
    hw_accum_spec_t sat = spec(2, 16, HW_OVERFLOW_SATURATE, 16, HW_OVERFLOW_SATURATE, HW_ZP_FOLDED, 1);
    int64_t acc1[M * N], acc3[M * N], ev1[4][N], ev3[4][N];
    hw_counters_t c1 = {ev1[0], ev1[1], ev1[2], ev1[3]}, c3 = {ev3[0], ev3[1], ev3[2], ev3[3]};
    big.n_threads = 1;
    CHECK_EQ(hw_gemm(&big, &sat, 0, HW_DT_S8, 0, acc1, &c1), HW_OK);
    big.n_threads = 3;
    CHECK_EQ(hw_gemm(&big, &sat, 0, HW_DT_S8, 0, acc3, &c3), HW_OK);
    CHECK_EQ(memcmp(acc1, acc3, sizeof acc1), 0);
    CHECK_EQ(memcmp(ev1, ev3, sizeof ev1), 0);
}

static void test_bad_args(void)
{
    const int8_t a[2] = {1, 2};
    hw_gemm_args_t g;
    memset(&g, 0, sizeof g);
    g.M = g.N = 1;
    g.K = 2;
    g.a_dtype = g.b_dtype = HW_DT_S8;
    g.a = g.b = a;
    g.lda = g.ldb = 2;
    g.n_threads = 1;
    hw_accum_spec_t s = spec(1, 64, HW_OVERFLOW_WRAP, 32, HW_OVERFLOW_WRAP, HW_ZP_IN_MAC, 0);
    int64_t acc[1];
    CHECK_EQ(hw_gemm(0, &s, 0, HW_DT_S8, 0, acc, 0), HW_ERR_ARG);
    CHECK_EQ(hw_gemm(&g, 0, 0, HW_DT_S8, 0, acc, 0), HW_ERR_ARG);
    g.lda = 1;
    CHECK_EQ(hw_gemm(&g, &s, 0, HW_DT_S8, 0, acc, 0), HW_ERR_ARG);
    g.lda = 2;
    g.a_zero_point = -129;
    CHECK_EQ(hw_gemm(&g, &s, 0, HW_DT_S8, 0, acc, 0), HW_ERR_ARG);
    g.a_zero_point = 0;
    s.group = 3;
    CHECK_EQ(hw_gemm(&g, &s, 0, HW_DT_S8, 0, acc, 0), HW_ERR_ARG);
}

int main(void)
{
    test_semantics_8_6();
    test_semantics_8_7();
    test_acc64_edges();
    test_conv_padding_pairs();
    test_requant_and_threads();
    test_bad_args();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_kernels: all checks passed\n");
    return 0;
}
