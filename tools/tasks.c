/* `loom train --task adding|copy|sine|temporal-order`: the task models
 * (loom_task_build) on batches drawn from the run's seed — the long-range
 * tasks where a gated cell learns and a vanilla RNN does not (adding, copy,
 * temporal order), and forecasting a noisy sine (d2l 8.1) with its k-step-
 * ahead errors at the end. `loom eval` of their checkpoints. */
#include "tool.h"

#include "loom/loom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    loom_graph *g;
    loom_task_model tm;
    loom_store *store;
    loom_trainer *t;
    void *xb, *yb; /* the batch bound to x and y (synthetic tasks) */
    /* classify, tag: the lines (their held-out part, or a --valid file's) and batches of them */
    loom_task_lines lines;
    loom_pair_batches *batches;
    loom_vocab *v[2]; /* a checkpoint's vocabularies, which the lines were read with */
    char paths[2][4096]; /* a checkpoint's data and valid paths */
} task_model;

static void release(task_model *m)
{
    loom_trainer_free(m->t);
    loom_store_free(m->store);
    loom_graph_free(m->g);
    free(m->xb), free(m->yb);
    loom_pair_batches_free(m->batches), loom_task_lines_free(&m->lines);
    loom_vocab_free(m->v[0]), loom_vocab_free(m->v[1]);
}

static loom_task_opts task_opts(const task_config *c)
{
    return (loom_task_opts){.kind = LOOM_MODEL_ADDING + (c->task - TASK_ADDING), .cell = c->cell, .steps = c->steps,
                            .batch = c->batch, .hidden = c->hidden, .layers = c->layers, .stacking = c->stacking,
                            .bidirectional = c->bidirectional, .pool = c->pool, .vocab = c->vocab, .embed = c->embed,
                            .classes = c->classes, .unit_forget_bias = c->unit_forget_bias};
}

/* Held-out batches of each evaluation. */
#define HELD_OUT_BATCHES 8

/* The task's name, and whether its score is a mean squared error. */
static const char *task_name(const task_config *c) { return loom_model_kind_name(task_opts(c).kind); }
static bool regression(const task_config *c) { return c->task == TASK_ADDING || c->task == TASK_SINE; }

/* "held-out MSE 0.0412" or "held-out loss 0.1234  accuracy 97.5%" */
static const char *held_out(const task_config *c, double loss, double acc, char *buf, size_t n)
{
    int k = snprintf(buf, n, "held-out %s %.4f", regression(c) ? "MSE" : "loss", loss);
    if (!isnan(acc) && k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "  accuracy %.1f%%", 100 * acc);
    return buf;
}

/* d2l's horizons: one step ahead, then the model fed its own predictions. */
static const int horizons[] = {1, 4, 16, 64};

/* A sine model's k-step-ahead errors on the held-out points, printed (and
 * the forecasts in pred, LOOM_SINE_POINTS per horizon, when given). */
static int forecast_table(const char *cmd, loom_trainer *t, const loom_task_model *tm, uint64_t seed, const int *ks, int n,
                          float *pred)
{
    float *own = pred ? NULL : malloc((size_t)n * LOOM_SINE_POINTS * sizeof *own);
    double mse[64];
    if (n > 64 || (!pred && !own)) return free(own), tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    loom_status st = loom_task_forecast(t, tm, seed, ks, n, pred ? pred : own, mse);
    free(own);
    if (st == LOOM_ERR_ARG) return tool_fail(cmd, "--horizons", "each k from 1 to 600 − the window length + 1");
    if (st) return tool_fail_st(cmd, st, loom_trainer_error(t), NULL);
    printf("k-step-ahead forecasts of the %d held-out points (MSE; the noise alone is 0.04):\n", LOOM_SINE_POINTS - LOOM_SINE_TRAIN);
    for (int h = 0; h < n; h++) printf("  k = %-4d MSE %.4f\n", ks[h], mse[h]);
    return 0;
}

static loom_train_desc train_desc(const task_config *c)
{
    return (loom_train_desc){.optim = {.kind = c->optimizer, .lr = c->lr}, .clip_norm = c->clip, .teacher_forcing = 1,
                             .seed = c->seed};
}

/* ---- classify, tag: lines from a file ---- */

static bool reads_data(const task_config *c) { return c->task == TASK_CLASSIFY || c->task == TASK_TAG; }

