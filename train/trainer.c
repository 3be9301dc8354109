/* The training loop as library calls (loom/trainer.h), on loom's public
 * API only: gradients by loom_backward, two plans, the optimiser,
 * clipping, the schedule, carried states, checkpoints' training part. */
#include "loom/trainer.h"
#include "loom/autodiff.h"
#include "loom/checkpoint.h"
#include "loom/rnn.h"
#include "loom/runtime.h"
#include "train/exchange.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct loom_trainer {
    loom_trainer_opts o;
    loom_graph *g;
    loom_store *s;
    loom_plan *train, *eval;
    int n_params;
    loom_tensor *outs; /* loss, the states after the batch, every parameter's gradient */
    loom_tensor *state_in, *state_out;
    float **state, **eval_state; /* per carried state: the buffers bound to state_in */
    int64_t *state_numel;
    float **grads;
    int64_t *sizes;
    loom_optim *opt;
    int32_t *x, *y; /* the batch the trainer draws (opts.batches) */
    float *xi;      /* randomised truncation's weights */
    int64_t n_xi;
    loom_tensor eval_loss;
    int32_t *sampled;                         /* a sampled softmax's draw */
    float *sampled_logq, *target_logq, *hits;
    int64_t steps;
    uint64_t fingerprint; /* the graph's, with the gradients: what a checkpoint must have been made by */
    /* data parallelism (opts.comm) */
    loom_exchange *exchange;
    float **grad_at;      /* the gradients' buffers (the training plan's outputs) */
    bool stop_wish, stop_all; /* a fit's stop: this rank's wish, and any rank's (agreed each step) */
    uint64_t comm_key;        /* the fingerprint and the exchange's order: the same on every rank */
    double share;             /* opts.shares: this step's (loom_trainer_set_share) */
    float *weights;           /* opts.shares: every rank's share of the step's items */
    loom_error err;
};

static loom_status fail(loom_trainer *t, loom_status st, const char *fmt, ...)
{
    t->err.status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err.msg, sizeof t->err.msg, fmt, ap);
    va_end(ap);
    return st;
}

const char *loom_trainer_error(const loom_trainer *t) { return t ? t->err.msg : "out of memory"; }
int64_t loom_trainer_steps(const loom_trainer *t) { return t ? t->steps : 0; }

void loom_trainer_set_share(loom_trainer *t, double n)
{
    if (t) t->share = n > 0 ? n : 0;
}
loom_comm *loom_trainer_comm(const loom_trainer *t) { return t ? t->o.comm : NULL; }

void loom_trainer_free(loom_trainer *t)
{
    if (!t) return;
    for (int i = 0; t->state && i < t->o.n_states; i++) free(t->state[i]);
    for (int i = 0; t->eval_state && i < t->o.n_states; i++) free(t->eval_state[i]);
    free(t->state), free(t->eval_state), free(t->state_numel), free(t->state_in), free(t->state_out);
    free(t->outs), free(t->grads), free(t->sizes), free(t->x), free(t->y), free(t->xi);
    free(t->sampled), free(t->sampled_logq), free(t->target_logq), free(t->hits);
    loom_optim_free(t->opt);
    loom_exchange_free(t->exchange), free(t->grad_at), free(t->weights);
    loom_plan_free(t->train), loom_plan_free(t->eval);
    free(t);
}

