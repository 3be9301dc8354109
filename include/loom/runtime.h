/* loom/runtime.h — plans: made once per (graph, outputs), run many times.
 *
 * A plan prunes the graph to what the outputs need, orders it, groups it into
 * ready sets (nodes whose inputs are all computed) and places every buffer in
 * one arena, reusing the memory of dead buffers. Running executes the ready
 * sets with OpenMP: several small nodes side by side, or one big kernel split
 * across threads. Inputs and parameters read caller buffers bound by handle
 * (no copy; the buffers must stay valid while the plan runs).
 */
#ifndef LOOM_RUNTIME_H
#define LOOM_RUNTIME_H

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_plan loom_plan;

/* Plan rewrites: the same values through fewer or bigger kernels, found by
 * pattern on the graph (so they apply to every cell, built-in or not); the
 * graph itself stays as built. Results agree with the plain plan up to
 * float rounding (the order of a sum's terms may change). */
enum {
    /* A sum (a gradient's Σ over uses) runs its matmul terms into its own
     * buffer (GEMM with β = 1): no per-term temporaries, no add_n pass; a
     * long one (a BPTT weight gradient) in chunks of steps as soon as each
     * chunk's operands are ready, so they need not wait for the end. */
    LOOM_REWRITE_ACCUMULATE = 1u << 0,
    /* Matmuls that share their weight and whose other operands do not
     * depend on one another (the input projections x_t·W_ihᵀ of every
     * step) run as one GEMM over their stacked rows. */
    LOOM_REWRITE_BATCH = 1u << 1,
    /* An elementwise op writes over an input whose buffer dies with it. */
    LOOM_REWRITE_IN_PLACE = 1u << 2,
    /* Each node runs just before its first reader, not as early as it
     * could: values a late step needs are not made at the start and held. */
    LOOM_REWRITE_SINK = 1u << 3,
    /* Chains and trees of elementwise ops of one shape (a cell's gate
     * arithmetic and its backward) run as one pass over the data, chunk by
     * chunk; values only the group reads stay in cache, with no buffer. */
    LOOM_REWRITE_FUSE = 1u << 4,
    LOOM_REWRITE_ALL = LOOM_REWRITE_ACCUMULATE | LOOM_REWRITE_BATCH | LOOM_REWRITE_IN_PLACE | LOOM_REWRITE_SINK |
                       LOOM_REWRITE_FUSE,
};

/* What a plan's matrix products compute in. */
typedef enum {
    LOOM_PRECISION_F32 = 0, /* f32 operands and sums */
    /* bf16 operands (each rounded to nearest even), f32 products, sums and
     * results: about 3 significant digits per operand, twice the
     * multiply-adds per instruction. Only the products: every other op, the
     * parameters and their gradients stay f32 (master weights). Needs a CPU
     * with AVX512_BF16 or AMX and loom built with oneDNN
     * (loom_bf16_available()); loom_plan_new refuses it elsewhere. */
    LOOM_PRECISION_BF16,
} loom_precision;

typedef struct {
    bool eval;      /* evaluation mode: dropout is the identity */
    uint64_t seed;  /* dropout seed of the first run (each run advances it) */
    /* Rewrites to leave out (0: all applied). The environment variable
     * LOOM_REWRITES=none|all|NAME,... (names: accumulate, batch, inplace, sink, fuse) chooses first. */
    unsigned no_rewrites;
    loom_precision precision; /* of the matrix products */
} loom_plan_opts;

/* The rewrites a plan made with opts would apply, after LOOM_REWRITES;
 * LOOM_ERR_ARG with the reason in err for a malformed LOOM_REWRITES. */
loom_status loom_plan_rewrites(const loom_plan_opts *opts, unsigned *rewrites, loom_error *err);

/* NULL on failure; the graph's error tells why (bad handle, failed graph,
 * a malformed LOOM_REWRITES). */
loom_plan *loom_plan_new(loom_graph *g, const loom_tensor *outputs, int n, const loom_plan_opts *opts);
void loom_plan_free(loom_plan *p);

/* Binds an input or parameter to caller data (f32, or i32 for i32 inputs).
 * Binding a tensor the plan does not need is allowed and does nothing. */