/* What a classify or tag run reads, as the library describes it. */
static loom_task_data task_data(const task_config *c)
{
    return (loom_task_data){.path = c->data, .valid = c->valid, .steps = c->steps, .min_freq = c->min_freq, .chars = c->chars,
                            .seed = c->seed};
}

/* The lines of c->data (and c->valid), read with the vocabularies v when
 * given (a checkpoint's), into m, their bad lines reported; c->vocab,
 * c->classes (and with epochs, the steps) from them. */
static int read_lines(const char *cmd, task_config *c, const loom_vocab *const *v, bool whole, task_model *m)
{
    loom_task_data d = task_data(c);
    loom_error err = {0};
    loom_status st = loom_task_lines_read(&m->lines, task_opts(c).kind, &d, v, whole, &err);
    if (!st || st == LOOM_ERR_VALUE) { /* what was read: its bad lines first */
        if (m->lines.pairs) s2s_report_bad_lines(cmd, m->lines.pairs, c->data);
        if (m->lines.valid) s2s_report_bad_lines(cmd, m->lines.valid, c->valid);
    }
    if (st) return st == LOOM_ERR_NOMEM ? tool_fail_st(cmd, st, err.msg, NULL) : tool_fail(cmd, err.msg, NULL);
    if (whole) return 0;
    const loom_pairs *p = m->lines.pairs;
    c->vocab = loom_vocab_size(loom_pairs_vocab(p, 0)), c->classes = loom_vocab_size(loom_pairs_vocab(p, 1));
    int64_t global = (int64_t)c->batch * loom_comm_size(c->comm);
    if (c->epochs) c->total = c->epochs * ((loom_pairs_count(p, false) + global - 1) / global);
    return 0;
}

/* The model, its trainer (the evaluation plan also gives the output, for
 * the accuracy) and its batch's buffers; a checkpoint's weights must fit
 * before any is allocated. */
static bool build(task_model *m, const task_config *c, const loom_st *ck, loom_error *err)
{
    loom_graph *g = m->g = loom_graph_new();
    if (!g) return false;
    loom_task_opts o = task_opts(c);
    loom_task_build(g, &m->tm, &o);
    if (loom_graph_failed(g)) return loom_error_set(err, loom_graph_status(g), "%s", loom_graph_error(g)), false;
    if (ck && loom_store_fits(g, ck, err)) return false;
    m->store = loom_store_new(g);
    if (loom_store_status(m->store)) return loom_error_set(err, loom_store_status(m->store), "%s", loom_store_error(m->store)), false;
    loom_train_desc d = train_desc(c);
    m->t = loom_trainer_new(g, m->store,
                            &(loom_trainer_opts){.loss = m->tm.loss, .optim = d.optim, .clip_norm = d.clip_norm, .seed = d.seed,
                                                 .eval_outputs = &m->tm.out, .n_eval_outputs = 1, .recompute = c->recompute,
                                                 .precision = c->precision, .comm = c->comm,
                                                 .shares = c->comm && c->task == TASK_TAG}, /* tags: a mean over tokens */
                            err);
    if (!m->t) return false;
    loom_store_init(m->store, c->seed);
    if (reads_data(c)) {
        int ranks = loom_comm_size(c->comm); /* the global batch; each process its lines */
        if (!(m->batches = loom_pair_batches_new(m->lines.pairs, c->batch * ranks, 1, c->seed)) ||
            !loom_pair_batches_shard(m->batches, loom_comm_rank(c->comm), ranks))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory"), false;
        return !loom_task_bind_pairs(m->t, &m->tm, loom_pair_batches_buffers(m->batches)) ||
               (loom_error_set(err, LOOM_ERR_ARG, "%s", loom_trainer_error(m->t)), false);
    }
    m->xb = malloc(loom_task_x_bytes(&o));
    m->yb = malloc(loom_task_y_bytes(&o));
    if (!m->xb || !m->yb) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory"), false;
    loom_trainer_bind(m->t, m->tm.x, m->xb), loom_trainer_bind(m->t, m->tm.y, m->yb);
    return true;
}

/* The trainer's state from the checkpoint: 0, or exit status 2 with a
 * message. */
