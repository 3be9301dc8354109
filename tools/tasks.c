/* `loom train --task adding|copy`: the synthetic long-range tasks, where a
 * gated cell learns and a vanilla RNN does not.
 *   adding: x (T, B, 2) → stack → the last step's output → linear → one
 *           number, mean squared error against the sum of the two marked
 *           values (predicting the mean scores ≈ 0.167);
 *   copy:   one-hot symbols (T + 20 steps) → stack → linear per step →
 *           cross-entropy; accuracy over the 10 symbols to reproduce. */
#include "tool.h"

#include "loom/loom.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    loom_graph *g;
    loom_task_model tm;
    loom_store *store;
    loom_trainer *t;
    void *xb, *yb; /* the batch bound to x and y */
} task_model;

static void release(task_model *m)
{
    loom_trainer_free(m->t);
    loom_store_free(m->store);
    loom_graph_free(m->g);
    free(m->xb), free(m->yb);
}

static loom_task_opts task_opts(const task_config *c)
{
    return (loom_task_opts){.kind = c->task == TASK_ADDING ? LOOM_MODEL_ADDING : LOOM_MODEL_COPY, .cell = c->cell,
                            .steps = c->steps, .batch = c->batch, .hidden = c->hidden, .layers = c->layers,
                            .stacking = c->stacking};
}

static loom_train_desc train_desc(const task_config *c)
{
    return (loom_train_desc){.optim = {.kind = c->optimizer, .lr = c->lr}, .clip_norm = c->clip, .teacher_forcing = 1,
                             .seed = c->seed};
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
                                                 .eval_outputs = &m->tm.out, .n_eval_outputs = 1},
                            err);
    if (!m->t) return false;
    loom_store_init(m->store, c->seed);
    m->xb = malloc(loom_task_x_bytes(&o));
    m->yb = malloc(loom_task_y_bytes(&o));
    if (!m->xb || !m->yb) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory"), false;
    loom_trainer_bind(m->t, m->tm.x, m->xb), loom_trainer_bind(m->t, m->tm.y, m->yb);
    return true;
}

/* The trainer's state from the checkpoint: 0, or exit status 2 with a
 * message. */
static int restore(task_model *m, const loom_st *ck, const char *cmd, const char *path)
{
    if (!loom_trainer_restore(m->t, ck)) return 0;
    fprintf(stderr, "%s: %s: %s\n", cmd, path, loom_trainer_error(m->t));
    return 2;
}

/* The trainer's state and the model's description. */
static int save(const task_model *m, const task_config *c)
{
    loom_st *f = loom_st_new();
    loom_model_desc d = {.kind = task_opts(c).kind, .task = task_opts(c)};
    loom_train_desc t = train_desc(c);
    bool ok = f && !loom_checkpoint_describe(f, &d, &t, NULL) &&
              !loom_trainer_save(m->t, f);
    int rc = 0;
    if (!ok) fprintf(stderr, "loom train: checkpoint: out of memory\n"), rc = 1;
    else if (loom_checkpoint_write(f, c->save)) fprintf(stderr, "loom train: %s\n", loom_st_error(f)), rc = 1;
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
    if (d.kind != LOOM_MODEL_ADDING && d.kind != LOOM_MODEL_COPY)
        return fprintf(stderr, "%s: %s: a checkpoint of %s, not of the adding or copy task\n", cmd, c->resume,
                       loom_model_kind_name(d.kind)),
               2;
    c->task = d.kind == LOOM_MODEL_ADDING ? TASK_ADDING : TASK_COPY;
    c->cell = d.task.cell, c->steps = d.task.steps, c->batch = d.task.batch, c->hidden = d.task.hidden;
    c->layers = d.task.layers, c->stacking = d.task.stacking, c->optimizer = t.optim.kind, c->lr = t.optim.lr, c->clip = t.clip_norm, c->seed = t.seed;
    return 0;
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
    loom_task_opts o = task_opts(l->c);
    loom_task_batch(&o, loom_task_seed(l->c->seed, loom_trainer_steps(t)), l->m->xb, l->m->yb);
    return LOOM_OK;
}

/* One held-out batch, never trained on: its loss (the score) and accuracy. */
static loom_status evaluate(void *ctx, loom_trainer *t, double *score)
{
    loop_ctx *l = ctx;
    loom_task_opts o = task_opts(l->c);
    loom_task_batch(&o, loom_task_seed(l->c->seed, LOOM_TASK_HELD_OUT), l->m->xb, l->m->yb);
    loom_trainer_eval_begin(t);
    loom_status st = loom_trainer_eval_batch(t, &l->vloss);
    if (st) return st;
    l->vacc = loom_task_accuracy(&o, loom_trainer_output(t, l->m->tm.out), l->m->yb);
    *score = l->vloss;
    return LOOM_OK;
}

