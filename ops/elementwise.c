/* Elementwise ops: binary with NumPy broadcasting, affine, unary maps, step,
 * where. Gradients of broadcast operands are summed back to their shapes
 * with sum_to (the adjoint of broadcasting). */
#define _GNU_SOURCE /* qsort_r */
#include "ops/op.h"
#include "ops/vmath.h"

#include <stdlib.h>

static bool need_f32(loom_graph *g, const char *op, const loom_tensor *in, int n)
{
    for (int i = 0; i < n; i++)
        if (loom_tensor_dtype(g, in[i]) != LOOM_F32) {
            loom_graph_fail(g, LOOM_ERR_ARG, "%s: input %s must be f32", op, TSTR(g, in[i]));
            return false;
        }
    return true;
}

static bool broadcast_rule(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_shape *out)
{
    if (!need_f32(g, op, in, n)) return false;
    loom_shape s = loom_tensor_shape(g, in[0]);
    for (int i = 1; i < n; i++) {
        if (!loom_broadcast_shape(s, loom_tensor_shape(g, in[i]), &s)) {
            if (n == 2)
                loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: cannot broadcast %s with %s", op, TSTR(g, in[0]),
                                TSTR(g, in[1]));
            else
                loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: cannot broadcast %s, %s and %s", op, TSTR(g, in[0]),
                                TSTR(g, in[1]), TSTR(g, in[2]));
            return false;
        }
    }
    *out = s;
    return true;
}

static bool shape_broadcast(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                            loom_shape *out, loom_dtype *dt)
{
    (void)a;
    *dt = LOOM_F32;
    return broadcast_rule(g, op, in, n, out);
}

/* Binary kernel over the broadcast shape: the output is walked as rows of
 * its last dimension; each row reads a and b through broadcast strides, with
 * a contiguous fast path for equal shapes and for a row-broadcast operand. */
#define BINARY_KERNEL(fn, EXPR)                                                                        \
    LOOM_VECTOR_CLONES static void fn##_span(const float *A, const float *B, float *o, int64_t n)     \
    {                                                                                                  \
        _Pragma("omp simd")                                                                            \
        for (int64_t i = 0; i < n; i++) {                                                              \
            float x = A[i], y = B[i];                                                                  \
            o[i] = (EXPR);                                                                             \
        }                                                                                              \
    }                                                                                                  \
    static void fn##_fuse(const float *x, const float *y, float *o, int64_t n, const float *f)         \
    {                                                                                                  \
        (void)f;                                                                                       \
        fn##_span(x, y, o, n);                                                                         \
    }                                                                                                  \
    static loom_status fn(const loom_kargs *k)                                                         \
    {                                                                                                  \
        const float *A = k->in[0], *B = k->in[1];                                                      \
        float *o = k->out;                                                                             \
        loom_shape os = k->node->shape;                                                                \
        int64_t n = loom_shape_numel(os);                                                              \
        if (loom_shape_eq(k->in_node[0]->shape, os) && loom_shape_eq(k->in_node[1]->shape, os)) {     \
            int64_t s0, s1;                                                                            \
            loom_share(k, (n + LOOM_SPAN - 1) / LOOM_SPAN, n, &s0, &s1);                              \
            for (int64_t s = s0; s < s1; s++) {                                                        \
                int64_t lo = s * LOOM_SPAN, m = n - lo < LOOM_SPAN ? n - lo : LOOM_SPAN;                \
                fn##_span(A + lo, B + lo, o + lo, m);                                                  \
            }                                                                                          \
            return LOOM_OK;                                                                            \
        }                                                                                              \
        int64_t d[4], sa[4], sb[4];                                                                    \
        loom_shape_pad4(os, d);                                                                        \
        loom_broadcast_strides(k->in_node[0]->shape, os, sa);                                          \
        loom_broadcast_strides(k->in_node[1]->shape, os, sb);                                          \
        int64_t len = d[3], r0, r1;                                                                    \
        loom_share(k, d[0] * d[1] * d[2], n, &r0, &r1);                                                \
        for (int64_t r = r0; r < r1; r++) {                                                            \
            int64_t i2 = r % d[2], i1 = (r / d[2]) % d[1], i0 = r / (d[2] * d[1]);                     \
            const float *pa = A + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];                                \
            const float *pb = B + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];                                \
            float *po = o + r * len;                                                                   \
            if (sa[3] == 1 && sb[3] == 1) { /* rows of both operands contiguous (a bias row) */        \
                fn##_span(pa, pb, po, len);                                                            \
                continue;                                                                              \
            }                                                                                          \
            for (int64_t j = 0; j < len; j++) {                                                        \
                float x = pa[j * sa[3]], y = pb[j * sb[3]];                                            \
                po[j] = (EXPR);                                                                        \
            }                                                                                          \
        }                                                                                              \
        return LOOM_OK;                                                                                \
    }
