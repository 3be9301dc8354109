/* loom/trainer.h — the training loop as library calls, for any model: a
 * language model, an encoder–decoder, a model built by hand around a cell
 * of one's own.
 *
 * A trainer is made from a graph, its store and the loss; it derives the
 * gradients of every parameter, makes the training plan and an evaluation
 * plan (no dropout), and the optimiser. The caller feeds the batches: it
 * binds each batch input once (loom_trainer_bind) and fills the buffers
 * before each step. One step runs forward and backward, clips, stops on a
 * loss or gradient that is not finite (naming the first parameter), takes
 * the learning rate from the schedule, updates, and carries the states:
 *
 *     loom_trainer *t = loom_trainer_new(g, store, &(loom_trainer_opts){
 *         .loss = lm.loss, .state_in = lm.init, .state_out = lm.out.final, .n_states = 1,
 *         .optim = {.kind = LOOM_OPT_ADAM, .lr = 0.01f}, .clip_norm = 1}, &err);
 *     loom_trainer_bind(t, lm.tokens, x), loom_trainer_bind(t, lm.targets, y);
 *     while (...) {
 *         if (loom_batches_next(batches, x, y)) loom_trainer_reset_states(t);
 *         loom_train_step s;
 *         if (loom_trainer_step(t, &s)) fail(loom_trainer_error(t));
 *     }
 *
 * Checkpoints: loom_trainer_save adds the trainer's part (weights,
 * optimiser moments and step, carried states, the dropout counter) to a
 * safetensors object, beside what the caller adds (its data position, its
 * model description); loom_checkpoint_write writes it. A trainer made the
 * same way and restored from it continues bit for bit.
 */
#ifndef LOOM_TRAINER_H
#define LOOM_TRAINER_H

#include "loom/autodiff.h"
#include "loom/comm.h"
#include "loom/data.h"
#include "loom/graph.h"
#include "loom/safetensors.h"
#include "loom/store.h"
#include "loom/layers.h"
#include "loom/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    loom_tensor loss; /* an f32 scalar */
    /* What evaluation scores, when it is not the loss (a sampled
     * softmax's model evaluated with the full one); default: loss. */
    loom_tensor eval_loss;
    /* Carried states (sequential partitioning): before each step,
     * state_in[i] (an input of the graph) holds what state_out[i] held
     * after the step before — detached, so no gradient flows between
     * batches; zeros at first and after loom_trainer_reset_states. */
    const loom_tensor *state_in, *state_out;
    int n_states;
    loom_optim_opts optim;
    loom_schedule schedule; /* zero: a constant rate */
    double clip_norm;       /* clip the global gradient norm to this (torch's clip_grad_norm_); 0: off */
    float clip_value;       /* clamp every gradient element to [−v, v] (clip_grad_value_); 0: off */
    uint64_t seed;          /* the dropout masks' and the truncation's seed */
    /* Randomised truncation (loom_rnn_args.trunc_xi): before each step the
     * trainer fills this f32 input with loom_trunc_draw's weights of mean
     * segment length `trunc_mean`, drawn from (seed, step): a resumed run
     * draws what the run would have. */
    loom_tensor trunc_xi;
    int trunc_mean;
    /* Optional: the trainer draws its own batches of a token stream. Each
     * step fills `tokens` and `targets` (i32 (T, B) inputs) from `batches`
     * (which must outlive the trainer); the carried states start afresh at
     * each new epoch — at every batch with `fresh_states` (random sampling)
     * — and checkpoints carry the batches' position. */
    loom_batches *batches;
    loom_tensor tokens, targets;
    bool fresh_states;
    /* A sampled softmax's inputs (loom_sampled_softmax), drawn before each
     * step from (seed, step) and the batch's targets (loom_sampled_draw);
     * needs the trainer's own batches (tokens, targets). Must outlive the
     * trainer. */
    const loom_sampled *sampled;
    /* More outputs of the evaluation plan (a model's predictions, for an
     * accuracy), read with loom_trainer_output after an evaluation. */
    const loom_tensor *eval_outputs;
    int n_eval_outputs;
    /* Only the evaluation plan (no gradients, no optimiser): a trained
     * model's held-out loss; step, save and restore are refused. */
    bool eval_only;
    /* Recomputation of the backward pass (loom_backward_opts.recompute):
     * keep the carried states every N steps and compute the rest again
     * going back — memory ∝ T/N + N instead of T, the same numbers, one
     * more forward pass of work. 0: keep everything; LOOM_RECOMPUTE_AUTO:
     * N = ⌈√T⌉. */
    int32_t recompute;
    /* The matrix products' operands in both plans (loom_plan_opts.precision):
     * LOOM_PRECISION_BF16 rounds them to bfloat16 (f32 sums, parameters,
     * gradients and optimiser state); refused where the CPU has no bf16. */
    loom_precision precision;
    /* Data parallelism (loom/comm.h): this process is one rank of comm,
     * its batch its share of the global batch — the trainer shards its own
     * batches (loom_batches_shard: `batches` holds the global batch, tokens
     * and targets this rank's columns); a caller feeding the batches feeds
     * each rank its share. Each step averages the gradients over the ranks
     * (each weight's exchange starting as the backward pass finishes its
     * gradient) and the loss, so that every replica takes the step one
     * process would take on the global batch; clipping sees the global
     * norm. A failure on any rank fails the step (and a fit's callbacks) on
     * every rank with its message. Dropout masks differ from rank to rank
     * (the seed is mixed with the rank), and a sampled softmax draws its
     * classes from each rank's own targets: with either, the ranks take a
     * step of the same distribution as one process's, not the same
     * numbers. Checkpoints hold every rank's
     * carried states; every rank calls save (rank 0 alone need write the
     * file) and restore. Must outlive the trainer. */
    loom_comm *comm;
    /* With comm, when the ranks' batches hold different numbers of items
     * their losses average over (tokens of sequences of different
     * lengths: a masked loss): before each step every rank gives its
     * number (loom_trainer_set_share), and the ranks' losses and gradients
     * are weighted by it — the mean over all the items one process would
     * take. Without it every rank weighs 1/N (equal batches). */
    bool shares;
    bool comm_after; /* start the exchanges after the backward pass, not during it (to measure what overlap saves) */
} loom_trainer_opts;

