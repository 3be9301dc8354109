/* The machine's FP32 peak, measured (loom/runtime.h: loom_fp32_peak): a
 * loop of independent fused multiply-adds that never leaves the registers,
 * in the widest vector unit the CPU reports at run time — AVX-512F, else
 * AVX2 with FMA, else scalar — on every thread at once. Twelve accumulators
 * hide the FMA's latency (4–5 cycles at 2 per cycle); 2 flops per lane per
 * FMA. */
#include "loom/runtime.h"

#include <omp.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define FMA12(fma, a, m, c)                                                                                                         \
    do {                                                                                                                            \
        a[0] = fma(a[0], m, c), a[1] = fma(a[1], m, c), a[2] = fma(a[2], m, c), a[3] = fma(a[3], m, c);                             \
        a[4] = fma(a[4], m, c), a[5] = fma(a[5], m, c), a[6] = fma(a[6], m, c), a[7] = fma(a[7], m, c);                             \
        a[8] = fma(a[8], m, c), a[9] = fma(a[9], m, c), a[10] = fma(a[10], m, c), a[11] = fma(a[11], m, c);                         \
    } while (0)

/* n rounds of 12 FMAs on 16 lanes; returns a sum so the work is kept. */
__attribute__((target("avx512f"))) static float fma_avx512(int64_t n)
{
    __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (int64_t k = 0; k < n; k++) FMA12(_mm512_fmadd_ps, a, m, c);
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

/* 12 FMAs on 8 lanes per round. */
__attribute__((target("avx2,fma"))) static float fma_avx2(int64_t n)
{
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (int64_t k = 0; k < n; k++) FMA12(_mm256_fmadd_ps, a, m, c);
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    float out[8], t = 0;
    _mm256_storeu_ps(out, s);
    for (int i = 0; i < 8; i++) t += out[i];
    return t;
}
#endif

/* 12 multiply-adds on 1 lane per round (what a CPU without vector FMA does). */
static float fma_scalar(int64_t n)
{
    volatile float seed = 0.999999f;
    float a[12], m = seed, c = 1e-7f, t = 0;
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    for (int64_t k = 0; k < n; k++)
        for (int i = 0; i < 12; i++) a[i] = a[i] * m + c;
    for (int i = 0; i < 12; i++) t += a[i];
    return t;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double loom_fp32_peak(int threads, double seconds, const char **isa)
{
    int lanes = 1;
    float (*kernel)(int64_t) = fma_scalar;
    const char *name = "scalar";
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) kernel = fma_avx512, lanes = 16, name = "AVX-512F";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) kernel = fma_avx2, lanes = 8, name = "AVX2+FMA";
#endif
    if (isa) *isa = name;
    int T = threads > 0 ? threads : omp_get_max_threads();
    if (!(seconds > 0)) seconds = 0.2;
    /* rounds for about `seconds`: calibrated on one thread, then run on all at once */
    int64_t n = 1 << 16;
    double t0 = now();
    volatile float sink = kernel(n);
    double dt = now() - t0;
    while (dt < 0.02) n *= 4, t0 = now(), sink += kernel(n), dt = now() - t0;
    n = (int64_t)((double)n * seconds / dt) + 1;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) { /* the best of three: a preempted run is not the machine */
        double start = now();
#pragma omp parallel num_threads(T)
        {
            float s = kernel(n);
#pragma omp atomic
            sink += s;
        }
        double el = now() - start, gflops = (double)n * 12 * lanes * 2 * T / el / 1e9;
        best = gflops > best ? gflops : best;
    }
    (void)sink;
    return best;
}