BINARY_KERNEL(add_forward, x + y)
BINARY_KERNEL(sub_forward, x - y)
BINARY_KERNEL(mul_forward, x * y)
BINARY_KERNEL(div_forward, x / y)

static loom_tensor in0(loom_graph *g, loom_tensor y) { return loom_node_input(g, y, 0); }
static loom_tensor in1(loom_graph *g, loom_tensor y) { return loom_node_input(g, y, 1); }
static loom_tensor in2(loom_graph *g, loom_tensor y) { return loom_node_input(g, y, 2); }
static loom_tensor back_to(loom_graph *g, loom_tensor grad, loom_tensor x)
{
    return loom_sum_to(g, grad, loom_tensor_shape(g, x));
}

/* d(a+b) = da + db */
static void add_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    if (need[0]) gx[0] = back_to(g, gy, in0(g, y));
    if (need[1]) gx[1] = back_to(g, gy, in1(g, y));
}

static void sub_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    if (need[0]) gx[0] = back_to(g, gy, in0(g, y));
    if (need[1]) gx[1] = back_to(g, loom_neg(g, gy), in1(g, y));
}

/* d(a·b) = b·da + a·db */
static void mul_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    loom_tensor a = in0(g, y), b = in1(g, y);
    if (need[0]) gx[0] = back_to(g, loom_mul(g, gy, b), a);
    if (need[1]) gx[1] = back_to(g, loom_mul(g, gy, a), b);
}

/* y = a/b: dL/da = gy/b, dL/db = -gy·a/b² = -gy·y/b */
static void div_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    loom_tensor a = in0(g, y), b = in1(g, y);
    if (need[0]) gx[0] = back_to(g, loom_div(g, gy, b), a);
    if (need[1]) gx[1] = back_to(g, loom_neg(g, loom_div(g, loom_mul(g, gy, y), b)), b);
}

/* ---- the element rules in double (the double path, loom_args64) ---- */
#define MAP64(name, EXPR) \
    static double name##_64(double x, double y, const float *f) \
    { \
        (void)y, (void)f; \
        return (EXPR); \
    }
MAP64(add, x + y)
MAP64(sub, x - y)
MAP64(mul, x * y)
MAP64(div, x / y)
MAP64(affine, (double)f[0] * x + f[1])
MAP64(tanh, tanh(x))
MAP64(sigmoid, 1 / (1 + exp(-x)))
MAP64(relu, x > 0 ? x : 0)
MAP64(exp, exp(x))
MAP64(log, log(x))
MAP64(step, x > 0 ? 1 : 0)
MAP64(sqrt, sqrt(x))
MAP64(rsqrt, 1 / sqrt(x))
MAP64(pow, pow(x, f[0]))
MAP64(softplus, fmax(x, 0) + log1p(exp(-fabs(x))))
MAP64(elu, x > 0 ? x : f[0] * expm1(x))
MAP64(hard_sigmoid, fmin(fmax(x + 3, 0), 6) / 6)

static loom_status add_n_64(const loom_args64 *a)
{
    int64_t n = loom_shape_numel(a->node->shape);
    for (int64_t i = 0; i < n; i++) {
        double v = 0;
        for (int j = 0; j < a->n_in; j++) v += a->in[j][i];
        a->out[i] = v;
    }
    return LOOM_OK;
}

