/* Reverse mode: walks the nodes between wrt and loss in reverse topological
 * order (node ids are topological: a node's inputs always exist before it)
 * and asks each op's gradient rule for its inputs' gradients. */
#include "loom/autodiff.h"
#include "../ops/op.h"

#include <stdlib.h>

loom_status loom_backward(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int n, loom_tensor *grads)
{
    if (!g) return LOOM_ERR_ARG;
    for (int i = 0; grads && i < n; i++) grads[i] = LOOM_INVALID;
    if (loom_graph_failed(g)) return loom_graph_status(g);
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

    loom_tags saved = loom_graph_tags(g);
    loom_tags lt = loom_graph_node(g, loss)->tags;
    lt.role = LOOM_ROLE_BACKWARD;
    loom_graph_set_tags(g, lt);
    if (flow[N - 1] == 3) grad[N - 1] = loom_fill(g, loom_tensor_shape(g, loss), 1.0f);

    int max_in = 0;
    for (int32_t i = 0; i < N; i++) {
        int k = loom_graph_node(g, loom_at(i))->n_in;
        max_in = k > max_in ? k : max_in;
    }
    loom_tensor *gx = malloc((size_t)(max_in ? max_in : 1) * sizeof *gx);
    bool *need = malloc((size_t)(max_in ? max_in : 1) * sizeof *need);
    for (int32_t i = N - 1; gx && need && i >= 0 && !loom_graph_failed(g); i--) {
        if (flow[i] != 3 || !loom_valid(grad[i])) continue;
        loom_tensor y = loom_at(i);
        const loom_node *nd = loom_graph_node(g, y);
        if (nd->n_in == 0) continue;
        const loom_op_desc *d = loom_op(nd->op);
        if (!d->grad) {
            loom_graph_fail(g, LOOM_ERR_ARG, "backward: %s has no gradient rule (node %s)", d->name, TSTR(g, y));
            break;
        }
        loom_tags t = nd->tags;
        t.role = LOOM_ROLE_BACKWARD;
        loom_graph_set_tags(g, t);
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
            grad[loom_index(x)] = loom_valid(grad[loom_index(x)]) ? loom_add(g, grad[loom_index(x)], gx[j]) : gx[j];
        }
    }
    if (!gx || !need) loom_graph_fail(g, LOOM_ERR_NOMEM, "backward: out of memory");

    loom_graph_set_tags(g, lt);
    for (int i = 0; i < n; i++) {
        loom_tensor w = wrt[i];
        grads[i] = loom_index(w) < N && loom_valid(grad[loom_index(w)]) ? grad[loom_index(w)] : loom_fill(g, loom_tensor_shape(g, w), 0.0f);
    }
    loom_graph_set_tags(g, saved);
    free(gx);
    free(need);
    free(flow);
    free(grad);
    if (loom_graph_failed(g)) {
        for (int i = 0; i < n; i++) grads[i] = LOOM_INVALID;
        return loom_graph_status(g);
    }
    return LOOM_OK;
}
