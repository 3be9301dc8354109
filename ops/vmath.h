/* Internal: exp, tanh and the logistic function as straight-line float code
 * that compilers vectorise (no calls, no branches: selects), for the
 * elementwise kernels. Accuracy within 3 ulp of the exact value
 * over the whole float range (tests/test_ops.c sweeps it); NaN in, NaN out.
 *
 * exp: x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite: ln2 in two parts, so
 * n·ln2_hi is exact), e^r by its degree-7 Taylor–minimax polynomial
 * (Cephes' expf coefficients), then scaled by 2^n built in the exponent
 * bits of two factors, so that n = 128 (x just below ln FLT_MAX) and
 * n = −126 stay exact. */
#ifndef LOOM_OPS_VMATH_H
#define LOOM_OPS_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float loom_bits_float(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline float loom_vexpf(float x)
{
    const float hi = 88.72283935546875f, lo = -87.33654785156250f; /* ln FLT_MAX, ln FLT_MIN */
    float c = x >= lo && x <= hi ? x : x > hi ? hi : lo; /* NaN too: no out-of-range integer below */
    /* n = round(c / ln2): adding 1.5·2^23 rounds to an integer in the low bits */
    float n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = c - n * 0.693359375f - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    int32_t k = (int32_t)n, k1 = k >> 1; /* 2^k = 2^k1 · 2^(k−k1), both normal for k in [−126, 128] */
    float y = (p * r * r + r + 1.0f) * loom_bits_float((uint32_t)(k1 + 127) << 23) *
              loom_bits_float((uint32_t)(k - k1 + 127) << 23);
    y = x > hi ? INFINITY : x < lo ? 0.0f : y;
    return x != x ? x : y;
}

/* tanh: |x| < 0.625: x + x³·P(x²) (Cephes' tanhf polynomial, no
 * cancellation near 0); above: 1 − 2/(e^{2|x|} + 1) with x's sign. */
static inline float loom_vtanhf(float x)
{
    float a = fabsf(x), z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = copysignf(p * z * a + a, x); /* tanh(−0) = −0 */
    float big = copysignf(1.0f - 2.0f / (loom_vexpf(2.0f * a) + 1.0f), x);
    return a < 0.625f ? small : big;
}

/* σ(x) = 1/(1 + e^−x): e^−x overflows to ∞ for x < −88.7, giving 0. */
static inline float loom_vsigmoidf(float x) { return 1.0f / (1.0f + loom_vexpf(-x)); }

#endif
