/* Reverse mode: walks the nodes between wrt and loss in reverse topological
 * order (node ids are topological: a node's inputs always exist before it)
 * and asks each op's gradient rule for its inputs' gradients.
 *
 *   check_args   the loss is an f32 scalar, every wrt an f32 tensor
 *   mark_flow    which nodes lie between some wrt and the loss
 *   propagate    newest node first: sum its gradient's contributions,
 *                ask its op's rule for its inputs' contributions
 *   recomputed   with recomputation, the copy of a step's forward node
 *                that a rule reads instead of the node
 *   the result   each wrt's gradient, or a zero fill when the loss ignores it */
#include "loom/autodiff.h"
#include "ops/op.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FROM_WRT = 1, TO_LOSS = 2, BETWEEN = 3 };

/* Contributions to each node's gradient, one per use, kept in linked lists
 * and summed by one add_n when the node is reached: a weight shared by T
 * steps gets one Σ_t node. */
typedef struct {
    loom_graph *g;
    int32_t n;          /* nodes up to the loss */
    uint8_t *flow;      /* per node: FROM_WRT | TO_LOSS */
    loom_tensor *grad;  /* per node: its summed gradient */
    int32_t *head;      /* per node: newest contribution, -1: none */
    int32_t *next;      /* per contribution: the one before it */
    loom_tensor *val;   /* per contribution */
    int32_t n_c, cap_c;
    loom_tensor *terms; /* scratch for one sum */
    loom_tensor *gx;    /* scratch for one rule's results */
    bool *need;
    bool oom;
    int32_t every;      /* recomputation: steps per segment (0: none) */
    loom_tensor *copy;  /* per node: its recomputed copy (LOOM_INVALID: none yet) */
    int32_t *stack, cap_stack;
} bw_ctx;

/* The gradient of a named input or parameter is named ∂L/∂name (for
 * diagrams and messages), unless it has a name already. */
static void name_grad(loom_graph *g, loom_tensor x, loom_tensor gx)
{
    const loom_node *n = loom_graph_node(g, x);
    const char *name = loom_tensor_name(g, x);
    if (!n || !name || loom_tensor_name(g, gx) || (n->tags.role != LOOM_ROLE_PARAM && n->tags.role != LOOM_ROLE_INPUT))
        return;
    char buf[200];
    snprintf(buf, sizeof buf, "∂L/∂%s", name);
    loom_tensor_set_name(g, gx, buf);
}

/* Gradient nodes carry their forward node's tags, with role backward. */
static void tag_as_gradient_of(loom_graph *g, loom_tensor x)
{
    loom_tags t = loom_graph_node(g, x)->tags;
    t.role = LOOM_ROLE_BACKWARD;
    t.state = 0;
    loom_graph_set_tags(g, t);
}

static loom_status check_args(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int n, loom_tensor *grads)
{
    if (n < 0 || (n > 0 && (!wrt || !grads)))
        return loom_graph_fail(g, LOOM_ERR_ARG, "backward: %d wrt tensors but %s is NULL", n, !wrt ? "wrt" : "grads"),
               LOOM_ERR_ARG;
    if (!loom_graph_has(g, loss))
        return loom_graph_fail(g, LOOM_ERR_ARG, "backward: loss is not a tensor of this graph (id %d)", loss.id),
               LOOM_ERR_ARG;
    if (loom_tensor_numel(g, loss) != 1 || loom_tensor_dtype(g, loss) != LOOM_F32)
        return loom_graph_fail(g, LOOM_ERR_SHAPE, "backward: loss %s must be an f32 scalar (one element)", TSTR(g, loss)),
               LOOM_ERR_SHAPE;
    for (int i = 0; i < n; i++) {
        if (!loom_graph_has(g, wrt[i]))
            return loom_graph_fail(g, LOOM_ERR_ARG, "backward: wrt[%d] is not a tensor of this graph (id %d)", i,
                                   wrt[i].id),
                   LOOM_ERR_ARG;
        if (loom_tensor_dtype(g, wrt[i]) != LOOM_F32)
            return loom_graph_fail(g, LOOM_ERR_ARG, "backward: cannot differentiate with respect to i32 %s",
                                   TSTR(g, wrt[i])),
                   LOOM_ERR_ARG;
    }
    return LOOM_OK;
}

/* FROM_WRT forwards from the wrt tensors, TO_LOSS backwards from the loss
 * (only through nodes that some wrt reaches). */