loom_status loom_bind(loom_plan *p, loom_tensor t, const void *data);
/* The same, checked: the buffer's type must be the tensor's dtype
 * (LOOM_ERR_TYPE: a float buffer bound to an i32 input) and it must hold
 * exactly the tensor's n elements (LOOM_ERR_SHAPE). */
loom_status loom_bind_f32(loom_plan *p, loom_tensor t, const float *data, size_t n);
loom_status loom_bind_i32(loom_plan *p, loom_tensor t, const int32_t *data, size_t n);
/* A tensor and the caller buffer holding its value (f32 or i32 data). */
typedef struct {
    loom_tensor t;
    void *data;
} loom_binding;

/* Binds n tensors; stops at the first failure. */
loom_status loom_bind_all(loom_plan *p, const loom_binding *b, int n);
/* Runs the plan. Errors (unbound inputs, indices out of range) return a
 * status and loom_plan_error() says what failed. */
loom_status loom_run(loom_plan *p);
/* Runs only the plan's matmul kernels (a sum's folded GEMMs and a batch's
 * GEMM included), in plan order, on whatever the buffers hold: the GEMM
 * floor of a run, for benchmarks. Outputs are meaningless afterwards. */
loom_status loom_run_matmuls(loom_plan *p);

/* The machine's FP32 peak in GFLOP/s, measured rather than assumed: a loop
 * of independent fused multiply-adds that stays in the registers, in the
 * widest vector unit the CPU reports at run time (AVX-512F, else AVX2 with
 * FMA, else scalar), on `threads` threads at once (0: OpenMP's default) for
 * about `seconds` (0: 0.2), the best of three runs. *isa (may be NULL): the
 * unit's name. */
double loom_fp32_peak(int threads, double seconds, const char **isa);
const char *loom_plan_error(const loom_plan *p);
/* When each graph node gets its value as the plan runs: rank[i] is the
 * position of the kernel call that computes node i (0 first; nodes run by
 * one call — a fused group, a batch, a sum's terms — share it; a view
 * takes its source's), −1 for sources and nodes the plan does not compute.
 * rank has n ≥ loom_graph_size entries (at planning). Returns the number
 * of kernel calls, or −1 when n is too small. */
int32_t loom_plan_ranks(const loom_plan *p, int32_t *rank, int32_t n);

/* Being told, while a run goes on, when outputs are final: after
 * loom_plan_watch, each run calls ready(ctx, i) on the calling thread as
 * soon as ts[i] holds its value for this run and no later kernel reads it
 * (the calls computing and reading it, and every call before them in the
 * run's order, have finished — the rest of the run still going: the
 * caller may read or write it), and ready(ctx, −1) between ready sets, a point
 * where the caller may advance work of its own (the exchange of gradients
 * across processes starts each weight's exchange when its Σ over the steps
 * is done, and moves them on between ready sets). Each ts[i] must be an
 * output of the plan; the calls with i ≥ 0 come in one order, the same in
 * every run of every plan of the same graph and outputs (wherever it runs,
 * with any number of threads): order (may be NULL; n entries) receives it.
 * A run that stops on an error may leave some uncalled. n = 0 stops
 * watching. loom_run_matmuls does not call ready. */
typedef void (*loom_ready_fn)(void *ctx, int i);
loom_status loom_plan_watch(loom_plan *p, const loom_tensor *ts, int n, loom_ready_fn ready, void *ctx, int *order);

/* Value of a requested output after a run (valid until the next run). */
const float *loom_plan_output(const loom_plan *p, loom_tensor t);
/* Copies a requested output into dst, which holds n floats. */
loom_status loom_plan_read(loom_plan *p, loom_tensor t, float *dst, size_t n);

/* Dropout masks of the next run come from (seed, run counter). */
void loom_plan_set_seed(loom_plan *p, uint64_t seed);
/* Runs since the seed was set (the dropout masks' counter): a resumed
 * training run restores it to draw the masks it would have drawn. */
uint64_t loom_plan_runs(const loom_plan *p);
void loom_plan_set_runs(loom_plan *p, uint64_t runs);
void loom_plan_set_eval(loom_plan *p, bool eval);

