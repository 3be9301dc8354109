/* Shape ops: concat, slice, pad, reshape, transpose, stop_gradient,
 * scale_grad. reshape, stop_gradient and scale_grad are views (no copy, no
 * buffer of their own). */
#include "ops/op.h"

/* ---- concat: attrs i[0] = axis; i[1] = every piece's width along the axis
 * when they are all equal, else 0 (set by the shape rule; lets a slice find
 * its piece in O(1)) ---- */

static bool shape_concat(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                         loom_shape *out, loom_dtype *dt)
{
    loom_shape s = loom_tensor_shape(g, in[0]);
    int ax = loom_axis(a->i[0], s.rank);
    if (ax < 0)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: axis %d is out of range for %s", op, a->i[0],
                                           TSTR(g, in[0])));
    a->i[0] = ax;
    *dt = loom_tensor_dtype(g, in[0]);
    int64_t total = s.d[ax];
    a->i[1] = s.d[ax];
    for (int i = 1; i < n; i++) {
        loom_shape si = loom_tensor_shape(g, in[i]);
        bool ok = si.rank == s.rank && loom_tensor_dtype(g, in[i]) == *dt;
        for (int j = 0; ok && j < s.rank; j++) ok = j == ax || si.d[j] == s.d[j];
        if (!ok)
            return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE,
                                               "%s: input %d %s does not match input 0 %s outside axis %d", op, i,
                                               TSTR(g, in[i]), TSTR(g, in[0]), ax));
        total += si.d[ax];
        if (si.d[ax] != a->i[1]) a->i[1] = 0;
    }
    if (total > INT32_MAX) return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: result too large", op));
    s.d[ax] = (int32_t)total;
    *out = s;
    return true;
}

static void around(loom_shape s, int axis, int64_t *outer, int64_t *inner)
{
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= s.d[i];
    for (int i = axis + 1; i < s.rank; i++) *inner *= s.d[i];
}

static loom_status concat_forward(const loom_kargs *k)
{
    int ax = k->node->attr.i[0], n = k->node->n_in;
    int64_t outer, inner, out_row = (int64_t)k->node->shape.d[ax];
    around(k->node->shape, ax, &outer, &inner);
    out_row *= inner;
    int64_t o0, o1;
    loom_share(k, outer, outer * out_row, &o0, &o1);
    for (int64_t o = o0; o < o1; o++) {
        int64_t off = 0;
        for (int i = 0; i < n; i++) {
            int64_t len = (int64_t)k->in_node[i]->shape.d[ax] * inner;
            memcpy(k->out + o * out_row + off, k->in[i] + o * len, (size_t)len * sizeof(float));
            off += len;
        }
    }
    return LOOM_OK;
}

static void concat_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    const loom_node *n = loom_graph_node(g, y);
    int ax = n->attr.i[0], n_in = n->n_in, off = 0;
    for (int i = 0; i < n_in; i++) {
        int len = loom_tensor_shape(g, loom_node_input(g, y, i)).d[ax];
        if (need[i]) gx[i] = loom_slice(g, gy, ax, off, len);
        off += len;
    }
}

static loom_status concat_64(const loom_args64 *a)
{
    int ax = a->node->attr.i[0];
    int64_t outer, inner, out_row = (int64_t)a->node->shape.d[ax];
    around(a->node->shape, ax, &outer, &inner);
    out_row *= inner;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0, off = 0; i < a->n_in; i++) {
            int64_t len = (int64_t)a->in_node[i]->shape.d[ax] * inner;
            memcpy(a->out + o * out_row + off, a->in[i] + o * len, (size_t)len * sizeof *a->out);
            off += (int)len;
        }
    return LOOM_OK;
}

const loom_op_desc loom_desc_concat = {
    .name = "concat", .min_in = 1, .max_in = 1 << 20, .flags = OPF_SPLITS | OPF_PURE | OPF_LAYOUT,
    .shape = shape_concat, .forward = concat_forward, .grad = concat_grad,
    .f64 = concat_64};

/* ---- slice: i[0] axis, i[1] start, i[2] len; pad: i[0] axis, i[1] before, i[2] size ---- */

/* slice takes [start, start + len) of the axis; pad places x at `before`
 * inside `size` along it. */