static int restore(task_model *m, const loom_st *ck, const char *cmd, const char *path, bool position)
{
    if (loom_trainer_restore(m->t, ck)) return fprintf(stderr, "%s: %s: %s\n", cmd, path, loom_trainer_error(m->t)), 2;
    if (position && m->batches && !loom_pair_batches_restore(m->batches, ck))
        return fprintf(stderr, "%s: %s: its position in the lines is missing, or not of these lines\n", cmd, path), 2;
    return 0;
}

/* The trainer's state and the model's description. */
static int save(const task_model *m, const task_config *c)
{
    loom_st *f = loom_st_new();
    loom_model_desc d = {.kind = task_opts(c).kind, .task = task_opts(c)};
    loom_train_desc t = train_desc(c);
    loom_task_data td = task_data(c);
    char *data = reads_data(c) ? loom_task_data_json(&td) : NULL, *v0 = NULL, *v1 = NULL;
    if (m->batches)
        v0 = loom_vocab_to_string(loom_pairs_vocab(m->lines.pairs, 0)), v1 = loom_vocab_to_string(loom_pairs_vocab(m->lines.pairs, 1));
    bool ok = f && (!reads_data(c) || (data && v0 && v1)) && !loom_checkpoint_describe(f, &d, &t, data) &&
              !loom_trainer_save(m->t, f) &&
              (!m->batches || (loom_pair_batches_save(m->batches, f) && !loom_st_set_meta(f, "loom.src_vocab", v0) &&
                               !loom_st_set_meta(f, "loom.tgt_vocab", v1)));
    free(data), free(v0), free(v1);
    int rc = 0;
    if (!ok) fprintf(stderr, "loom train: checkpoint: out of memory\n"), rc = 1;
    else rc = tool_write_checkpoint("loom train", f, c->save, c->comm);
    loom_st_free(f);
    return rc;
}

/* The checkpoint to resume from, its description taken over c's model and
 * optimiser (what the run does next — steps, metrics, saving — stays the
 * user's). */
static int open_resume(task_config *c, loom_st **ck, const char *cmd)
{
    *ck = loom_st_new();
    if (!*ck) return fprintf(stderr, "%s: out of memory\n", cmd), 1;
    if (loom_checkpoint_read(*ck, c->resume)) return fprintf(stderr, "%s: %s\n", cmd, loom_st_error(*ck)), 2;
    loom_model_desc d;
    loom_train_desc t;
    loom_error err = {0};
    if (loom_checkpoint_model(*ck, &d, &t, &err))
        return fprintf(stderr, "%s: %s: %s\n", cmd, c->resume, err.msg), 2;
    if (d.kind < LOOM_MODEL_ADDING || d.kind > LOOM_MODEL_TAG)
        return fprintf(stderr, "%s: %s: a checkpoint of %s, not of a task model\n", cmd, c->resume,
                       loom_model_kind_name(d.kind)),
               2;
    c->task = TASK_ADDING + (d.kind - LOOM_MODEL_ADDING);
    c->cell = d.task.cell, c->steps = d.task.steps, c->batch = d.task.batch, c->hidden = d.task.hidden;
    c->layers = d.task.layers, c->stacking = d.task.stacking, c->bidirectional = d.task.bidirectional, c->pool = d.task.pool;
    c->vocab = d.task.vocab, c->embed = d.task.embed, c->classes = d.task.classes, c->unit_forget_bias = d.task.unit_forget_bias;
    c->optimizer = t.optim.kind, c->lr = t.optim.lr, c->clip = t.clip_norm, c->seed = t.seed;
    return 0;
}

/* A classify or tag run's lines: c->data's read fresh, or, resumed or
 * evaluated, with the checkpoint's vocabularies (its own files unless data
 * names others: moved, or lines to score). 0, or the exit status. */