/* The options, the states' pairs and the loss checked against the graph. */
static bool check(loom_trainer *t)
{
    const loom_trainer_opts *o = &t->o;
    loom_graph *g = t->g;
    if (loom_graph_failed(g)) return fail(t, loom_graph_status(g), "%s", loom_graph_error(g)), false;
    if (loom_store_status(t->s)) return fail(t, loom_store_status(t->s), "%s", loom_store_error(t->s)), false;
    if (!loom_graph_has(g, o->loss) || loom_tensor_numel(g, o->loss) != 1 ||
        (loom_valid(o->eval_loss) && (!loom_graph_has(g, o->eval_loss) || loom_tensor_numel(g, o->eval_loss) != 1)))
        return fail(t, LOOM_ERR_ARG, "trainer: the loss (and the evaluation's) must be a scalar of the graph"), false;
    if (o->sampled && (!loom_valid(o->tokens) || !loom_valid(o->targets) || o->sampled->k < 1 ||
                       o->sampled->rows != loom_tensor_numel(g, o->targets) || !loom_graph_has(g, o->sampled->sampled)))
        return fail(t, LOOM_ERR_ARG, "trainer: a sampled softmax needs the trainer's own batches (tokens, targets), its rows the targets'"),
               false;
    if (o->n_states < 0 || (o->n_states && (!o->state_in || !o->state_out)))
        return fail(t, LOOM_ERR_ARG, "trainer: %d carried states without their tensors", o->n_states), false;
    for (int i = 0; i < o->n_states; i++) {
        loom_tensor a = o->state_in[i], b = o->state_out[i];
        if (!loom_graph_has(g, a) || !loom_graph_has(g, b) ||
            !loom_shape_eq(loom_tensor_shape(g, a), loom_tensor_shape(g, b)) || loom_tensor_dtype(g, a) != LOOM_F32)
            return fail(t, LOOM_ERR_ARG, "trainer: carried state %d: state_in and state_out must be f32 tensors of one shape", i),
                   false;
    }
    if (!(o->clip_norm >= 0) || !(o->clip_value >= 0))
        return fail(t, LOOM_ERR_ARG, "trainer: clip_norm and clip_value must be >= 0"), false;
    if (o->n_eval_outputs < 0 || (o->n_eval_outputs && !o->eval_outputs))
        return fail(t, LOOM_ERR_ARG, "trainer: %d evaluation outputs without their tensors", o->n_eval_outputs), false;
    for (int i = 0; i < o->n_eval_outputs; i++)
        if (!loom_graph_has(g, o->eval_outputs[i]))
            return fail(t, LOOM_ERR_ARG, "trainer: evaluation output %d is not a tensor of the graph", i), false;
    if (loom_valid(o->trunc_xi) && (!loom_graph_has(g, o->trunc_xi) || loom_tensor_dtype(g, o->trunc_xi) != LOOM_F32 ||
                                    o->trunc_mean < 1))
        return fail(t, LOOM_ERR_ARG, "trainer: randomised truncation needs trunc_xi, an f32 input, and trunc_mean >= 1"), false;
    if (o->batches || loom_valid(o->tokens) || loom_valid(o->targets)) {
        loom_shape s = loom_tensor_shape(g, o->tokens);
        if (!loom_graph_has(g, o->tokens) || !loom_graph_has(g, o->targets) || loom_tensor_dtype(g, o->tokens) != LOOM_I32 ||
            loom_tensor_dtype(g, o->targets) != LOOM_I32 || s.rank != 2 ||
            !loom_shape_eq(s, loom_tensor_shape(g, o->targets)))
            return fail(t, LOOM_ERR_ARG, "trainer: batches need tokens and targets, i32 tensors (T, B) of one shape"), false;
    }
    return true;
}

static void on_ready(void *ctx, int i)
{
    loom_trainer *t = ctx;
    if (i >= 0) loom_exchange_ready(t->exchange, i);
    else loom_exchange_progress(t->exchange);
}

/* Data parallelism: the batches sharded, and the exchange of the
 * gradients, started in the order the plan finishes them (the same on
 * every rank: checked with the model's fingerprint). */
static bool share(loom_trainer *t)
{
    const loom_trainer_opts *o = &t->o;
    int n = t->n_params, S = o->n_states, rank = loom_comm_rank(o->comm), ranks = loom_comm_size(o->comm);
    if (o->batches) {
        int B = loom_tensor_shape(t->g, o->tokens).d[1];
        if (!loom_batches_shard(o->batches, rank, ranks) || loom_batches_columns(o->batches) != B)
            return fail(t, LOOM_ERR_ARG, "trainer: the batches' global batch must be %d ranks × %d (this rank's tokens)", ranks, B), false;
    }
    int *order = malloc(((size_t)n + 1) * sizeof *order);
    t->grad_at = calloc((size_t)n + 1, sizeof *t->grad_at);
    t->weights = calloc((size_t)ranks, sizeof *t->weights);
    if (!order || !t->grad_at || !t->weights) return free(order), fail(t, LOOM_ERR_NOMEM, "trainer: out of memory"), false;
    t->comm_key ^= o->shares ? 0x5348415245ull : 0; /* every rank weighted, or none */
    for (int i = 0; i < n; i++) order[i] = i, t->grad_at[i] = (float *)loom_plan_output(t->train, t->outs[1 + S + i]);
    if (!o->comm_after && loom_plan_watch(t->train, t->outs + 1 + S, n, on_ready, t, order))
        return free(order), fail(t, LOOM_ERR_NOMEM, "%s", loom_plan_error(t->train)), false;
    for (int i = 0; i < n; i++) t->comm_key = t->comm_key * 0x100000001B3ull ^ (uint64_t)order[i];
    t->exchange = loom_exchange_new(o->comm, n, t->sizes, order, &t->err);
    free(order);
    return t->exchange != NULL;
}