static bool slice_rule(loom_graph *g, const char *op, loom_tensor x, loom_attrs *a, bool pad, loom_shape *out,
                       loom_dtype *dt)
{
    loom_shape s = loom_tensor_shape(g, x);
    int ax = loom_axis(a->i[0], s.rank);
    if (ax < 0)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: axis %d is out of range for %s", op, a->i[0],
                                           TSTR(g, x)));
    a->i[0] = ax;
    int64_t have = s.d[ax], start = a->i[1], len = a->i[2];
    if (pad && (start < 0 || len < 1 || start + have > len))
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: cannot place %s at offset %d of size %d along axis %d",
                                           op, TSTR(g, x), a->i[1], a->i[2], ax));
    if (!pad && (start < 0 || len < 1 || start + len > have))
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: %s has no range [%lld, %lld) along axis %d", op,
                                           TSTR(g, x), (long long)start, (long long)(start + len), ax));
    s.d[ax] = (int32_t)len;
    *out = s;
    *dt = loom_tensor_dtype(g, x);
    return true;
}

static bool shape_slice(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                        loom_shape *out, loom_dtype *dt)
{
    (void)n;
    return slice_rule(g, op, in[0], a, false, out, dt);
}

static bool shape_pad(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a, loom_shape *out,
                      loom_dtype *dt)
{
    (void)n;
    return slice_rule(g, op, in[0], a, true, out, dt);
}

/* Copies rows between x (len_x along axis) and out (len_o) at offset `off`
 * of the longer one; pad zero-fills the rest of its output first. */
static loom_status slice_pad_forward(const loom_kargs *k, bool pad)
{
    int ax = k->node->attr.i[0], start = k->node->attr.i[1];
    int64_t outer, inner;
    around(k->node->shape, ax, &outer, &inner);
    int64_t lx = (int64_t)k->in_node[0]->shape.d[ax] * inner, lo = (int64_t)k->node->shape.d[ax] * inner;
    int64_t len = pad ? lx : lo, off = start * inner;
    int64_t o0, o1;
    loom_share(k, outer, outer * lo, &o0, &o1);
    for (int64_t o = o0; o < o1; o++) {
        if (pad) {
            float *row = k->out + o * lo;
            memset(row, 0, (size_t)lo * sizeof(float));
            memcpy(row + off, k->in[0] + o * lx, (size_t)len * sizeof(float));
        } else {
            memcpy(k->out + o * lo, k->in[0] + o * lx + off, (size_t)len * sizeof(float));
        }
    }
    return LOOM_OK;
}

static loom_status slice_pad_64(const loom_args64 *a, bool pad)
{
    int ax = a->node->attr.i[0];
    int64_t outer, inner;
    around(a->node->shape, ax, &outer, &inner);
    int64_t lx = (int64_t)a->in_node[0]->shape.d[ax] * inner, lo = (int64_t)a->node->shape.d[ax] * inner;
    int64_t len = pad ? lx : lo, off = a->node->attr.i[1] * inner;
    if (pad) memset(a->out, 0, (size_t)(outer * lo) * sizeof *a->out);
    for (int64_t o = 0; o < outer; o++)
        memcpy(a->out + o * lo + (pad ? off : 0), a->in[0] + o * lx + (pad ? 0 : off), (size_t)len * sizeof *a->out);
    return LOOM_OK;
}
static loom_status slice_64(const loom_args64 *a) { return slice_pad_64(a, false); }
static loom_status pad_64(const loom_args64 *a) { return slice_pad_64(a, true); }

static loom_status slice_forward(const loom_kargs *k) { return slice_pad_forward(k, false); }
static loom_status pad_forward(const loom_kargs *k) { return slice_pad_forward(k, true); }

static void slice_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    const loom_node *n = loom_graph_node(g, y);
    loom_shape xs = loom_tensor_shape(g, loom_node_input(g, y, 0));
    gx[0] = loom_pad(g, gy, n->attr.i[0], n->attr.i[1], xs.d[n->attr.i[0]]);
}

static void pad_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    const loom_node *n = loom_graph_node(g, y);
    loom_shape xs = loom_tensor_shape(g, loom_node_input(g, y, 0));
    gx[0] = loom_slice(g, gy, n->attr.i[0], n->attr.i[1], xs.d[n->attr.i[0]]);
}