static loom_status where_64(const loom_args64 *a)
{
    loom_shape os = a->node->shape;
    for (int64_t i = 0, n = loom_shape_numel(os); i < n; i++) {
        double c = a->in[0][loom_broadcast_index(a->in_node[0]->shape, os, i)];
        int m = c != 0 ? 1 : 2;
        a->out[i] = a->in[m][loom_broadcast_index(a->in_node[m]->shape, os, i)];
    }
    return LOOM_OK;
}

/* Row by row in input 0 when input 0 has the output's shape and input 1
 * is the same for every row (a bias): rows of several such nodes stack. */
static bool binary_batches(const loom_graph *g, loom_tensor t)
{
    loom_shape o = loom_tensor_shape(g, t), b = loom_tensor_shape(g, loom_node_input(g, t, 1));
    return o.rank >= 2 && loom_shape_eq(loom_tensor_shape(g, loom_node_input(g, t, 0)), o) &&
           (b.rank < o.rank || b.d[0] == 1);
}

const loom_op_desc loom_desc_add = {
    .name = "add", .symbol = "+", .min_in = 2, .max_in = 2, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_broadcast, .forward = add_forward, .span = add_forward_fuse, .grad = add_grad, .batches = binary_batches,
    .map64 = add_64};
const loom_op_desc loom_desc_sub = {
    .name = "sub", .symbol = "−", .min_in = 2, .max_in = 2, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_broadcast, .forward = sub_forward, .span = sub_forward_fuse, .grad = sub_grad, .batches = binary_batches,
    .map64 = sub_64};
const loom_op_desc loom_desc_mul = {
    .name = "mul", .symbol = "⊙", .min_in = 2, .max_in = 2, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_broadcast, .forward = mul_forward, .span = mul_forward_fuse, .grad = mul_grad, .batches = binary_batches,
    .map64 = mul_64};
const loom_op_desc loom_desc_div = {
    .name = "div", .symbol = "÷", .min_in = 2, .max_in = 2, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_broadcast, .forward = div_forward, .span = div_forward_fuse, .grad = div_grad, .batches = binary_batches,
    .map64 = div_64};

/* ---- add_n: Σ_k x_k over inputs of one shape ---- */

static bool shape_add_n(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a, loom_shape *out,
                        loom_dtype *dt)
{
    if (!need_f32(g, op, in, n)) return false;
    loom_shape s = loom_tensor_shape(g, in[0]);
    for (int i = 1; i < n; i++)
        if (!loom_shape_eq(loom_tensor_shape(g, in[i]), s))
            return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: input %d %s does not have the shape of input 0 %s",
                                               op, i, TSTR(g, in[i]), TSTR(g, in[0])));
    *out = s;
    *dt = LOOM_F32;
    return true;
}

/* Block by block, one input at a time: each pass is a vector loop over a
 * block that stays in L1, where an element-by-element sum would stream
 * from all m inputs at once (35 weight-gradient terms of a BPTT sum defeat
 * the prefetchers: 3–4× slower). The order of the additions per element is
 * the same, 0 + x_0 + x_1 + …, so the result is identical. The output
 * never shares memory with an input (buffers share only when their
 * lifetimes do not meet). With beta = 1 the terms add to what out holds. */
enum { ADD_N_BLOCK = 2048 };

static loom_status add_n_forward(const loom_kargs *k)
{
    int64_t n = loom_shape_numel(k->node->shape), blocks = (n + ADD_N_BLOCK - 1) / ADD_N_BLOCK;
    int m = k->n_in;
    bool add = k->beta != 0.0f; /* out already holds terms a rewrite ran into it */
    int64_t b0, b1;
    loom_share(k, blocks, n * m, &b0, &b1);
    for (int64_t b = b0; b < b1; b++) {
        int64_t lo = b * ADD_N_BLOCK, hi = lo + ADD_N_BLOCK < n ? lo + ADD_N_BLOCK : n;
        float *restrict o = k->out;
        const float *restrict x = k->in[0];
        if (add)
            for (int64_t i = lo; i < hi; i++) o[i] += x[i];
        else
            for (int64_t i = lo; i < hi; i++) o[i] = 0.0f + x[i];
        for (int j = 1; j < m; j++) {
            x = k->in[j];
            for (int64_t i = lo; i < hi; i++) o[i] += x[i];
        }
    }
    return LOOM_OK;
}

