/* Sources: inputs, parameters, constants, fills.
 * attrs: shape = the shape; i[0] = dtype; i[1] = stored data index (const);
 * i[2] = initialiser (param); f[0] = fill value or initialiser scale a;
 * f[1] = the initialiser's second number b. */
#include "ops/op.h"

#include <stdlib.h>

static bool shape_source(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                         loom_shape *out, loom_dtype *dt)
{
    (void)in;
    (void)n;
    if (a->shape.rank < 0 || a->shape.rank > LOOM_MAX_RANK)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: rank %d is not in 0..%d", op,
                                           a->shape.rank, LOOM_MAX_RANK));
    *out = a->shape;
    *dt = (loom_dtype)a->i[0];
    return true;
}

static loom_status fill_forward(const loom_kargs *a)
{
    int64_t n = loom_shape_numel(a->node->shape);
    float v = a->node->attr.f[0];
    int64_t i0, i1;
    loom_share(a, n, n, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) a->out[i] = v;
    return LOOM_OK;
}

static loom_status fill_64(const loom_args64 *a)
{
    for (int64_t i = 0, n = loom_shape_numel(a->node->shape); i < n; i++) a->out[i] = a->node->attr.f[0];
    return LOOM_OK;
}

static loom_status const_64(const loom_args64 *a)
{
    const void *d = loom_graph_stored(a->g, a->node->attr.i[1]);
    for (int64_t i = 0, n = loom_shape_numel(a->node->shape); i < n; i++)
        a->out[i] = a->node->dtype == LOOM_I32 ? ((const int32_t *)d)[i] : ((const float *)d)[i];
    return LOOM_OK;
}

const loom_op_desc loom_desc_input = {
    .name = "input", .min_in = 0, .max_in = 0, .flags = OPF_SOURCE | OPF_BOUND,
    .shape = shape_source, .role = LOOM_ROLE_INPUT};
const loom_op_desc loom_desc_param = {
    .name = "param", .min_in = 0, .max_in = 0, .flags = OPF_SOURCE | OPF_BOUND,
    .shape = shape_source, .role = LOOM_ROLE_PARAM};
const loom_op_desc loom_desc_const = {
    .name = "const", .min_in = 0, .max_in = 0, .flags = OPF_SOURCE | OPF_STORED,
    .shape = shape_source, .role = LOOM_ROLE_CONST,
    .f64 = const_64};
/* A fill's gradient is nothing (it has no inputs). */
const loom_op_desc loom_desc_fill = {
    .name = "fill", .min_in = 0, .max_in = 0, .flags = OPF_SPLITS | OPF_PURE | OPF_FILL,
    .shape = shape_source, .forward = fill_forward, .role = LOOM_ROLE_CONST,
    .f64 = fill_64};

static loom_tensor source(loom_graph *g, int op, const char *name, loom_shape s, loom_dtype dt, int32_t store,
                          float value)
{
    loom_attrs a = loom_attrs_zero();
    a.shape = s;
    a.i[0] = dt;
    a.i[1] = store;
    a.f[0] = value;
    loom_tensor t = loom_op_build(g, op, NULL, 0, &a);
    if (name) t = loom_tensor_set_name(g, t, name);
    return t;
}

loom_tensor loom_input(loom_graph *g, const char *name, loom_shape s)
{
    return source(g, OP_INPUT, name, s, LOOM_F32, -1, 0);
}

loom_tensor loom_input_i32(loom_graph *g, const char *name, loom_shape s)
{
    return source(g, OP_INPUT, name, s, LOOM_I32, -1, 0);
}

loom_tensor loom_param(loom_graph *g, const char *name, loom_shape s)
{
    return source(g, OP_PARAM, name, s, LOOM_F32, -1, 0);
}