typedef struct loom_trainer loom_trainer;

/* The most steps a checkpoint may record, and the most plan runs (the
 * dropout counter): larger numbers in a file are refused. */
#define LOOM_TRAINER_MAX_STEPS (1LL << 40)
#define LOOM_TRAINER_MAX_RUNS (1LL << 50)

/* NULL with the reason in *err (err may be NULL) on bad options, a failed
 * graph or out of memory. The trainer keeps g and s (they must outlive
 * it) and appends the gradients to g. */
loom_trainer *loom_trainer_new(loom_graph *g, loom_store *s, const loom_trainer_opts *o, loom_error *err);
void loom_trainer_free(loom_trainer *t);
/* The first error of the last call; "" if none. */
const char *loom_trainer_error(const loom_trainer *t);

/* Binds a batch input (tokens, targets, a mask) of both plans to data the
 * caller fills before each step (or evaluation). */
loom_status loom_trainer_bind(loom_trainer *t, loom_tensor input, const void *data);

/* One optimiser step. */
typedef struct {
    int64_t step;     /* steps done, this one included */
    double loss;      /* this batch's loss, before the update */
    double grad_norm; /* the global gradient norm, before clipping */
    float lr;         /* the learning rate used */
    double comm_wait; /* data parallelism: seconds the step waited for the gradients' exchange after its run */
    int comm_early;   /* data parallelism: gradients whose exchange began during the run (overlapped) */
} loom_train_step;
/* LOOM_ERR_VALUE (nothing updated) when the loss or a gradient is not
 * finite: the message names the step and the first such parameter. */
loom_status loom_trainer_step(loom_trainer *t, loom_train_step *out);
/* Zeros the carried states (a new epoch; random sampling: every batch). */
void loom_trainer_reset_states(loom_trainer *t);
int64_t loom_trainer_steps(const loom_trainer *t);
/* opts.shares: the number of items this rank's loss of the next step is
 * the mean of (its batch's valid tokens, say). */
void loom_trainer_set_share(loom_trainer *t, double n);
/* opts.comm (NULL: one process). */
loom_comm *loom_trainer_comm(const loom_trainer *t);

/* Evaluation (no dropout, no update) with carried states of its own:
 * begin zeros them; each batch runs the evaluation plan on the bound
 * inputs, carries its states and returns its loss. */