static int open_data(const char *cmd, task_config *c, const loom_st *ck, task_model *m, const char *data, const char *valid,
                     bool whole)
{
    if (!reads_data(c)) return 0;
    if (!ck) return read_lines(cmd, c, NULL, false, m);
    int vocab = c->vocab, classes = c->classes;
    loom_task_data d = task_data(c);
    loom_error err = {0};
    char *json = loom_checkpoint_data(ck);
    loom_status st = json ? loom_task_data_parse(json, &d, m->paths[0], sizeof m->paths[0], &err) : loom_error_set(&err, LOOM_ERR_NOMEM, "out of memory");
    free(json);
    if (st) return fprintf(stderr, "%s: %s: %s\n", cmd, c->resume, err.msg), tool_exit(st);
    c->data = d.path, c->valid = d.valid, c->min_freq = d.min_freq, c->chars = d.chars;
    if (data) c->data = data, c->valid = valid;
    for (int s = 0; s < 2; s++) m->v[s] = loom_vocab_from_string(loom_st_meta(ck, s ? "loom.tgt_vocab" : "loom.src_vocab"));
    if (!m->v[0] || !m->v[1] || loom_vocab_size(m->v[0]) != vocab || loom_vocab_size(m->v[1]) != classes)
        return fprintf(stderr, "%s: %s: its vocabularies are missing, bad, or not its model's\n", cmd, c->resume), 2;
    return read_lines(cmd, c, (const loom_vocab *const *)m->v, whole && data, m);
}

/* ---- the loop's callbacks (loom_trainer_fit) ---- */

typedef struct {
    const task_config *c;
    task_model *m;
    loom_metrics **metrics;
    double vloss, vacc; /* the last held-out loss and accuracy */
    int rc;             /* the exit status a callback failed with */
    loom_fit_report last;
    loom_norms_log norms;   /* --norms-every */
} loop_ctx;

/* The batch of this step, whoever runs it (a resumed run draws the same). */
static loom_status next_batch(void *ctx, loom_trainer *t)
{
    loop_ctx *l = ctx;
    if (l->m->batches) {
        loom_pair_batches_next(l->m->batches);
        /* a tagger's loss is the mean over the lines' tokens: with processes, each weighs by its own */
        if (l->c->comm && l->c->task == TASK_TAG) loom_trainer_set_share(t, (double)loom_pair_batches_tokens(l->m->batches, 0));
        return LOOM_OK;
    }
    loom_task_opts o = task_opts(l->c); /* with processes, this one's share of the global batch */
    return loom_task_batch_shard(&o, l->c->seed, loom_trainer_steps(t), loom_comm_rank(l->c->comm), loom_comm_size(l->c->comm),
                                 l->m->xb, l->m->yb);
}

/* The held-out batches, never trained on: their loss (the score) and accuracy. */
static loom_status evaluate(void *ctx, loom_trainer *t, double *score)
{
    loop_ctx *l = ctx;
    task_model *m = l->m;
    loom_status st = m->batches ? loom_task_evaluate_pairs(t, &m->tm, m->batches, m->lines.held, m->lines.held_part, &l->vloss, &l->vacc)
                                : loom_task_evaluate(t, &m->tm, l->c->seed, HELD_OUT_BATCHES, m->xb, m->yb, &l->vloss, &l->vacc);
    *score = l->vloss;
    return st;
}

static loom_status progress(void *ctx, const loom_fit_report *f)
{
    loop_ctx *l = ctx;
    const task_config *c = l->c;
    const loom_train_step *s = &f->step;
    l->last = *f;
    if ((l->rc = tool_norms_step(&l->norms, "loom train", s->step))) return LOOM_ERR_IO;
    char held[96];
    if (f->evaluated)
        fprintf(stderr, "step %lld/%lld  loss %.4f  grad norm %.2f  %s  %.0f s\n", (long long)s->step, (long long)f->steps,
                f->loss_avg, s->grad_norm, held_out(c, l->vloss, l->vacc, held, sizeof held), f->seconds);
    if (*l->metrics) {
        char v[64] = ",";
        if (f->evaluated) snprintf(v, sizeof v, isnan(l->vacc) ? "%.6f" : "%.6f,%.4f", l->vloss, l->vacc);
        else if (c->task == TASK_SINE) v[0] = 0;
        if (loom_metrics_row(*l->metrics, "%lld,%.6f,%.6f,%.6g,%s", (long long)s->step, s->loss, s->grad_norm, s->lr, v))
            return fprintf(stderr, "loom train: --metrics: out of memory\n"), l->rc = 1, LOOM_ERR_NOMEM;
        if ((f->evaluated || loom_metrics_age(*l->metrics) > 10) && (l->rc = tool_flush_metrics("loom train", l->metrics)))
            return LOOM_ERR_IO;
    }
    return LOOM_OK;
}

