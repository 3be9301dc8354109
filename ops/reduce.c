/* Reductions and row-wise ops: sum over an axis or all, sum_to and
 * broadcast_to (adjoints of each other), softmax, log-softmax, softmax
 * cross-entropy. Sums accumulate in double.
 * sum attrs: i[0] = axis, i[1] = keepdim, i[2] = all axes. */
#include "ops/op.h"
#include "ops/vmath.h"

static bool need_f32(loom_graph *g, const char *op, loom_tensor t)
{
    if (loom_tensor_dtype(g, t) == LOOM_F32) return true;
    loom_graph_fail(g, LOOM_ERR_ARG, "%s: input %s must be f32", op, TSTR(g, t));
    return false;
}

static bool shape_sum(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a, loom_shape *out,
                      loom_dtype *dt)
{
    (void)n;
    if (!need_f32(g, op, in[0])) return false;
    loom_shape s = loom_tensor_shape(g, in[0]);
    *dt = LOOM_F32;
    if (a->i[2]) {
        if (a->i[1])
            for (int i = 0; i < s.rank; i++) s.d[i] = 1;
        else
            s = loom_shape0();
        *out = s;
        return true;
    }
    int ax = loom_axis(a->i[0], s.rank);
    if (ax < 0)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: axis %d is out of range for %s", op, a->i[0],
                                           TSTR(g, in[0])));
    a->i[0] = ax; /* canonical, so equal sums hash-cons */
    if (a->i[1]) {
        s.d[ax] = 1;
    } else {
        for (int i = ax; i < s.rank - 1; i++) s.d[i] = s.d[i + 1];
        s.rank--;
    }
    *out = s;
    return true;
}

/* x viewed as (outer, len, inner) around `axis`. */
static void split_axis(loom_shape s, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= s.d[i];
    *len = s.d[axis];
    for (int i = axis + 1; i < s.rank; i++) *inner *= s.d[i];
}

static loom_status sum_forward(const loom_kargs *k)
{
    const float *x = k->in[0];
    loom_shape s = k->in_node[0]->shape;
    int64_t outer, len, inner;
    if (k->node->attr.i[2]) {
        int64_t n = loom_shape_numel(s);
        double acc = 0;
        int64_t i0, i1;
        loom_share(k, n, n, &i0, &i1);
        for (int64_t i = i0; i < i1; i++) acc += x[i];
        acc = loom_team_sum(k, acc);
        if (k->tid == k->nth - 1) k->out[0] = (float)acc;
        return LOOM_OK;
    }
    split_axis(s, k->node->attr.i[0], &outer, &len, &inner);
    int64_t o0, o1;
    loom_share(k, outer * inner, outer * len * inner, &o0, &o1);
    for (int64_t oi = o0; oi < o1; oi++) {
        int64_t o = oi / inner, i = oi % inner;
        const float *p = x + o * len * inner + i;
        double acc = 0;
        for (int64_t j = 0; j < len; j++) acc += p[j * inner];
        k->out[oi] = (float)acc;
    }
    return LOOM_OK;
}

/* d(Σx) = broadcast of the upstream gradient back over the summed axes. */
static void sum_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    loom_tensor x = loom_node_input(g, y, 0);
    const loom_node *n = loom_graph_node(g, y);
    loom_shape xs = loom_tensor_shape(g, x), keep = xs;
    if (n->attr.i[2])
        for (int i = 0; i < keep.rank; i++) keep.d[i] = 1;
    else
        keep.d[n->attr.i[0]] = 1;
    gx[0] = loom_broadcast_to(g, loom_reshape(g, gy, keep), xs);
}

static loom_status sum_64(const loom_args64 *a)
{
    loom_shape s = a->in_node[0]->shape;
    const double *x = a->in[0];
    if (a->node->attr.i[2]) {
        double acc = 0;
        for (int64_t i = 0, n = loom_shape_numel(s); i < n; i++) acc += x[i];
        a->out[0] = acc;
        return LOOM_OK;
    }
    int64_t outer, len, inner;
    split_axis(s, a->node->attr.i[0], &outer, &len, &inner);
    for (int64_t oi = 0; oi < outer * inner; oi++) {
        double acc = 0;
        for (int64_t j = 0; j < len; j++) acc += x[(oi / inner) * len * inner + oi % inner + j * inner];
        a->out[oi] = acc;
    }
    return LOOM_OK;
}

const loom_op_desc loom_desc_sum = {
    .name = "sum", .symbol = "Σ", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_PURE,
    .shape = shape_sum, .forward = sum_forward, .grad = sum_grad,
    .f64 = sum_64};

/* ---- sum_to / broadcast_to: target shape in attrs.shape ---- */

