/* The op table and what every builder shares: handle checks, running the
 * shape rule, broadcasting helpers. */
#include "ops/op.h"

#include <stdarg.h>

/* The one table: op id -> descriptor (each defined next to its kernel). */
static const loom_op_desc *const table[OP_COUNT] = {
#define LOOM_OP(id, desc) [OP_##id] = &loom_desc_##desc,
#include "ops.def"
#undef LOOM_OP
};

const loom_op_desc *loom_op(int op) { return op >= 0 && op < OP_COUNT ? table[op] : NULL; }

const char *loom_op_name(int op)
{
    const loom_op_desc *d = loom_op(op);
    return d && d->name ? d->name : "?";
}

int loom_op_count(void) { return OP_COUNT; }

static void normalise(loom_shape *s)
{
    for (int i = s->rank; i < LOOM_MAX_RANK; i++) s->d[i] = 0;
}

loom_tensor loom_op_build(loom_graph *g, int op, const loom_tensor *in, int n, const loom_attrs *a)
{
    if (!g || loom_graph_failed(g)) return LOOM_INVALID;
    const loom_op_desc *d = loom_op(op);
    if (n < d->min_in || n > d->max_in)
        return loom_graph_fail(g, LOOM_ERR_ARG, "%s: takes %d..%d inputs, got %d", d->name, d->min_in,
                               d->max_in, n);
    for (int i = 0; i < n; i++)
        if (!loom_graph_has(g, in[i]))
            return loom_graph_fail(g, LOOM_ERR_ARG, "%s: input %d is not a tensor of this graph (id %d)",
                                   d->name, i, in[i].id);
    loom_attrs at = *a;
    normalise(&at.shape);
    loom_shape s = loom_shape0();
    loom_dtype dt = LOOM_F32;
    if (!d->shape(g, d->name, in, n, &at, &s, &dt)) return LOOM_INVALID;
    for (int i = 0; i < s.rank; i++)
        if (s.d[i] <= 0)
            return loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: result shape %s has a dimension < 1", d->name,
                                   SSTR(s));
    normalise(&s);
    return loom_graph_add_node(g, op, in, n, &at, s, dt, (d->flags & OPF_PURE) != 0, d->role);
}

int64_t loom_op_cost(const loom_graph *g, loom_tensor t)
{
    const loom_node *nd = loom_graph_node(g, t);
    const loom_op_desc *d = loom_op(nd->op);
    return d->cost ? d->cost(g, t) : loom_shape_numel(nd->shape);
}

bool loom_broadcast_shape(loom_shape a, loom_shape b, loom_shape *out)
{
    int r = a.rank > b.rank ? a.rank : b.rank;
    loom_shape o = loom_shape0();
    o.rank = r;
    for (int i = 0; i < r; i++) {
        int ia = a.rank - r + i, ib = b.rank - r + i;
        int da = ia >= 0 ? a.d[ia] : 1, db = ib >= 0 ? b.d[ib] : 1;
        if (da != db && da != 1 && db != 1) return false;
        o.d[i] = da == 1 ? db : da;
    }
    *out = o;
    return true;
}

void loom_shape_pad4(loom_shape s, int64_t d[LOOM_MAX_RANK])
{
    int off = LOOM_MAX_RANK - s.rank;
    for (int i = 0; i < LOOM_MAX_RANK; i++) d[i] = i < off ? 1 : s.d[i - off];
}

void loom_broadcast_strides(loom_shape x, loom_shape out, int64_t st[LOOM_MAX_RANK])
{
    int64_t xd[LOOM_MAX_RANK], od[LOOM_MAX_RANK];
    loom_shape_pad4(x, xd);
    loom_shape_pad4(out, od);
    int64_t stride = 1;
    for (int i = LOOM_MAX_RANK - 1; i >= 0; i--) {
        st[i] = (xd[i] == 1 && od[i] != 1) ? 0 : stride;
        stride *= xd[i];
    }
}

static loom_status vfail(char *err, size_t n, loom_status s, const char *fmt, va_list ap)
{
    if (err && n) vsnprintf(err, n, fmt, ap);
    return s;
}

loom_status loom_kernel_fail(const loom_kargs *a, loom_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(a->err, a->err_len, s, fmt, ap);
    va_end(ap);
    return s;
}

loom_status loom_fail64(const loom_args64 *a, loom_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(a->err, a->err_len, s, fmt, ap);
    va_end(ap);
    return s;
}

int64_t loom_broadcast_index(loom_shape xs, loom_shape os, int64_t i)
{
    int64_t d[LOOM_MAX_RANK], st[LOOM_MAX_RANK], at = 0;
    loom_shape_pad4(os, d);
    loom_broadcast_strides(xs, os, st);
    for (int k = LOOM_MAX_RANK - 1; k >= 0; k--) {
        at += (i % d[k]) * st[k];
        i /= d[k];
    }
    return at;
}

loom_status loom_map64_run(const loom_args64 *a, loom_map64_fn f)
{
    loom_shape os = a->node->shape;
    int64_t n = loom_shape_numel(os);
    const double *x = a->in[0], *y = a->n_in > 1 ? a->in[1] : a->in[0];
    loom_shape ys = a->in_node[a->n_in > 1]->shape;
    for (int64_t i = 0; i < n; i++)
        a->out[i] = f(x[loom_broadcast_index(a->in_node[0]->shape, os, i)], y[loom_broadcast_index(ys, os, i)], a->node->attr.f);
    return LOOM_OK;
}

loom_status loom_copy64(const loom_args64 *a)
{
    memcpy(a->out, a->in[0], (size_t)loom_shape_numel(a->node->shape) * sizeof *a->out);
    return LOOM_OK;
}

double loom_team_sum(const loom_kargs *k, double mine)
{
    if (k->nth < 2) return mine;
    k->team->part[k->tid] = mine;
    if (k->team->solo) { /* the shares run in turn: the last one sees them all */
        double s = 0;
        for (int t = 0; k->tid == k->nth - 1 && t < k->nth; t++) s += k->team->part[t];
        return s;
    }
    loom_team_barrier(k->team);
    double s = 0;
    for (int t = 0; t < k->nth; t++) s += k->team->part[t];
    loom_team_barrier(k->team); /* every thread has read part[] before it is written again */
    return s;
}
