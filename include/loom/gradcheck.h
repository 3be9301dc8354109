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
    /* Central-difference step, in double precision (default 1e-6), and the
     * tolerance: |analytic − numeric| ≤ atol + rtol·max(|a|, |n|) (1e-5,
     * 1e-3) — PyTorch's gradcheck defaults. */
    double eps, atol, rtol;
    /* The f32 plan's gradients may differ from the double path's by f32_tol
     * (default 1e-3) times the tensor's largest gradient (at least a
     * thousandth of the largest of all tensors, and 1e-4·max(|loss|, 1)). */
    double f32_tol;
    int64_t max_checks;  /* elements checked per tensor, sampled when larger (0: all) */
    uint64_t seed;       /* sampling and the plans' dropout seed */
    /* Called after each element with the elements checked and the total
     * (NULL: none); a long check can report how far it is. */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} loom_gradcheck_opts;

/* passed is false when any compared difference is out of tolerance or not
 * finite, or the f32 gradients are off by more than f32_tol. */
typedef struct {
    bool passed;
    int64_t checked;          /* elements compared */
    int64_t kinks;            /* of them, compared one-sided: a kink lay within ±eps */
    double max_abs_err;       /* |a − n| over all checked elements */
    double max_rel_err;       /* |a − n| / max(|a|, |n|) over all checked elements (where not both 0) */
    int worst_tensor;         /* the element furthest past its tolerance: index into wrt (-1: none) */
    int64_t worst_index;
    double worst_analytic, worst_numeric;
    double f32_max_err;       /* largest |f32 gradient − double gradient| / the tensor's largest gradient */
    int f32_worst_tensor;     /* where (-1: none) */
    int64_t f32_worst_index;
} loom_gradcheck_result;

/* Compares loom_backward's gradients of the scalar `loss` with central
 * differences, both in double precision (every op's reference kernel):
 * each element of each wrt tensor is perturbed by ±eps in a double copy
 * (the caller's buffers are only read). Where the one-sided differences
 * disagree (a kink, such as ReLU's, within ±eps) the analytic gradient
 * must match one of them. Then the f32 plan's gradients (the kernels and
 * plan rewrites used in training) are compared with the double ones.
 * `fixed` binds every other input or parameter the loss needs. Appends the
 * gradient nodes to g. */
loom_status loom_gradcheck(loom_graph *g, loom_tensor loss, const loom_binding *wrt, int n_wrt,
                           const loom_binding *fixed, int n_fixed, const loom_gradcheck_opts *opts,
                           loom_gradcheck_result *res);

#ifdef __cplusplus
}
#endif
#endif
