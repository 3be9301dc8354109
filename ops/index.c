/* Indexing and random ops: gather (embedding lookup), scatter_add (its
 * adjoint), one_hot, argmax, dropout. Indices are i32 and checked at run time. */
#include "ops/op.h"

static bool need_index(loom_graph *g, const char *op, loom_tensor idx)
{
    if (loom_tensor_dtype(g, idx) != LOOM_I32)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: indices %s must be i32", op, TSTR(g, idx)));
    if (loom_tensor_shape(g, idx).rank > LOOM_MAX_RANK - 1)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: indices %s must have rank <= %d", op,
                                           TSTR(g, idx), LOOM_MAX_RANK - 1));
    return true;
}

/* idx.shape + (last) */
static loom_shape append_dim(loom_shape s, int32_t last)
{
    s.d[s.rank++] = last;
    return s;
}

static loom_status check_indices(const loom_kargs *k, const char *op, const float *idx_f, int64_t n, int64_t bound)
{
    const int32_t *idx = (const int32_t *)(const void *)idx_f;
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= bound)
            return loom_kernel_fail(k, LOOM_ERR_VALUE, "%s: index %d at position %lld is not in [0, %lld)", op, idx[i],
                                    (long long)i, (long long)bound);
    return LOOM_OK;
}

static loom_status check64(const loom_args64 *a, const char *op, const double *idx, int64_t n, int64_t bound)
{
    for (int64_t i = 0; i < n; i++)
        if (!(idx[i] >= 0 && idx[i] < bound))
            return loom_fail64(a, LOOM_ERR_VALUE, "%s: index %g at position %lld is not in [0, %lld)", op, idx[i],
                               (long long)i, (long long)bound);
    return LOOM_OK;
}

/* ---- gather: out[k, :] = table[idx[k], :] ---- */

static bool shape_gather(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                         loom_shape *out, loom_dtype *dt)
{
    (void)n, (void)a;
    loom_shape t = loom_tensor_shape(g, in[0]);
    if (t.rank != 2 || loom_tensor_dtype(g, in[0]) != LOOM_F32)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: table %s must be a 2-D f32 (rows, width)", op,
                                           TSTR(g, in[0])));
    if (!need_index(g, op, in[1])) return false;
    *out = append_dim(loom_tensor_shape(g, in[1]), t.d[1]);
    *dt = LOOM_F32;
    return true;
}

static loom_status gather_forward(const loom_kargs *k)
{
    loom_shape t = k->in_node[0]->shape;
    int64_t n = loom_shape_numel(k->in_node[1]->shape), w = t.d[1];
    loom_status st = check_indices(k, "gather", k->in[1], n, t.d[0]);
    if (st) return st;
    const int32_t *idx = (const int32_t *)(const void *)k->in[1];
    int64_t i0, i1;
    loom_share(k, n, n * w, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) memcpy(k->out + i * w, k->in[0] + idx[i] * w, (size_t)w * sizeof(float));
    return LOOM_OK;
}

static void gather_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    loom_tensor table = loom_node_input(g, y, 0), idx = loom_node_input(g, y, 1);
    gx[0] = loom_scatter_add(g, gy, idx, loom_tensor_shape(g, table).d[0]);
}

static loom_status gather_64(const loom_args64 *a)
{
    int64_t n = loom_shape_numel(a->in_node[1]->shape), w = a->in_node[0]->shape.d[1];
    loom_status st = check64(a, "gather", a->in[1], n, a->in_node[0]->shape.d[0]);
    for (int64_t i = 0; !st && i < n; i++) memcpy(a->out + i * w, a->in[0] + (int64_t)a->in[1][i] * w, (size_t)w * sizeof *a->out);
    return st;
}

const loom_op_desc loom_desc_gather = {
    .name = "gather", .min_in = 2, .max_in = 2, .flags = OPF_SPLITS | OPF_PURE,
    .shape = shape_gather, .forward = gather_forward, .grad = gather_grad,
    .f64 = gather_64};

/* ---- scatter_add: out (rows, E), out[idx[k], :] += src[k, :]; attrs i[0] = rows ---- */