/* sum_to: the target broadcasts up to x; broadcast_to: x broadcasts up to the target. */
static bool broadcasts(loom_graph *g, const char *op, loom_tensor x, loom_shape small, loom_shape big,
                       loom_attrs *a, loom_shape *out, loom_dtype *dt)
{
    loom_shape b;
    if (!need_f32(g, op, x)) return false;
    if (a->shape.rank < 0 || a->shape.rank > LOOM_MAX_RANK || small.rank > big.rank ||
        !loom_broadcast_shape(small, big, &b) || !loom_shape_eq(b, big))
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: %s does not broadcast to %s", op, SSTR(small),
                                           SSTR(big)));
    *out = a->shape;
    *dt = LOOM_F32;
    return true;
}

static bool shape_sum_to(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                         loom_shape *out, loom_dtype *dt)
{
    (void)n;
    return broadcasts(g, op, in[0], a->shape, loom_tensor_shape(g, in[0]), a, out, dt);
}

static bool shape_broadcast_to(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                               loom_shape *out, loom_dtype *dt)
{
    (void)n;
    return broadcasts(g, op, in[0], loom_tensor_shape(g, in[0]), a->shape, a, out, dt);
}

/* Whether sum_to from xs to os only sums leading dimensions: x is R rows
 * of os's elements (a bias gradient: (B, G) → (G)). */
static bool sums_rows(loom_shape xs, loom_shape os)
{
    int skip = 0;
    while (skip < os.rank && os.d[skip] == 1) skip++;
    if (os.rank - skip > xs.rank) return false;
    for (int i = skip; i < os.rank; i++)
        if (os.d[i] != xs.d[xs.rank - os.rank + i]) return false;
    return true;
}

/* acc_j += Σ_i x[i·c + j] for j < w, in double (a vector loop over each row). */
LOOM_VECTOR_CLONES static void add_rows(double *acc, const float *x, int64_t r, int64_t c, int64_t w)
{
    for (int64_t i = 0; i < r; i++) {
        const float *row = x + i * c;
        #pragma omp simd
        for (int64_t j = 0; j < w; j++) acc[j] += row[j];
    }
}

/* Σ over rows, column by column in double; `stack` row blocks of terms a
 * sum runs here lie end to end. */
static loom_status sum_rows_forward(const loom_kargs *k)
{
    int64_t c = loom_shape_numel(k->node->shape), r = loom_shape_numel(k->in_node[0]->shape) / (c ? c : 1) * k->stack;
    const float *x = k->in[0];
    enum { COLS = 512 };
    int64_t b0, b1;
    loom_share(k, (c + COLS - 1) / COLS, r * c, &b0, &b1);
    for (int64_t c0 = b0 * COLS; c0 < c && c0 < b1 * COLS; c0 += COLS) {
        int64_t w = c - c0 < COLS ? c - c0 : COLS;
        double acc[COLS];
        for (int64_t j = 0; j < w; j++) acc[j] = k->beta != 0.0f ? (double)k->out[c0 + j] : 0.0;
        add_rows(acc, x + c0, r, c, w);
        for (int64_t j = 0; j < w; j++) k->out[c0 + j] = (float)acc[j];
    }
    return LOOM_OK;
}

static loom_status sum_to_forward(const loom_kargs *k)
{
    if (k->stack > 1 || sums_rows(k->in_node[0]->shape, k->node->shape)) return sum_rows_forward(k);
    /* both shapes padded on the left to 4 dims, so they align as broadcasting does */
    int64_t xd[4], od[4];
    loom_shape xs = k->in_node[0]->shape, os = k->node->shape;
    loom_shape_pad4(xs, xd);
    loom_shape_pad4(os, od);
    int64_t n = loom_shape_numel(os);
    const float *x = k->in[0];
    if (od[3] == xd[3] && od[3] > 1) { /* the last axis kept: whole rows summed, in blocks of columns */
        int64_t W = od[3], r0, r1;
        loom_share(k, n / W, loom_shape_numel(xs), &r0, &r1);
        for (int64_t r = r0; r < r1; r++) {
            int64_t oi[3] = {r / (od[1] * od[2]), (r / od[2]) % od[1], r % od[2]}, lo[3], hi[3];
            for (int d = 0; d < 3; d++) {
                bool red = od[d] == 1 && xd[d] > 1;
                lo[d] = red ? 0 : oi[d];
                hi[d] = red ? xd[d] : oi[d] + 1;
            }
            for (int64_t c0 = 0; c0 < W; c0 += 256) {
                int64_t cw = W - c0 < 256 ? W - c0 : 256;
                double acc[256] = {0};
                for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
                    for (int64_t i1 = lo[1]; i1 < hi[1]; i1++)
                        for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) {
                            const float *p = x + ((i0 * xd[1] + i1) * xd[2] + i2) * xd[3] + c0;
                            #pragma omp simd
                            for (int64_t j = 0; j < cw; j++) acc[j] += p[j];
                        }
                float *out = k->out + r * W + c0;
                for (int64_t j = 0; j < cw; j++) out[j] = (float)(k->beta != 0.0f ? acc[j] + out[j] : acc[j]);
            }
        }
        return LOOM_OK;
    }
    int64_t o0, o1;
    loom_share(k, n, loom_shape_numel(xs), &o0, &o1);
    for (int64_t o = o0; o < o1; o++) {
        int64_t oi[4] = {o / (od[1] * od[2] * od[3]), (o / (od[2] * od[3])) % od[1], (o / od[3]) % od[2], o % od[3]};
        int64_t lo[4], hi[4];
        for (int d = 0; d < 4; d++) {
            bool red = od[d] == 1 && xd[d] > 1;
            lo[d] = red ? 0 : oi[d];
            hi[d] = red ? xd[d] : oi[d] + 1;
        }
        double acc = 0;
        for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
            for (int64_t i1 = lo[1]; i1 < hi[1]; i1++)
                for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) {
                    const float *p = x + ((i0 * xd[1] + i1) * xd[2] + i2) * xd[3];
                    for (int64_t i3 = lo[3]; i3 < hi[3]; i3++) acc += p[i3];
                }
        k->out[o] = (float)(k->beta != 0.0f ? acc + k->out[o] : acc);
    }
    return LOOM_OK;
}