static void mark_flow(bw_ctx *c, const loom_tensor *wrt, int n)
{
    loom_graph *g = c->g;
    if (c->n < 1) return;
    for (int i = 0; i < n; i++)
        if (loom_index(wrt[i]) < c->n) c->flow[loom_index(wrt[i])] |= FROM_WRT;
    for (int32_t i = 0; i < c->n; i++) {
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        for (int j = 0; j < nd->n_in && !(c->flow[i] & FROM_WRT); j++)
            if (c->flow[loom_index(loom_node_input(g, loom_at(i), j))] & FROM_WRT) c->flow[i] |= FROM_WRT;
    }
    c->flow[c->n - 1] |= TO_LOSS;
    for (int32_t i = c->n - 1; i >= 0; i--) {
        if (c->flow[i] != BETWEEN) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        for (int j = 0; j < nd->n_in; j++) c->flow[loom_index(loom_node_input(g, loom_at(i), j))] |= TO_LOSS;
    }
}

static void contribute(bw_ctx *c, int32_t node, loom_tensor v)
{
    if (c->n_c == c->cap_c) {
        int32_t cap = c->cap_c ? 2 * c->cap_c : 256;
        int32_t *nn = realloc(c->next, (size_t)cap * sizeof *c->next);
        if (nn) c->next = nn;
        loom_tensor *nv = nn ? realloc(c->val, (size_t)cap * sizeof *c->val) : NULL;
        if (nv) c->val = nv;
        if (!nn || !nv) {
            c->oom = true;
            return;
        }
        c->cap_c = cap;
    }
    c->val[c->n_c] = v;
    c->next[c->n_c] = c->head[node];
    c->head[node] = c->n_c++;
}

/* The sum of node i's contributions, oldest first (the list is newest first). */
static loom_tensor accumulate(bw_ctx *c, int32_t i)
{
    int k = 0;
    for (int32_t e = c->head[i]; e >= 0; e = c->next[e]) k++;
    loom_tensor *t = realloc(c->terms, (size_t)k * sizeof *t);
    if (!t) {
        c->oom = true;
        return LOOM_INVALID;
    }
    c->terms = t;
    for (int32_t e = c->head[i], m = k; e >= 0; e = c->next[e]) t[--m] = c->val[e];
    return k == 1 ? t[0] : loom_add_n(c->g, t, k);
}

/* ---- recomputation ---- */

/* Whether node i is a forward value of a time step that recomputation
 * copies: not a source, not invariant (a value of parameters and
 * constants alone is the same at every step: kept once). */
static bool copied(const bw_ctx *c, int32_t i)
{
    const loom_node *nd = loom_graph_node(c->g, loom_at(i));
    return c->every && nd->tags.role == LOOM_ROLE_FORWARD && nd->tags.step >= 0 && !nd->invariant &&
           !(loom_op(nd->op)->flags & OPF_SOURCE);
}

static int32_t segment(const bw_ctx *c, int32_t i) { return loom_graph_node(c->g, loom_at(i))->tags.step / c->every; }

/* x's input j as x's copy reads it: its copy when it is of x's segment,
 * else the original (a checkpoint, a step input, a parameter). */
static int32_t copy_input(const bw_ctx *c, int32_t x, int j)
{
    int32_t u = loom_index(loom_node_input(c->g, loom_at(x), j));
    return copied(c, u) && segment(c, u) == segment(c, x) ? u : -1;
}

/* Node x as backward reads it: with recomputation, a copy of a step's
 * forward node — the same op over the copies of its inputs from its
 * segment — made once, depth first with an explicit stack (a segment's
 * chain can be thousands of nodes deep). Copies are not pure: hash-consing
 * must not merge a copy back into its original. */