/* Gradients, plans, optimiser and the states' buffers. */
static bool build(loom_trainer *t)
{
    const loom_trainer_opts *o = &t->o;
    int S = o->n_states, n = t->n_params = loom_store_count(t->s);
    int E = o->n_eval_outputs > 0 ? o->n_eval_outputs : 0;
    t->outs = malloc((size_t)(1 + S + n + E) * sizeof *t->outs);
    t->grads = calloc((size_t)n + 1, sizeof *t->grads);
    t->sizes = calloc((size_t)n + 1, sizeof *t->sizes);
    t->state = calloc((size_t)S + 1, sizeof *t->state);
    t->eval_state = calloc((size_t)S + 1, sizeof *t->eval_state);
    t->state_numel = calloc((size_t)S + 1, sizeof *t->state_numel);
    t->state_in = malloc(((size_t)S + 1) * sizeof *t->state_in);
    t->state_out = malloc(((size_t)S + 1) * sizeof *t->state_out);
    if (!t->outs || !t->grads || !t->sizes || !t->state || !t->eval_state || !t->state_numel || !t->state_in || !t->state_out)
        return fail(t, LOOM_ERR_NOMEM, "trainer: out of memory"), false;
    if (S) {
        memcpy(t->state_in, o->state_in, (size_t)S * sizeof *t->state_in);
        memcpy(t->state_out, o->state_out, (size_t)S * sizeof *t->state_out);
    }
    t->o.state_in = t->state_in, t->o.state_out = t->state_out;
    t->outs[0] = o->loss;
    t->eval_loss = loom_valid(o->eval_loss) ? o->eval_loss : o->loss;
    for (int i = 0; i < S; i++) t->outs[1 + i] = o->state_out[i];
    if (!o->eval_only && loom_backward_with(t->g, o->loss, loom_store_tensors(t->s), n, t->outs + 1 + S,
                                            &(loom_backward_opts){.recompute = o->recompute}))
        return fail(t, loom_graph_status(t->g), "%s", loom_graph_error(t->g)), false;
    /* ranks draw their own dropout masks (rank 0 those of a run alone) */
    uint64_t seed = o->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)loom_comm_rank(o->comm));
    t->train = o->eval_only ? NULL : loom_plan_new(t->g, t->outs, 1 + S + n, &(loom_plan_opts){.seed = seed, .precision = o->precision});
    /* the evaluation plan: the loss, the states, then the extra outputs (in place of the gradients) */
    if (E) memcpy(t->outs + 1 + S + n, o->eval_outputs, (size_t)E * sizeof *t->outs);
    t->o.eval_outputs = t->outs + 1 + S + n; /* the caller's array need not outlive the trainer */
    loom_tensor *eval_outs = malloc((size_t)(1 + S + E) * sizeof *eval_outs);
    if (!eval_outs) return fail(t, LOOM_ERR_NOMEM, "trainer: out of memory"), false;
    memcpy(eval_outs, t->outs, (size_t)(1 + S) * sizeof *eval_outs);
    eval_outs[0] = t->eval_loss;
    if (E) memcpy(eval_outs + 1 + S, o->eval_outputs, (size_t)E * sizeof *eval_outs);
    t->eval = t->train || o->eval_only ? loom_plan_new(t->g, eval_outs, 1 + S + E, &(loom_plan_opts){.eval = true, .precision = o->precision}) : NULL;
    free(eval_outs);
    if ((!t->train && !o->eval_only) || !t->eval) return fail(t, loom_graph_status(t->g), "%s", loom_graph_error(t->g)), false;
    for (int i = 0; i < S; i++) {
        t->state_numel[i] = loom_tensor_numel(t->g, o->state_in[i]);
        t->state[i] = calloc((size_t)t->state_numel[i], sizeof(float));
        t->eval_state[i] = calloc((size_t)t->state_numel[i], sizeof(float));
        if (!t->state[i] || !t->eval_state[i]) return fail(t, LOOM_ERR_NOMEM, "trainer: out of memory"), false;
        if (t->train) loom_bind(t->train, o->state_in[i], t->state[i]);
        loom_bind(t->eval, o->state_in[i], t->eval_state[i]);
    }
    if (t->train) loom_store_bind(t->s, t->train);
    loom_store_bind(t->s, t->eval);
    for (int i = 0; i < n; i++) t->sizes[i] = loom_store_numel(t->s, i);
    if (loom_valid(o->tokens) && loom_valid(o->targets)) { /* the trainer's own batch buffers */
        int64_t k = loom_tensor_numel(t->g, o->tokens);
        if (!(t->x = malloc((size_t)k * sizeof *t->x)) || !(t->y = malloc((size_t)k * sizeof *t->y)))
            return fail(t, LOOM_ERR_NOMEM, "trainer: out of memory"), false;
        if (loom_trainer_bind(t, o->tokens, t->x) || loom_trainer_bind(t, o->targets, t->y)) return false;
    }
    if (o->sampled && t->train) { /* its inputs are the training plan's only */
        const loom_sampled *d = o->sampled;
        size_t K = (size_t)d->k, N = (size_t)d->rows;
        t->sampled = malloc(K * sizeof *t->sampled), t->sampled_logq = malloc(K * sizeof *t->sampled_logq);
        t->target_logq = malloc(N * sizeof *t->target_logq), t->hits = malloc(N * K * sizeof *t->hits);
        if (!t->sampled || !t->sampled_logq || !t->target_logq || !t->hits) return fail(t, LOOM_ERR_NOMEM, "trainer: out of memory"), false;
        loom_bind(t->train, d->sampled, t->sampled), loom_bind(t->train, d->sampled_logq, t->sampled_logq);
        loom_bind(t->train, d->target_logq, t->target_logq), loom_bind(t->train, d->hits, t->hits);
    }
    if (loom_valid(o->trunc_xi)) {
        t->n_xi = loom_tensor_numel(t->g, o->trunc_xi);
        if (!(t->xi = calloc((size_t)t->n_xi, sizeof *t->xi))) return fail(t, LOOM_ERR_NOMEM, "trainer: out of memory"), false;
        if (loom_trainer_bind(t, o->trunc_xi, t->xi)) return false;
    }
    t->comm_key = t->fingerprint = loom_graph_fingerprint(t->g);
    if (o->eval_only) return true;
    loom_error why = {0};
    if (!(t->opt = loom_optim_for_store(&o->optim, t->s, &why))) return fail(t, why.status, "%s", why.msg), false;
    return !o->comm || share(t);
}