static loom_status broadcast_to_forward(const loom_kargs *k)
{
    int64_t d[4], st[4];
    loom_shape os = k->node->shape;
    loom_shape_pad4(os, d);
    loom_broadcast_strides(k->in_node[0]->shape, os, st);
    int64_t n = loom_shape_numel(os);
    const float *x = k->in[0];
    int64_t r0, r1;
    loom_share(k, d[0] * d[1] * d[2], n, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        int64_t i2 = r % d[2], i1 = (r / d[2]) % d[1], i0 = r / (d[2] * d[1]);
        const float *p = x + i0 * st[0] + i1 * st[1] + i2 * st[2];
        for (int64_t j = 0; j < d[3]; j++) k->out[r * d[3] + j] = p[j * st[3]];
    }
    return LOOM_OK;
}

static void sum_to_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_broadcast_to(g, gy, loom_tensor_shape(g, loom_node_input(g, y, 0)));
}

static void broadcast_to_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_sum_to(g, gy, loom_tensor_shape(g, loom_node_input(g, y, 0)));
}

/* A row sum adds up over stacked rows, and may add into a sum's buffer. */
static bool sum_to_stacks(const loom_graph *g, loom_tensor t)
{
    return sums_rows(loom_tensor_shape(g, loom_node_input(g, t, 0)), loom_tensor_shape(g, t));
}

/* Element i of x lands on the element of the (smaller) result it broadcasts from. */
static loom_status sum_to_64(const loom_args64 *a)
{
    loom_shape xs = a->in_node[0]->shape, os = a->node->shape;
    memset(a->out, 0, (size_t)loom_shape_numel(os) * sizeof *a->out);
    for (int64_t i = 0, n = loom_shape_numel(xs); i < n; i++) a->out[loom_broadcast_index(os, xs, i)] += a->in[0][i];
    return LOOM_OK;
}

static loom_status broadcast_to_64(const loom_args64 *a)
{
    loom_shape xs = a->in_node[0]->shape, os = a->node->shape;
    for (int64_t i = 0, n = loom_shape_numel(os); i < n; i++) a->out[i] = a->in[0][loom_broadcast_index(xs, os, i)];
    return LOOM_OK;
}

const loom_op_desc loom_desc_sum_to = {
    .name = "sum_to", .symbol = "Σ", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_PURE | OPF_ACCUM,
    .shape = shape_sum_to, .forward = sum_to_forward, .grad = sum_to_grad, .stacks = sum_to_stacks,
    .f64 = sum_to_64};
const loom_op_desc loom_desc_broadcast_to = {
    .name = "broadcast_to", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_PURE,
    .shape = shape_broadcast_to, .forward = broadcast_to_forward, .grad = broadcast_to_grad,
    .f64 = broadcast_to_64};

/* ---- softmax family, over the last axis ---- */

static bool shape_rows(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a, loom_shape *out,
                       loom_dtype *dt)
{
    (void)n;
    (void)a;
    if (!need_f32(g, op, in[0])) return false;
    loom_shape s = loom_tensor_shape(g, in[0]);
    if (s.rank < 1)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: needs rank >= 1, got %s", op, TSTR(g, in[0])));
    *out = s;
    *dt = LOOM_F32;
    return true;
}