static loom_tensor recomputed(bw_ctx *c, int32_t x)
{
    if (!copied(c, x)) return loom_at(x);
    loom_graph *g = c->g;
    int32_t n = 0;
    loom_tags saved = loom_graph_tags(g);
    c->stack[n++] = x;
    while (n && !c->oom && !loom_graph_failed(g)) {
        int32_t u = c->stack[n - 1];
        if (loom_valid(c->copy[u])) {
            n--;
            continue;
        }
        const loom_node *nd = loom_graph_node(g, loom_at(u));
        bool ready = true;
        for (int j = 0; j < nd->n_in; j++) {
            int32_t v = copy_input(c, u, j);
            if (v < 0 || loom_valid(c->copy[v])) continue;
            if (n == c->cap_stack) {
                int32_t cap = 2 * c->cap_stack, *s = realloc(c->stack, (size_t)cap * sizeof *s);
                if (!s) {
                    c->oom = true;
                    break;
                }
                c->stack = s, c->cap_stack = cap;
            }
            c->stack[n++] = v, ready = false;
        }
        if (!ready || c->oom) continue;
        loom_tensor in[nd->n_in > 0 ? nd->n_in : 1];
        for (int j = 0; j < nd->n_in; j++) {
            int32_t v = copy_input(c, u, j);
            in[j] = v < 0 ? loom_node_input(g, loom_at(u), j) : c->copy[v];
        }
        loom_tags t = nd->tags;
        t.role = LOOM_ROLE_RECOMPUTE;
        loom_graph_set_tags(g, t);
        loom_attrs at = nd->attr;
        c->copy[u] = loom_graph_add_node(g, nd->op, in, nd->n_in, &at, nd->shape, (loom_dtype)nd->dtype, false,
                                         LOOM_ROLE_RECOMPUTE);
        n--;
    }
    loom_graph_set_tags(g, saved);
    return loom_valid(c->copy[x]) ? c->copy[x] : loom_at(x);
}

/* Node i's gradient, then its rule's contributions to its inputs'. */
static void step_back(bw_ctx *c, int32_t i)
{
    loom_graph *g = c->g;
    loom_tensor y = loom_at(i);
    tag_as_gradient_of(g, y);
    c->grad[i] = accumulate(c, i);
    if (c->oom) return;
    const loom_node *nd = loom_graph_node(g, y), *gn = loom_graph_node(g, c->grad[i]);
    if (!gn) return; /* the sum could not be built: the graph says why */
    if (nd->tags.state && gn->tags.role == LOOM_ROLE_BACKWARD && gn->tags.step == nd->tags.step && !gn->tags.state) {
        loom_tags t = gn->tags; /* the gradient of carried state k: its own step's Σ, tagged with k (diagrams) */
        t.state = nd->tags.state;
        loom_tensor_set_tags(g, c->grad[i], t);
        nd = loom_graph_node(g, y);
    }
    if (nd->n_in == 0) return;
    const loom_op_desc *d = loom_op(nd->op);
    if (!d->grad) {
        loom_graph_fail(g, LOOM_ERR_ARG, "backward: %s has no gradient rule (node %s)", d->name, TSTR(g, y));
        return;
    }
    int n_in = nd->n_in;
    for (int j = 0; j < n_in; j++) {
        c->gx[j] = LOOM_INVALID;
        c->need[j] = c->flow[loom_index(loom_node_input(g, y, j))] == BETWEEN;
    }
    d->grad(g, recomputed(c, i), c->grad[i], c->need, c->gx); /* y itself, or its copy: the rule reads the values */
    if (c->oom || loom_graph_failed(g)) return;
    for (int j = 0; j < n_in && !loom_graph_failed(g) && !c->oom; j++) {
        loom_tensor x = loom_node_input(g, y, j);
        if (!loom_valid(c->gx[j]) || !c->need[j]) continue;
        if (!loom_shape_eq(loom_tensor_shape(g, c->gx[j]), loom_tensor_shape(g, x))) {
            loom_graph_fail(g, LOOM_ERR_SHAPE, "backward: %s's gradient rule gave %s for input %s", d->name,
                            TSTR(g, c->gx[j]), TSTR(g, x));
            return;
        }
        contribute(c, loom_index(x), c->gx[j]);
    }
}

static void propagate(bw_ctx *c, loom_tensor loss)
{
    if (c->flow[c->n - 1] != BETWEEN) return; /* no wrt reaches the loss */
    tag_as_gradient_of(c->g, loss);
    contribute(c, c->n - 1, loom_fill(c->g, loom_tensor_shape(c->g, loss), 1.0f)); /* dL/dL = 1 */
    for (int32_t i = c->n - 1; i >= 0 && !c->oom && !loom_graph_failed(c->g); i--)
        if (c->flow[i] == BETWEEN && c->head[i] >= 0) step_back(c, i);
}

