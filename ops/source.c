/* Sources: inputs, parameters, constants, fills.
 * attrs: shape = the shape; i[0] = dtype; i[1] = stored data index (const);
 * i[2] = initialiser (param); f[0] = fill value or initialiser scale. */
#include "ops/op.h"

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

const loom_op_desc loom_desc_input = {
    .name = "input", .min_in = 0, .max_in = 0, .flags = OPF_SOURCE | OPF_BOUND,
    .shape = shape_source, .role = LOOM_ROLE_INPUT};
const loom_op_desc loom_desc_param = {
    .name = "param", .min_in = 0, .max_in = 0, .flags = OPF_SOURCE | OPF_BOUND,
    .shape = shape_source, .role = LOOM_ROLE_PARAM};
const loom_op_desc loom_desc_const = {
    .name = "const", .min_in = 0, .max_in = 0, .flags = OPF_SOURCE | OPF_STORED,
    .shape = shape_source, .role = LOOM_ROLE_CONST};
/* A fill's gradient is nothing (it has no inputs). */
const loom_op_desc loom_desc_fill = {
    .name = "fill", .min_in = 0, .max_in = 0, .flags = OPF_SPLITS | OPF_PURE | OPF_FILL,
    .shape = shape_source, .forward = fill_forward, .role = LOOM_ROLE_CONST};

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

loom_tensor loom_param_init(loom_graph *g, const char *name, loom_shape s, loom_init init, float a)
{
    if (loom_graph_failed(g)) return LOOM_INVALID;
    if (init < LOOM_INIT_ZEROS || init > LOOM_INIT_ORTHOGONAL)
        return loom_graph_fail(g, LOOM_ERR_ARG, "param: unknown initialiser %d for '%s'", (int)init, name ? name : "");
    loom_attrs at = loom_attrs_zero();
    at.shape = s;
    at.i[0] = LOOM_F32;
    at.i[1] = -1;
    at.i[2] = init;
    at.f[0] = a;
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

loom_tensor loom_constant(loom_graph *g, loom_shape s, const float *data) { return constant(g, s, data, LOOM_F32); }

loom_tensor loom_constant_i32(loom_graph *g, loom_shape s, const int32_t *data)
{
    return constant(g, s, data, LOOM_I32);
}

loom_tensor loom_fill(loom_graph *g, loom_shape s, float value) { return source(g, OP_FILL, NULL, s, LOOM_F32, -1, value); }

loom_tensor loom_scalar(loom_graph *g, float value) { return loom_fill(g, loom_shape0(), value); }