static bool shape_scatter_add(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                              loom_shape *out, loom_dtype *dt)
{
    (void)n;
    if (!need_index(g, op, in[1])) return false;
    loom_shape s = loom_tensor_shape(g, in[0]), is = loom_tensor_shape(g, in[1]);
    bool ok = loom_tensor_dtype(g, in[0]) == LOOM_F32 && s.rank == is.rank + 1;
    for (int i = 0; ok && i < is.rank; i++) ok = s.d[i] == is.d[i];
    if (!ok)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: source %s must be f32 of shape indices %s + (width,)",
                                           op, TSTR(g, in[0]), TSTR(g, in[1])));
    if (a->i[0] < 1)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: rows must be >= 1, got %d", op, a->i[0]));
    *out = loom_shape2(a->i[0], s.d[s.rank - 1]);
    *dt = LOOM_F32;
    return true;
}

static loom_status scatter_add_forward(const loom_kargs *k)
{
    int64_t n = loom_shape_numel(k->in_node[1]->shape), w = k->node->shape.d[1], rows = k->node->shape.d[0];
    loom_status st = check_indices(k, "scatter_add", k->in[1], n, rows);
    if (st) return st;
    const int32_t *idx = (const int32_t *)(const void *)k->in[1];
    memset(k->out, 0, (size_t)(rows * w) * sizeof(float));
    /* In column blocks: a block of the output stays in cache while every
     * index adds into it. */
    for (int64_t c0 = 0; c0 < w; c0 += 16) {
        int64_t c1 = c0 + 16 < w ? c0 + 16 : w;
        for (int64_t i = 0; i < n; i++) {
            const float *src = k->in[0] + i * w;
            float *dst = k->out + idx[i] * w;
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
    return LOOM_OK;
}

static void scatter_add_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_gather(g, gy, loom_node_input(g, y, 1));
}

static loom_status scatter_add_64(const loom_args64 *a)
{
    int64_t n = loom_shape_numel(a->in_node[1]->shape), w = a->node->shape.d[1], rows = a->node->shape.d[0];
    loom_status st = check64(a, "scatter_add", a->in[1], n, rows);
    memset(a->out, 0, (size_t)(rows * w) * sizeof *a->out);
    for (int64_t i = 0; !st && i < n; i++)
        for (int64_t c = 0; c < w; c++) a->out[(int64_t)a->in[1][i] * w + c] += a->in[0][i * w + c];
    return st;
}

const loom_op_desc loom_desc_scatter_add = {
    .name = "scatter_add", .min_in = 2, .max_in = 2, .flags = OPF_PURE,
    .shape = shape_scatter_add, .forward = scatter_add_forward, .grad = scatter_add_grad,
    .f64 = scatter_add_64};

/* ---- one_hot: attrs i[0] = depth ---- */

static bool shape_one_hot(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                          loom_shape *out, loom_dtype *dt)
{
    (void)n;
    if (!need_index(g, op, in[0])) return false;
    if (a->i[0] < 1) return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: depth must be >= 1, got %d", op, a->i[0]));
    *out = append_dim(loom_tensor_shape(g, in[0]), a->i[0]);
    *dt = LOOM_F32;
    return true;
}

static loom_status one_hot_forward(const loom_kargs *k)
{
    int64_t n = loom_shape_numel(k->in_node[0]->shape), depth = k->node->attr.i[0];
    loom_status st = check_indices(k, "one_hot", k->in[0], n, depth);
    if (st) return st;
    const int32_t *idx = (const int32_t *)(const void *)k->in[0];
    memset(k->out, 0, (size_t)(n * depth) * sizeof(float));
    for (int64_t i = 0; i < n; i++) k->out[i * depth + idx[i]] = 1.0f;
    return LOOM_OK;
}

/* Integer input: nothing to differentiate. */
static void no_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    (void)g, (void)y, (void)gy, (void)need, (void)gx;
}

static loom_status one_hot_64(const loom_args64 *a)
{
    int64_t n = loom_shape_numel(a->in_node[0]->shape), depth = a->node->attr.i[0];
    loom_status st = check64(a, "one_hot", a->in[0], n, depth);
    memset(a->out, 0, (size_t)(n * depth) * sizeof *a->out);
    for (int64_t i = 0; !st && i < n; i++) a->out[i * depth + (int64_t)a->in[0][i]] = 1;
    return st;
}

const loom_op_desc loom_desc_one_hot = {
    .name = "one_hot", .min_in = 1, .max_in = 1, .flags = OPF_PURE,
    .shape = shape_one_hot, .forward = one_hot_forward, .grad = no_grad,
    .f64 = one_hot_64};