/* Across columns (any axis but the first), rows of several slices stack. */
static bool slice_batches(const loom_graph *g, loom_tensor t)
{
    return loom_graph_node(g, t)->attr.i[0] > 0;
}

const loom_op_desc loom_desc_slice = {
    .name = "slice", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_PURE | OPF_LAYOUT,
    .shape = shape_slice, .forward = slice_forward, .grad = slice_grad, .batches = slice_batches,
    .f64 = slice_64};
const loom_op_desc loom_desc_pad = {
    .name = "pad", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_PURE | OPF_LAYOUT,
    .shape = shape_pad, .forward = pad_forward, .grad = pad_grad, .batches = slice_batches,
    .f64 = pad_64};

/* ---- reshape (view): target in attrs.shape, one -1 inferred ---- */

static bool shape_reshape(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                          loom_shape *out, loom_dtype *dt)
{
    (void)n;
    loom_shape s = a->shape;
    int64_t have = loom_tensor_numel(g, in[0]), known = 1;
    int infer = -1;
    bool ok = s.rank >= 0 && s.rank <= LOOM_MAX_RANK;
    for (int i = 0; ok && i < s.rank; i++) {
        if (s.d[i] == -1 && infer < 0) infer = i;
        else if (s.d[i] >= 1) known *= s.d[i];
        else ok = false;
    }
    if (ok && infer >= 0) {
        ok = have % known == 0;
        s.d[infer] = (int32_t)(have / known);
    }
    if (!ok || loom_shape_numel(s) != have)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: cannot view %s as %s", op, TSTR(g, in[0]),
                                           SSTR(a->shape)));
    a->shape = s;
    *out = s;
    *dt = loom_tensor_dtype(g, in[0]);
    return true;
}

static void reshape_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_reshape(g, gy, loom_tensor_shape(g, loom_node_input(g, y, 0)));
}

const loom_op_desc loom_desc_reshape = {
    .name = "reshape", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_ALIAS | OPF_LAYOUT,
    .shape = shape_reshape, .grad = reshape_grad,
    .f64 = loom_copy64};

/* ---- stop_gradient (view) ---- */

static bool shape_same(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a, loom_shape *out,
                       loom_dtype *dt)
{
    (void)op, (void)n, (void)a;
    *out = loom_tensor_shape(g, in[0]);
    *dt = loom_tensor_dtype(g, in[0]);
    return true;
}

/* The gradient stops here: none flows to the input. */
static void no_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    (void)g, (void)y, (void)gy, (void)need, (void)gx;
}

const loom_op_desc loom_desc_stop_gradient = {
    .name = "stop_gradient", .min_in = 1, .max_in = 1, .flags = OPF_PURE | OPF_ALIAS | OPF_DETACH | OPF_LAYOUT,
    .shape = shape_same, .grad = no_grad,
    .f64 = loom_copy64};

/* ---- scale_grad (view): y = x, ∂L/∂x = w[k]·∂L/∂y, where w is an f32
 * vector read at run time and k = attrs i[0]. Randomised truncation's ξ:
 * w[k] = 0 stops the gradient at a step boundary, 1/π passes it
 * reweighted; the value is untouched either way. ---- */

static bool shape_scale_grad(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                             loom_shape *out, loom_dtype *dt)
{
    (void)n;
    loom_shape w = loom_tensor_shape(g, in[1]);
    if (loom_tensor_dtype(g, in[1]) != LOOM_F32 || w.rank != 1 || a->i[0] < 0 || a->i[0] >= w.d[0])
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: the weights %s must be an f32 vector with an element %d",
                                           op, TSTR(g, in[1]), a->i[0]));
    return shape_same(g, op, in, 1, a, out, dt);
}

static void scale_grad_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    if (need[0]) gx[0] = loom_mul(g, gy, loom_slice(g, loom_node_input(g, y, 1), 0, loom_graph_node(g, y)->attr.i[0], 1));
}

const loom_op_desc loom_desc_scale_grad = {
    .name = "scale_grad", .symbol = "×∂", .min_in = 2, .max_in = 2, .flags = OPF_PURE | OPF_ALIAS | OPF_LAYOUT,
    .shape = shape_scale_grad, .grad = scale_grad_grad,
    .f64 = loom_copy64};

