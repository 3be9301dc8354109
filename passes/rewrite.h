/* Internal: plan rewrites, found by pattern on the graph (LOOM_REWRITE_* in
 * loom/runtime.h). They decide how the planned nodes run — which node's
 * kernel computes which — and never change the graph the user built; the
 * runtime then schedules, places and runs accordingly.
 *
 *   accumulate  a sum's matmul (or row-sum) terms run inside the sum's
 *               kernel, adding into its buffer (GEMM β = 1)
 *   batch       matmuls sharing their weight, whose other operands do not
 *               depend on one another, run as one GEMM over stacked rows */
#ifndef LOOM_PASSES_REWRITE_H
#define LOOM_PASSES_REWRITE_H

#include "graph/walk.h"
#include "loom/runtime.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    /* what the rewrites were found over */
    const loom_graph *g;
    loom_walk walk;
    int32_t n_graph;
    const bool *in_plan;
    const loom_tensor *outputs;
    int n_outputs;
    unsigned which;        /* LOOM_REWRITE_* applied */
    /* accumulate */
    int32_t *into;         /* per graph node: the sum whose kernel runs it (-1: runs its own) */
    int32_t *folded_in;    /* per graph node: its inputs that run inside its kernel */
    int32_t n_folded;
    /* batch */
    int32_t *batch_of;     /* per graph node: its batch (-1: none) */
    int32_t *batch_start;  /* batch b's members: batch_member[batch_start[b] .. batch_start[b+1]) */
    int32_t *batch_member; /* in the order their rows stack; the first runs the batch's kernel */
    int32_t n_batches, n_batched;
} loom_rewrites;

/* Finds the rewrites `r->which` allows among the nodes in_plan of g (the
 * plan for outputs); fills the rest of r. LOOM_ERR_NOMEM on failure (free
 * with loom_rewrites_free either way). */
loom_status loom_rewrites_find(loom_rewrites *r, const loom_graph *g, const bool *in_plan, const loom_tensor *outputs,
                               int n_outputs);
void loom_rewrites_free(loom_rewrites *r);
/* Forgets the batches (every node runs its own kernel again). */
void loom_rewrites_drop_batches(loom_rewrites *r);

/* Whether node i runs its own kernel: not folded into a sum, and not a
 * batch member other than the first. */
static inline bool loom_rewrites_runs(const loom_rewrites *r, int32_t i)
{
    return r->into[i] < 0 && (r->batch_of[i] < 0 || r->batch_member[r->batch_start[r->batch_of[i]]] == i);
}

#endif
