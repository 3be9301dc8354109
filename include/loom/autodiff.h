/* loom/autodiff.h — reverse mode over the graph (gradient checking is in
 * loom/gradcheck.h: it runs plans). */
#ifndef LOOM_AUTODIFF_H
#define LOOM_AUTODIFF_H

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Appends to g the gradient of the scalar `loss` with respect to each wrt[i]
 * and stores its node in grads[i] (same shape as wrt[i]; a zero fill when
 * loss does not depend on wrt[i]). Gradients reaching a node from several
 * uses are summed; nodes that do not lie between wrt and loss are skipped;
 * stop_gradient blocks the flow. Gradient nodes carry the tags of the
 * forward node they belong to, with role LOOM_ROLE_BACKWARD. Gradients are
 * ordinary nodes, so they can be differentiated again. Every wrt gets a
 * gradient node of its own, named ∂L/∂name, whose plan buffer no other
 * wrt's gradient shares — also where the gradients are equal (an LSTM's
 * bias_ih and bias_hh) and hash-consing would merge them — so clipping or
 * updating one in place never touches another. On error returns a
 * status, and the graph's error says what failed. */
loom_status loom_backward(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int n, loom_tensor *grads);

/* Recomputation (gradient checkpointing over time). Backward reads forward
 * values: BPTT over T steps keeps every step's values, memory ∝ T. With
 * `recompute` = N, the steps are cut into segments of N (step / N: the
 * forward nodes tagged with a time step, loom_tags.step) and the backward
 * pass reads no forward value of a segment: it reads a copy of the
 * segment's forward nodes (role LOOM_ROLE_RECOMPUTE, same ops, same
 * attributes, so the same values — dropout draws included), whose inputs
 * from outside the segment are the originals: the carried states entering
 * the segment (one per N steps: the checkpoints), the step inputs, the
 * parameters. A plan runs each copy just before the backward node that
 * first reads it (the sink rewrite), so at any time about one segment's
 * values are held: memory ∝ T / N + N, for one more forward pass of
 * work. The gradients are the same numbers as without.
 * LOOM_RECOMPUTE_AUTO: N = ⌈√T⌉, T the steps the loss depends on.
 * Nodes outside the steps (a head over the whole sequence) are kept. */
enum { LOOM_RECOMPUTE_AUTO = -1 };
typedef struct {
    int32_t recompute; /* steps per segment: 0 none, N > 0, LOOM_RECOMPUTE_AUTO */
} loom_backward_opts;
/* loom_backward with options (NULL: none). */
loom_status loom_backward_with(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int n, loom_tensor *grads,
                               const loom_backward_opts *opts);
/* The gradients are also found later by their tensor: loom_grad(g, wrt[i])
 * (loom/graph.h); with loom_graph_params, every parameter's gradient:
 *
 *     int n = loom_graph_params(g, NULL, 0);
 *     loom_tensor *p = malloc(n * sizeof *p), *dp = malloc(n * sizeof *dp);
 *     loom_graph_params(g, p, n);
 *     loom_backward(g, loss, p, n, dp);              // dp[i] == loom_grad(g, p[i])
 *     loom_tensor dw = loom_grad(g, loom_graph_find(g, "weight_hh_l0"));
 */

#ifdef __cplusplus
}
#endif
#endif