/* Every term gets the upstream gradient. */
static void add_n_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    int m = loom_graph_node(g, y)->n_in;
    for (int j = 0; j < m; j++)
        if (need[j]) gx[j] = gy;
}

const loom_op_desc loom_desc_add_n = {
    .name = "add_n", .symbol = "+", .min_in = 1, .max_in = 1 << 20, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_SUM,
    .shape = shape_add_n, .forward = add_n_forward, .grad = add_n_grad,
    .f64 = add_n_64};

/* where(c, a, b): three operands through broadcast strides, a row of the
 * last axis at a time (each operand's row is contiguous or one repeated
 * value). */
static loom_status where_forward(const loom_kargs *k)
{
    loom_shape os = k->node->shape;
    int64_t n = loom_shape_numel(os), d[4], s[3][4];
    loom_shape_pad4(os, d);
    for (int i = 0; i < 3; i++) loom_broadcast_strides(k->in_node[i]->shape, os, s[i]);
    int64_t W = d[3], rows = n / W, r0, r1;
    loom_share(k, rows, n, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        int64_t i0 = r / (d[1] * d[2]), i1 = (r / d[2]) % d[1], i2 = r % d[2];
        const float *in[3];
        for (int m = 0; m < 3; m++) in[m] = k->in[m] + i0 * s[m][0] + i1 * s[m][1] + i2 * s[m][2];
        const float *c = in[0], *a = in[1], *b = in[2];
        float *o = k->out + r * W;
        int64_t sc = s[0][3], sa = s[1][3], sb = s[2][3];
        if (sc && sa && sb) {
            #pragma omp simd
            for (int64_t j = 0; j < W; j++) o[j] = c[j] != 0.0f ? a[j] : b[j];
        } else {
            for (int64_t j = 0; j < W; j++) o[j] = c[j * sc] != 0.0f ? a[j * sa] : b[j * sb];
        }
    }
    return LOOM_OK;
}

/* The chosen branch gets the gradient, the other zero; cond gets none. */
static void where_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    loom_tensor c = in0(g, y), zero = loom_scalar(g, 0.0f);
    if (need[1]) gx[1] = back_to(g, loom_where(g, c, gy, zero), in1(g, y));
    if (need[2]) gx[2] = back_to(g, loom_where(g, c, zero, gy), in2(g, y));
}

const loom_op_desc loom_desc_where = {
    .name = "where", .min_in = 3, .max_in = 3, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_broadcast, .forward = where_forward, .grad = where_grad,
    .f64 = where_64};

/* ---- unary ---- */

static bool shape_unary(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                        loom_shape *out, loom_dtype *dt)
{
    (void)a;
    (void)n;
    if (!need_f32(g, op, in, 1)) return false;
    *out = loom_tensor_shape(g, in[0]);
    *dt = LOOM_F32;
    return true;
}