/* The largest x_j (vector code). */
LOOM_VECTOR_CLONES static float row_max(const float *x, int64_t c)
{
    float mx = x[0];
    #pragma omp simd reduction(max : mx)
    for (int64_t j = 1; j < c; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

/* Σ_j exp(x_j − mx): the terms in vector code (3 ulp), summed in double;
 * with o, each term is also written to o_j. */
LOOM_VECTOR_CLONES static double row_sum_exp(const float *x, int64_t c, float mx, float *o)
{
    double s = 0;
    if (o) {
        #pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < c; j++) s += o[j] = loom_vexpf(x[j] - mx);
    } else {
        #pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < c; j++) s += loom_vexpf(x[j] - mx);
    }
    return s;
}

LOOM_VECTOR_CLONES static void row_scale(float *o, int64_t c, float w)
{
    #pragma omp simd
    for (int64_t j = 0; j < c; j++) o[j] *= w;
}

/* log Σ exp(x_j), shifted by the max so that exp never overflows. */
static double logsumexp(const float *x, int64_t c)
{
    float mx = row_max(x, c);
    return mx + log(row_sum_exp(x, c, mx, NULL));
}

#define ROW_KERNEL(fn, BODY)                                                                           \
    static loom_status fn(const loom_kargs *k)                                                         \
    {                                                                                                  \
        loom_shape s = k->node->shape;                                                                 \
        int64_t c = s.rank ? s.d[s.rank - 1] : 1, rows = loom_shape_numel(s) / c, r0, r1;              \
        loom_share(k, rows, rows * c, &r0, &r1);                                                       \
        for (int64_t r = r0; r < r1; r++) {                                                            \
            const float *x = k->in[0] + r * c;                                                         \
            float *o = k->out + r * c;                                                                 \
            double lse = logsumexp(x, c);                                                              \
            for (int64_t j = 0; j < c; j++) BODY;                                                      \
        }                                                                                              \
        return LOOM_OK;                                                                                \
    }
ROW_KERNEL(softmax_forward, o[j] = loom_vexpf((float)((double)x[j] - lse)))
ROW_KERNEL(log_softmax_forward, o[j] = (float)((double)x[j] - lse))

/* y = softmax(x): dx = y ⊙ (gy − Σ_j gy_j y_j) */
static void softmax_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    loom_tensor dot = loom_sum(g, loom_mul(g, gy, y), -1, true);
    gx[0] = loom_mul(g, y, loom_sub(g, gy, dot));
}

/* y = log_softmax(x): dx = gy − softmax(x) Σ_j gy_j, softmax(x) = exp(y) */
static void log_softmax_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    gx[0] = loom_sub(g, gy, loom_mul(g, loom_exp(g, y), loom_sum(g, gy, -1, true)));
}

static double lse64(const double *x, int64_t c)
{
    double mx = x[0], s = 0;
    for (int64_t j = 1; j < c; j++) mx = x[j] > mx ? x[j] : mx;
    for (int64_t j = 0; j < c; j++) s += exp(x[j] - mx);
    return mx + log(s);
}

static loom_status softmax_rows64(const loom_args64 *a, bool log_)
{
    loom_shape s = a->node->shape;
    int64_t c = s.d[s.rank - 1], rows = loom_shape_numel(s) / c;
    for (int64_t r = 0; r < rows; r++) {
        const double *x = a->in[0] + r * c;
        double lse = lse64(x, c);
        for (int64_t j = 0; j < c; j++) a->out[r * c + j] = log_ ? x[j] - lse : exp(x[j] - lse);
    }
    return LOOM_OK;
}
static loom_status softmax_64(const loom_args64 *a) { return softmax_rows64(a, false); }
static loom_status log_softmax_64(const loom_args64 *a) { return softmax_rows64(a, true); }

const loom_op_desc loom_desc_softmax = {
    .name = "softmax", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_PURE,
    .shape = shape_rows, .forward = softmax_forward, .grad = softmax_grad,
    .f64 = softmax_64};
const loom_op_desc loom_desc_log_softmax = {
    .name = "log_softmax", .symbol = "log softmax", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_PURE,
    .shape = shape_rows, .forward = log_softmax_forward, .grad = log_softmax_grad,
    .f64 = log_softmax_64};

/* ---- softmax cross-entropy ----
 * xent(logits, targets[, mask]) = Σ_r m_r (lse(x_r) − x_r[t_r]) / Σ_r m_r
 * xent_grad(gy, logits, targets[, mask]) = gy · m_r (softmax(x_r) − onehot(t_r)) / Σ m */