loom_tensor loom_param_init2(loom_graph *g, const char *name, loom_shape s, loom_init init, float a, float b)
{
    if (loom_graph_failed(g)) return LOOM_INVALID;
    const char *nm = name ? name : "";
    if (init < LOOM_INIT_ZEROS || init > LOOM_INIT_FORGET_GATE)
        return loom_graph_fail(g, LOOM_ERR_ARG, "param: unknown initialiser %d for '%s'", (int)init, nm);
    if (!isfinite(a) || !isfinite(b))
        return loom_graph_fail(g, LOOM_ERR_ARG, "param '%s': initialiser numbers %g, %g are not finite", nm, a, b);
    if (init == LOOM_INIT_UNIFORM_RANGE ? a > b : b != 0 && init != LOOM_INIT_FORGET_GATE)
        return loom_graph_fail(g, LOOM_ERR_ARG, "param '%s': %s", nm,
                               init == LOOM_INIT_UNIFORM_RANGE ? "uniform range with lo > hi" : "only a uniform range and a forget gate have a second number");
    if (init == LOOM_INIT_FORGET_GATE && (s.rank < 1 || s.d[0] % 4))
        return loom_graph_fail(g, LOOM_ERR_ARG, "param '%s': a forget-gate bias needs rows in four equal gates, not %s", nm, SSTR(s));
    if ((init == LOOM_INIT_ZEROS || init == LOOM_INIT_ONES) && a != 0)
        return loom_graph_fail(g, LOOM_ERR_ARG, "param '%s': %s takes no scale (%g given; a constant a is LOOM_INIT_CONSTANT)",
                               nm, init == LOOM_INIT_ZEROS ? "zeros" : "ones", a);
    loom_attrs at = loom_attrs_zero();
    at.shape = s;
    at.i[0] = LOOM_F32;
    at.i[1] = -1;
    at.i[2] = init;
    at.f[0] = a;
    at.f[1] = b;
    loom_tensor t = loom_op_build(g, OP_PARAM, NULL, 0, &at);
    if (name) t = loom_tensor_set_name(g, t, name);
    return t;
}

static loom_tensor constant(loom_graph *g, loom_shape s, const void *data, loom_dtype dt)
{
    if (loom_graph_failed(g)) return LOOM_INVALID;
    if (!data) return loom_graph_fail(g, LOOM_ERR_ARG, "const: data is NULL");
    if (s.rank < 0 || s.rank > LOOM_MAX_RANK)
        return loom_graph_fail(g, LOOM_ERR_SHAPE, "const: rank %d is not in 0..%d", s.rank, LOOM_MAX_RANK);
    for (int i = 0; i < s.rank; i++)
        if (s.d[i] <= 0) return loom_graph_fail(g, LOOM_ERR_SHAPE, "const: shape %s has a dimension < 1", SSTR(s));
    int32_t k = loom_graph_store(g, data, (size_t)loom_shape_numel(s) * 4);
    if (k < 0) return loom_graph_fail(g, LOOM_ERR_NOMEM, "const: out of memory");
    return source(g, OP_CONST, NULL, s, dt, k, 0);
}

loom_tensor loom_param_init(loom_graph *g, const char *name, loom_shape s, loom_init init, float a)
{
    return loom_param_init2(g, name, s, init, a, 0.0f);
}

loom_tensor loom_constant(loom_graph *g, loom_shape s, const float *data) { return constant(g, s, data, LOOM_F32); }

loom_tensor loom_constant_i32(loom_graph *g, loom_shape s, const int32_t *data)
{
    return constant(g, s, data, LOOM_I32);
}

loom_tensor loom_fill(loom_graph *g, loom_shape s, float value) { return source(g, OP_FILL, NULL, s, LOOM_F32, -1, value); }

loom_tensor loom_scalar(loom_graph *g, float value) { return loom_fill(g, loom_shape0(), value); }

/* ---- initialisers (loom_param_init's, run by a store) ---- */

static double normal(uint64_t *st) /* Box–Muller */
{
    double u1 = loom_uniform(st), u2 = loom_uniform(st);
    return sqrt(-2 * log(u1 > 0 ? u1 : 1e-300)) * cos(6.283185307179586 * u2);
}

/* torch.nn.init.orthogonal_: a normal (rows, cols) matrix, its QR
 * factorisation (of the transpose when rows < cols), Q with the signs of
 * R's diagonal — which is what Gram–Schmidt gives, R's diagonal being the
 * norms — times the gain a. Columns of the tall (big, small) matrix m are
 * orthonormalised in place (modified Gram–Schmidt, twice for accuracy). */