/* ---- argmax over the last axis: i32, the first largest element (a NaN
 * counts as largest, as torch.argmax); flat almost everywhere, so no
 * gradient ---- */

static bool shape_argmax(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a, loom_shape *out,
                         loom_dtype *dt)
{
    (void)n, (void)a;
    loom_shape s = loom_tensor_shape(g, in[0]);
    if (loom_tensor_dtype(g, in[0]) != LOOM_F32 || s.rank < 1)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: input %s must be f32 of rank >= 1", op, TSTR(g, in[0])));
    s.d[--s.rank] = 0;
    *out = s;
    *dt = LOOM_I32;
    return true;
}

static loom_status argmax_forward(const loom_kargs *k)
{
    loom_shape s = k->in_node[0]->shape;
    int64_t c = s.d[s.rank - 1], rows = loom_shape_numel(s) / c;
    int32_t *o = (int32_t *)(void *)k->out;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = k->in[0] + r * c;
        int64_t best = 0;
        for (int64_t j = 1; j < c && x[best] == x[best]; j++)
            if (x[j] > x[best] || x[j] != x[j]) best = j;
        o[r] = (int32_t)best;
    }
    return LOOM_OK;
}

static loom_status argmax_64(const loom_args64 *a)
{
    loom_shape s = a->in_node[0]->shape;
    int64_t c = s.d[s.rank - 1], rows = loom_shape_numel(s) / c;
    for (int64_t r = 0; r < rows; r++) {
        const double *x = a->in[0] + r * c;
        int64_t best = 0;
        for (int64_t j = 1; j < c && x[best] == x[best]; j++)
            if (x[j] > x[best] || x[j] != x[j]) best = j;
        a->out[r] = (double)best;
    }
    return LOOM_OK;
}

const loom_op_desc loom_desc_argmax = {
    .name = "argmax", .min_in = 1, .max_in = 1, .flags = OPF_PURE,
    .shape = shape_argmax, .forward = argmax_forward, .grad = no_grad,
    .f64 = argmax_64};

/* ---- dropout: attrs f[0] = p, u = seed. Not pure: two dropouts are two masks. ---- */

static bool shape_dropout(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                          loom_shape *out, loom_dtype *dt)
{
    (void)n;
    if (loom_tensor_dtype(g, in[0]) != LOOM_F32)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: input %s must be f32", op, TSTR(g, in[0])));
    if (!(a->f[0] >= 0.0f && a->f[0] <= 1.0f))
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: probability %g is not in [0, 1]", op, a->f[0]));
    *out = loom_tensor_shape(g, in[0]);
    *dt = LOOM_F32;
    return true;
}

/* y_i = x_i · [u_i ≥ p] / (1 − p), u_i uniform from (seed, run, i). */
static loom_status dropout_forward(const loom_kargs *k)
{
    int64_t n = loom_shape_numel(k->node->shape);
    float p = k->node->attr.f[0];
    uint64_t seed = k->node->attr.u;
    int64_t i0, i1;
    loom_share(k, n, n, &i0, &i1);
    if (!k->training || p == 0.0f) {
        if (i1 > i0) memcpy(k->out + i0, k->in[0] + i0, (size_t)(i1 - i0) * sizeof(float));
        return LOOM_OK;
    }
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (int64_t i = i0; i < i1; i++)
        k->out[i] = loom_dropout_draw(seed, k->run_seed, (uint64_t)i) >= p ? k->in[0][i] * scale : 0.0f;
    return LOOM_OK;
}

/* The same mask scales the gradient: dropout of gy with the same seed. */
static void dropout_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    const loom_node *n = loom_graph_node(g, y);
    gx[0] = loom_dropout(g, gy, n->attr.f[0], n->attr.u);
}

/* The mask of the f32 kernel's run (the same draws), the scale in double. */
static loom_status dropout_64(const loom_args64 *a)
{
    double p = a->node->attr.f[0], scale = p < 1 ? 1 / (1 - p) : 0;
    for (int64_t i = 0, n = loom_shape_numel(a->node->shape); i < n; i++)
        a->out[i] = !a->training || p == 0 ? a->in[0][i]
                    : loom_dropout_draw(a->node->attr.u, a->run_seed, (uint64_t)i) >= a->node->attr.f[0] ? a->in[0][i] * scale
                                                                                                          : 0;
    return LOOM_OK;
}

