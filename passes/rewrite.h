/* Internal: plan rewrites, found by pattern on the graph (LOOM_REWRITE_* in
 * loom/runtime.h). They decide how the planned nodes run — which node's
 * kernel computes which — and never change the graph the user built; the
 * runtime then schedules, places and runs accordingly.
 *
 *   accumulate  a sum's matmul (or row-sum) terms run inside the sum's
 *               kernel, adding into its buffer (GEMM β = 1)
 *   batch       matmuls sharing their weight, whose other operands do not
 *               depend on one another, run as one GEMM over stacked rows
 *   fuse        elementwise ops of one shape, producer into reader, run as
 *               one pass over the data (ops/fuse.c) */
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
    /* fuse */
    int32_t *fuse_of;     /* per graph node: its fused group (-1: none) */
    int32_t *fuse_start;  /* group g's members: fuse_member[fuse_start[g] .. fuse_start[g+1]) */
    int32_t *fuse_member; /* in id order; the last (the leader) runs the group's kernel */
    bool *temp;            /* per graph node: a member only its group reads (no buffer) */
    int32_t n_fuse, n_fused, n_temps;
} loom_rewrites;

/* Finds the rewrites `r->which` allows among the nodes in_plan of g (the
 * plan for outputs); fills the rest of r. LOOM_ERR_NOMEM on failure (free
 * with loom_rewrites_free either way). */
loom_status loom_rewrites_find(loom_rewrites *r, const loom_graph *g, const bool *in_plan, const loom_tensor *outputs,
                               int n_outputs);
void loom_rewrites_free(loom_rewrites *r);
/* Forgets the batches and fused groups (every node runs its own kernel
 * again). */
void loom_rewrites_drop_merged(loom_rewrites *r);

/* The node whose kernel runs node i with others (a batch's first member,
 * a fused group's leader), or i. */
static inline int32_t loom_rewrites_leader(const loom_rewrites *r, int32_t i)
{
    if (r->batch_of[i] >= 0) return r->batch_member[r->batch_start[r->batch_of[i]]];
    if (r->fuse_of[i] >= 0) return r->fuse_member[r->fuse_start[r->fuse_of[i] + 1] - 1];
    return i;
}

/* The members run by leader i's kernel (a batch or fused group); *n = 1
 * and i itself otherwise. */
static inline const int32_t *loom_rewrites_members(const loom_rewrites *r, const int32_t *i, int32_t *n)
{
    int32_t b = r->batch_of[*i], g = r->fuse_of[*i];
    if (b >= 0) return *n = r->batch_start[b + 1] - r->batch_start[b], r->batch_member + r->batch_start[b];
    if (g >= 0) return *n = r->fuse_start[g + 1] - r->fuse_start[g], r->fuse_member + r->fuse_start[g];
    return *n = 1, i;
}

/* Whether node i runs its own kernel: not folded into a sum, and not a
 * batch or group member other than the one that runs it. */
static inline bool loom_rewrites_runs(const loom_rewrites *r, int32_t i)
{
    return r->into[i] < 0 && loom_rewrites_leader(r, i) == i;
}

#endif
