/* Reverse mode: walks the nodes between wrt and loss in reverse topological
 * order (node ids are topological: a node's inputs always exist before it)
 * and asks each op's gradient rule for its inputs' gradients. */
#include "loom/autodiff.h"
#include "ops/op.h"

#include <stdio.h>
#include <stdlib.h>

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

loom_status loom_backward(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int n, loom_tensor *grads)
{
    if (!g) return LOOM_ERR_ARG;
    for (int i = 0; grads && i < n; i++) grads[i] = LOOM_INVALID;
    if (loom_graph_failed(g)) return loom_graph_status(g);
    if (n < 0 || (n > 0 && (!wrt || !grads))) {
        loom_graph_fail(g, LOOM_ERR_ARG, "backward: %d wrt tensors but %s is NULL", n, !wrt ? "wrt" : "grads");
        return LOOM_ERR_ARG;
    }
    if (!loom_graph_has(g, loss)) {
        loom_graph_fail(g, LOOM_ERR_ARG, "backward: loss is not a tensor of this graph (id %d)", loss.id);
        return LOOM_ERR_ARG;
    }
    if (loom_tensor_numel(g, loss) != 1 || loom_tensor_dtype(g, loss) != LOOM_F32) {
        loom_graph_fail(g, LOOM_ERR_SHAPE, "backward: loss %s must be an f32 scalar (one element)", TSTR(g, loss));
        return LOOM_ERR_SHAPE;
    }
    for (int i = 0; i < n; i++) {
        if (!loom_graph_has(g, wrt[i])) {
            loom_graph_fail(g, LOOM_ERR_ARG, "backward: wrt[%d] is not a tensor of this graph (id %d)", i, wrt[i].id);
            return LOOM_ERR_ARG;
        }
        if (loom_tensor_dtype(g, wrt[i]) != LOOM_F32) {
            loom_graph_fail(g, LOOM_ERR_ARG, "backward: cannot differentiate with respect to i32 %s", TSTR(g, wrt[i]));
            return LOOM_ERR_ARG;
        }
    }

    int32_t N = loom_index(loss) + 1; /* nothing after the loss can influence it */
    uint8_t *flow = calloc((size_t)N, 1);     /* bit 1: depends on some wrt; bit 2: loss depends on it */
    loom_tensor *grad = malloc((size_t)N * sizeof *grad);
    if (!flow || !grad) {
        free(flow);
        free(grad);
        loom_graph_fail(g, LOOM_ERR_NOMEM, "backward: out of memory");
        return LOOM_ERR_NOMEM;
    }
    for (int32_t i = 0; i < N; i++) grad[i] = LOOM_INVALID;
    for (int i = 0; i < n; i++)
        if (loom_index(wrt[i]) < N) flow[loom_index(wrt[i])] |= 1;
    for (int32_t i = 0; i < N; i++) {
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        for (int j = 0; j < nd->n_in && !(flow[i] & 1); j++)
            if (flow[loom_index(loom_node_input(g, loom_at(i), j))] & 1) flow[i] |= 1;
    }
    flow[N - 1] |= 2; /* the loss */
    for (int32_t i = N - 1; i >= 0; i--) {
        if (flow[i] != 3) continue;
        const loom_node *nd = loom_graph_node(g, loom_at(i));
        for (int j = 0; j < nd->n_in; j++) flow[loom_index(loom_node_input(g, loom_at(i), j))] |= 2;
    }

    /* Contributions to each node's gradient, one per use, kept in lists and
     * summed by one add_n when the node is reached: a weight shared by T
     * steps gets one Σ_t node. */
    int32_t *head = malloc((size_t)N * sizeof *head), n_c = 0, cap_c = 256;
    int32_t *c_next = malloc((size_t)cap_c * sizeof *c_next);
    loom_tensor *c_val = malloc((size_t)cap_c * sizeof *c_val), *terms = NULL;
    int max_in = 1;
    for (int32_t i = 0; i < N; i++) {
        int k = loom_graph_node(g, loom_at(i))->n_in;
        max_in = k > max_in ? k : max_in;
    }
    loom_tensor *gx = malloc((size_t)max_in * sizeof *gx);
    bool *need = malloc((size_t)max_in * sizeof *need);
    bool ok = head && c_next && c_val && gx && need;
    for (int32_t i = 0; ok && i < N; i++) head[i] = -1;

    loom_tags saved = loom_graph_tags(g);
    loom_tags lt = loom_graph_node(g, loss)->tags;
    lt.role = LOOM_ROLE_BACKWARD;
    lt.state = 0;
    loom_graph_set_tags(g, lt);
    if (ok && flow[N - 1] == 3) {
        c_val[0] = loom_fill(g, loom_tensor_shape(g, loss), 1.0f);
        c_next[0] = -1;
        head[N - 1] = 0;
        n_c = 1;
    }

    for (int32_t i = N - 1; ok && i >= 0 && !loom_graph_failed(g); i--) {
        if (flow[i] != 3 || head[i] < 0) continue;
        loom_tensor y = loom_at(i);
        const loom_node *nd = loom_graph_node(g, y);
        loom_tags t = nd->tags;
        t.role = LOOM_ROLE_BACKWARD;
        t.state = 0;
        loom_graph_set_tags(g, t);
        /* the sum of the contributions (newest first in the list, so reversed) */
        int k = 0;
        for (int32_t c = head[i]; c >= 0; c = c_next[c]) k++;
        loom_tensor *tmp = realloc(terms, (size_t)k * sizeof *terms);
        if (!tmp) {
            ok = false;
            break;
        }
        terms = tmp;
        int m = k;
        for (int32_t c = head[i]; c >= 0; c = c_next[c]) terms[--m] = c_val[c];
        grad[i] = k == 1 ? terms[0] : loom_add_n(g, terms, k);
        name_grad(g, y, grad[i]);
        nd = loom_graph_node(g, y); /* building may have moved the node arena */
        if (nd->n_in == 0) continue;
        const loom_op_desc *d = loom_op(nd->op);
        if (!d->grad) {
            loom_graph_fail(g, LOOM_ERR_ARG, "backward: %s has no gradient rule (node %s)", d->name, TSTR(g, y));
            break;
        }
        int n_in = nd->n_in;
        for (int j = 0; j < n_in; j++) {
            gx[j] = LOOM_INVALID;
            need[j] = flow[loom_index(loom_node_input(g, y, j))] == 3;
        }
        d->grad(g, y, grad[i], need, gx);
        for (int j = 0; j < n_in && !loom_graph_failed(g); j++) {
            loom_tensor x = loom_node_input(g, y, j);
            if (!loom_valid(gx[j]) || flow[loom_index(x)] != 3) continue;
            if (!loom_shape_eq(loom_tensor_shape(g, gx[j]), loom_tensor_shape(g, x))) {
                loom_graph_fail(g, LOOM_ERR_SHAPE, "backward: %s's gradient rule gave %s for input %s",
                                d->name, TSTR(g, gx[j]), TSTR(g, x));
                break;
            }
            if (n_c == cap_c) {
                cap_c *= 2;
                int32_t *nn = realloc(c_next, (size_t)cap_c * sizeof *c_next);
                loom_tensor *nv = nn ? realloc(c_val, (size_t)cap_c * sizeof *c_val) : NULL;
                if (nn) c_next = nn;
                if (nv) c_val = nv;
                if (!nn || !nv) {
                    ok = false;
                    break;
                }
            }
            c_val[n_c] = gx[j];
            c_next[n_c] = head[loom_index(x)];
            head[loom_index(x)] = n_c++;
        }
    }
    if (!ok) loom_graph_fail(g, LOOM_ERR_NOMEM, "backward: out of memory");

    for (int i = 0; i < n && !loom_graph_failed(g); i++) {
        int32_t w = loom_index(wrt[i]);
        if (w < N && loom_valid(grad[w])) {
            grads[i] = grad[w];
            continue;
        }
        loom_tags t = loom_graph_node(g, wrt[i])->tags;
        t.role = LOOM_ROLE_BACKWARD;
        t.state = 0;
        loom_graph_set_tags(g, t);
        grads[i] = loom_fill(g, loom_tensor_shape(g, wrt[i]), 0.0f);
        name_grad(g, wrt[i], grads[i]);
    }
    loom_graph_set_tags(g, saved);
    free(head), free(c_next), free(c_val), free(terms), free(gx), free(need), free(flow), free(grad);
    if (loom_graph_failed(g)) {
        for (int i = 0; i < n; i++) grads[i] = LOOM_INVALID;
        return loom_graph_status(g);
    }
    return LOOM_OK;
}
