/* test_fixedpoint.c -- standalone tests of hwsim's fixed-point primitives and
 * requantiser (c_kernels/hw_fixedpoint.h, hw_requantize.h), run by
 * `make -C tests/c test` and, under ASan + UBSan, `make -C tests/c asan`.
 *
 * Expected values are SEMANTICS.md section 8 vectors (literal) or an
 * independent formulation in 128-bit arithmetic; never the code under test. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "hw_fixedpoint.h"
#include "hw_kernels.h"
#include "hw_requantize.h"

static int failures = 0;
static int checks = 0;

#define CHECK_EQ(got, want, ...)                                                         \
    do {                                                                                 \
        long long g_ = (long long)(got), w_ = (long long)(want);                         \
        checks++;                                                                        \
        if (g_ != w_) {                                                                  \
            failures++;                                                                  \
            if (failures <= 20) {                                                        \
                fprintf(stderr, "%s:%d: got %lld, want %lld: ", __FILE__, __LINE__, g_, w_); \
                fprintf(stderr, __VA_ARGS__);                                            \
                fprintf(stderr, "\n");                                                   \
            }                                                                            \
        }                                                                                \
    } while (0)

/* ---- edge values, gemmlowp MakeTestValsInt32 style ---- */
static int64_t edge_vals[1024];
static int n_edge = 0;

static void make_edge_vals(int bits)
{
    n_edge = 0;
    int64_t lo = hw_min_s(bits), hi = hw_max_s(bits);
    for (int i = 0; i < bits - 1; i++)
        for (int d = -2; d <= 2; d++) {
            int64_t p = ((int64_t)1 << i) + d;
            if (p >= lo && p <= hi) edge_vals[n_edge++] = p;
            if (-p >= lo && -p <= hi) edge_vals[n_edge++] = -p;
        }
    for (int d = 0; d < 3; d++) {
        edge_vals[n_edge++] = lo + d;
        edge_vals[n_edge++] = hi - d;
    }
}

/* ---- independent reference of round(x / 2^n) in 128-bit arithmetic ---- */
typedef __int128 i128;