loom_trainer *loom_trainer_new(loom_graph *g, loom_store *s, const loom_trainer_opts *o, loom_error *err)
{
    loom_trainer *t = calloc(1, sizeof *t);
    if (!t || !g || !s || !o) {
        if (err) {
            err->status = t ? LOOM_ERR_ARG : LOOM_ERR_NOMEM;
            snprintf(err->msg, sizeof err->msg, "%s", t ? "trainer: no graph, store or options" : "trainer: out of memory");
        }
        free(t);
        return NULL;
    }
    t->o = *o, t->g = g, t->s = s;
    bool ok = check(t) && build(t);
    if (o->comm) { /* every rank learns of a failure on any, and that every rank has the same model */
        loom_status st = loom_comm_agree(o->comm, ok ? LOOM_OK : t->err.status ? t->err.status : LOOM_ERR_ARG, &t->err);
        if (!st) st = loom_comm_same(o->comm, t->comm_key, "model (its graph, or the order its gradients are finished)", &t->err);
        ok = !st;
    }
    if (!ok) {
        if (err) *err = t->err;
        loom_trainer_free(t);
        return NULL;
    }
    return t;
}

loom_status loom_trainer_bind(loom_trainer *t, loom_tensor input, const void *data)
{
    if (!t) return LOOM_ERR_ARG;
    loom_status st = t->train ? loom_bind(t->train, input, data) : LOOM_OK;
    if (st) return fail(t, st, "%s", loom_plan_error(t->train));
    st = loom_bind(t->eval, input, data);
    return st ? fail(t, st, "%s", loom_plan_error(t->eval)) : LOOM_OK;
}

void loom_trainer_reset_states(loom_trainer *t)
{
    for (int i = 0; t && i < t->o.n_states; i++) memset(t->state[i], 0, (size_t)t->state_numel[i] * sizeof(float));
}

/* The first parameter whose gradient is not finite. */
static const char *first_non_finite(const loom_trainer *t)
{
    for (int i = 0; i < t->n_params; i++)
        for (int64_t k = 0; k < t->sizes[i]; k++)
            if (!isfinite(t->grads[i][k])) return loom_store_name(t->s, i);
    return NULL;
}

/* One step. `before`: this rank's failure before it (a fit's batch
 * callback's, its message in t->err), which with data parallelism still
 * takes part in the step's collectives, so that every rank fails with it. */