static bool ctx_init(bw_ctx *c, loom_graph *g, loom_tensor loss)
{
    *c = (bw_ctx){.g = g, .n = loom_index(loss) + 1}; /* nothing after the loss can influence it */
    int max_in = 1;
    for (int32_t i = 0; i < c->n; i++) {
        int k = loom_graph_node(g, loom_at(i))->n_in;
        max_in = k > max_in ? k : max_in;
    }
    c->flow = calloc((size_t)c->n, 1);
    c->grad = malloc((size_t)c->n * sizeof *c->grad);
    c->head = malloc((size_t)c->n * sizeof *c->head);
    c->gx = malloc((size_t)max_in * sizeof *c->gx);
    c->need = malloc((size_t)max_in * sizeof *c->need);
    if (!c->flow || !c->grad || !c->head || !c->gx || !c->need) return false;
    for (int32_t i = 0; i < c->n; i++) c->grad[i] = LOOM_INVALID, c->head[i] = -1;
    return true;
}

static void ctx_free(bw_ctx *c)
{
    free(c->flow), free(c->grad), free(c->head), free(c->next), free(c->val), free(c->terms), free(c->gx), free(c->need);
    free(c->copy), free(c->stack);
}

/* Steps per segment: N as asked, or ⌈√T⌉ for T the steps of the nodes
 * between wrt and loss; 0 (no copies) when one segment would hold them all. */
static bool recompute_init(bw_ctx *c, int32_t every)
{
    int32_t T = 0;
    for (int32_t i = 0; i < c->n; i++) {
        int32_t s = loom_graph_node(c->g, loom_at(i))->tags.step;
        if (c->flow[i] == BETWEEN && s + 1 > T) T = s + 1;
    }
    if (every == LOOM_RECOMPUTE_AUTO) every = (int32_t)ceil(sqrt((double)T));
    c->every = every > 0 && every < T ? every : 0;
    if (!c->every) return true;
    c->copy = malloc((size_t)c->n * sizeof *c->copy);
    c->stack = malloc(256 * sizeof *c->stack);
    if (!c->copy || !c->stack) return false;
    c->cap_stack = 256;
    for (int32_t i = 0; i < c->n; i++) c->copy[i] = LOOM_INVALID;
    return true;
}

/* The node whose buffer holds t's values: views (reshape, ...) have none. */
static int32_t buffer_of(loom_graph *g, loom_tensor t)
{
    while (loom_op(loom_graph_node(g, t)->op)->flags & OPF_ALIAS) t = loom_node_input(g, t, 0);
    return loom_index(t);
}

/* a and b compute the same: one op over the same inputs and attributes. */
static bool same_expression(loom_graph *g, loom_tensor a, loom_tensor b)
{
    const loom_node *x = loom_graph_node(g, a), *y = loom_graph_node(g, b);
    if (x->op != y->op || x->n_in != y->n_in || !loom_shape_eq(x->shape, y->shape) ||
        memcmp(&x->attr, &y->attr, sizeof x->attr))
        return false;
    for (int j = 0; j < x->n_in; j++)
        if (loom_node_input(g, a, j).id != loom_node_input(g, b, j).id) return false;
    return true;
}

/* a is the copy (Σ of one term) own_gradients made of b. */
static bool copy_of(loom_graph *g, loom_tensor a, loom_tensor b)
{
    const loom_node *x = loom_graph_node(g, a);
    return (loom_op(x->op)->flags & OPF_SUM) && x->n_in == 1 && loom_node_input(g, a, 0).id == b.id;
}

/* One gradient per wrt, in a buffer of its own. Hash-consing merges
 * identical expressions, so two tensors whose gradients are equal — an
 * LSTM's bias_ih and bias_hh, both Σ_t of the gates' gradient; two unused
 * parameters' zero fills — would share one node and one buffer, and
 * whoever clips or updates gradients in place would scale it once per
 * tensor. A gradient whose buffer another tensor's gradient holds (an
 * earlier wrt of this call, or one recorded by an earlier call), or that
 * is the buffer of a bound or stored source (the caller's data), is built
 * again as a node hash-consing never merges: the same op over the same
 * inputs (so a Σ stays a Σ in the diagrams), or, for a view or a source, a
 * copy (Σ of one term). */