static i128 floor_div(i128 a, i128 b) /* b > 0 */
{
    i128 q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static i128 ceil_div(i128 a, i128 b) { return -floor_div(-a, b); }

static int64_t ref_round_div_pow2(int64_t x, int n, hw_rounding_t mode)
{
    i128 d = (i128)1 << n, h2 = (i128)1 << n; /* 2x / 2^(n+1) with half = 2^n / 2^(n+1) */
    i128 X = x, D2 = d * 2;
    switch (mode) {
    case HW_ROUND_FLOOR: return (int64_t)floor_div(X, d);
    case HW_ROUND_CEIL: return (int64_t)ceil_div(X, d);
    case HW_ROUND_TRUNC: return (int64_t)(X / d);
    case HW_ROUND_HALF_UP: return (int64_t)floor_div(2 * X + h2, D2);
    case HW_ROUND_HALF_DOWN: return (int64_t)ceil_div(2 * X - h2, D2);
    case HW_ROUND_HALF_AWAY: return (int64_t)(X >= 0 ? floor_div(2 * X + h2, D2) : -floor_div(-2 * X + h2, D2));
    case HW_ROUND_HALF_ZERO: return (int64_t)(X >= 0 ? ceil_div(2 * X - h2, D2) : -ceil_div(-2 * X - h2, D2));
    case HW_ROUND_HALF_EVEN: {
        i128 f = floor_div(X, d), r = X - f * d;
        if (2 * r > d) return (int64_t)(f + 1);
        if (2 * r < d) return (int64_t)f;
        return (int64_t)((f % 2 == 0) ? f : f + 1);
    }
    default: return 0;
    }
}

static void test_round_div_pow2(void)
{
    make_edge_vals(64);
    for (int m = HW_ROUND_FLOOR; m <= HW_ROUND_HALF_ZERO; m++)
        for (int n = 0; n <= 63; n++)
            for (int i = 0; i < n_edge; i++) {
                int64_t x = edge_vals[i];
                int64_t want = n == 0 ? x : ref_round_div_pow2(x, n, (hw_rounding_t)m);
                CHECK_EQ(hw_round_div_pow2(x, n, (hw_rounding_t)m, 0, 0), want, "x=%" PRId64 " n=%d mode=%d", x, n, m);
            }
    /* exhaustive small domain: every int16 value, shifts 1..4 */
    for (int m = HW_ROUND_FLOOR; m <= HW_ROUND_HALF_ZERO; m++)
        for (int n = 1; n <= 4; n++)
            for (int64_t x = -32768; x <= 32767; x++)
                CHECK_EQ(hw_round_div_pow2(x, n, (hw_rounding_t)m, 0, 0), ref_round_div_pow2(x, n, (hw_rounding_t)m),
                         "x=%" PRId64 " n=%d mode=%d", x, n, m);
    /* ties, hand-worked (SEMANTICS section 0 table): 5/2 = 2.5, -5/2 = -2.5 */
    const int64_t want_pos[] = {2, 3, 2, 3, 2, 2, 3, 2};
    const int64_t want_neg[] = {-3, -2, -2, -2, -3, -2, -3, -2};
    for (int m = 0; m < 8; m++) {
        CHECK_EQ(hw_round_div_pow2(5, 1, (hw_rounding_t)m, 0, 0), want_pos[m], "5/2 mode %d", m);
        CHECK_EQ(hw_round_div_pow2(-5, 1, (hw_rounding_t)m, 0, 0), want_neg[m], "-5/2 mode %d", m);
    }
}

static void test_stochastic(void)
{
    /* Published first outputs of SplitMix64 seeded with 0. */
    CHECK_EQ(hw_stochastic_bits(0, 0) == 0xE220A8397B1DCDAFull, 1, "splitmix64(0)[0]");
    CHECK_EQ(hw_stochastic_bits(0, 1) == 0x6E789E6AA1B965F4ull, 1, "splitmix64(0)[1]");
    /* Always floor or floor + 1; exact values stay exact. */
    for (uint64_t i = 0; i < 4096; i++) {
        int64_t x = (int64_t)i * 7919 - 16000000;
        int64_t y = hw_round_div_pow2(x, 5, HW_ROUND_STOCHASTIC, 42, i);
        int64_t f = hw_asr_s64(x, 5);
        CHECK_EQ(y == f || y == f + 1, 1, "stochastic x=%" PRId64, x);
        CHECK_EQ(hw_round_div_pow2(x * 32, 5, HW_ROUND_STOCHASTIC, 42, i), x, "exact x=%" PRId64, x);
    }
    /* x = 1, n = 2 (0.25): rounds up iff the top 2 bits of z are 00. */
    for (uint64_t i = 0; i < 64; i++)
        CHECK_EQ(hw_round_div_pow2(1, 2, HW_ROUND_STOCHASTIC, 7, i), (hw_stochastic_bits(7, i) >> 62) == 0,
                 "stochastic 1/4 i=%" PRIu64, i);
}

static int32_t gemmlowp_srdhm(int32_t a, int32_t b) /* transcription of the scalar reference */
{
    int overflow = a == b && a == INT32_MIN;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    int32_t ab_x2_high32 = (int32_t)((ab + nudge) / ((int64_t)1 << 31));
    return overflow ? INT32_MAX : ab_x2_high32;
}

static int32_t sqadd32(int32_t a, int32_t b) /* independent: saturate by comparison */
{
    int64_t s = (int64_t)a + b;
    return s > INT32_MAX ? INT32_MAX : (s < INT32_MIN ? INT32_MIN : (int32_t)s);
}

static void test_fixed_point_ops(void)
{
    /* SEMANTICS 8.2 */
    CHECK_EQ(hw_srdhm_s32_one(INT32_MIN, INT32_MIN), 2147483647, "SRDHM(min,min)");
    CHECK_EQ(hw_srdhm_s32_one(INT32_MIN, INT32_MAX), -2147483647, "SRDHM(min,max)");
    CHECK_EQ(hw_srdhm_s32_one(-1, 1 << 30), 0, "SRDHM(-1,2^30)");
    CHECK_EQ(hw_srdhm_s32_one(1, 1 << 30), 1, "SRDHM(1,2^30)");
    CHECK_EQ(hw_srdhm_s32_one(-3, 1 << 30), -1, "SRDHM(-3,2^30)");
    CHECK_EQ(hw_srdhm_s32_one(3, 1 << 30), 2, "SRDHM(3,2^30)");
    CHECK_EQ(hw_rdbpot_s32_one(5, 1), 3, "RDBPOT(5,1)");
    CHECK_EQ(hw_srshl_s32_one(5, -1), 3, "SRSHL(5,-1)");
    CHECK_EQ(hw_rdbpot_s32_one(-5, 1), -3, "RDBPOT(-5,1)");
    CHECK_EQ(hw_srshl_s32_one(-5, -1), -2, "SRSHL(-5,-1)");
    CHECK_EQ(hw_rdbpot_s32_one(-6, 2), -2, "RDBPOT(-6,2)");
    CHECK_EQ(hw_srshl_s32_one(-6, -2), -1, "SRSHL(-6,-2)");
    CHECK_EQ(hw_rdbpot_s32_one(-7, 2), -2, "RDBPOT(-7,2)");
    CHECK_EQ(hw_rdbpot_s32_one(INT32_MIN, 31), -1, "RDBPOT(min,31)");
    CHECK_EQ(hw_rdbpot_s32_one(INT32_MAX, 1), 1073741824, "RDBPOT(max,1)");

    make_edge_vals(32);
    for (int i = 0; i < n_edge; i++)
        for (int j = 0; j < n_edge; j++) {
            int32_t a = (int32_t)edge_vals[i], b = (int32_t)edge_vals[j];
            CHECK_EQ(hw_srdhm_s32_one(a, b), gemmlowp_srdhm(a, b), "SRDHM(%d,%d)", a, b);
            /* SQRDMULH identity: sat_32((2ab + 2^31) >> 32) */
            i128 p = ((i128)2 * a * b + ((i128)1 << 31));
            i128 q = floor_div(p, (i128)1 << 32);
            CHECK_EQ(hw_srdhm_s32_one(a, b), q > INT32_MAX ? INT32_MAX : (int64_t)q, "SQRDMULH(%d,%d)", a, b);
            i128 q2 = floor_div((i128)2 * a * b, (i128)1 << 32);
            CHECK_EQ(hw_sqdmulh_s32_one(a, b), q2 > INT32_MAX ? INT32_MAX : (int64_t)q2, "SQDMULH(%d,%d)", a, b);
        }
    /* gemmlowp NEON fixup == RDBPOT for every exponent 0..31 (SEMANTICS 2.2) */
    for (int e = 0; e <= 31; e++)
        for (int i = 0; i < n_edge; i++) {
            int32_t x = (int32_t)edge_vals[i];
            int32_t fixup = (x < 0 && e > 0) ? -1 : 0;
            CHECK_EQ(hw_rdbpot_s32_one(x, e), hw_srshl_s32_one(sqadd32(x, fixup), -e), "fixup x=%d e=%d", x, e);
            CHECK_EQ(hw_sqadd_s32_one(x, fixup), sqadd32(x, fixup), "sqadd x=%d", x);
            CHECK_EQ(hw_rdbpot_s32_one(x, e), ref_round_div_pow2(x, e, HW_ROUND_HALF_AWAY), "rdbpot x=%d e=%d", x, e);
            CHECK_EQ(hw_srshl_s32_one(x, -e), e ? ref_round_div_pow2(x, e, HW_ROUND_HALF_UP) : x, "srshl x=%d e=%d", x, e);
            CHECK_EQ(hw_sshl_s32_one(x, -e), e ? ref_round_div_pow2(x, e, HW_ROUND_FLOOR) : x, "sshl x=%d e=%d", x, e);
            CHECK_EQ(hw_sshl_s32_one(x, e), (int32_t)(uint32_t)((uint32_t)x << e), "sshl left x=%d e=%d", x, e);
        }
}

static hw_requant_spec_t fixed_spec(hw_requant_scheme_t scheme, const int32_t *m, const int32_t *s)
{
    hw_requant_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.scheme = scheme;
    spec.rounding = HW_ROUND_HALF_AWAY;
    spec.n_channels = 1;
    spec.multiplier = m;
    spec.shift = s;
    spec.out_min = INT32_MIN;
    spec.out_max = INT32_MAX;
    spec.out_bits = 32;
    spec.out_signed = 1;
    spec.out_overflow = HW_OVERFLOW_SATURATE;
    return spec;
}

static void test_requant_vectors(void)
{
    /* SEMANTICS 8.3: x, M, shift, double, single, NEON dbl no fixup (SRDHM_HALF_UP), NEON single */
    static const int64_t rows[][7] = {
        {-6, 1 << 30, -1, -2, -1, -1, -1},
        {6, 1 << 30, -1, 2, 2, 2, 2},
        {-5, 1 << 30, -1, -1, -1, -1, -1},
        {-7, 1 << 30, 0, -3, -3, -3, -3},
        {-14056, 1223755207, -2, -2003, -2002, -2002, -2002},
        {-1001, 1610612736, 1, -1501, -1501, -1501, -1501},
        {12345, 1590891970, -10, 9, 9, 9, 9},
        {1 << 30, 1 << 30, 0, 536870912, 536870912, 536870912, -536870912},
    };
    static const hw_requant_scheme_t schemes[] = {HW_REQ_DOUBLE_ROUNDING, HW_REQ_SINGLE_ROUNDING,
                                                  HW_REQ_SRDHM_HALF_UP, HW_REQ_NEON_SINGLE};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        for (int k = 0; k < 4; k++) {
            int32_t m = (int32_t)rows[r][1], s = (int32_t)rows[r][2];
            hw_requant_spec_t spec = fixed_spec(schemes[k], &m, &s);
            int changed = -1;
            CHECK_EQ(hw_requant_spec_check(&spec), HW_OK, "spec row %zu", r);
            CHECK_EQ(hw_requantize_one(rows[r][0], 0, &spec, &changed), rows[r][3 + k], "8.3 row %zu scheme %d", r, k);
            CHECK_EQ(changed, 0, "changed row %zu", r);
        }
    /* int64 overload: M = 1992150143, shift = -7, x = -123456789 -> -894747 */
    int32_t m = 1992150143, s = -7;
    hw_requant_spec_t spec = fixed_spec(HW_REQ_INT64_REDUCED, &m, &s);
    int changed;
    CHECK_EQ(hw_requantize_one(-123456789, 0, &spec, &changed), -894747, "int64_reduced");
    spec.scheme = HW_REQ_SINGLE_ROUNDING;
    CHECK_EQ(hw_requantize_one(-123456789, 0, &spec, &changed), -894741, "single 32-bit");

    /* SEMANTICS 8.4: float32 (half_even) against double/single */
    static const int64_t f_rows[][5] = {{5, 0, 2, 3, 3}, {7, 0, 4, 4, 4}, {-5, 0, -2, -2, -2},
                                        {-7, 0, -4, -3, -3}, {300, 3, 127, 127, 127}};
    for (size_t r = 0; r < 5; r++) {
        float scale_f = r == 4 ? 1.0f : 0.5f;
        int32_t mm = 1 << 30, ss = r == 4 ? 1 : 0;      /* 0.5 = 2^30 * 2^(0-31); 1.0 = 2^30 * 2^(1-31) */
        hw_requant_spec_t fs = fixed_spec(HW_REQ_FLOAT32, NULL, NULL);
        fs.scale_f32 = &scale_f;
        fs.rounding = HW_ROUND_HALF_EVEN;
        fs.zero_point = (int32_t)f_rows[r][1];
        fs.out_min = -128;
        fs.out_max = 127;
        fs.out_bits = 8;
        CHECK_EQ(hw_requant_spec_check(&fs), HW_OK, "f32 spec");
        CHECK_EQ(hw_requantize_one(f_rows[r][0], 0, &fs, &changed), f_rows[r][2], "8.4 f32 row %zu", r);
        CHECK_EQ(changed, r == 4, "8.4 f32 clamp row %zu", r);
        hw_requant_spec_t ds = fixed_spec(HW_REQ_DOUBLE_ROUNDING, &mm, &ss);
        ds.zero_point = fs.zero_point;
        ds.out_min = -128;
        ds.out_max = 127;
        ds.out_bits = 8;
        CHECK_EQ(hw_requantize_one(f_rows[r][0], 0, &ds, &changed), f_rows[r][3], "8.4 double row %zu", r);
        ds.scheme = HW_REQ_SINGLE_ROUNDING;
        CHECK_EQ(hw_requantize_one(f_rows[r][0], 0, &ds, &changed), f_rows[r][4], "8.4 single row %zu", r);
    }
    /* float32(16777217) = 16777216: with scale 1 and a 32-bit output */
    float one = 1.0f;
    hw_requant_spec_t big = fixed_spec(HW_REQ_FLOAT32, NULL, NULL);
    big.scale_f32 = &one;
    big.rounding = HW_ROUND_HALF_EVEN;
    CHECK_EQ(hw_requantize_one(16777217, 0, &big, &changed), 16777216, "f32 2^24+1");

    /* NEON single == single rounding whenever x * 2^ls fits int32 (SEMANTICS 8.1) */
    make_edge_vals(32);
    for (int sh = -31; sh <= 30; sh++)
        for (int i = 0; i < n_edge; i++)
            for (int j = 0; j < n_edge; j += 7) {
                int64_t x = edge_vals[i];
                int32_t mj = (int32_t)(edge_vals[j] < 0 ? -(edge_vals[j] + 1) : edge_vals[j]);
                int ls = sh - (sh < -1 ? sh : -1);
                if (x > (INT32_MAX >> ls) || x < (INT32_MIN >> ls)) continue;
                int32_t s2 = sh;
                hw_requant_spec_t a = fixed_spec(HW_REQ_NEON_SINGLE, &mj, &s2);
                hw_requant_spec_t b = fixed_spec(HW_REQ_SINGLE_ROUNDING, &mj, &s2);
                CHECK_EQ(hw_requantize_one(x, 0, &a, &changed), hw_requantize_one(x, 0, &b, &changed),
                         "neon==single x=%" PRId64 " M=%d s=%d", x, mj, sh);
            }
}

static void test_output_stage(void)
{
    /* shift-only, shift 0, signed 4-bit output, hand-worked:
     * wrap: 9 -> 9 - 16 = -7 (then clamp to [-8, 7]); saturate: 9 -> 7. */
    int32_t s = 0;
    hw_requant_spec_t spec = fixed_spec(HW_REQ_SHIFT_ONLY, NULL, &s);
    spec.rounding = HW_ROUND_FLOOR;
    spec.out_bits = 4;
    spec.out_min = -8;
    spec.out_max = 7;
    int changed;
    CHECK_EQ(hw_requant_spec_check(&spec), HW_OK, "4-bit spec");
    CHECK_EQ(hw_requantize_one(9, 0, &spec, &changed), 7, "sat 9");
    CHECK_EQ(changed, 1, "sat 9 changed");
    spec.out_overflow = HW_OVERFLOW_WRAP;
    CHECK_EQ(hw_requantize_one(9, 0, &spec, &changed), -7, "wrap 9");
    CHECK_EQ(changed, 1, "wrap 9 changed");
    CHECK_EQ(hw_requantize_one(-8, 0, &spec, &changed), -8, "wrap -8");
    CHECK_EQ(changed, 0, "wrap -8 unchanged");
    /* wrap then clamp to a ReLU range [0, 7]: 9 -> -7 -> 0 */
    spec.out_min = 0;
    CHECK_EQ(hw_requantize_one(9, 0, &spec, &changed), 0, "wrap then clamp");
    /* shift-only left shift wraps mod 2^64: 2^62 << 2 = 0 */
    s = 2;
    spec.out_bits = 32;
    spec.out_min = INT32_MIN;
    spec.out_max = INT32_MAX;
    spec.out_overflow = HW_OVERFLOW_SATURATE;
    CHECK_EQ(hw_requantize_one((int64_t)1 << 62, 0, &spec, &changed), 0, "shl wrap");
    CHECK_EQ(hw_requantize_one(3, 0, &spec, &changed), 12, "shl 3");
}

static void test_arg_checks(void)
{
    int32_t m = 1 << 30, s = 0, bad_m = -1, bad_s = 31;
    hw_requant_spec_t ok = fixed_spec(HW_REQ_SINGLE_ROUNDING, &m, &s);
    CHECK_EQ(hw_requant_spec_check(&ok), HW_OK, "ok spec");
    CHECK_EQ(hw_requant_spec_check(NULL), HW_ERR_ARG, "NULL spec");
    hw_requant_spec_t b = ok;
    b.multiplier = NULL;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "NULL multiplier");
    b = ok;
    b.multiplier = &bad_m;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "negative multiplier");
    b = ok;
    b.shift = &bad_s;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "single shift 31");
    b.scheme = HW_REQ_DOUBLE_ROUNDING;
    CHECK_EQ(hw_requant_spec_check(&b), HW_OK, "double shift 31");
    b = ok;
    b.n_channels = 0;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "n_channels 0");
    b = ok;
    b.scheme = (hw_requant_scheme_t)8;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "scheme 8");
    b = ok;
    b.rounding = (hw_rounding_t)9;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "rounding 9");
    b = ok;
    b.out_min = 1;
    b.out_max = 0;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "out_min > out_max");
    b = ok;
    b.out_bits = 8;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "range beyond 8 bits");
    b.out_signed = 0;
    b.out_min = 0;
    b.out_max = 255;
    CHECK_EQ(hw_requant_spec_check(&b), HW_OK, "u8");
    b.out_bits = 32;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "u32");
    b = ok;
    b.scheme = HW_REQ_FLOAT32;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "float32 without scale");
    float inf = 1.0f / 0.0f;
    b.scale_f32 = &inf;
    CHECK_EQ(hw_requant_spec_check(&b), HW_ERR_ARG, "infinite scale");

    int64_t acc[2] = {3, -3};   /* times M * 2^(0-31) = 0.5: 1.5 -> 2, -1.5 -> -1 (half up) */
    int8_t out8[2];
    CHECK_EQ(hw_requantize_s64(acc, 1, 2, &ok, HW_DT_S8, out8, NULL), HW_ERR_ARG, "s32 range into s8");
    hw_requant_spec_t o8 = ok;
    o8.out_min = -128;
    o8.out_max = 127;
    o8.out_bits = 8;
    CHECK_EQ(hw_requantize_s64(acc, 1, 2, &o8, HW_DT_S8, out8, NULL), HW_OK, "s8 ok");
    CHECK_EQ(out8[0], 2, "s8 out0");
    CHECK_EQ(out8[1], -1, "s8 out1");
    CHECK_EQ(hw_requantize_s64(NULL, 1, 2, &o8, HW_DT_S8, out8, NULL), HW_ERR_ARG, "NULL acc");
    CHECK_EQ(hw_requantize_s64(acc, 1, 2, &o8, HW_DT_S8, NULL, NULL), HW_ERR_ARG, "NULL out");
    CHECK_EQ(hw_requantize_s64(acc, -1, 2, &o8, HW_DT_S8, out8, NULL), HW_ERR_ARG, "rows < 0");
    CHECK_EQ(hw_requantize_s64(acc, 1, 2, &o8, HW_DT_S64, out8, NULL), HW_ERR_ARG, "S64 output");
    CHECK_EQ(hw_requantize_s64(acc, INT64_MAX, 2, &o8, HW_DT_S8, out8, NULL), HW_ERR_ARG, "size overflow");
    o8.n_channels = 3;
    int32_t m3[3] = {1 << 30, 1 << 30, 1 << 30}, s3[3] = {0, 0, 0};
    o8.multiplier = m3;
    o8.shift = s3;
    CHECK_EQ(hw_requantize_s64(acc, 1, 2, &o8, HW_DT_S8, out8, NULL), HW_ERR_ARG, "channels != cols");

    int64_t x[2] = {5, -5}, y[2], ev = -1;
    CHECK_EQ(hw_round_shift_s64(x, 2, 64, HW_ROUND_FLOOR, 0, y), HW_ERR_ARG, "shift 64");
    CHECK_EQ(hw_round_shift_s64(x, 2, 1, (hw_rounding_t)9, 0, y), HW_ERR_ARG, "mode 9");
    CHECK_EQ(hw_round_shift_s64(NULL, 2, 1, HW_ROUND_FLOOR, 0, y), HW_ERR_ARG, "NULL x");
    CHECK_EQ(hw_round_shift_s64(x, 2, 1, HW_ROUND_HALF_EVEN, 0, y), HW_OK, "round ok");
    CHECK_EQ(y[0], 2, "5/2 half_even");
    CHECK_EQ(y[1], -2, "-5/2 half_even");
    CHECK_EQ(hw_narrow_s64(x, 2, 1, 1, HW_OVERFLOW_WRAP, y, &ev), HW_ERR_ARG, "signed 1 bit");
    CHECK_EQ(hw_narrow_s64(x, 2, 64, 0, HW_OVERFLOW_WRAP, y, &ev), HW_ERR_ARG, "unsigned 64 bit");
    CHECK_EQ(hw_narrow_s64(x, 2, 3, 0, HW_OVERFLOW_WRAP, y, &ev), HW_OK, "u3 wrap");
    CHECK_EQ(y[0], 5, "u3 wrap 5");
    CHECK_EQ(y[1], 3, "u3 wrap -5");
    CHECK_EQ(ev, 1, "u3 wrap events");
    CHECK_EQ(hw_narrow_s64(x, 2, 3, 1, HW_OVERFLOW_SATURATE, y, &ev), HW_OK, "s3 sat");
    CHECK_EQ(y[0], 3, "s3 sat 5");
    CHECK_EQ(y[1], -4, "s3 sat -5");
    CHECK_EQ(ev, 2, "s3 sat events");
    int32_t a32[1] = {1}, e32[1] = {32}, o32[1];
    CHECK_EQ(hw_rdbpot_s32(a32, e32, 1, o32), HW_ERR_ARG, "rdbpot exponent 32");
    CHECK_EQ(hw_srdhm_s32(a32, NULL, 1, o32), HW_ERR_ARG, "srdhm NULL b");
}

int main(void)
{
    test_round_div_pow2();
    test_stochastic();
    test_fixed_point_ops();
    test_requant_vectors();
    test_output_stage();
    test_arg_checks();
    printf("test_fixedpoint: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