static bool check_xent(loom_graph *g, const char *op, loom_tensor logits, loom_tensor targets, loom_tensor mask)
{
    loom_shape ls = loom_tensor_shape(g, logits), ts = loom_tensor_shape(g, targets);
    if (!need_f32(g, op, logits)) return false;
    if (loom_tensor_dtype(g, targets) != LOOM_I32)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: targets %s must be i32", op, TSTR(g, targets)));
    bool ok = ls.rank >= 1 && ts.rank == ls.rank - 1;
    for (int i = 0; ok && i < ts.rank; i++) ok = ts.d[i] == ls.d[i];
    if (!ok)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE,
                                           "%s: targets %s must have the shape of logits %s without its last axis",
                                           op, TSTR(g, targets), TSTR(g, logits)));
    if (loom_valid(mask)) {
        if (!need_f32(g, op, mask)) return false;
        if (!loom_shape_eq(loom_tensor_shape(g, mask), ts))
            return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: mask %s must have the shape of targets %s",
                                               op, TSTR(g, mask), TSTR(g, targets)));
    }
    return true;
}

static bool shape_xent(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a, loom_shape *out,
                       loom_dtype *dt)
{
    (void)a;
    if (!check_xent(g, op, in[0], in[1], n > 2 ? in[2] : LOOM_INVALID)) return false;
    *out = loom_shape0();
    *dt = LOOM_F32;
    return true;
}

static bool shape_xent_grad(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                            loom_shape *out, loom_dtype *dt)
{
    (void)a;
    if (loom_tensor_numel(g, in[0]) != 1)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: upstream gradient %s must be a scalar", op,
                                           TSTR(g, in[0])));
    if (!check_xent(g, op, in[1], in[2], n > 3 ? in[3] : LOOM_INVALID)) return false;
    *out = loom_tensor_shape(g, in[1]);
    *dt = LOOM_F32;
    return true;
}

/* Checks targets; returns the normaliser Σ m (rows when there is no mask). */
static loom_status xent_setup(const loom_kargs *k, const loom_node *ln, const float *targets_f, const float *mask,
                              int64_t *rows, int64_t *c, double *den)
{
    const int32_t *t = (const int32_t *)(const void *)targets_f;
    *c = ln->shape.d[ln->shape.rank - 1];
    *rows = loom_shape_numel(ln->shape) / *c;
    double d = 0;
    for (int64_t r = 0; r < *rows; r++) {
        if (t[r] < 0 || t[r] >= *c)
            return loom_kernel_fail(k, LOOM_ERR_VALUE, "cross_entropy: target %d at position %lld is not in [0, %lld)",
                                    t[r], (long long)r, (long long)*c);
        d += mask ? mask[r] : 1.0;
    }
    *den = d;
    return LOOM_OK;
}

static loom_status xent_forward(const loom_kargs *k)
{
    const float *x = k->in[0], *mask = k->node->n_in > 2 ? k->in[2] : NULL;
    const int32_t *t = (const int32_t *)(const void *)k->in[1];
    int64_t rows, c;
    double den, acc = 0;
    loom_status st = xent_setup(k, k->in_node[0], k->in[1], mask, &rows, &c, &den);
    if (st) return st;
    int64_t r0, r1;
    loom_share(k, rows, rows * c, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        double m = mask ? mask[r] : 1.0;
        if (m != 0.0) acc += m * (logsumexp(x + r * c, c) - x[r * c + t[r]]);
    }
    acc = loom_team_sum(k, acc);
    if (k->tid == k->nth - 1) k->out[0] = den != 0.0 ? (float)(acc / den) : 0.0f;
    return LOOM_OK;
}

static loom_status xent_grad_forward(const loom_kargs *k)
{
    const float gy = k->in[0][0], *x = k->in[1], *mask = k->node->n_in > 3 ? k->in[3] : NULL;
    const int32_t *t = (const int32_t *)(const void *)k->in[2];
    int64_t rows, c;
    double den;
    loom_status st = xent_setup(k, k->in_node[1], k->in[2], mask, &rows, &c, &den);
    if (st) return st;
    int64_t r0, r1;
    loom_share(k, rows, rows * c, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        double w = den != 0.0 ? (mask ? mask[r] : 1.0) * gy / den : 0.0;
        const float *xr = x + r * c;
        float *o = k->out + r * c;
        if (w == 0.0) {
            memset(o, 0, (size_t)c * sizeof *o);
            continue;
        }
        /* one exp pass: o_j = e^(x_j − max), then o_j ·= w / Σ o */
        float mx = row_max(xr, c);
        double sum = row_sum_exp(xr, c, mx, o);
        row_scale(o, c, (float)(w / sum));
        /* the target's term, p − 1, without cancellation (Sterbenz: exact for p in [½, 2]) */
        double lse = mx + log(sum);
        o[t[r]] = (float)(w * ((double)loom_vexpf((float)((double)xr[t[r]] - lse)) - 1.0));
    }
    return LOOM_OK;
}

static void xent_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    const loom_node *n = loom_graph_node(g, y);
    loom_tensor in[4] = {gy, loom_node_input(g, y, 0), loom_node_input(g, y, 1), loom_node_input(g, y, 2)};
    loom_attrs at = loom_attrs_zero();
    gx[0] = loom_op_build(g, OP_XENT_GRAD, in, n->n_in + 1, &at);
}

