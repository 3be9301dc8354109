/* GEMM: CBLAS when loom is built with it (OpenBLAS's OpenMP build shares
 * loom's thread pool), with oneDNN's sgemm for the products of few rows
 * where it is faster; else a portable blocked kernel. */
#include "ops/op.h"

#include <stdlib.h>
#ifdef LOOM_HAVE_CBLAS
#include <cblas.h>
#endif
#ifdef LOOM_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

bool loom_gemm_uses_blas(void)
{
#ifdef LOOM_HAVE_CBLAS
    return true;
#else
    return false;
#endif
}

/* Copies op(X) (r × c) into a contiguous row-major buffer. */
static float *pack(bool t, int r, int c, const float *x, int ld)
{
    float *p = malloc((size_t)r * (size_t)c * sizeof *p);
    if (!p) return NULL;
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) p[(size_t)i * c + j] = t ? x[(size_t)j * ld + i] : x[(size_t)i * ld + j];
    return p;
}

void loom_gemm_ref(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc)
{
    /* Bring both operands to plain row-major form so the inner loop runs
     * over contiguous rows of B and C (vectorisable): C[i,:] += A[i,p]·B[p,:]. */
    float *pa = ta ? pack(true, m, k, a, lda) : NULL;
    float *pb = tb ? pack(true, k, n, b, ldb) : NULL;
    if ((ta && !pa) || (tb && !pb)) {
        /* Out of memory for packing: strided loops, slower but correct. */
        free(pa);
        free(pb);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float s = 0;
                for (int p = 0; p < k; p++)
                    s += (ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]) *
                         (tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j]);
                c[(size_t)i * ldc + j] = alpha * s + (beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j]);
            }
        return;
    }
    const float *A = ta ? pa : a, *B = tb ? pb : b;
    int la = ta ? k : lda, lb = tb ? n : ldb;
    #pragma omp parallel for if ((int64_t)m * n * k > 1 << 18)
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < n; j++) ci[j] = 0.0f;
        else if (beta != 1.0f)
            for (int j = 0; j < n; j++) ci[j] *= beta;
        for (int p = 0; p < k; p++) {
            float s = alpha * A[(size_t)i * la + p];
            const float *bp = B + (size_t)p * lb;
            for (int j = 0; j < n; j++) ci[j] += s * bp[j];
        }
    }
    free(pa);
    free(pb);
}

/* Whether oneDNN runs this product. A fixed rule of the shape, never a
 * timing, so that a run's bits do not depend on the machine's load (a
 * resumed run equals an uninterrupted one). Measured on one thread of an
 * AVX-512 machine (AMD Zen 5), oneDNN 2.6 against OpenBLAS 0.3.21, every
 * combination of M in {16, 20, 32, 64, 700} with the (N, K) of the
 * benchmark's recurrent layers: with at most 64 rows of C, oneDNN is
 * 1.1–2× faster on A·B and on A·Bᵀ while Bᵀ is small (N·K ≤ 2¹⁹), 0.7–0.9×
 * on a larger Bᵀ; with 700 rows the two are within 10 %, and Aᵀ·B (a
 * weight gradient) is mixed; those stay on OpenBLAS. */
static bool dnnl_runs(bool ta, bool tb, int m, int n, int k)
{
#ifdef LOOM_HAVE_DNNL
    return !ta && m <= 64 && (!tb || (int64_t)n * k <= 1 << 19);
#else
    (void)ta, (void)tb, (void)m, (void)n, (void)k;
    return false;
#endif
}

bool loom_gemm_uses_dnnl(void)
{
#ifdef LOOM_HAVE_DNNL
    return true;
#else
    return false;
#endif
}

void loom_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc)
{
#ifdef LOOM_HAVE_DNNL
    /* row-major, as cblas_sgemm(CblasRowMajor, ...); it fails only on bad arguments, which the shape rules exclude */
    if (dnnl_runs(ta, tb, m, n, k) &&
        dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == dnnl_success)
        return;
#endif
#ifdef LOOM_HAVE_CBLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                a, lda, b, ldb, beta, c, ldc);
#else
    loom_gemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}