static loom_status step(loom_trainer *t, loom_train_step *out, loom_status before)
{
    if (!before) t->err = (loom_error){0};
    if (!t->train) return fail(t, LOOM_ERR_STATE, "trainer: made for evaluation only (opts.eval_only)");
    loom_status st = before;
    if (!st && t->o.batches) {
        bool epoch_start = loom_batches_next(t->o.batches, t->x, t->y);
        if (t->o.fresh_states || (epoch_start && t->steps)) loom_trainer_reset_states(t);
    }
    if (!st && t->xi) loom_trunc_draw(t->o.seed ^ 0x7472756E63ull, t->steps, t->o.trunc_mean, t->xi, t->n_xi);
    if (!st && t->sampled)
        loom_sampled_draw(t->o.sampled, t->o.seed ^ 0x73616D70ull, t->steps, t->y, t->sampled, t->sampled_logq, t->target_logq, t->hits);
    const float *w = NULL;
    if (t->exchange && t->o.shares) { /* every rank's share of the items, as weights (each rank gathers, whatever failed) */
        loom_error why = {0};
        float mine = (float)t->share;
        loom_status gs = loom_comm_gather(t->o.comm, &mine, 1, t->weights, &why);
        float total = 0;
        for (int r = 0; r < loom_comm_size(t->o.comm); r++) total += t->weights[r];
        for (int r = 0; r < loom_comm_size(t->o.comm); r++) t->weights[r] = total > 0 ? t->weights[r] / total : 0;
        if (gs && !st) st = fail(t, gs, "%s", why.msg);
        w = t->weights;
    }
    if (t->exchange) loom_exchange_begin(t->exchange, t->grad_at, w);
    if (!st && (st = loom_run(t->train))) fail(t, st, "%s", loom_plan_error(t->train));
    int S = t->o.n_states;
    double loss = st ? NAN : loom_plan_output(t->train, t->o.loss)[0], waited = 0;
    int early = 0;
    if (t->o.comm) { /* the gradients' mean (each exchange started during the run), then the loss's, failures and stops */
        loom_error why = {0};
        loom_status xs = loom_exchange_finish(t->exchange, &waited, &early, &why);
        if (xs && !st) st = fail(t, xs, "%s", why.msg);
        bool stop = t->stop_wish;
        st = loom_comm_step(t->o.comm, st, &loss, w, &stop, &t->err);
        t->stop_all = stop;
    }
    if (st) return st;
    for (int i = 0; i < t->n_params; i++) t->grads[i] = (float *)loom_plan_output(t->train, t->outs[1 + S + i]);
    double norm = loom_clip_grad_norm(t->grads, t->sizes, t->n_params, t->o.clip_norm > 0 ? t->o.clip_norm : INFINITY);
    if (!isfinite(loss) || !isfinite(norm)) {
        const char *bad = first_non_finite(t);
        return fail(t, LOOM_ERR_VALUE, "step %lld: the %s is not finite%s%s", (long long)t->steps + 1,
                    isfinite(loss) ? "gradient" : "loss", bad ? ", first in the gradient of " : "", bad ? bad : "");
    }
    if (t->o.clip_value > 0) loom_clip_grad_value(t->grads, t->sizes, t->n_params, t->o.clip_value);
    float lr = loom_schedule_lr(&t->o.schedule, t->o.optim.lr, t->steps);
    loom_optim_step(t->opt, (const float *const *)t->grads, lr);
    for (int i = 0; i < S; i++)
        memcpy(t->state[i], loom_plan_output(t->train, t->state_out[i]), (size_t)t->state_numel[i] * sizeof(float));
    t->steps++;
    if (out) *out = (loom_train_step){.step = t->steps, .loss = loss, .grad_norm = norm, .lr = lr, .comm_wait = waited, .comm_early = early};
    return LOOM_OK;
}

loom_status loom_trainer_step(loom_trainer *t, loom_train_step *out) { return t ? step(t, out, LOOM_OK) : LOOM_ERR_ARG; }

const float *loom_trainer_output(const loom_trainer *t, loom_tensor x)
{
    for (int i = 0; t && i < t->o.n_eval_outputs; i++)
        if (t->o.eval_outputs[i].id == x.id) return loom_plan_output(t->eval, x);
    return NULL;
}

void loom_trainer_eval_begin(loom_trainer *t)
{
    for (int i = 0; t && i < t->o.n_states; i++) memset(t->eval_state[i], 0, (size_t)t->state_numel[i] * sizeof(float));
}

loom_status loom_trainer_eval_batch(loom_trainer *t, double *loss)
{
    if (!t) return LOOM_ERR_ARG;
    t->err = (loom_error){0};
    loom_status st = loom_run(t->eval);
    if (st) return fail(t, st, "%s", loom_plan_error(t->eval));
    if (loss) *loss = loom_plan_output(t->eval, t->eval_loss)[0];
    for (int i = 0; i < t->o.n_states; i++)
        memcpy(t->eval_state[i], loom_plan_output(t->eval, t->state_out[i]), (size_t)t->state_numel[i] * sizeof(float));
    return LOOM_OK;
}

