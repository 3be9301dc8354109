/* loom/autodiff.h — reverse mode over the graph, and gradient checking. */
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
 * ordinary nodes, so they can be differentiated again. On error returns a
 * status, and the graph's error says what failed. */
loom_status loom_backward(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int n, loom_tensor *grads);

/* A tensor and the caller buffer holding its value (f32 or i32 data). */
typedef struct {
    loom_tensor t;
    void *data;
} loom_binding;

typedef struct {
    double eps;          /* central-difference step (default 5e-3) */
    double atol, rtol;   /* pass if |analytic − numeric| ≤ atol + rtol·max(|a|,|n|) (1e-3, 1e-2) */
    int64_t max_checks;  /* elements checked per tensor, sampled when larger (0: all) */
    uint64_t seed;       /* sampling and the plans' dropout seed */
} loom_gradcheck_opts;

typedef struct {
    bool passed;
    int64_t checked;          /* elements compared */
    double max_abs_err;       /* over all checked elements */
    double max_rel_err;       /* |a − n| / max(|a|, |n|, 1e-8) where it is largest */
    int worst_tensor;         /* index into wrt of the worst element (-1: none) */
    int64_t worst_index;
    double worst_analytic, worst_numeric;
} loom_gradcheck_result;

/* Compares loom_backward's gradients of the scalar `loss` with central
 * differences, perturbing each element of each wrt buffer in place (restored
 * afterwards). `fixed` binds every other input or parameter the loss needs.
 * Appends the gradient nodes to g. */
loom_status loom_gradcheck(loom_graph *g, loom_tensor loss, const loom_binding *wrt, int n_wrt,
                           const loom_binding *fixed, int n_fixed, const loom_gradcheck_opts *opts,
                           loom_gradcheck_result *res);

#ifdef __cplusplus
}
#endif
#endif