static void own_gradients(loom_graph *g, const loom_tensor *wrt, int n, loom_tensor *grads)
{
    int32_t count = loom_graph_size(g);
    int32_t *owner = malloc((size_t)(count + 2 * n + 1) * sizeof *owner); /* per node: whose gradient (id), 0: none */
    if (!owner) {
        loom_graph_fail(g, LOOM_ERR_NOMEM, "backward: out of memory");
        return;
    }
    memset(owner, 0, (size_t)(count + 2 * n + 1) * sizeof *owner);
    for (int32_t x = 0; x < count; x++) {
        loom_tensor gx = loom_grad(g, loom_at(x));
        if (loom_valid(gx)) owner[buffer_of(g, gx)] = x + 1;
    }
    for (int i = 0; i < n && !loom_graph_failed(g); i++) {
        int32_t b = buffer_of(g, grads[i]), me = loom_index(wrt[i]) + 1;
        const loom_node *nd = loom_graph_node(g, loom_at(b));
        const loom_op_desc *d = loom_op(nd->op);
        if (owner[b] == 0 && !(d->flags & (OPF_BOUND | OPF_STORED))) {
            owner[b] = me;
            continue;
        }
        if (owner[b] == me) continue;
        loom_tensor before = loom_grad(g, wrt[i]); /* an earlier call's gradient of the same expression */
        if (loom_valid(before) && (same_expression(g, before, grads[i]) || copy_of(g, before, grads[i]))) {
            grads[i] = before;
            continue;
        }
        tag_as_gradient_of(g, wrt[i]);
        loom_tensor t;
        if (b == loom_index(grads[i]) && !(d->flags & OPF_SOURCE)) {
            loom_tensor in[nd->n_in > 0 ? nd->n_in : 1];
            for (int j = 0; j < nd->n_in; j++) in[j] = loom_node_input(g, grads[i], j);
            loom_attrs at = nd->attr;
            t = loom_graph_add_node(g, nd->op, in, nd->n_in, &at, nd->shape, (loom_dtype)nd->dtype, false, d->role);
        } else {
            const loom_op_desc *sum = loom_op(OP_ADD_N);
            loom_attrs at = loom_attrs_zero();
            t = loom_graph_add_node(g, OP_ADD_N, &grads[i], 1, &at, loom_tensor_shape(g, grads[i]), LOOM_F32, false,
                                    sum->role);
        }
        if (!loom_valid(t)) break;
        grads[i] = t;
        owner[loom_index(t)] = me;
    }
    free(owner);
}

loom_status loom_backward(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int n, loom_tensor *grads)
{
    return loom_backward_with(g, loss, wrt, n, grads, NULL);
}

loom_status loom_backward_with(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int n, loom_tensor *grads,
                               const loom_backward_opts *opts)
{
    if (!g) return LOOM_ERR_ARG;
    int32_t every = opts ? opts->recompute : 0;
    for (int i = 0; grads && i < n; i++) grads[i] = LOOM_INVALID;
    if (loom_graph_failed(g)) return loom_graph_status(g);
    if (every < 0 && every != LOOM_RECOMPUTE_AUTO)
        return loom_graph_fail(g, LOOM_ERR_ARG, "backward: recompute every %d steps (>= 1, 0: none, or auto)", every),
               LOOM_ERR_ARG;
    loom_status st = check_args(g, loss, wrt, n, grads);
    if (st) return st;
    bw_ctx c;
    loom_tags saved = loom_graph_tags(g);
    if (ctx_init(&c, g, loss)) {
        mark_flow(&c, wrt, n);
        if (recompute_init(&c, every)) propagate(&c, loss);
        else c.oom = true;
    } else {
        c.oom = true;
    }
    if (c.oom) loom_graph_fail(g, LOOM_ERR_NOMEM, "backward: out of memory");
    for (int i = 0; i < n && !loom_graph_failed(g); i++) {
        int32_t w = loom_index(wrt[i]);
        tag_as_gradient_of(g, wrt[i]);
        grads[i] = w < c.n && loom_valid(c.grad[w]) ? c.grad[w] : loom_fill(g, loom_tensor_shape(g, wrt[i]), 0.0f);
    }
    ctx_free(&c);
    own_gradients(g, wrt, n, grads);
    for (int i = 0; i < n && !loom_graph_failed(g); i++) name_grad(g, wrt[i], grads[i]);
    loom_graph_set_tags(g, saved);
    for (int i = 0; i < n && !loom_graph_failed(g); i++) loom_graph_set_grad(g, wrt[i], grads[i]); /* loom_grad */
    if (loom_graph_failed(g)) {
        for (int i = 0; i < n; i++) grads[i] = LOOM_INVALID;
        return loom_graph_status(g);
    }
    return LOOM_OK;
}