/* How a run with several threads uses them. A split kernel's work is cut
 * into one share per thread; the shares are either run side by side by
 * the team, or one after another by the calling thread alone — the same
 * computations, so the same results to the bit. AUTO (the default) times
 * the runs both ways and takes the faster, trying the other again now and
 * then: when another program keeps a core busy, a team waits at every
 * barrier for the thread the scheduler set aside (a step 2–6× slower),
 * and the thread alone keeps its pace. TEAM and ALONE fix the choice. The
 * environment variable LOOM_TEAM=auto|team|alone sets it for new plans. */
typedef enum { LOOM_TEAM_AUTO = 0, LOOM_TEAM_TEAM, LOOM_TEAM_ALONE } loom_team_use;
void loom_plan_set_team(loom_plan *p, loom_team_use use);
/* Whether the last run went alone (a plan run with one thread always does). */
bool loom_plan_ran_alone(const loom_plan *p);
/* Whether the process's last run with several threads went alone: loops
 * outside plans (the optimiser's, clipping's) follow it, so that they do
 * not wake the team's threads while the machine is busy (a waking OpenMP
 * thread spins for milliseconds, on the core the one running alone needs). */
bool loom_runs_alone(void);

typedef struct {
    int32_t nodes;        /* nodes the plan executes (kernels) */
    int32_t views;        /* view nodes (no kernel, no buffer) */
    int32_t levels;       /* ready sets */
    size_t arena_bytes;   /* the one buffer arena */
    size_t naive_bytes;   /* what one buffer per node would take */
    int32_t side_by_side; /* ready sets the last run executed with nodes in parallel */
    int32_t folded;       /* nodes a rewrite ran inside another node's kernel (no buffer of their own) */
    int32_t stacked;      /* of those, the last run ran this many stacked with a neighbour as one kernel */
    int32_t batched;      /* nodes the batch rewrite computes in another node's kernel */
    int32_t batched_run;  /* of those, the last run computed this many in one GEMM with their batch */
    int32_t in_place;     /* nodes writing over an input whose buffer dies with them */
    int32_t fused;        /* elementwise nodes computed in another node's fused kernel */
    int32_t fused_temps;  /* of those, values only their group reads (no buffer) */
    int32_t pieces;       /* chunks of a sum's folded terms run before the sum, as their operands are ready */
    unsigned rewrites;    /* LOOM_REWRITE_* applied */
    int64_t matmul_flops; /* floating-point operations of the matmuls of one run (2 per multiply-add) */
    size_t kept_bytes;    /* forward values the backward nodes read: what BPTT must keep (0 without backward) */
    int32_t packed;       /* copies of parameters in oneDNN's layout, made at each run's start, that products read as B
                             (a recurrent weight read by every step's product; every weight of a bf16 plan); after a run */
    size_t copies_bytes;  /* those copies (outside the arena) */
} loom_plan_stats;
loom_plan_stats loom_plan_get_stats(const loom_plan *p);

/* Where a plan's runs spend their time, kind by kind. After
 * loom_plan_set_profile(p, true) (which clears the counts) every run adds,
 * per kind of kernel call — an op's name, "fused" for a fused elementwise
 * group, "matmul (into a sum)" for a gradient's Σ with its matmul terms —
 * the seconds thread 0 spends in it (its share of a kernel split across the
 * team; of nodes run side by side, the ones it ran), and the run's wall
 * time: the wall time minus the rows' sum is thread 0 waiting on the others. */
typedef struct {
    const char *kind;
    double seconds;
    int64_t calls;
} loom_profile_row;
void loom_plan_set_profile(loom_plan *p, bool on);
/* Up to n rows, the most time first; returns how many kinds ran (the rows
 * beyond n are left out). *wall and *runs: the profiled runs (may be NULL). */
int loom_plan_profile(const loom_plan *p, loom_profile_row *rows, int n, double *wall, int64_t *runs);

/* Whether matmul runs on CBLAS (else the portable kernel). */
bool loom_blas_enabled(void);
/* Whether products of at most 64 rows run on oneDNN's sgemm (built with libdnnl). */
bool loom_dnnl_enabled(void);
/* Whether plans can run their products in bf16 (LOOM_PRECISION_BF16):
 * loom built with oneDNN and a CPU that oneDNN finds AVX512_BF16 or AMX on
 * at run time (DNNL_MAX_CPU_ISA in the environment can lower what it uses). */
bool loom_bf16_available(void);

#ifdef __cplusplus
}
#endif
#endif