const loom_op_desc loom_desc_dropout = {
    .name = "dropout", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_RANDOM,
    .shape = shape_dropout, .forward = dropout_forward, .grad = dropout_grad,
    .f64 = dropout_64};

/* ---- sequence_mask: attrs i[0] = steps ---- */

static bool shape_sequence_mask(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                                loom_shape *out, loom_dtype *dt)
{
    loom_shape s = loom_tensor_shape(g, in[0]);
    if (loom_tensor_dtype(g, in[0]) != LOOM_I32 || s.rank != 1)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: lengths %s must be i32 of shape (batch,)", op,
                                           TSTR(g, in[0])));
    if (a->i[0] < 1) return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: steps must be >= 1, got %d", op, a->i[0]));
    *out = loom_shape2(a->i[0], s.d[0]);
    *dt = LOOM_F32;
    return true;
}

static loom_status sequence_mask_forward(const loom_kargs *k)
{
    int64_t steps = k->node->shape.d[0], batch = k->node->shape.d[1];
    const int32_t *len = (const int32_t *)(const void *)k->in[0];
    for (int64_t b = 0; b < batch; b++)
        if (len[b] < 1 || len[b] > steps)
            return loom_kernel_fail(k, LOOM_ERR_VALUE, "sequence_mask: length %d of sequence %lld is not in [1, %lld]",
                                    len[b], (long long)b, (long long)steps);
    for (int64_t t = 0; t < steps; t++)
        for (int64_t b = 0; b < batch; b++) k->out[t * batch + b] = t < len[b] ? 1.0f : 0.0f;
    return LOOM_OK;
}

static loom_status sequence_mask_64(const loom_args64 *a)
{
    int64_t steps = a->node->shape.d[0], batch = a->node->shape.d[1];
    for (int64_t b = 0; b < batch; b++)
        if (!(a->in[0][b] >= 1 && a->in[0][b] <= steps))
            return loom_fail64(a, LOOM_ERR_VALUE, "sequence_mask: length %g of sequence %lld is not in [1, %lld]", a->in[0][b],
                               (long long)b, (long long)steps);
    for (int64_t t = 0; t < steps; t++)
        for (int64_t b = 0; b < batch; b++) a->out[t * batch + b] = t < a->in[0][b] ? 1 : 0;
    return LOOM_OK;
}

const loom_op_desc loom_desc_sequence_mask = {
    .name = "sequence_mask", .min_in = 1, .max_in = 1, .flags = OPF_PURE,
    .shape = shape_sequence_mask, .forward = sequence_mask_forward, .grad = no_grad,
    .f64 = sequence_mask_64};

/* ---- builders ---- */

loom_tensor loom_gather(loom_graph *g, loom_tensor table, loom_tensor idx)
{
    loom_attrs at = loom_attrs_zero();
    return loom_op_build(g, OP_GATHER, (loom_tensor[]){table, idx}, 2, &at);
}

loom_tensor loom_scatter_add(loom_graph *g, loom_tensor src, loom_tensor idx, int rows)
{
    loom_attrs at = loom_attrs_zero();
    at.i[0] = rows;
    return loom_op_build(g, OP_SCATTER_ADD, (loom_tensor[]){src, idx}, 2, &at);
}

loom_tensor loom_one_hot(loom_graph *g, loom_tensor idx, int depth)
{
    loom_attrs at = loom_attrs_zero();
    at.i[0] = depth;
    return loom_op_build(g, OP_ONE_HOT, &idx, 1, &at);
}

loom_tensor loom_argmax(loom_graph *g, loom_tensor x)
{
    loom_attrs at = loom_attrs_zero();
    return loom_op_build(g, OP_ARGMAX, &x, 1, &at);
}

loom_tensor loom_dropout(loom_graph *g, loom_tensor x, float p, uint64_t seed)
{
    loom_attrs at = loom_attrs_zero();
    at.f[0] = p;
    at.u = seed;
    return loom_op_build(g, OP_DROPOUT, &x, 1, &at);
}

loom_tensor loom_sequence_mask(loom_graph *g, loom_tensor lengths, int steps)
{
    loom_attrs at = loom_attrs_zero();
    at.i[0] = steps;
    return loom_op_build(g, OP_SEQUENCE_MASK, &lengths, 1, &at);
}