#define UNARY_KERNEL(fn, EXPR)                                                                         \
    LOOM_VECTOR_CLONES static void fn##_span(const float *X, float *o, int64_t n, float p0, float p1) \
    {                                                                                                  \
        (void)p0;                                                                                      \
        (void)p1;                                                                                      \
        _Pragma("omp simd")                                                                            \
        for (int64_t i = 0; i < n; i++) {                                                              \
            float x = X[i];                                                                            \
            o[i] = (EXPR);                                                                             \
        }                                                                                              \
    }                                                                                                  \
    static void fn##_fuse(const float *x, const float *y, float *o, int64_t n, const float *f)         \
    {                                                                                                  \
        (void)y;                                                                                       \
        fn##_span(x, o, n, f[0], f[1]);                                                                \
    }                                                                                                  \
    static loom_status fn(const loom_kargs *k)                                                         \
    {                                                                                                  \
        int64_t n = loom_shape_numel(k->node->shape), s0, s1;                                          \
        const float p0 = k->node->attr.f[0], p1 = k->node->attr.f[1];                                  \
        loom_share(k, (n + LOOM_SPAN - 1) / LOOM_SPAN, n, &s0, &s1);                                  \
        for (int64_t s = s0; s < s1; s++) {                                                            \
            int64_t lo = s * LOOM_SPAN, m = n - lo < LOOM_SPAN ? n - lo : LOOM_SPAN;                    \
            fn##_span(k->in[0] + lo, k->out + lo, m, p0, p1);                                          \
        }                                                                                              \
        return LOOM_OK;                                                                                \
    }
UNARY_KERNEL(affine_forward, p0 * x + p1)
/* tanh, σ and exp in vector code (ops/vmath.h): within 3 ulp, NaN kept. */
UNARY_KERNEL(tanh_forward, loom_vtanhf(x))
UNARY_KERNEL(sigmoid_forward, loom_vsigmoidf(x))
UNARY_KERNEL(relu_forward, x > 0 ? x : 0.0f)
UNARY_KERNEL(exp_forward, loom_vexpf(x))
UNARY_KERNEL(log_forward, logf(x))
UNARY_KERNEL(step_forward, x > 0 ? 1.0f : 0.0f)
UNARY_KERNEL(sqrt_forward, sqrtf(x))
UNARY_KERNEL(rsqrt_forward, 1.0f / sqrtf(x))
UNARY_KERNEL(pow_forward, powf(x, p0))
/* log(1 + eˣ) = max(x, 0) + log(1 + e^−|x|): no overflow, no cancellation */
UNARY_KERNEL(softplus_forward, fmaxf(x, 0.0f) + log1pf(loom_vexpf(-fabsf(x))))
UNARY_KERNEL(elu_forward, x > 0 ? x : p0 * expm1f(x))
/* PyTorch's Hardsigmoid: relu6(x + 3)/6 */
UNARY_KERNEL(hard_sigmoid_forward, x <= -3.0f ? 0.0f : x >= 3.0f ? 1.0f : x * (1.0f / 6.0f) + 0.5f)

/* d(a·x + b) = a·dx */
static void affine_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_scale(g, gy, loom_graph_node(g, y)->attr.f[0]);
}

/* tanh' = 1 - y² */
static void tanh_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_mul(g, gy, loom_affine(g, loom_mul(g, y, y), -1.0f, 1.0f));
}

/* σ' = y(1 - y) */
static void sigmoid_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_mul(g, gy, loom_mul(g, y, loom_affine(g, y, -1.0f, 1.0f)));
}

/* relu' = [x > 0] = [y > 0] */
static void relu_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_mul(g, gy, loom_step(g, y));
}

static void exp_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_mul(g, gy, y);
}

static void log_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_div(g, gy, in0(g, y));
}

/* √x' = 1/(2√x) = 1/(2y) */
static void sqrt_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_div(g, gy, loom_scale(g, y, 2.0f));
}

/* y = x^−½: y' = −½ x^−3/2 = −½ y³ */
static void rsqrt_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_mul(g, gy, loom_scale(g, loom_mul(g, y, loom_mul(g, y, y)), -0.5f));
}

/* (xᵖ)' = p·x^(p−1) */
static void pow_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    float p = loom_graph_node(g, y)->attr.f[0];
    gx[0] = loom_mul(g, gy, loom_scale(g, loom_pow(g, in0(g, y), p - 1.0f), p));
}

/* softplus' = σ */
static void softplus_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_mul(g, gy, loom_sigmoid(g, in0(g, y)));
}

/* elu' = 1 for x > 0, α eˣ = y + α otherwise */
static void elu_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    float alpha = loom_graph_node(g, y)->attr.f[0];
    loom_tensor d = loom_where(g, loom_step(g, in0(g, y)), loom_scalar(g, 1.0f), loom_affine(g, y, 1.0f, alpha));
    gx[0] = loom_mul(g, gy, d);
}

