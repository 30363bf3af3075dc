/* hw_dispatch.c -- run-time ISA detection and the order in which fast paths
 * are tried.
 *
 * One build runs everywhere: no file is compiled with a global -march; the
 * fast paths put __attribute__((target(...))) on their own functions and are
 * only entered when hw_active_features() says the CPU (and the OS, for the
 * AVX-512 register state) supports them.  hw_set_feature_limit lets tests hold
 * every fast path to the portable kernel on the same machine.
 */
#include <stddef.h>
#include "hw_kernels.h"
#include "hw_dispatch.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

/* Both words are read by every kernel call and may be written by another
 * thread (a test changing the limit), so they go through atomic builtins. */
static uint32_t feature_limit = 0xffffffffu;
static uint32_t detected_features = 0;
static int detected = 0;
static uint64_t fast_calls = 0;

static uint32_t detect_features(void)
{
    uint32_t f = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* libgcc's cpu model checks CPUID and, for AVX/AVX-512, that XGETBV
     * reports the OS saves the ymm/zmm state. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) f |= HW_ISA_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        f |= HW_ISA_AVX512BW;
    if ((f & HW_ISA_AVX512BW) && __builtin_cpu_supports("avx512vnni")) f |= HW_ISA_AVX512_VNNI;
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
    if ((f & HW_ISA_AVX2) && __builtin_cpu_supports("avxvnni")) f |= HW_ISA_AVX_VNNI;
#endif
#elif defined(__aarch64__) && defined(__linux__)
    unsigned long hwcap = getauxval(AT_HWCAP);
#ifdef HWCAP_ASIMD
    if (hwcap & HWCAP_ASIMD) f |= HW_ISA_NEON;
#endif
#ifdef HWCAP_ASIMDDP
    if (hwcap & HWCAP_ASIMDDP) f |= HW_ISA_NEON_DOT;
#endif
    (void)hwcap;
#endif
    return f;
}

uint32_t hw_cpu_features(void)
{
    if (!__atomic_load_n(&detected, __ATOMIC_ACQUIRE)) {
        /* Idempotent: two threads racing here store the same value. */
        __atomic_store_n(&detected_features, detect_features(), __ATOMIC_RELAXED);
        __atomic_store_n(&detected, 1, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&detected_features, __ATOMIC_RELAXED);
}

uint32_t hw_set_feature_limit(uint32_t mask)
{
    return __atomic_exchange_n(&feature_limit, mask, __ATOMIC_ACQ_REL);
}

uint32_t hw_active_features(void)
{
    return hw_cpu_features() & __atomic_load_n(&feature_limit, __ATOMIC_ACQUIRE);
}

uint64_t hw_fast_calls(void) { return __atomic_load_n(&fast_calls, __ATOMIC_RELAXED); }

static int count_taken(int taken)
{
    if (taken) __atomic_add_fetch(&fast_calls, 1, __ATOMIC_RELAXED);
    return taken;
}

/* Order: the most specific path first.  Each path declines (returns 0) any
 * call it cannot compute bit-identically to the portable kernel. */
int hw_gemm_fast(const hw_gemm_args_t *args, const hw_accum_spec_t *acc,
                 const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                 int64_t *acc_out, hw_counters_t *counters)
{
    if (hw_active_features() == 0) return 0;
    return count_taken(hw_gemm_fast_vnni(args, acc, rq, out_dtype, out, acc_out, counters)
                       || hw_gemm_fast_narrow(args, acc, rq, out_dtype, out, acc_out, counters));
}

int hw_conv2d_fast(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc,
                   const hw_requant_spec_t *rq, hw_dtype_t out_dtype, void *out,
                   int64_t *acc_out, hw_counters_t *counters)
{
    if (hw_active_features() == 0) return 0;
    return count_taken(hw_conv2d_fast_depthwise(args, acc, rq, out_dtype, out, acc_out, counters)
                       || hw_conv2d_fast_vnni(args, acc, rq, out_dtype, out, acc_out, counters)
                       || hw_conv2d_fast_narrow(args, acc, rq, out_dtype, out, acc_out, counters));
}