void loom_trainer_eval_begin(loom_trainer *t);
loom_status loom_trainer_eval_batch(loom_trainer *t, double *loss);
/* The value of one of opts.eval_outputs after the last evaluation (NULL
 * for another tensor). */
const float *loom_trainer_output(const loom_trainer *t, loom_tensor x);

/* The mean loss of the evaluation plan over a token stream: ids read as B
 * parallel streams (d2l's sequential partitioning; B, T: opts.tokens'
 * shape) in windows of T, each window's targets the tokens that follow,
 * the states carried through from zero. Needs opts.tokens and
 * opts.targets; NAN in *mean when the stream holds no window. With
 * opts.comm, the ranks share the streams of the global batch and every
 * rank gets the mean (collective). */
loom_status loom_trainer_eval_stream(loom_trainer *t, const int32_t *ids, int64_t n, double *mean);

/* ---- the loop ---- */

/* What a step of loom_trainer_fit did, for its progress callback. */
typedef struct {
    loom_train_step step; /* step, loss, gradient norm, learning rate */
    int64_t first_step;   /* the first step of this fit (a resumed run's is past 1) */
    int64_t steps;        /* the fit's last step */
    double loss_avg;      /* the loss smoothed over the fit: an EMA, 0.9·avg + 0.1·loss */
    double first_loss;    /* the fit's first step's loss */
    double seconds;       /* since the fit began */
    bool evaluated;       /* whether score is this step's */
    double score;         /* the last evaluation's (NAN before the first) */
} loom_fit_report;

typedef struct {
    int64_t steps;      /* train until loom_trainer_steps reaches this */
    int64_t eval_every; /* evaluate after every N-th step and after the last; 0: after the last only */
    int64_t save_every; /* save after every N-th step; 0: never (the caller saves at the end) */
    void *ctx;          /* every callback's first argument */
    /* Callbacks, each optional; a failing one (non-zero status) ends the
     * fit with its status (the callback says why). */
    loom_status (*next_batch)(void *ctx, loom_trainer *t); /* fills the bound inputs (not with opts.batches) */
    loom_status (*evaluate)(void *ctx, loom_trainer *t, double *score);
    loom_status (*progress)(void *ctx, const loom_fit_report *r);
    loom_status (*save)(void *ctx, loom_trainer *t);
    bool (*stop)(void *ctx); /* polled before each step (a signal, a deadline): true ends the fit */
} loom_fit_opts;

/* Whether the fit diverged while its loss stayed finite: after at least
 * 10 steps, the smoothed loss is above its first step's (by more than 5 %,
 * the noise of one batch against another) — a learning rate too large, or
 * no clipping, that left the model worse than it began. */
bool loom_fit_diverged(const loom_fit_report *r);

/* The training loop: until `steps` (or stop): next batch, step (which
 * stops on a loss or gradient that is not finite: LOOM_ERR_VALUE, named in
 * loom_trainer_error), evaluate, report, save, on the schedule above.
 * LOOM_OK when it ran to `steps` or stop() ended it (loom_trainer_steps
 * says how far). */
loom_status loom_trainer_fit(loom_trainer *t, const loom_fit_opts *o);

/* Adds the trainer's state to f: the weights (under the store's names),
 * the optimiser's moments ("optim.m.NAME", "optim.v.NAME"), the carried
 * states ("state.I") and the metadata loom.step, loom.optim_steps,
 * loom.plan_runs, loom.fingerprint (the graph's, gradients included:
 * restore refuses a file made by another model) and loom.epoch, loom.batch
 * (the batches' position). With opts.comm, loom.ranks and every rank's
 * carried states end to end (collective: every rank calls it). */
loom_status loom_trainer_save(loom_trainer *t, loom_st *f);
/* Reads it back into a trainer made the same way: everything checked
 * (names, shapes, every number's range, finite weights) before anything is
 * changed; the reason in loom_trainer_error otherwise. Every rank of
 * opts.comm restores its own carried states; a file written by another
 * number of ranks (loom_trainer_file_ranks) leaves them at zero. */
loom_status loom_trainer_restore(loom_trainer *t, const loom_st *f);
/* The ranks a checkpoint was written by (loom.ranks, absent: 1; 0 when
 * out of range). */
int64_t loom_trainer_file_ranks(const loom_st *f);

#ifdef __cplusplus
}
#endif
#endif