/* ---- transpose: attrs i[0..rank) = perm, out.d[j] = x.d[perm[j]] ---- */

static bool shape_transpose(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                            loom_shape *out, loom_dtype *dt)
{
    (void)n;
    loom_shape s = loom_tensor_shape(g, in[0]), o = s;
    int seen = 0;
    for (int j = 0; j < s.rank; j++) {
        int p = a->i[j];
        if (p < 0 || p >= s.rank || (seen & (1 << p)))
            return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: (%d,%d,%d,%d) is not a permutation of the %d axes of %s",
                                               op, a->i[0], a->i[1], a->i[2], a->i[3], s.rank, TSTR(g, in[0])));
        seen |= 1 << p;
        o.d[j] = s.d[p];
    }
    for (int j = s.rank; j < LOOM_MAX_RANK; j++) a->i[j] = 0;
    *out = o;
    *dt = loom_tensor_dtype(g, in[0]);
    return true;
}

static loom_status transpose_forward(const loom_kargs *k)
{
    loom_shape xs = k->in_node[0]->shape, os = k->node->shape;
    int r = xs.rank;
    int64_t xst[LOOM_MAX_RANK], st[4] = {0, 0, 0, 0}, d[4];
    int64_t acc = 1;
    for (int i = r - 1; i >= 0; i--) {
        xst[i] = acc;
        acc *= xs.d[i];
    }
    /* output dim j walks input dim perm[j]; pad to 4 dims on the left */
    for (int j = 0; j < r; j++) st[4 - r + j] = xst[k->node->attr.i[j]];
    loom_shape_pad4(os, d);
    int64_t n = loom_shape_numel(os);
    const float *x = k->in[0];
    float *o = k->out;
    int64_t r0, r1;
    loom_share(k, d[0] * d[1] * d[2], n, &r0, &r1);
    for (int64_t row = r0; row < r1; row++) {
        int64_t i2 = row % d[2], i1 = (row / d[2]) % d[1], i0 = row / (d[2] * d[1]);
        const float *p = x + i0 * st[0] + i1 * st[1] + i2 * st[2];
        for (int64_t j = 0; j < d[3]; j++) o[row * d[3] + j] = p[j * st[3]];
    }
    return LOOM_OK;
}

static void transpose_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    const loom_node *n = loom_graph_node(g, y);
    int inv[LOOM_MAX_RANK] = {0, 0, 0, 0};
    for (int j = 0; j < n->shape.rank; j++) inv[n->attr.i[j]] = j;
    gx[0] = loom_transpose(g, gy, inv);
}

/* out[i] = x at the index whose dim perm[j] is out's dim j */
static loom_status transpose_64(const loom_args64 *a)
{
    loom_shape xs = a->in_node[0]->shape, os = a->node->shape;
    int r = xs.rank;
    int64_t xst[LOOM_MAX_RANK], acc = 1;
    for (int i = r - 1; i >= 0; i--) xst[i] = acc, acc *= xs.d[i];
    for (int64_t i = 0, n = loom_shape_numel(os); i < n; i++) {
        int64_t rest = i, at = 0;
        for (int j = r - 1; j >= 0; j--) {
            at += (rest % os.d[j]) * xst[a->node->attr.i[j]];
            rest /= os.d[j];
        }
        a->out[i] = a->in[0][at];
    }
    return LOOM_OK;
}

const loom_op_desc loom_desc_transpose = {
    .name = "transpose", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_PURE | OPF_LAYOUT,
    .shape = shape_transpose, .forward = transpose_forward, .grad = transpose_grad,
    .f64 = transpose_64};

/* ---- builders ---- */

loom_tensor loom_concat(loom_graph *g, const loom_tensor *xs, int n, int axis)
{
    loom_attrs at = loom_attrs_zero();
    at.i[0] = axis;
    if (n == 1 && loom_graph_has(g, xs[0]) && !loom_graph_failed(g)) return xs[0];
    if (n < 1 || !xs) return loom_graph_fail(g, LOOM_ERR_ARG, "concat: needs at least one input");
    return loom_op_build(g, OP_CONCAT, xs, n, &at);
}