static loom_status save_now(void *ctx, loom_trainer *t)
{
    loop_ctx *l = ctx;
    (void)t;
    return (l->rc = tool_flush_metrics("loom train", l->metrics)) || (l->rc = save(l->m, l->c)) ? LOOM_ERR_IO : LOOM_OK;
}

int train_task(const task_config *given)
{
    task_config cfg = *given, *c = &cfg;
    loom_st *ck = NULL;
    task_model m = {0};
    loom_metrics *metrics = NULL;
    loop_ctx lc = {.c = c, .m = &m, .metrics = &metrics, .vloss = NAN, .vacc = NAN};
    int ranks = loom_comm_size(c->comm);
    if (loom_comm_rank(c->comm) > 0) c->metrics = c->norms_csv = NULL, c->norms_every = 0; /* rank 0 writes the files */
    int rc = c->resume ? open_resume(c, &ck, "loom train") : 0;
    if (!rc && ck && loom_trainer_file_ranks(ck) != ranks)
        fprintf(stderr, "loom train: warning: %s was written by %lld process%s, this run has %d: its batches are drawn for a global "
                        "batch of %d × --batch from here on\n",
                c->resume, (long long)loom_trainer_file_ranks(ck), loom_trainer_file_ranks(ck) == 1 ? "" : "es", ranks, ranks);
    if (!rc) rc = open_data("loom train", c, ck, &m, given->data, given->valid, false);
    if (!rc) rc = tool_open_outputs("loom train", c->save, c->metrics,
                                    c->task == TASK_SINE ? "step,mse,grad_norm,lr,valid_mse" : "step,loss,grad_norm,lr,valid_loss,valid_accuracy",
                                         ck ? tool_checkpoint_step(ck) : -1, &metrics);
    if (rc) goto done;
    rc = 1;
    int B = c->batch;
    loom_error err = {LOOM_ERR_NOMEM, "out of memory"};
    if (!build(&m, c, ck, &err)) {
        fprintf(stderr, "loom train: %s%s%s\n", ck ? c->resume : "", ck ? ": " : "", err.msg);
        rc = tool_exit(err.status);
        goto done;
    }
    if (ck && (rc = restore(&m, ck, "loom train", c->resume, true))) goto done;
    rc = 1;
    static const char *const baseline[] = {" (predicting the mean scores MSE ≈ 0.167)", "", " (the noise alone: MSE 0.04)",
                                           " (chance: accuracy 25%)"};
    char per[64];
    printf("%s task, T = %d: %s%s, hidden %d, layers %d, B=%d%s, %s lr %g, %ld steps%s\n", task_name(c), c->steps, c->cell->name,
           c->bidirectional ? " (bidirectional)" : "", c->hidden, c->layers, B, tool_per_process(c->comm, per, sizeof per),
           (const char *[]){"sgd", "adam", "adamw"}[c->optimizer], c->lr, c->total,
           c->task <= TASK_ORDER ? baseline[c->task - TASK_ADDING] : "");
    double t0 = tool_now();
    long step0 = (long)loom_trainer_steps(m.t);
    loom_model_desc desc = {.kind = task_opts(c).kind, .task = task_opts(c)};
    if ((rc = tool_norms_open(&lc.norms, "loom train", c->norms_csv, c->norms_every, &desc, c->seed, m.store, NULL, 0,
                              ck ? step0 : -1)) ||
        (!ck && (rc = tool_norms_step(&lc.norms, "loom train", 0)))) /* the model as it starts */
        goto done;
    rc = 1;
    loom_status st = loom_trainer_fit(m.t, &(loom_fit_opts){.steps = c->total, .eval_every = c->eval_every,
                                                            .save_every = c->save ? c->save_every : 0, .ctx = &lc,
                                                            .next_batch = next_batch, .evaluate = evaluate,
                                                            .progress = progress, .save = save_now, .stop = tool_stop});
    if (st) {
        if (!lc.rc) fprintf(stderr, "loom train: %s%s\n", loom_trainer_error(m.t), st == LOOM_ERR_VALUE ? "; stopping" : "");
        rc = lc.rc ? lc.rc : st == LOOM_ERR_VALUE ? 1 : tool_exit(st);
        goto done;
    }
    if (tool_stopped(m.t, c->total)) {
        rc = tool_flush_metrics("loom train", &metrics);
        if (!rc && c->save) rc = save(&m, c);
        rc = tool_interrupted("loom train", (long)loom_trainer_steps(m.t), c->total, c->save, rc);
        goto done;
    }
    char held[96];
    printf("trained %ld steps in %.1f s: %s\n", c->total > step0 ? c->total - step0 : 0, tool_now() - t0,
           held_out(c, lc.vloss, lc.vacc, held, sizeof held));
    rc = tool_flush_metrics("loom train", &metrics);
    if (!rc && c->save) rc = save(&m, c);
    /* after saving: the forecasts run the evaluation plan on buffers of their own */
    if (!rc && c->task == TASK_SINE) rc = forecast_table("loom train", m.t, &m.tm, c->seed, horizons, 4, NULL);
    if (!rc && c->total > step0) rc = tool_diverged("loom train", &lc.last, c->strict);
done:
    loom_norms_log_close(&lc.norms);
    if (rc) tool_flush_metrics("loom train", &metrics); /* the rows of a run that stopped */
    loom_metrics_free(metrics);
    loom_st_free(ck);
    release(&m);
    return rc;
}