/* hard_sigmoid' = 1/6 on (−3, 3), 0 outside */
static void hard_sigmoid_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    loom_tensor x = in0(g, y);
    loom_tensor inside = loom_sub(g, loom_step(g, loom_affine(g, x, 1.0f, 3.0f)), loom_step(g, loom_affine(g, x, 1.0f, -3.0f)));
    gx[0] = loom_mul(g, gy, loom_scale(g, inside, 1.0f / 6.0f));
}

/* A step function is flat almost everywhere: zero gradient. */
static void zero_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    (void)g, (void)y, (void)gy, (void)need, (void)gx;
}

const loom_op_desc loom_desc_affine = {
    .name = "affine", .symbol = "a·x+b", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = affine_forward, .span = affine_forward_fuse, .grad = affine_grad,
    .map64 = affine_64};
const loom_op_desc loom_desc_tanh = {
    .name = "tanh", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = tanh_forward, .span = tanh_forward_fuse, .grad = tanh_grad,
    .map64 = tanh_64};
const loom_op_desc loom_desc_sigmoid = {
    .name = "sigmoid", .symbol = "σ", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = sigmoid_forward, .span = sigmoid_forward_fuse, .grad = sigmoid_grad,
    .map64 = sigmoid_64};
const loom_op_desc loom_desc_relu = {
    .name = "relu", .symbol = "ReLU", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = relu_forward, .span = relu_forward_fuse, .grad = relu_grad,
    .map64 = relu_64};
const loom_op_desc loom_desc_exp = {
    .name = "exp", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = exp_forward, .span = exp_forward_fuse, .grad = exp_grad,
    .map64 = exp_64};
const loom_op_desc loom_desc_log = {
    .name = "log", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = log_forward, .span = log_forward_fuse, .grad = log_grad,
    .map64 = log_64};
const loom_op_desc loom_desc_step = {
    .name = "step", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = step_forward, .span = step_forward_fuse, .grad = zero_grad,
    .map64 = step_64};
const loom_op_desc loom_desc_sqrt = {
    .name = "sqrt", .symbol = "√", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = sqrt_forward, .span = sqrt_forward_fuse, .grad = sqrt_grad,
    .map64 = sqrt_64};
const loom_op_desc loom_desc_rsqrt = {
    .name = "rsqrt", .symbol = "1/√", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = rsqrt_forward, .span = rsqrt_forward_fuse, .grad = rsqrt_grad,
    .map64 = rsqrt_64};
const loom_op_desc loom_desc_pow = {
    .name = "pow", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = pow_forward, .span = pow_forward_fuse, .grad = pow_grad,
    .map64 = pow_64};
const loom_op_desc loom_desc_softplus = {
    .name = "softplus", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = softplus_forward, .span = softplus_forward_fuse, .grad = softplus_grad,
    .map64 = softplus_64};
const loom_op_desc loom_desc_elu = {
    .name = "elu", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = elu_forward, .span = elu_forward_fuse, .grad = elu_grad,
    .map64 = elu_64};
const loom_op_desc loom_desc_hard_sigmoid = {
    .name = "hard_sigmoid", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_SPLITS | OPF_ELEMENTWISE | OPF_INPLACE,
    .shape = shape_unary, .forward = hard_sigmoid_forward, .span = hard_sigmoid_forward_fuse, .grad = hard_sigmoid_grad,
    .map64 = hard_sigmoid_64};

/* ---- builders ---- */

static loom_tensor binary(loom_graph *g, int op, loom_tensor a, loom_tensor b)
{
    loom_attrs at = loom_attrs_zero();
    return loom_op_build(g, op, (loom_tensor[]){a, b}, 2, &at);
}

static loom_tensor unary(loom_graph *g, int op, loom_tensor x, float p0, float p1)
{
    loom_attrs at = loom_attrs_zero();
    at.f[0] = p0;
    at.f[1] = p1;
    return loom_op_build(g, op, &x, 1, &at);
}