loom_status loom_trainer_save(loom_trainer *t, loom_st *f)
{
    if (!t || !f) return LOOM_ERR_ARG;
    t->err = (loom_error){0};
    if (!t->train) return fail(t, LOOM_ERR_STATE, "trainer: made for evaluation only (opts.eval_only)");
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)t->fingerprint);
    bool ok = !loom_st_set_meta(f, "loom.fingerprint", fp) && !loom_st_set_meta_int(f, "loom.optim_steps", loom_optim_steps(t->opt)) &&
              !loom_st_set_meta_int(f, "loom.step", t->steps) &&
              !loom_st_set_meta_int(f, "loom.plan_runs", (int64_t)loom_plan_runs(t->train)) &&
              (!t->o.recompute || !loom_st_set_meta_int(f, "loom.recompute", t->o.recompute)) &&
              (t->o.precision != LOOM_PRECISION_BF16 || !loom_st_set_meta(f, "loom.precision", "bf16"));
    if (ok && t->o.batches) {
        int64_t epoch, batch;
        loom_batches_tell(t->o.batches, &epoch, &batch);
        ok = !loom_st_set_meta_int(f, "loom.epoch", epoch) && !loom_st_set_meta_int(f, "loom.batch", batch);
    }
    for (int i = 0; ok && i < t->n_params; i++) {
        const char *name = loom_store_name(t->s, i);
        loom_tensor p = loom_store_tensor(t->s, i);
        float *m, *v;
        loom_optim_state(t->opt, i, &m, &v);
        float *moment[2] = {m, v};
        ok = !loom_st_add(f, name, LOOM_F32, loom_tensor_shape(t->g, p), loom_store_data(t->s, p));
        for (int k = 0; ok && k < 2; k++) {
            char key[300];
            snprintf(key, sizeof key, "optim.%c.%s", k ? 'v' : 'm', name);
            ok = !moment[k] || !loom_st_add(f, key, LOOM_F32, loom_shape1((int32_t)t->sizes[i]), moment[k]);
        }
    }
    /* the carried states; with ranks, every rank's end to end (each rank
     * takes part in the gathering whatever happened before it) */
    int ranks = loom_comm_size(t->o.comm);
    if (t->o.comm && ranks > 1) ok = !loom_st_set_meta_int(f, "loom.ranks", ranks) && ok;
    for (int i = 0; i < t->o.n_states; i++) {
        char key[32];
        snprintf(key, sizeof key, "state.%d", i);
        int64_t n = t->state_numel[i];
        float *all = t->o.comm && ranks > 1 ? malloc((size_t)(n * ranks) * sizeof *all) : t->state[i];
        if (all != t->state[i]) {
            loom_error why = {0};
            loom_status st = loom_comm_gather(t->o.comm, t->state[i], n, all ? all : t->state[i], &why);
            if (!all || st) {
                free(all);
                return fail(t, all ? st : LOOM_ERR_NOMEM, "trainer: save: %s", all ? why.msg : "out of memory");
            }
        }
        if (ok && n * ranks > INT32_MAX) ok = false, fail(t, LOOM_ERR_ARG, "trainer: save: the carried states are too large");
        else if (ok) ok = !loom_st_add(f, key, LOOM_F32, loom_shape1((int32_t)(n * (all != t->state[i] ? ranks : 1))), all);
        if (all != t->state[i]) free(all);
    }
    if (!ok && t->err.status) return t->err.status;
    return ok ? LOOM_OK : fail(t, loom_st_error(f)[0] ? LOOM_ERR_ARG : LOOM_ERR_NOMEM, "trainer: save: %s", loom_st_error(f));
}

int64_t loom_trainer_file_ranks(const loom_st *f)
{
    int64_t ranks = 1;
    if (loom_st_meta(f, "loom.ranks") && !loom_st_meta_int(f, "loom.ranks", 1, 1 << 20, &ranks)) return 0;
    return ranks;
}

/* An f32 tensor of f with n elements, or NULL. */
static const float *tensor(const loom_st *f, const char *key, int64_t n)
{
    const loom_st_tensor *x = loom_st_get(f, key);
    return x && x->dtype == LOOM_F32 && loom_shape_numel(x->shape) == n ? x->data : NULL;
}