static loom_status progress(void *ctx, const loom_fit_report *f)
{
    loop_ctx *l = ctx;
    const task_config *c = l->c;
    const loom_train_step *s = &f->step;
    l->last = *f;
    if ((l->rc = tool_norms_step(&l->norms, "loom train", s->step))) return LOOM_ERR_IO;
    if (f->evaluated)
        fprintf(stderr, "step %lld/%lld  loss %.4f  grad norm %.2f  held-out %s %.4f  accuracy %.1f%%  %.0f s\n",
                (long long)s->step, (long long)f->steps, f->loss_avg, s->grad_norm,
                c->task == TASK_ADDING ? "MSE" : "loss", l->vloss, 100 * l->vacc, f->seconds);
    if (*l->metrics) {
        char v[64] = ",";
        if (f->evaluated) snprintf(v, sizeof v, "%.6f,%.4f", l->vloss, l->vacc);
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
    int rc = c->resume ? open_resume(c, &ck, "loom train") : 0;
    if (!rc) rc = tool_open_outputs("loom train", c->save, c->metrics, "step,loss,grad_norm,lr,valid_loss,valid_accuracy",
                                         ck ? tool_checkpoint_step(ck) : -1, &metrics);
    if (rc) goto done;
    rc = 1;
    bool adding = c->task == TASK_ADDING;
    int B = c->batch;
    loom_error err = {LOOM_ERR_NOMEM, "out of memory"};
    if (!build(&m, c, ck, &err)) {
        fprintf(stderr, "loom train: %s%s%s\n", ck ? c->resume : "", ck ? ": " : "", err.msg);
        rc = tool_exit(err.status);
        goto done;
    }
    if (ck && (rc = restore(&m, ck, "loom train", c->resume))) goto done;
    rc = 1;
    printf("%s task, T = %d: %s, hidden %d, layers %d, B=%d, %s lr %g, %ld steps%s\n", adding ? "adding" : "copy", c->steps,
           c->cell->name, c->hidden, c->layers, B, (const char *[]){"sgd", "adam", "adamw"}[c->optimizer], c->lr, c->total,
           adding ? " (predicting the mean scores MSE ≈ 0.167)" : "");
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
    if (tool_caught()) {
        rc = tool_flush_metrics("loom train", &metrics);
        if (!rc && c->save) rc = save(&m, c);
        rc = tool_interrupted("loom train", (long)loom_trainer_steps(m.t), c->total, c->save, rc);
        goto done;
    }
    double vloss = lc.vloss, vacc = lc.vacc;
    printf("trained %ld steps in %.1f s: held-out %s %.4f, accuracy %.1f%%\n", c->total > step0 ? c->total - step0 : 0,
           tool_now() - t0, adding ? "MSE" : "cross-entropy", vloss, 100 * vacc);
    rc = tool_flush_metrics("loom train", &metrics);
    if (!rc && c->save) rc = save(&m, c);
    if (!rc && c->total > step0) rc = tool_diverged("loom train", &lc.last, c->strict);
done:
    loom_norms_log_close(&lc.norms);
    if (rc) tool_flush_metrics("loom train", &metrics); /* the rows of a run that stopped */
    loom_metrics_free(metrics);
    loom_st_free(ck);
    release(&m);
    return rc;
}

int eval_task(const char *path)
{
    task_config cfg = {.resume = path}, *c = &cfg;
    loom_st *ck = NULL;
    task_model m = {0};
    int rc = open_resume(c, &ck, "loom eval");
    if (rc) goto done;
    bool adding = c->task == TASK_ADDING;
    loom_error err = {LOOM_ERR_NOMEM, "out of memory"};
    if (!build(&m, c, ck, &err)) {
        fprintf(stderr, "loom eval: %s: %s\n", path, err.msg);
        rc = tool_exit(err.status);
        goto done;
    }
    double loss;
    if ((rc = restore(&m, ck, "loom eval", path))) goto done;
    loom_task_opts o = task_opts(c);
    loom_task_batch(&o, loom_task_seed(c->seed, LOOM_TASK_HELD_OUT), m.xb, m.yb); /* the held-out batch the run evaluated on */
    loom_trainer_eval_begin(m.t);
    if (loom_trainer_eval_batch(m.t, &loss)) {
        fprintf(stderr, "loom eval: %s\n", loom_trainer_error(m.t));
        rc = 1;
        goto done;
    }
    printf("%s task, T = %d, after %lld steps: held-out %s %.4f, accuracy %.1f%%\n", adding ? "adding" : "copy", c->steps,
           (long long)loom_trainer_steps(m.t), adding ? "MSE" : "cross-entropy", loss,
           100 * loom_task_accuracy(&o, loom_trainer_output(m.t, m.tm.out), m.yb));
done:
    loom_st_free(ck);
    release(&m);
    return rc;
}