/* Σ m (rows when there is no mask), targets checked. */
static loom_status xent_den64(const loom_args64 *a, const loom_node *ln, const double *t, const double *mask, int64_t *rows,
                              int64_t *c, double *den)
{
    *c = ln->shape.d[ln->shape.rank - 1];
    *rows = loom_shape_numel(ln->shape) / *c;
    *den = 0;
    for (int64_t r = 0; r < *rows; r++) {
        if (!(t[r] >= 0 && t[r] < *c))
            return loom_fail64(a, LOOM_ERR_VALUE, "cross_entropy: target %g at position %lld is not in [0, %lld)", t[r],
                               (long long)r, (long long)*c);
        *den += mask ? mask[r] : 1.0;
    }
    return LOOM_OK;
}

static loom_status xent_64(const loom_args64 *a)
{
    const double *x = a->in[0], *t = a->in[1], *mask = a->n_in > 2 ? a->in[2] : NULL;
    int64_t rows, c;
    double den, acc = 0;
    loom_status st = xent_den64(a, a->in_node[0], t, mask, &rows, &c, &den);
    for (int64_t r = 0; !st && r < rows; r++) {
        double m = mask ? mask[r] : 1.0;
        if (m != 0.0) acc += m * (lse64(x + r * c, c) - x[r * c + (int64_t)t[r]]);
    }
    a->out[0] = den != 0.0 ? acc / den : 0.0;
    return st;
}

static loom_status xent_grad_64(const loom_args64 *a)
{
    const double *x = a->in[1], *t = a->in[2], *mask = a->n_in > 3 ? a->in[3] : NULL;
    int64_t rows, c;
    double den;
    loom_status st = xent_den64(a, a->in_node[1], t, mask, &rows, &c, &den);
    for (int64_t r = 0; !st && r < rows; r++) {
        double w = den != 0.0 ? (mask ? mask[r] : 1.0) * a->in[0][0] / den : 0.0, lse = lse64(x + r * c, c);
        for (int64_t j = 0; j < c; j++) a->out[r * c + j] = w * (exp(x[r * c + j] - lse) - (j == (int64_t)t[r]));
    }
    return st;
}

/* Work: every logit (the loss itself is one number). */
static int64_t xent_cost(const loom_graph *g, loom_tensor y)
{
    return loom_tensor_numel(g, loom_node_input(g, y, 0));
}

const loom_op_desc loom_desc_xent = {
    .name = "cross_entropy", .symbol = "CE", .min_in = 2, .max_in = 3, .flags = OPF_SPLITS | OPF_PURE,
    .shape = shape_xent, .forward = xent_forward, .grad = xent_grad, .cost = xent_cost,
    .f64 = xent_64};
/* Not differentiable itself: a second derivative of cross-entropy is refused
 * with a clear error rather than silently wrong. */
const loom_op_desc loom_desc_xent_grad = {
    .name = "cross_entropy_grad", .symbol = "∂CE", .min_in = 3, .max_in = 4, .flags = OPF_SPLITS | OPF_PURE,
    .shape = shape_xent_grad, .forward = xent_grad_forward,
    .f64 = xent_grad_64};

/* ---- layer normalisation over the last axis ----
 * layer_norm(x) = x̂ = (x − μ)·r, μ = mean(x), r = 1/√(var(x) + ε) per row
 * (population variance; attrs f[0] = ε). Gain and bias are an ordinary mul
 * and add after it (loom_layer_norm), which fuse with what follows.
 * layer_norm_grad(x, gy) = r·(gy − mean(gy) − x̂ ⊙ mean(gy ⊙ x̂)), the
 * gradient of x̂ per row, recomputing μ and r from x: one pass for the
 * statistics, one for the two means, one for the result. */

/* Mean and 1/√(var + ε) of a row: two passes (the mean, then the squares
 * about it: no cancellation), each a vector loop summing in as many float
 * lanes as the vector holds, the lanes added in double. */
LOOM_VECTOR_CLONES static void row_moments(const float *x, int64_t c, float eps, float *mu, float *r)
{
    float s = 0, q = 0;
    #pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < c; j++) s += x[j];
    float m = (float)((double)s / (double)c);
    #pragma omp simd reduction(+ : q)
    for (int64_t j = 0; j < c; j++) q += (x[j] - m) * (x[j] - m);
    *mu = m;
    *r = (float)(1.0 / sqrt((double)q / (double)c + eps));
}

/* One row of layer_norm: o = (x − μ)·r. */
LOOM_VECTOR_CLONES static void norm_row(const float *x, float *o, int64_t c, float eps)
{
    float m, r;
    row_moments(x, c, eps, &m, &r);
    #pragma omp simd
    for (int64_t j = 0; j < c; j++) o[j] = (x[j] - m) * r;
}

