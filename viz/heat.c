/* Gradient heat: which carried state belongs to which (step, layer,
 * direction), and the norm of the loss's gradient with respect to each. */
#include "loom/autodiff.h"
#include "loom/dot.h"

#include <math.h>
#include <stdlib.h>

void loom_dot_states(const loom_graph *g, int state, int steps, int layers, int dirs, loom_tensor *out)
{
    for (int i = 0; i < steps * layers * dirs; i++) out[i] = LOOM_INVALID;
    for (int32_t i = 0; i < loom_graph_size(g); i++) {
        const loom_node *n = loom_graph_node(g, loom_at(i));
        loom_tags t = n->tags;
        if (t.state != state + 1 || t.role == LOOM_ROLE_BACKWARD || t.step < 0 || t.step >= steps || t.layer < 0 ||
            t.layer >= layers || t.dir < 0 || t.dir >= dirs)
            continue;
        out[((size_t)t.step * layers + t.layer) * dirs + t.dir] = loom_at(i);
    }
}

loom_status loom_dot_state_grad_norms(loom_graph *g, loom_tensor loss, int state, int steps, int layers, int dirs,
                                      const loom_binding *binds, int n_binds, float *norms)
{
    int n = steps * layers * dirs, m = 0;
    loom_tensor *states = malloc((size_t)n * sizeof *states), *wrt = malloc((size_t)n * sizeof *wrt);
    loom_tensor *grads = malloc((size_t)n * sizeof *grads);
    loom_plan *p = NULL;
    loom_status st = states && wrt && grads ? LOOM_OK : LOOM_ERR_NOMEM;
    if (!st) {
        loom_dot_states(g, state, steps, layers, dirs, states);
        for (int i = 0; i < n; i++)
            if (loom_valid(states[i])) wrt[m++] = states[i];
        st = m ? loom_backward(g, loss, wrt, m, grads) : LOOM_OK;
    }
    if (!st && m) {
        p = loom_plan_new(g, grads, m, &(loom_plan_opts){.eval = true});
        st = p ? LOOM_OK : loom_graph_status(g);
    }
    if (!st && p) st = loom_bind_all(p, binds, n_binds);
    if (!st && p && (st = loom_run(p)))
        loom_graph_fail(g, st, "gradient norms: %s", loom_plan_error(p));
    for (int i = 0, k = 0; !st && i < n; i++) {
        norms[i] = 0;
        if (!loom_valid(states[i])) continue;
        const float *v = loom_plan_output(p, grads[k++]);
        double s = 0;
        for (int64_t q = 0; q < loom_tensor_numel(g, states[i]); q++) s += (double)v[q] * v[q];
        norms[i] = (float)sqrt(s);
    }
    loom_plan_free(p);
    free(states), free(wrt), free(grads);
    return st;
}
