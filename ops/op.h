/* Internal: the op descriptor table. One descriptor per op holds its shape
 * rule, forward kernel and gradient rule; each op family lives in one file. */
#ifndef LOOM_OP_H
#define LOOM_OP_H

#include "loom/graph.h"
#include "loom/ops.h"
#include "loom/random.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Op ids, in the order of ops.def. */
enum {
#define LOOM_OP(id, desc) OP_##id,
#include "ops.def"
#undef LOOM_OP
    OP_COUNT
};

/* What the rest of loom may ask of an op; nothing outside ops/ compares op
 * ids or names. */
enum {
    OPF_PURE = 1 << 0,        /* merged by hash-consing */
    OPF_ALIAS = 1 << 1,       /* output is a view of input 0 (no kernel, no buffer) */
    OPF_SOURCE = 1 << 2,      /* value comes from a binding or the graph's data */
    OPF_BOUND = 1 << 3,       /* a source the caller binds (input, parameter) */
    OPF_STORED = 1 << 4,      /* a source whose data the graph holds (constant) */
    OPF_FILL = 1 << 5,        /* a constant fill (no inputs, every element one value) */
    OPF_ELEMENTWISE = 1 << 6, /* out[i] depends on the inputs' element i only (after broadcasting) */
    OPF_SUM = 1 << 7,         /* an accumulating sum of its inputs (a gradient's Σ over uses) */
    OPF_DETACH = 1 << 8,      /* passes values, blocks gradients */
    OPF_LAYOUT = 1 << 9,      /* moves elements only (concat, slice, pad, reshape, transpose, detach):
                                 plumbing, which the cell view draws as nothing */
    OPF_ACCUM = 1 << 10,      /* the kernel honours loom_kargs.beta (out = β·out + value), so a sum
                                 may run it into its own buffer instead of reading a temporary */
    OPF_INPLACE = 1 << 11,    /* the output may be the buffer of an input of its shape (element i
                                 is read before element i is written, and no other) */
    OPF_SPLITS = 1 << 12,     /* the kernel splits its work across a team (loom_kargs.tid/nth),
                                 each thread writing only its own share of the output */
    OPF_RANDOM = 1 << 13,     /* draws random numbers (a dropout mask): never plumbing on a diagram,
                                 so that a mask shared by the steps is drawn as one node feeding them */
    OPF_MATMUL = 1 << 14,     /* a matrix product: its cost rule counts multiply-adds, the plan's GEMM
                                 flops and the GEMM floor (loom_run_matmuls) are made of these */
};

/* What the threads of a team running one plan share: a barrier and a
 * partial sum per thread. */
typedef struct {
    atomic_int arrived;
    atomic_uint generation;
    int n;        /* threads in the team */
    double *part; /* one per share, for loom_team_sum */
    bool solo;    /* one thread runs every share of a split kernel in turn (see execute.c) */
} loom_team;

/* Every thread of the team waits here until all have arrived; what each
 * wrote before is visible to all after. A waiter spins briefly, then
 * yields its core: when other work shares the cores (two programs, or
 * tests run side by side), a thread spinning for long would keep the one
 * it waits for from running. */