/* One row of layer_norm_grad: o = r·(gy − mean(gy) − x̂ ⊙ mean(gy ⊙ x̂)). */
LOOM_VECTOR_CLONES static void norm_grad_row(const float *x, const float *gy, float *o, int64_t c, float eps)
{
    float m, r, a = 0, b = 0;
    row_moments(x, c, eps, &m, &r);
    #pragma omp simd reduction(+ : a, b)
    for (int64_t j = 0; j < c; j++) {
        a += gy[j];
        b += gy[j] * ((x[j] - m) * r);
    }
    float fa = a / (float)c, fb = b / (float)c;
    #pragma omp simd
    for (int64_t j = 0; j < c; j++) o[j] = r * (gy[j] - fa - (x[j] - m) * r * fb);
}

static loom_status layer_norm_forward(const loom_kargs *k)
{
    loom_shape s = k->node->shape;
    int64_t c = s.d[s.rank - 1], rows = loom_shape_numel(s) / c, r0, r1;
    loom_share(k, rows, 3 * rows * c, &r0, &r1);
    for (int64_t row = r0; row < r1; row++) norm_row(k->in[0] + row * c, k->out + row * c, c, k->node->attr.f[0]);
    return LOOM_OK;
}

static loom_status layer_norm_grad_forward(const loom_kargs *k)
{
    loom_shape s = k->node->shape;
    int64_t c = s.d[s.rank - 1], rows = loom_shape_numel(s) / c, r0, r1;
    loom_share(k, rows, 5 * rows * c, &r0, &r1);
    for (int64_t row = r0; row < r1; row++)
        norm_grad_row(k->in[0] + row * c, k->in[1] + row * c, k->out + row * c, c, k->node->attr.f[0]);
    return LOOM_OK;
}

static void layer_norm_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    loom_attrs at = loom_attrs_zero();
    at.f[0] = loom_graph_node(g, y)->attr.f[0];
    gx[0] = loom_op_build(g, OP_LAYER_NORM_GRAD, (loom_tensor[]){loom_node_input(g, y, 0), gy}, 2, &at);
}

static bool shape_layer_norm_grad(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *a,
                                  loom_shape *out, loom_dtype *dt)
{
    if (!shape_rows(g, op, in, n, a, out, dt) || !need_f32(g, op, in[1])) return false;
    if (!loom_shape_eq(loom_tensor_shape(g, in[1]), *out))
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: gradient %s does not have the shape of %s", op,
                                           TSTR(g, in[1]), TSTR(g, in[0])));
    return true;
}

static int64_t layer_norm_cost(const loom_graph *g, loom_tensor t) { return 3 * loom_tensor_numel(g, t); }
static int64_t layer_norm_grad_cost(const loom_graph *g, loom_tensor t) { return 5 * loom_tensor_numel(g, t); }

/* layer_norm and layer_norm_grad by their definitions, per row. */
static loom_status layer_norm_rows64(const loom_args64 *a, bool grad)
{
    loom_shape s = a->node->shape;
    int64_t c = s.d[s.rank - 1], rows = loom_shape_numel(s) / c;
    double eps = a->node->attr.f[0];
    for (int64_t r = 0; r < rows; r++) {
        const double *x = a->in[0] + r * c;
        double mu = 0, var = 0, ga = 0, gb = 0;
        for (int64_t j = 0; j < c; j++) mu += x[j] / (double)c;
        for (int64_t j = 0; j < c; j++) var += (x[j] - mu) * (x[j] - mu) / (double)c;
        double rs = 1 / sqrt(var + eps);
        if (!grad) {
            for (int64_t j = 0; j < c; j++) a->out[r * c + j] = (x[j] - mu) * rs;
            continue;
        }
        const double *gy = a->in[1] + r * c;
        for (int64_t j = 0; j < c; j++) ga += gy[j] / (double)c, gb += gy[j] * (x[j] - mu) * rs / (double)c;
        for (int64_t j = 0; j < c; j++) a->out[r * c + j] = rs * (gy[j] - ga - (x[j] - mu) * rs * gb);
    }
    return LOOM_OK;
}
static loom_status layer_norm_64(const loom_args64 *a) { return layer_norm_rows64(a, false); }
static loom_status layer_norm_grad_64(const loom_args64 *a) { return layer_norm_rows64(a, true); }

const loom_op_desc loom_desc_layer_norm = {
    .name = "layer_norm", .symbol = "LN", .min_in = 1, .max_in = 1, .flags = OPF_SPLITS | OPF_PURE,
    .shape = shape_rows, .forward = layer_norm_forward, .grad = layer_norm_grad, .cost = layer_norm_cost,
    .f64 = layer_norm_64};