static bool orthogonal(float *d, int64_t rows, int64_t cols, float a, uint64_t *st)
{
    int64_t big = rows > cols ? rows : cols, small = rows > cols ? cols : rows;
    double *m = malloc((size_t)(big * small) * sizeof *m);
    if (!m) return false;
    for (int64_t k = 0; k < big * small; k++) m[k] = normal(st); /* m[i * small + j] */
    for (int64_t j = 0; j < small; j++) {
        for (int pass = 0; pass < 2; pass++)
            for (int64_t q = 0; q < j; q++) {
                double dot = 0;
                for (int64_t i = 0; i < big; i++) dot += m[i * small + q] * m[i * small + j];
                for (int64_t i = 0; i < big; i++) m[i * small + j] -= dot * m[i * small + q];
            }
        double norm = 0;
        for (int64_t i = 0; i < big; i++) norm += m[i * small + j] * m[i * small + j];
        norm = sqrt(norm);
        for (int64_t i = 0; i < big; i++) m[i * small + j] = norm > 0 ? m[i * small + j] / norm : 0;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) d[r * cols + c] = (float)(a * (rows >= cols ? m[r * small + c] : m[c * small + r]));
    free(m);
    return true;
}

/* The bound b of a uniform initialiser's U(−b, b): a, or for Xavier's
 * a·√(6 / (fan_in + fan_out)) of a 2-D (or flattened) weight. */
static double uniform_bound(loom_init init, float a, loom_shape s)
{
    if (init != LOOM_INIT_XAVIER_UNIFORM || s.rank < 2) return a;
    double fan_out = s.d[0], fan_in = (double)loom_shape_numel(s) / fan_out;
    return a * sqrt(6.0 / (fan_in + fan_out));
}

const char *loom_init_describe(loom_init init, float a, float b, loom_shape s, char *buf, size_t n)
{
    double u = uniform_bound(init, a, s);
    switch (init) {
    case LOOM_INIT_ZEROS: snprintf(buf, n, "zeros"); break;
    case LOOM_INIT_ONES: snprintf(buf, n, "ones"); break;
    case LOOM_INIT_UNIFORM: snprintf(buf, n, "U(%.4g, %.4g)", -u, u); break;
    case LOOM_INIT_NORMAL: snprintf(buf, n, "N(0, %.4g²)", (double)a); break;
    case LOOM_INIT_XAVIER_UNIFORM: snprintf(buf, n, "xavier: U(%.4g, %.4g)", -u, u); break;
    case LOOM_INIT_ORTHOGONAL: snprintf(buf, n, "orthogonal, gain %.4g", (double)a); break;
    case LOOM_INIT_CONSTANT: snprintf(buf, n, "constant %.4g", (double)a); break;
    case LOOM_INIT_UNIFORM_RANGE: snprintf(buf, n, "U(%.4g, %.4g)", (double)a, (double)b); break;
    case LOOM_INIT_FORGET_GATE: snprintf(buf, n, "U(%.4g, %.4g), forget gate %.4g", -u, u, (double)b); break;
    default: snprintf(buf, n, "unknown initialiser %d", (int)init); break;
    }
    return buf;
}

bool loom_param_fill(const loom_graph *g, loom_tensor p, uint64_t *st, float *d)
{
    const loom_node *nd = loom_graph_node(g, p);
    if (!nd || nd->op != OP_PARAM) return false;
    int64_t numel = loom_shape_numel(nd->shape);
    float a = nd->attr.f[0];
    double bound = uniform_bound((loom_init)nd->attr.i[2], a, nd->shape);
    if (nd->attr.i[2] == LOOM_INIT_ORTHOGONAL && nd->shape.rank >= 2 && orthogonal(d, nd->shape.d[0], numel / nd->shape.d[0], a, st))
        return true;
    for (int64_t k = 0; k < numel; k++) {
        switch (nd->attr.i[2]) {
        case LOOM_INIT_ONES: d[k] = 1.0f; break;
        case LOOM_INIT_CONSTANT: d[k] = a; break;
        case LOOM_INIT_UNIFORM_RANGE: d[k] = (float)(a + (nd->attr.f[1] - (double)a) * loom_uniform(st)); break;
        case LOOM_INIT_FORGET_GATE: {
            double u = (2 * loom_uniform(st) - 1) * bound; /* drawn for every row, so the others match UNIFORM's */
            int64_t q = nd->shape.d[0] / 4, row = k / (numel / nd->shape.d[0]);
            d[k] = row >= q && row < 2 * q ? nd->attr.f[1] : (float)u;
            break;
        }
        case LOOM_INIT_UNIFORM:
        case LOOM_INIT_XAVIER_UNIFORM: d[k] = (float)((2 * loom_uniform(st) - 1) * bound); break;
        case LOOM_INIT_NORMAL:
        case LOOM_INIT_ORTHOGONAL: d[k] = (float)(a * normal(st)); break;
        default: d[k] = 0.0f; break;
        }
    }
    return true;
}