static inline void loom_team_barrier(loom_team *t)
{
    unsigned gen = atomic_load_explicit(&t->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&t->arrived, 1, memory_order_acq_rel) == t->n - 1) {
        atomic_store_explicit(&t->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&t->generation, 1, memory_order_release);
        return;
    }
    for (int spin = 0; atomic_load_explicit(&t->generation, memory_order_acquire) == gen; spin++) {
        if (spin < 2000) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

typedef struct loom_mm loom_mm; /* a plan's oneDNN products (ops/gemm_packed.c) */

/* What a kernel sees. `tid`, `nth`: the kernel runs on thread tid of a
 * team of nth that all call it with the same arguments, inside the plan's
 * one parallel region (nth 1: alone). A kernel of an OPF_SPLITS op takes
 * its share of the work (loom_share) and lets every thread return; any
 * other kernel is only ever called with nth 1.
 * `n_in`: entries of in[] (the node's inputs; an OPF_SUM kernel may get
 * fewer, the terms a plan rewrite left it). `beta`: 0, or 1 for a kernel
 * of an OPF_ACCUM or OPF_SUM op adding its value to what out holds.
 * `stack`: 1, or for a node whose op `stacks`, the number of same-shaped
 * terms whose inputs lie end to end in in[] (one kernel sums them all).
 * (A batch of nodes whose op `batches` runs as one kernel call that sees
 * the node and its input 0 with their first dimension multiplied.) */
typedef struct {
    const loom_graph *g;
    const loom_node *node;
    float *out;
    const float *const *in;
    const loom_node *const *in_node;
    int n_in;
    float beta;
    int stack;
    uint64_t run_seed;
    bool training;
    int tid, nth;
    loom_team *team; /* the team's barrier and partial sums (nth > 1) */
    char *err;
    size_t err_len;
    loom_mm *mm;     /* a matmul's oneDNN products (NULL: CBLAS) */
    int32_t b_param; /* a matmul's input 1, when a parameter: its plan root (-1: not one) */
} loom_kargs;

typedef loom_status (*loom_kernel_fn)(const loom_kargs *a);
/* An elementwise op's rule over n contiguous floats: o[i] = f(x[i], y[i])
 * (y unused by a unary op; attr: the node's float attributes). The fuse
 * rewrite strings several together in one pass over the data. */
typedef void (*loom_span_fn)(const float *x, const float *y, float *o, int64_t n, const float *attr);
/* Checks inputs and attributes; sets the output shape and dtype, or records
 * the graph error and returns false. */
typedef bool (*loom_shape_fn)(loom_graph *g, const char *op, const loom_tensor *in, int n,
                              loom_attrs *a, loom_shape *out, loom_dtype *dt);
/* Builds the gradients of y's inputs from gy = dL/dy with ordinary builders,
 * for the inputs with need[i] set; gx[i] stays LOOM_INVALID for inputs that
 * get no gradient. */
typedef void (*loom_grad_fn)(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx);

/* Work of one node in element operations, for scheduling decisions. */
typedef int64_t (*loom_cost_fn)(const loom_graph *g, loom_tensor t);

/* The double path: what loom_gradcheck evaluates a graph and its gradients
 * with (as PyTorch's gradcheck runs in float64), so that central
 * differences need no step tuning. A reference kernel per op over double
 * buffers, one thread, no plan rewrites; i32 values are held as doubles
 * (exact). An elementwise op gives its element rule in double (map64) and
 * loom_map64_run broadcasts it; any other op its kernel (f64). */
typedef struct {
    const loom_graph *g;
    const loom_node *node;
    double *out;
    const double *const *in;
    const loom_node *const *in_node;
    int n_in;
    uint64_t run_seed; /* loom_kargs.run_seed of a plan's first run after loom_plan_set_seed */
    bool training;
    char *err;
    size_t err_len;
} loom_args64;
typedef loom_status (*loom_kernel64_fn)(const loom_args64 *a);
/* y = f(x[, y]) in double; attr: the node's float attributes. */
typedef double (*loom_map64_fn)(double x, double y, const float *attr);

typedef struct {
    const char *name;
    const char *symbol; /* the op in a formula, for slides (σ, ⊙, +); NULL: its name */
    int min_in, max_in;
    unsigned flags;
    loom_shape_fn shape;
    loom_kernel_fn forward;
    loom_grad_fn grad;   /* NULL: not differentiable (an error if a gradient is asked) */
    loom_cost_fn cost;   /* work, to decide splitting (a matmul's: multiply-adds); NULL: its output's elements */
    loom_role role;      /* role tag of the nodes it builds (default: forward) */
    /* Whether node t's value over inputs stacked end to end along their
     * first dimension is the sum of its values over the parts (matmul
     * Aᵀ·B: [A₁; A₂]ᵀ[B₁; B₂] = A₁ᵀB₁ + A₂ᵀB₂; a row sum), so a sum of
     * such terms whose operands lie end to end in memory is one kernel;
     * NULL: never. */
    bool (*stacks)(const loom_graph *g, loom_tensor t);
    /* Whether node t works row by row on its input 0: nodes like it that
     * share its other inputs may run as one kernel over their inputs 0
     * and outputs stacked along the first dimension (matmul A·op(W), a
     * bias added to rows, a slice across columns); NULL: never. */
    bool (*batches)(const loom_graph *g, loom_tensor t);
    /* The element rule of an elementwise op of one or two inputs, for
     * fused kernels; NULL: not fusable. */
    loom_span_fn span;
    /* The double path (exactly one of them, except for sources bound by
     * the caller): an elementwise op's rule, or the op's kernel. */
    loom_map64_fn map64;
    loom_kernel64_fn f64;
} loom_op_desc;

const loom_op_desc *loom_op(int op);

/* Descriptors, defined next to their kernels. */
#define LOOM_OP(id, desc) extern const loom_op_desc loom_desc_##desc;
#include "ops.def"
#undef LOOM_OP
/* Work of node t (loom_cost_fn of its op, or its element count). */
int64_t loom_op_cost(const loom_graph *g, loom_tensor t);

/* Builds a node of `op`: validates handles, runs the shape rule, adds the
 * node (hash-consed when the op is pure). */
loom_tensor loom_op_build(loom_graph *g, int op, const loom_tensor *in, int n, const loom_attrs *a);
static inline loom_attrs loom_attrs_zero(void)
{
    loom_attrs a;
    memset(&a, 0, sizeof a);
    return a;
}

/* ---- helpers shared by op files ---- */

/* Normalises a possibly negative axis; -1 if out of range. */
static inline int loom_axis(int axis, int rank)
{
    if (axis < 0) axis += rank;
    return axis >= 0 && axis < rank ? axis : -1;
}
/* A message fragment describing input i: "'x' (2,3)". */
#define TSTR(g, t) loom_tensor_str((g), (t), (char[160]){0}, 160)
#define SSTR(s) loom_shape_str((s), (char[64]){0}, 64)

/* NumPy broadcast of two shapes; false if they do not broadcast. */
bool loom_broadcast_shape(loom_shape a, loom_shape b, loom_shape *out);
/* Strides (in elements) of x read as shape `out` (right-aligned, padded to 4
 * dims, 0 on broadcast dims). */
void loom_broadcast_strides(loom_shape x, loom_shape out, int64_t st[LOOM_MAX_RANK]);
/* out shape padded to 4 dims on the left. */
void loom_shape_pad4(loom_shape s, int64_t d[LOOM_MAX_RANK]);

/* Kernel-side error. */
loom_status loom_kernel_fail(const loom_kargs *a, loom_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
loom_status loom_fail64(const loom_args64 *a, loom_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The double path's shared kernels: an element rule over the broadcast
 * inputs (one or two); a copy of input 0 (views, identities). */
loom_status loom_map64_run(const loom_args64 *a, loom_map64_fn f);
loom_status loom_copy64(const loom_args64 *a);
/* The flat index in x (shape xs, read through broadcast as shape os) of
 * element i of os. */
int64_t loom_broadcast_index(loom_shape xs, loom_shape os, int64_t i);

/* Elements above which a kernel splits its loop across threads. */
#define LOOM_PAR_MIN 32768

/* This thread's share [*lo, *hi) of n iterations worth `work` element
 * operations: contiguous chunks, one per thread of the team, when the work
 * is worth splitting; else thread 0 takes them all. The same for every
 * run at one thread count, so results are bit-deterministic. */
static inline void loom_share(const loom_kargs *k, int64_t n, int64_t work, int64_t *lo, int64_t *hi)
{
    if (k->nth < 2 || work <= LOOM_PAR_MIN) {
        *lo = 0;
        *hi = k->tid ? 0 : n;
        return;
    }
    *lo = n * k->tid / k->nth;
    *hi = n * (k->tid + 1) / k->nth;
}
/* Σ of every share's `mine`, added in share order (deterministic). In a
 * team it is a barrier (every thread must call it) and every share gets the
 * total; when one thread runs the shares in turn (team.solo) only the last
 * share gets it — so a kernel writes a team sum's result from its last
 * share (tid == nth − 1). */
double loom_team_sum(const loom_kargs *k, double mine);
/* Elements per call of a vector loop (a thread's share is cut in spans). */
#define LOOM_SPAN 4096

/* A vector loop compiled for AVX-512, AVX2+FMA and the baseline, the best
 * one chosen when the library loads (GCC's function multiversioning);
 * the baseline alone elsewhere and under the sanitizers. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define LOOM_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LOOM_VECTOR_CLONES
#endif

/* A fused group's member: an elementwise op whose operands are other
 * members' values or outside data read through broadcast strides. */
#define LOOM_FUSE_MAX 32 /* members of a fused group */
typedef struct {
    loom_span_fn span;
    const float *attr; /* the node's float attributes */
    int n_in;
    int src[2];          /* >= 0: the member whose value operand j is; -1: outside data */
    const float *ext[2]; /* outside data, read through st[j] over the group's shape */
    int64_t st[2][4];
    bool full[2];        /* outside data of the group's shape (contiguous) */
    float *out;          /* the member's buffer; NULL: a temp, never written out */
} loom_fused_op;
/* Runs n members, in order, over k->node's shape (the leader's) in chunks
 * of a row, as thread k->tid of a team of k->nth. */
void loom_fused_run(const loom_kargs *k, const loom_fused_op *ops, int n);

/* GEMM: C = alpha·op(A)·op(B) + beta·C, row-major, through CBLAS when built
 * with it, else the portable kernel. */
void loom_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc);
/* The portable kernel, always built (tests compare the two). */
void loom_gemm_ref(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc);
bool loom_gemm_uses_blas(void);
bool loom_gemm_uses_dnnl(void);

/* A plan's oneDNN products (ops/gemm_packed.c): the matmul primitive, a
 * parameter read as B packed once per run. In an f32 plan it runs the
 * products loom_mm_runs() picks (A·Wᵀ, W a parameter, few rows), in a bf16
 * plan every product: C = op(A)·op(B) + β·C (β 0 or 1) with A and B
 * rounded to bfloat16 and f32 sums (loom_bf16_available(), runtime.h).
 * b_param: B's parameter (its plan root; -1: B is not one); b_off: where B
 * starts in it. false: out of memory or a oneDNN failure. NULL contexts:
 * built without oneDNN. */
loom_mm *loom_mm_new(bool bf16);
void loom_mm_free(loom_mm *c);
/* Scratch for `threads` threads (omp_get_thread_num() < threads). */
bool loom_mm_slots(loom_mm *c, int threads);
/* Before each run (outside the team): packs again the copies the last run
 * read, from where(ctx, root), the parameter's data now. */
void loom_mm_begin_run(loom_mm *c, const float *(*where)(void *ctx, int32_t root), void *ctx);
int loom_mm_packed(const loom_mm *c);   /* packed copies */
size_t loom_mm_bytes(const loom_mm *c); /* their bytes */
/* Whether c runs a product (or share) of m rows: a fixed rule of the shape. */
bool loom_mm_runs(const loom_mm *c, bool ta, bool tb, int m, int32_t b_param);
bool loom_gemm_mm(loom_mm *c, bool ta, bool tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                  int32_t b_param, int64_t b_off, float beta, float *cm, int ldc);

/* Dropout's draw for element i of a run: uniform in [0, 1) with 24 bits,
 * a hash (loom_mix) of the seed, the plan's run counter and the index. */
static inline float loom_dropout_draw(uint64_t seed, uint64_t run, uint64_t i)
{
    return (float)(loom_mix(seed * 0x9E3779B97F4A7C15ull ^ (run + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^ i) >> 40) *
           (1.0f / 16777216.0f);
}

#endif