static loom_tensor slice_pad(loom_graph *g, int op, loom_tensor x, int axis, int a1, int a2)
{
    loom_attrs at = loom_attrs_zero();
    at.i[0] = axis;
    at.i[1] = a1;
    at.i[2] = a2;
    return loom_op_build(g, op, &x, 1, &at);
}

loom_tensor loom_slice(loom_graph *g, loom_tensor x, int axis, int start, int len)
{
    const loom_node *n = loom_graph_node(g, x);
    int ax = n ? loom_axis(axis, n->shape.rank) : -1;
    if (n && ax >= 0 && start == 0 && len == n->shape.d[ax] && !loom_graph_failed(g)) return x;
    /* a slice that is exactly one piece of a concat along the same axis is that piece */
    if (n && ax >= 0 && n->op == OP_CONCAT && n->attr.i[0] == ax && !loom_graph_failed(g)) {
        int w = n->attr.i[1]; /* equal pieces: found at once */
        if (w > 0) {
            if (start % w == 0 && len == w && start / w < n->n_in) return loom_node_input(g, x, start / w);
            return slice_pad(g, OP_SLICE, x, axis, start, len);
        }
        int off = 0;
        for (int i = 0; i < n->n_in; i++) {
            loom_tensor piece = loom_node_input(g, x, i);
            int w = loom_tensor_shape(g, piece).d[ax];
            if (off == start && w == len) return piece;
            off += w;
        }
    }
    return slice_pad(g, OP_SLICE, x, axis, start, len);
}

loom_tensor loom_pad(loom_graph *g, loom_tensor x, int axis, int before, int size)
{
    const loom_node *n = loom_graph_node(g, x);
    int ax = n ? loom_axis(axis, n->shape.rank) : -1;
    if (n && ax >= 0 && before == 0 && size == n->shape.d[ax] && !loom_graph_failed(g)) return x;
    return slice_pad(g, OP_PAD, x, axis, before, size);
}

loom_tensor loom_reshape(loom_graph *g, loom_tensor x, loom_shape s)
{
    const loom_node *n = loom_graph_node(g, x);
    if (n && loom_shape_eq(n->shape, s) && !loom_graph_failed(g)) return x;
    /* a view of a view is a view of the original */
    if (n && n->op == OP_RESHAPE && !loom_graph_failed(g)) x = loom_node_input(g, x, 0);
    loom_attrs at = loom_attrs_zero();
    at.shape = s;
    return loom_op_build(g, OP_RESHAPE, &x, 1, &at);
}

loom_tensor loom_stop_gradient(loom_graph *g, loom_tensor x)
{
    loom_attrs at = loom_attrs_zero();
    return loom_op_build(g, OP_STOP_GRADIENT, &x, 1, &at);
}

loom_tensor loom_transpose(loom_graph *g, loom_tensor x, const int *perm)
{
    if (!perm && !loom_graph_failed(g)) return loom_graph_fail(g, LOOM_ERR_ARG, "transpose: the permutation is NULL");
    const loom_node *n = loom_graph_node(g, x);
    loom_attrs at = loom_attrs_zero();
    bool identity = true;
    for (int j = 0; n && j < n->shape.rank; j++) {
        at.i[j] = perm[j];
        identity = identity && perm[j] == j;
    }
    if (n && identity && !loom_graph_failed(g)) return x;
    return loom_op_build(g, OP_TRANSPOSE, &x, 1, &at);
}

loom_tensor loom_transpose2(loom_graph *g, loom_tensor x)
{
    const loom_node *n = loom_graph_node(g, x);
    if (!n || n->shape.rank < 2) {
        if (loom_graph_failed(g)) return LOOM_INVALID;
        return loom_graph_fail(g, LOOM_ERR_SHAPE, "transpose: needs rank >= 2, got %s", TSTR(g, x));
    }
    int perm[LOOM_MAX_RANK] = {0, 1, 2, 3}, r = n->shape.rank;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return loom_transpose(g, x, perm);
}

loom_tensor loom_scale_grad(loom_graph *g, loom_tensor x, loom_tensor w, int k)
{
    loom_attrs at = loom_attrs_zero();
    at.i[0] = k;
    return loom_op_build(g, OP_SCALE_GRAD, (loom_tensor[]){x, w}, 2, &at);
}