/* Not differentiable itself (a second derivative is refused by name). */
const loom_op_desc loom_desc_layer_norm_grad = {
    .name = "layer_norm_grad", .symbol = "∂LN", .min_in = 2, .max_in = 2, .flags = OPF_SPLITS | OPF_PURE,
    .shape = shape_layer_norm_grad, .forward = layer_norm_grad_forward, .cost = layer_norm_grad_cost,
    .f64 = layer_norm_grad_64};

/* ---- builders ---- */

static loom_tensor sum_node(loom_graph *g, loom_tensor x, int axis, bool keepdim, bool all)
{
    loom_attrs at = loom_attrs_zero();
    at.i[0] = all ? 0 : axis;
    at.i[1] = keepdim;
    at.i[2] = all;
    return loom_op_build(g, OP_SUM, &x, 1, &at);
}

loom_tensor loom_sum(loom_graph *g, loom_tensor x, int axis, bool keepdim) { return sum_node(g, x, axis, keepdim, false); }
loom_tensor loom_sum_all(loom_graph *g, loom_tensor x) { return sum_node(g, x, 0, false, true); }

loom_tensor loom_mean(loom_graph *g, loom_tensor x, int axis, bool keepdim)
{
    loom_tensor s = loom_sum(g, x, axis, keepdim);
    if (!loom_valid(s)) return s;
    loom_shape xs = loom_tensor_shape(g, x);
    return loom_scale(g, s, 1.0f / (float)xs.d[loom_axis(axis, xs.rank)]);
}

loom_tensor loom_var(loom_graph *g, loom_tensor x, int axis, bool keepdim)
{
    loom_tensor d = loom_sub(g, x, loom_mean(g, x, axis, true));
    return loom_mean(g, loom_mul(g, d, d), axis, keepdim);
}

loom_tensor loom_layer_norm(loom_graph *g, loom_tensor x, loom_tensor gain, loom_tensor bias, float eps)
{
    if (!(eps > 0) || !isfinite(eps)) return loom_graph_fail(g, LOOM_ERR_ARG, "layer_norm: eps %g is not positive and finite", eps);
    loom_attrs at = loom_attrs_zero();
    at.f[0] = eps;
    loom_tensor y = loom_op_build(g, OP_LAYER_NORM, &x, 1, &at);
    if (!loom_valid(y)) return y;
    int64_t n = loom_tensor_shape(g, y).d[loom_tensor_shape(g, y).rank - 1];
    loom_tensor wb[2] = {gain, bias};
    for (int i = 0; i < 2; i++) {
        if (!loom_valid(wb[i])) continue;
        loom_shape s = loom_tensor_shape(g, wb[i]);
        if (!loom_graph_has(g, wb[i]) || s.rank != 1 || s.d[0] != n)
            return loom_graph_fail(g, LOOM_ERR_SHAPE, "layer_norm: %s %s must be a vector of %lld, the last axis of %s",
                                   i ? "bias" : "gain", TSTR(g, wb[i]), (long long)n, TSTR(g, x));
        y = i ? loom_add(g, y, wb[i]) : loom_mul(g, y, wb[i]);
    }
    return y;
}

loom_tensor loom_mean_all(loom_graph *g, loom_tensor x)
{
    loom_tensor s = loom_sum_all(g, x);
    return loom_valid(s) ? loom_scale(g, s, 1.0f / (float)loom_tensor_numel(g, x)) : s;
}

static loom_tensor to_shape(loom_graph *g, int op, loom_tensor x, loom_shape s)
{
    if (loom_graph_has(g, x) && !loom_graph_failed(g) && loom_tensor_dtype(g, x) == LOOM_F32 &&
        loom_shape_eq(loom_tensor_shape(g, x), s))
        return x; /* nothing to sum or broadcast */
    loom_attrs at = loom_attrs_zero();
    at.shape = s;
    return loom_op_build(g, op, &x, 1, &at);
}

loom_tensor loom_sum_to(loom_graph *g, loom_tensor x, loom_shape s) { return to_shape(g, OP_SUM_TO, x, s); }
loom_tensor loom_broadcast_to(loom_graph *g, loom_tensor x, loom_shape s) { return to_shape(g, OP_BROADCAST_TO, x, s); }

loom_tensor loom_softmax(loom_graph *g, loom_tensor x)
{
    loom_attrs at = loom_attrs_zero();
    return loom_op_build(g, OP_SOFTMAX, &x, 1, &at);
}

loom_tensor loom_log_softmax(loom_graph *g, loom_tensor x)
{
    loom_attrs at = loom_attrs_zero();
    return loom_op_build(g, OP_LOG_SOFTMAX, &x, 1, &at);
}

loom_tensor loom_cross_entropy(loom_graph *g, loom_tensor logits, loom_tensor targets, loom_tensor mask)
{
    loom_attrs at = loom_attrs_zero();
    loom_tensor in[3] = {logits, targets, mask};
    return loom_op_build(g, OP_XENT, in, loom_valid(mask) ? 3 : 2, &at);
}