loom_status loom_trainer_restore(loom_trainer *t, const loom_st *f)
{
    if (!t || !f) return LOOM_ERR_ARG;
    t->err = (loom_error){0};
    if (!t->train) return fail(t, LOOM_ERR_STATE, "trainer: made for evaluation only (opts.eval_only)");
    int64_t steps, optim_steps, runs;
    uint64_t fp;
    int64_t every = 0; /* the fingerprint covers the backward graph, which recomputation changes */
    if (loom_st_meta(f, "loom.recompute") && !loom_st_meta_int(f, "loom.recompute", LOOM_RECOMPUTE_AUTO, INT32_MAX, &every))
        return fail(t, LOOM_ERR_FORMAT, "restore: loom.recompute is not a segment length (>= 1, -1: auto)");
    if (every != t->o.recompute) {
        char was[24], now[24];
        snprintf(was, sizeof was, every < 0 ? "auto" : "%lld", (long long)every);
        snprintf(now, sizeof now, t->o.recompute < 0 ? "auto" : "%d", (int)t->o.recompute);
        return fail(t, LOOM_ERR_FORMAT, "restore: it was trained with recompute %s, this run has %s: resume with --recompute %s "
                                        "(the graphs differ; the numbers agree to rounding)", was, now, was);
    }
    const char *was = loom_st_meta(f, "loom.precision"), *now = t->o.precision == LOOM_PRECISION_BF16 ? "bf16" : "f32";
    if (!was) was = "f32"; /* written only for bf16 */
    if (strcmp(was, "bf16") && strcmp(was, "f32"))
        return fail(t, LOOM_ERR_FORMAT, "restore: loom.precision is neither f32 nor bf16");
    if (strcmp(was, now)) /* a resumed run is the run that was interrupted */
        return fail(t, LOOM_ERR_FORMAT, "restore: it was trained with %s products, this run has %s: resume with --precision %s",
                    was, now, was);
    if (loom_st_meta(f, "loom.fingerprint") && (!loom_st_meta_hex(f, "loom.fingerprint", &fp) || fp != t->fingerprint))
        return fail(t, LOOM_ERR_FORMAT, "restore: its model does not match this one (another cell, size, truncation or loss: "
                                        "its graph's fingerprint differs)");
    if (!loom_st_meta_int(f, "loom.step", 0, LOOM_TRAINER_MAX_STEPS, &steps) ||
        !loom_st_meta_int(f, "loom.plan_runs", 0, LOOM_TRAINER_MAX_RUNS, &runs))
        return fail(t, LOOM_ERR_FORMAT, "restore: its step count or dropout counter (loom.step, loom.plan_runs) is missing or out of range");
    if (!loom_st_meta_int(f, loom_st_meta(f, "loom.optim_steps") ? "loom.optim_steps" : "loom.step", 0, LOOM_TRAINER_MAX_STEPS,
                  &optim_steps))
        return fail(t, LOOM_ERR_FORMAT, "restore: its optimiser step count is missing or out of range");
    int64_t epoch = 0, batch = 0;
    if (t->o.batches && (!loom_st_meta_int(f, "loom.epoch", 0, LOOM_TRAINER_MAX_STEPS, &epoch) ||
                         !loom_st_meta_int(f, "loom.batch", 0, loom_batches_per_epoch(t->o.batches), &batch)))
        return fail(t, LOOM_ERR_FORMAT, "restore: its data position (loom.epoch, loom.batch) is missing or out of range");
    /* everything checked before anything changes */
    for (int i = 0; i < t->n_params; i++) {
        const char *name = loom_store_name(t->s, i);
        const float *w = tensor(f, name, t->sizes[i]);
        if (!w) return fail(t, LOOM_ERR_SHAPE, "restore: parameter '%s' is missing or does not fit", name);
        for (int64_t k = 0; k < t->sizes[i]; k++)
            if (!isfinite(w[k]))
                return fail(t, LOOM_ERR_VALUE, "restore: parameter '%s' holds NaN or infinite values (the first at element %lld)",
                            name, (long long)k);
        float *m, *v;
        loom_optim_state(t->opt, i, &m, &v);
        for (int k = 0; k < 2; k++) {
            char key[300];
            snprintf(key, sizeof key, "optim.%c.%s", k ? 'v' : 'm', name);
            if ((k ? v : m) && !tensor(f, key, t->sizes[i]))
                return fail(t, LOOM_ERR_SHAPE, "restore: the optimiser state '%s' is missing or does not fit", key);
        }
    }
    /* the carried states: this rank's part of every rank's, when as many
     * ranks wrote them; else zeros (which column of a state is which
     * stream depends on the ranks: (layers, B, H) per rank) */
    int64_t file_ranks = loom_trainer_file_ranks(f), ranks = loom_comm_size(t->o.comm), rank = loom_comm_rank(t->o.comm);
    if (!file_ranks) return fail(t, LOOM_ERR_FORMAT, "restore: loom.ranks is out of range (1 to %d)", 1 << 20);
    bool same = file_ranks == ranks;
    for (int i = 0; i < t->o.n_states; i++) {
        char key[32];
        snprintf(key, sizeof key, "state.%d", i);
        int64_t n = t->state_numel[i];
        const loom_st_tensor *x = loom_st_get(f, key);
        if (!x || x->dtype != LOOM_F32 || (file_ranks == ranks && loom_shape_numel(x->shape) != n * ranks))
            return fail(t, LOOM_ERR_SHAPE, "restore: the carried state '%s' is missing or does not fit", key);
    }
    if (loom_store_load(t->s, f, false)) return fail(t, loom_store_status(t->s), "%s", loom_store_error(t->s));
    for (int i = 0; i < t->n_params; i++) {
        float *m, *v;
        loom_optim_state(t->opt, i, &m, &v);
        for (int k = 0; k < 2; k++) {
            char key[300];
            snprintf(key, sizeof key, "optim.%c.%s", k ? 'v' : 'm', loom_store_name(t->s, i));
            if (k ? v : m) memcpy(k ? v : m, tensor(f, key, t->sizes[i]), (size_t)t->sizes[i] * sizeof(float));
        }
    }
    for (int i = 0; i < t->o.n_states; i++) {
        char key[32];
        snprintf(key, sizeof key, "state.%d", i);
        const float *all = loom_st_get(f, key)->data;
        if (same) memcpy(t->state[i], all + rank * t->state_numel[i], (size_t)t->state_numel[i] * sizeof(float));
        else memset(t->state[i], 0, (size_t)t->state_numel[i] * sizeof(float));
    }
    loom_optim_set_steps(t->opt, optim_steps);
    loom_plan_set_runs(t->train, (uint64_t)runs);
    if (t->o.batches) loom_batches_seek(t->o.batches, epoch, batch);
    t->steps = steps;
    return LOOM_OK;
}