int eval_task(const char *path, const int *ks, int n_ks, const char *plot, const char *data)
{
    task_config cfg = {.resume = path}, *c = &cfg;
    loom_st *ck = NULL;
    task_model m = {0};
    float *pred = NULL;
    int rc = open_resume(c, &ck, "loom eval");
    if (rc) goto done;
    if ((n_ks || plot) && c->task != TASK_SINE) {
        fprintf(stderr, "loom eval: %s: --horizons and --plot are a sine model's forecasts, not a %s model's\n", path,
                task_name(c));
        rc = 2;
        goto done;
    }
    if (data && !reads_data(c)) {
        fprintf(stderr, "loom eval: %s is a synthetic task's checkpoint: it is evaluated on its own held-out batches (no "
                        "--data)\n", path);
        rc = 2;
        goto done;
    }
    if ((rc = open_data("loom eval", c, ck, &m, data, NULL, true))) goto done;
    loom_error err = {LOOM_ERR_NOMEM, "out of memory"};
    if (!build(&m, c, ck, &err)) {
        fprintf(stderr, "loom eval: %s: %s\n", path, err.msg);
        rc = tool_exit(err.status);
        goto done;
    }
    double loss, acc;
    if ((rc = restore(&m, ck, "loom eval", path, false))) goto done;
    loom_status st = m.batches ? loom_task_evaluate_pairs(m.t, &m.tm, m.batches, m.lines.held, m.lines.held_part, &loss, &acc)
                               : loom_task_evaluate(m.t, &m.tm, c->seed, HELD_OUT_BATCHES, m.xb, m.yb, &loss, &acc);
    if (st) { /* what the run evaluated on, or data's lines */
        fprintf(stderr, "loom eval: %s\n", loom_trainer_error(m.t));
        rc = 1;
        goto done;
    }
    char held[96];
    if (data)
        printf("%s task, after %lld steps, on %s (%lld lines): loss %.4f  accuracy %.1f%%\n", task_name(c),
               (long long)loom_trainer_steps(m.t), data, (long long)loom_pairs_count(m.lines.held, false), loss, 100 * acc);
    else
        printf("%s task, T = %d, after %lld steps: %s\n", task_name(c), c->steps, (long long)loom_trainer_steps(m.t),
               held_out(c, loss, acc, held, sizeof held));
    if (c->task == TASK_SINE) {
        if (!n_ks) ks = horizons, n_ks = 4;
        if (!(pred = malloc((size_t)n_ks * LOOM_SINE_POINTS * sizeof *pred))) {
            rc = tool_fail_st("loom eval", LOOM_ERR_NOMEM, "out of memory", NULL);
            goto done;
        }
        rc = forecast_table("loom eval", m.t, &m.tm, c->seed, ks, n_ks, pred);
        loom_error err = {0};
        if (!rc && plot && loom_task_forecast_plot(c->seed, ks, n_ks, pred, plot, &err))
            rc = tool_fail_st("loom eval", err.status, "--plot", err.msg);
        else if (!rc && plot)
            printf("forecasts drawn in %s\n", plot);
    }
done:
    free(pred);
    loom_st_free(ck);
    release(&m);
    return rc;
}