loom_tensor loom_add(loom_graph *g, loom_tensor a, loom_tensor b) { return binary(g, OP_ADD, a, b); }
loom_tensor loom_sub(loom_graph *g, loom_tensor a, loom_tensor b) { return binary(g, OP_SUB, a, b); }
loom_tensor loom_mul(loom_graph *g, loom_tensor a, loom_tensor b) { return binary(g, OP_MUL, a, b); }
loom_tensor loom_div(loom_graph *g, loom_tensor a, loom_tensor b) { return binary(g, OP_DIV, a, b); }

static int cmp_before(const void *a, const void *b, void *graph)
{
    const loom_node *x = loom_graph_node(graph, *(const loom_tensor *)a), *y = loom_graph_node(graph, *(const loom_tensor *)b);
    return (x->attr.i[1] > y->attr.i[1]) - (x->attr.i[1] < y->attr.i[1]);
}

/* Σ of pads of pieces along one axis into one shape — the gradient of a
 * tensor sliced step by step — is the pieces side by side: one concat, with
 * zero fills in the gaps. That costs the size of the result, not (pieces ×
 * size) as summing full-size pads would (BPTT through T slices of an input
 * would be O(T²) in time and memory). Pads that overlap stay in the sum.
 * Moves the merged pads out of xs; returns the number of terms left, the
 * concat among them. */
static int merge_pads(loom_graph *g, loom_tensor *xs, int n)
{
    const loom_node *first = NULL;
    int m = 0;
    for (int i = 0; i < n; i++) { /* the pads like the first pad, to the front */
        const loom_node *p = loom_graph_node(g, xs[i]);
        if (p->op != OP_PAD || (first && (p->attr.i[0] != first->attr.i[0] || !loom_shape_eq(p->shape, first->shape))))
            continue;
        if (!first) first = p;
        loom_tensor t = xs[m];
        xs[m++] = xs[i];
        xs[i] = t;
    }
    if (m < 2) return n;
    int ax = first->attr.i[0], size = first->shape.d[ax];
    loom_shape shape = first->shape;
    qsort_r(xs, (size_t)m, sizeof *xs, cmp_before, g);
    loom_tensor *parts = malloc((2 * (size_t)m + 1) * sizeof *parts);
    if (!parts) return loom_graph_fail(g, LOOM_ERR_NOMEM, "add_n: out of memory"), n;
    int n_parts = 0, kept = 0, end = 0;
    for (int i = 0; i < m; i++) {
        const loom_node *p = loom_graph_node(g, xs[i]);
        int before = p->attr.i[1], w = loom_tensor_shape(g, loom_node_input(g, xs[i], 0)).d[ax];
        if (before < end) { /* overlaps the previous piece: summed as a pad */
            xs[kept++] = xs[i];
            continue;
        }
        shape.d[ax] = before - end;
        if (before > end) parts[n_parts++] = loom_fill(g, shape, 0.0f);
        parts[n_parts++] = loom_node_input(g, xs[i], 0);
        end = before + w;
    }
    shape.d[ax] = size - end;
    if (end < size) parts[n_parts++] = loom_fill(g, shape, 0.0f);
    xs[kept++] = loom_concat(g, parts, n_parts, ax);
    free(parts);
    for (int i = m; i < n; i++) xs[kept++] = xs[i];
    return kept;
}

loom_tensor loom_add_n(loom_graph *g, const loom_tensor *xs, int n)
{
    if (n == 1 && xs && loom_graph_has(g, xs[0]) && !loom_graph_failed(g)) return xs[0];
    if (n < 1 || !xs) return loom_graph_fail(g, LOOM_ERR_ARG, "add_n: needs at least one input");
    for (int i = 0; i < n; i++)
        if (!loom_graph_has(g, xs[i])) return loom_op_build(g, OP_ADD_N, xs, n, &(loom_attrs){0}); /* its error */
    loom_tensor *terms = malloc((size_t)n * sizeof *terms);
    if (!terms) return loom_graph_fail(g, LOOM_ERR_NOMEM, "add_n: out of memory");
    memcpy(terms, xs, (size_t)n * sizeof *terms);
    int k = merge_pads(g, terms, n);
    loom_attrs at = loom_attrs_zero();
    loom_tensor y = k == 1 ? terms[0] : loom_op_build(g, OP_ADD_N, terms, k, &at);
    free(terms);
    return y;
}