loom_status loom_trainer_eval_stream(loom_trainer *t, const int32_t *ids, int64_t n, double *mean)
{
    if (!t || !t->x) return t ? fail(t, LOOM_ERR_ARG, "trainer: evaluating a stream needs opts.tokens and opts.targets") : LOOM_ERR_ARG;
    loom_shape s = loom_tensor_shape(t->g, t->o.tokens);
    /* with ranks: the streams of the global batch, this rank's B of them,
     * and the mean over the ranks — what one process would compute */
    int T = s.d[0], B = s.d[1], ranks = loom_comm_size(t->o.comm), first = loom_comm_rank(t->o.comm) * B;
    int64_t per_stream = (n - 1) / ((int64_t)B * ranks), windows = per_stream / T;
    *mean = NAN;
    loom_trainer_eval_begin(t);
    double total = 0;
    loom_status st = LOOM_OK;
    for (int64_t w = 0; w < windows && !st; w++) {
        for (int b = 0; b < B; b++)
            for (int k = 0; k < T; k++) {
                int64_t at = (first + b) * per_stream + w * T + k;
                t->x[k * B + b] = ids[at], t->y[k * B + b] = ids[at + 1];
            }
        double loss;
        st = loom_trainer_eval_batch(t, &loss);
        total += loss;
    }
    double m = windows > 0 ? total / (double)windows : NAN;
    bool stop = false;
    if (t->o.comm && (st = loom_comm_step(t->o.comm, st, &m, NULL, &stop, &t->err))) return st;
    *mean = m;
    return st;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A callback's status; with ranks, the lowest failing rank's on every rank. */
static loom_status agreed(loom_trainer *t, loom_status st)
{
    if (st && !t->err.msg[0]) fail(t, st, "a callback failed");
    return t->o.comm ? loom_comm_agree(t->o.comm, st, &t->err) : st;
}

bool loom_fit_diverged(const loom_fit_report *r)
{
    return r && r->step.step - r->first_step >= 9 && r->loss_avg > r->first_loss + 0.05 * fabs(r->first_loss);
}

loom_status loom_trainer_fit(loom_trainer *t, const loom_fit_opts *o)
{
    if (!t || !o) return LOOM_ERR_ARG;
    loom_fit_report r = {.first_step = t->steps + 1, .steps = o->steps, .score = NAN};
    double t0 = seconds();
    loom_status st = LOOM_OK;
    loom_comm *c = t->o.comm;
    t->stop_all = false;
    while (!st && t->steps < o->steps) {
        /* with ranks, the stop one rank wishes is agreed in the step, and all stop after it */
        bool stop = o->stop && o->stop(o->ctx);
        if (!c && stop) break;
        t->stop_wish = stop;
        loom_status before = o->next_batch ? o->next_batch(o->ctx, t) : LOOM_OK;
        if (before && !t->err.msg[0]) fail(t, before, "the batch could not be made");
        if (before && !c) break;
        if ((st = step(t, &r.step, before))) break;
        r.loss_avg = r.step.step > r.first_step ? 0.9 * r.loss_avg + 0.1 * r.step.loss : r.step.loss;
        if (r.step.step == r.first_step) r.first_loss = r.step.loss;
        int64_t k = r.step.step;
        r.evaluated = o->evaluate && ((o->eval_every > 0 && k % o->eval_every == 0) || k == o->steps);
        /* each callback's failure, on any rank, ends the fit on every rank */
        if (r.evaluated && ((st = o->evaluate(o->ctx, t, &r.score)) || c) && (st = agreed(t, st))) break;
        r.seconds = seconds() - t0;
        if (o->progress && ((st = o->progress(o->ctx, &r)) || c) && (st = agreed(t, st))) break;
        if (o->save && o->save_every > 0 && k % o->save_every == 0 && ((st = o->save(o->ctx, t)) || c) && (st = agreed(t, st))) break;
        if (t->stop_all) break;
    }
    return st;
}
