/* loom/gradcheck.h — analytic gradients (loom_backward) against central
 * differences. It plans and runs graphs, so it sits above the runtime. */
#ifndef LOOM_GRADCHECK_H
#define LOOM_GRADCHECK_H

#include "loom/autodiff.h"
#include "loom/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double eps;          /* central-difference step (default 5e-3) */
    double atol, rtol;   /* pass if |analytic − numeric| ≤ atol + rtol·max(|a|,|n|) (1e-3, 1e-2) */
    int64_t max_checks;  /* elements checked per tensor, sampled when larger (0: all) */
    uint64_t seed;       /* sampling and the plans' dropout seed */
    /* Called after each element with the elements checked and the total
     * (NULL: none); a long check can report how far it is. */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} loom_gradcheck_opts;

/* passed is false when any compared difference is out of tolerance or not
 * finite (a NaN or infinite gradient, or a step eps too small to change an
 * f32 value). */
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