loom_tensor loom_where(loom_graph *g, loom_tensor c, loom_tensor a, loom_tensor b)
{
    loom_attrs at = loom_attrs_zero();
    return loom_op_build(g, OP_WHERE, (loom_tensor[]){c, a, b}, 3, &at);
}

loom_tensor loom_affine(loom_graph *g, loom_tensor x, float a, float b)
{
    /* affine(affine(x, a2, b2), a, b) = affine(x, a·a2, a·b2 + b): keeps chains short. */
    const loom_node *n = loom_graph_node(g, x);
    if (n && n->op == OP_AFFINE && !loom_graph_failed(g))
        return loom_affine(g, loom_node_input(g, x, 0), a * n->attr.f[0], a * n->attr.f[1] + b);
    if (a == 1.0f && b == 0.0f && loom_graph_has(g, x) && !loom_graph_failed(g)) {
        if (loom_tensor_dtype(g, x) != LOOM_F32)
            return loom_graph_fail(g, LOOM_ERR_ARG, "affine: input %s must be f32", TSTR(g, x));
        return x;
    }
    return unary(g, OP_AFFINE, x, a, b);
}

loom_tensor loom_scale(loom_graph *g, loom_tensor x, float a) { return loom_affine(g, x, a, 0.0f); }
loom_tensor loom_neg(loom_graph *g, loom_tensor x) { return loom_affine(g, x, -1.0f, 0.0f); }
loom_tensor loom_tanh(loom_graph *g, loom_tensor x) { return unary(g, OP_TANH, x, 0, 0); }
loom_tensor loom_sigmoid(loom_graph *g, loom_tensor x) { return unary(g, OP_SIGMOID, x, 0, 0); }
loom_tensor loom_relu(loom_graph *g, loom_tensor x) { return unary(g, OP_RELU, x, 0, 0); }
loom_tensor loom_exp(loom_graph *g, loom_tensor x) { return unary(g, OP_EXP, x, 0, 0); }
loom_tensor loom_log(loom_graph *g, loom_tensor x) { return unary(g, OP_LOG, x, 0, 0); }
loom_tensor loom_step(loom_graph *g, loom_tensor x) { return unary(g, OP_STEP, x, 0, 0); }
loom_tensor loom_sqrt(loom_graph *g, loom_tensor x) { return unary(g, OP_SQRT, x, 0, 0); }
loom_tensor loom_rsqrt(loom_graph *g, loom_tensor x) { return unary(g, OP_RSQRT, x, 0, 0); }
loom_tensor loom_softplus(loom_graph *g, loom_tensor x) { return unary(g, OP_SOFTPLUS, x, 0, 0); }
loom_tensor loom_hard_sigmoid(loom_graph *g, loom_tensor x) { return unary(g, OP_HARD_SIGMOID, x, 0, 0); }

loom_tensor loom_pow(loom_graph *g, loom_tensor x, float p)
{
    if (!isfinite(p)) return loom_graph_fail(g, LOOM_ERR_ARG, "pow: exponent %g is not finite", p);
    if (p == 1.0f && loom_graph_has(g, x) && !loom_graph_failed(g)) return loom_affine(g, x, 1.0f, 0.0f); /* x¹ = x */
    return unary(g, OP_POW, x, p, 0);
}

loom_tensor loom_elu(loom_graph *g, loom_tensor x, float alpha)
{
    if (!isfinite(alpha)) return loom_graph_fail(g, LOOM_ERR_ARG, "elu: alpha %g is not finite", alpha);
    return unary(g, OP_ELU, x, alpha, 0);
}
