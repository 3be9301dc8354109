/* Internal: what a plan holds, and the steps that make it.
 *
 *   schedule.c  prune to what the outputs need, levels (ready sets), the
 *               order kernels run in, which ready sets run side by side
 *   memory.c    buffer lifetimes and their places in one arena
 *   execute.c   binding, running (OpenMP), reading outputs
 *   plan.c      loom_plan_new / loom_plan_free: the steps in order
 */
#ifndef LOOM_RUNTIME_PLAN_H
#define LOOM_RUNTIME_PLAN_H

#include "loom/runtime.h"
#include "graph/error.h"
#include "graph/walk.h"
#include "ops/op.h"
#include "passes/rewrite.h"

#include <stdint.h>

#define ALIGN_FLOATS 16 /* 64-byte alignment for every buffer */
/* A run's or a call's error, kept in the plan (loom_plan_error). */
#define plan_err(p, ...) loom_error_set(&(p)->err, __VA_ARGS__)

/* How a plan's runs use their threads (see loom_plan_set_team). */
typedef struct {
    loom_team_use use;
    double mean[2];          /* mean seconds of a run: [0] the team, [1] alone (0: none yet) */
    int64_t runs, probe_at, interval;
    bool alone;              /* what the last run did */
} loom_team_choice;

struct loom_plan {
    loom_graph *g;
    loom_walk walk;        /* the graph's arrays, while planning */
    int32_t n_graph;       /* graph size when planned */
    bool *in_plan;         /* per graph node: some output needs it */
    int32_t *level;        /* per graph node: its ready set (sources 0; a view, its input's) */
    int32_t *root;         /* per graph node: node owning its storage (self, or a view's source) */
    int32_t max_in;        /* most inputs of a planned node */
    loom_rewrites rw;      /* how nodes run: folded into sums, batched (passes/) */
    /* schedule */
    int32_t n_exec;        /* kernel calls, in level order: nodes, then pieces */
    int32_t *exec;         /* node ids; n_graph + k for piece k */
    /* pieces: a sum's stacking terms (a BPTT weight gradient), chunk by chunk
     * of steps, run into the sum's buffer as soon as the chunk's operands
     * are ready, so the operands die a chunk later instead of at the sum */
    int32_t n_pieces;
    int32_t *piece_sum, *piece_lo, *piece_hi; /* the sum, and its input positions [lo, hi) */
    int32_t *piece_level;
    bool *piece_first;     /* its sum's first piece to run (β = 0) */
    int32_t *piece_of;     /* per graph node: the piece that runs this folded term (-1: its sum) */
    bool *has_pieces;      /* per graph node: a sum some pieces ran into */
    int32_t n_levels;
    int32_t *level_start;  /* exec[level_start[l] .. level_start[l+1]) is ready set l+1 */
    bool *wide;            /* per ready set: worth running its nodes side by side */
    bool *split;           /* per exec entry: its kernel runs split across every thread */
    int32_t n_views;
    /* memory */
    int64_t *offset;       /* per root with a kernel: arena offset in floats; -1 otherwise */
    float *arena;
    int64_t flops;         /* 2 × the multiply-adds of the ops with a cost rule (matmul) */
    size_t kept_floats;    /* forward values (with buffers) that backward nodes read */
    size_t arena_floats, naive_floats;
    int32_t n_in_place;    /* nodes writing over an input whose buffer died with them */
    loom_mm *mm;           /* oneDNN's products: packed weights, bf16 (ops/gemm_packed.c; NULL: CBLAS only) */
    /* execution */
    const void **bound;    /* per source node: caller data (constants: the graph's) */
    loom_tensor *outputs;
    int n_outputs;
    const float **in_pool; /* scratch for kernel input pointers, one row per thread */
    const loom_node **node_pool;
    loom_team team;        /* the running team's barrier and partial sums */
    int32_t pool_slots;    /* rows: threads of the widest run so far */
    int32_t side_by_side;  /* ready sets the last run executed with nodes in parallel */
    int32_t stacked;       /* folded terms the last run ran stacked into a neighbour's kernel */
    int32_t batched_run;   /* batch members the last run computed in their leader's one kernel */
    bool eval;
    loom_team_choice team_use; /* the team or the calling thread alone (execute.c: choose_alone) */
    uint64_t seed, runs;
    /* loom_plan_set_profile: thread 0's seconds and kernel calls per kind
     * (execute.c: an op, a fused group, a sum with matmul terms), and the
     * runs' wall time */
    bool profiling;
    double *prof_s, prof_wall;
    int64_t *prof_n, prof_runs;
    /* loom_plan_watch: outputs whose readiness a run reports, by the
     * position of the kernel call that finishes each (ascending) */
    int32_t n_watch, watch_next;
    int32_t *watch_pos, *watch_idx;
    loom_ready_fn watch_fn;
    void *watch_ctx;
    loom_error err;        /* first error since the last run began */
};

/* Whether node t is a term folded into sum s whose op stacks (Aᵀ·B, a row
 * sum: terms over operands laid end to end run as one kernel). */
static inline bool loom_plan_stacking_term(const loom_plan *p, int32_t s, int32_t t)
{
    const loom_op_desc *d = loom_op(loom_walk_node(p->walk, t)->op);
    return p->rw.into[t] == s && d->stacks && d->stacks(p->g, loom_at(t));
}

/* Fills in_plan, rw, level, root, exec, level_start, wide, n_views, max_in. */
loom_status loom_plan_schedule(loom_plan *p);
/* Fills offset, the arena and the byte counts (needs the schedule). */
loom_status loom_plan_place(loom_plan *p);

#endif
