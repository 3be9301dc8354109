/* loom/train.h — optimisers, learning-rate schedules, gradient clipping.
 *
 * Every update is torch.optim's formula, in the same order of operations
 * (tests/golden/make_optim.py checks them against PyTorch):
 *   SGD:   g = ∇ + λp;  b = μb + (1 − τ)g (b = g on the first step);
 *          g = g + μb (Nesterov) or b;  p −= η g
 *   Adam:  g = ∇ + λp;  m = β₁m + (1 − β₁)g;  v = β₂v + (1 − β₂)g²;
 *          p −= (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
 *   AdamW: p −= ηλp, then Adam without λ.
 */
#ifndef LOOM_TRAIN_H
#define LOOM_TRAIN_H

#include "loom/graph.h"
#include "loom/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LOOM_OPT_SGD = 0, LOOM_OPT_ADAM, LOOM_OPT_ADAMW } loom_optimizer;

typedef struct {
    loom_optimizer kind;
    float lr;
    float momentum, dampening; /* SGD */
    bool nesterov;             /* SGD (needs momentum > 0 and dampening 0, as PyTorch) */
    float weight_decay;
    float beta1, beta2, eps;   /* Adam/AdamW; 0 means PyTorch's default (0.9, 0.999, 1e-8) */
} loom_optim_opts;

typedef struct loom_optim loom_optim;

/* An optimiser over the n buffers params[i] of sizes[i] elements (the
 * buffers are updated in place; they must outlive it). NULL on bad options
 * (the reason in *err when err is not NULL) or out of memory. */
loom_optim *loom_optim_new(const loom_optim_opts *opts, float *const *params, const int64_t *sizes, int n,
                           loom_error *err);
/* Over every parameter of a store, in store order. */
loom_optim *loom_optim_for_store(const loom_optim_opts *opts, loom_store *s, loom_error *err);
void loom_optim_free(loom_optim *o);
/* One update with the gradients grads[i] (same sizes) at learning rate lr
 * (the schedule's; opts.lr is the base). */
void loom_optim_step(loom_optim *o, const float *const *grads, float lr);
int64_t loom_optim_steps(const loom_optim *o);
/* The state buffers of parameter i (momentum buffer or first moment, second
 * moment; NULL where the optimiser keeps none), for checkpoints. */
void loom_optim_state(loom_optim *o, int i, float **m, float **v);
void loom_optim_set_steps(loom_optim *o, int64_t steps);

/* torch.nn.utils.clip_grad_norm_: the global L2 norm over all gradients;
 * when above max_norm, every gradient is scaled by max_norm/(norm + 1e-6).
 * Returns the norm before clipping (a NaN or infinite norm is returned
 * as is and nothing is scaled). */
double loom_clip_grad_norm(float *const *grads, const int64_t *sizes, int n, double max_norm);
/* torch.nn.utils.clip_grad_value_: every element clamped to [−c, c]. */
void loom_clip_grad_value(float *const *grads, const int64_t *sizes, int n, float c);

typedef enum { LOOM_SCHED_CONSTANT = 0, LOOM_SCHED_STEP, LOOM_SCHED_EXP, LOOM_SCHED_COSINE, LOOM_SCHED_LINEAR } loom_sched_kind;

typedef struct {
    loom_sched_kind kind;
    float gamma;        /* STEP: factor every step_size steps; EXP: factor every step */
    int64_t step_size;
    int64_t total;      /* COSINE: T_max; LINEAR: the steps to reach min_lr */
    float min_lr;       /* COSINE: eta_min; LINEAR: the rate at the end */
    int64_t warmup;     /* linear warm-up over the first `warmup` steps (any kind) */
} loom_schedule;

/* The learning rate of step (0-based) for base rate lr, as torch.optim's
 * StepLR, ExponentialLR and CosineAnnealingLR (closed forms), or falling
 * linearly from lr to min_lr over `total` steps (word2vec's; min_lr after), times
 * (step + 1)/warmup during warm-up. */
float loom_schedule_lr(const loom_schedule *s, float lr, int64_t step);

/* ---- a metrics file: one CSV row per step ---- */

/* Rows are kept in memory and the whole file is replaced atomically at
 * each flush (a temporary file beside it, synced, renamed): a reader, a
 * full disk or a kill never sees a half-written file, a symlink is replaced
 * rather than followed, and the file the user had stays as it was until
 * the first flush. */
typedef struct loom_metrics loom_metrics;

/* A metrics file at path whose first line is `columns` ("step,loss,...";
 * the first column is the step). resume_step < 0: a new file. resume_step
 * >= 0 (a run resumed after that step): an existing file's rows up to that
 * step are kept (its header must be `columns`), its later rows dropped.
 * The directory is checked up front (a temporary file is made and
 * removed). NULL with the reason in err (its status LOOM_ERR_IO,
 * LOOM_ERR_FORMAT, LOOM_ERR_NOMEM) when it cannot be. */
loom_metrics *loom_metrics_open(const char *path, const char *columns, int64_t resume_step, loom_error *err);
/* Appends a row: printf's format and arguments, without the newline. */
loom_status loom_metrics_row(loom_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Replaces the file with the header and every row so far. */
loom_status loom_metrics_flush(loom_metrics *m, loom_error *err);
/* Seconds since the last flush (to flush every so often). */
double loom_metrics_age(const loom_metrics *m);
/* Frees m without a flush. */
void loom_metrics_free(loom_metrics *m);

#ifdef __cplusplus
}
#endif
#endif
