/* Internal: a graph evaluated in double precision by the ops' reference
 * kernels (the double path, loom_op_desc.map64/f64) — what the gradient
 * check compares against, and what loom_state_grad_norms uses where float32
 * underflows (a vanilla RNN's ∂L/∂h₁ of 1e-58). */
#ifndef LOOM_AUTODIFF_EVAL64_H
#define LOOM_AUTODIFF_EVAL64_H

#include "loom/runtime.h"

typedef struct {
    const loom_graph *g;
    int32_t n;
    double **val;     /* val[i]: node i's value (NULL: not needed, or released) */
    bool *dirty;      /* nodes that depend on the element being perturbed */
    int32_t *last;    /* release mode: the last node reading node i (-1: an output, kept) */
    uint64_t run_seed;
    char err[256];
} loom_eval64;

/* Buffers for every node the outputs need, the bound ones filled from the
 * bindings b1 and b2 (i32 values as doubles); seed is the dropout seed as
 * loom_plan_set_seed takes it. With `release`, a value is freed once its
 * last reader has run (only the outputs are kept: one pass, far less
 * memory); without, every value stays for loom_eval64_run(.., true). */
loom_status loom_eval64_new(loom_eval64 *e, const loom_graph *g, const loom_tensor *outs, int n_outs, const loom_binding *b1,
                            int n1, const loom_binding *b2, int n2, uint64_t seed, bool release);
/* Evaluates the needed nodes (only the dirty ones when only_dirty), in
 * node order, which is a topological order; the reason in e->err. */
loom_status loom_eval64_run(loom_eval64 *e, bool only_dirty);
/* Marks the nodes that depend on node index src as dirty. */
void loom_eval64_mark(loom_eval64 *e, int32_t src);
static inline double *loom_eval64_value(const loom_eval64 *e, loom_tensor t) { return e->val[t.id - 1]; }
void loom_eval64_free(loom_eval64 *e);

#endif
