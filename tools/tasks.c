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

enum { COPY_K = 10, COPY_A = 8 };

typedef struct {
    loom_graph *g;
    loom_rnn rnn;
    loom_tensor x, y, out, loss;
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

/* The model, its trainer (the evaluation plan also gives the output, for
 * the accuracy) and its batch's buffers. */
static void set_err(loom_error *e, loom_status st, const char *msg)
{
    e->status = st;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
}

static bool build(task_model *m, const loom_task_config *c, loom_error *err)
{
    loom_graph *g = m->g = loom_graph_new();
    if (!g) return false;
    bool adding = c->task == LOOM_TASK_ADDING;
    int T = adding ? c->steps : COPY_K + c->steps + COPY_K, B = c->batch, H = c->hidden, C = COPY_A + 2;
    loom_rnn_init(g, &m->rnn, &(loom_rnn_opts){.cell = c->cell, .input_size = adding ? 2 : C, .hidden_size = H,
                                               .layers = c->layers, .prefix = "rnn."});
    if (adding) {
        m->x = loom_input(g, "x", loom_shape3(T, B, 2));
        m->y = loom_input(g, "y", loom_shape1(B));
    } else {
        m->x = loom_input_i32(g, "x", loom_shape2(T, B));
        m->y = loom_input_i32(g, "y", loom_shape2(T, B));
    }
    loom_rnn_out o = loom_rnn_apply(g, &m->rnn, adding ? m->x : loom_one_hot(g, m->x, C), NULL);
    if (adding) {
        loom_tensor last = loom_reshape(g, loom_slice(g, o.output, 0, T - 1, 1), loom_shape2(B, H));
        m->out = loom_reshape(g, loom_linear(g, "decoder", last, 1), loom_shape1(B));
        m->loss = loom_mse(g, m->out, m->y);
    } else {
        m->out = loom_linear(g, "decoder", o.output, C);
        m->loss = loom_cross_entropy(g, m->out, m->y, LOOM_NO_MASK);
    }
    m->store = loom_store_new(g);
    if (loom_graph_failed(g)) return set_err(err, loom_graph_status(g), loom_graph_error(g)), false;
    if (loom_store_status(m->store)) return set_err(err, loom_store_status(m->store), loom_store_error(m->store)), false;
    m->t = loom_trainer_new(g, m->store,
                            &(loom_trainer_opts){.loss = m->loss, .optim = {.kind = c->optimizer, .lr = c->lr},
                                                 .clip_norm = c->clip, .seed = c->seed, .eval_outputs = &m->out,
                                                 .n_eval_outputs = 1},
                            err);
    if (!m->t) return false;
    loom_store_init(m->store, c->seed);
    m->xb = malloc(adding ? (size_t)T * B * 2 * sizeof(float) : (size_t)T * B * sizeof(int32_t));
    m->yb = malloc(adding ? (size_t)B * sizeof(float) : (size_t)T * B * sizeof(int32_t));
    if (!m->xb || !m->yb) return set_err(err, LOOM_ERR_NOMEM, "out of memory"), false;
    loom_trainer_bind(m->t, m->x, m->xb), loom_trainer_bind(m->t, m->y, m->yb);
    return true;
}

/* The checkpoint's model (by fingerprint) and the trainer's state from it:
 * 0, or exit status 2 with a message. */
static int restore(task_model *m, const loom_st *ck, const char *cmd, const char *path)
{
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)loom_graph_fingerprint(m->g));
    const char *want = loom_st_meta(ck, "loom.fingerprint");
    if (want && !strcmp(want, fp) && !loom_trainer_restore(m->t, ck)) return 0;
    fprintf(stderr, "%s: %s: %s\n", cmd, path,
            !want || strcmp(want, fp) ? "its model does not match the one its configuration builds" : loom_trainer_error(m->t));
    return 2;
}

static const char *const task_names[] = {"lm", "adding", "copy"};
static const char *const optim_names[] = {"sgd", "adam", "adamw"};

/* What a resumed run rebuilds: the task, the model and the optimiser. */
static char *config_json(const loom_task_config *c)
{
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"task\":\"%s\",\"cell\":\"%s\",\"seq_len\":%d,\"batch\":%d,\"hidden\":%d,\"layers\":%d,"
             "\"optimizer\":\"%s\",\"lr\":%.9g,\"clip\":%.17g,\"seed\":%llu}",
             task_names[c->task], c->cell->name, c->steps, c->batch, c->hidden, c->layers, optim_names[c->optimizer], c->lr,
             c->clip, (unsigned long long)c->seed);
    return strdup(buf);
}

/* The checkpoint's configuration over c's model and optimiser (what the
 * run does next — steps, metrics, saving — stays the user's). */
static bool read_config(loom_task_config *c, const char *json)
{
    cJSON *o = cJSON_Parse(json ? json : "");
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(o, "task"), *cell = cJSON_GetObjectItemCaseSensitive(o, "cell"),
                *opt = cJSON_GetObjectItemCaseSensitive(o, "optimizer");
    bool ok = o && cJSON_IsString(task) && cJSON_IsString(cell) && cJSON_IsString(opt);
    c->task = ok && !strcmp(task->valuestring, "copy") ? LOOM_TASK_COPY : LOOM_TASK_ADDING;
    ok = ok && (!strcmp(task->valuestring, "copy") || !strcmp(task->valuestring, "adding"));
    c->cell = ok ? loom_cell_by_name(cell->valuestring) : NULL;
    c->optimizer = ok && !strcmp(opt->valuestring, "sgd") ? LOOM_OPT_SGD : ok && !strcmp(opt->valuestring, "adamw") ? LOOM_OPT_ADAMW : LOOM_OPT_ADAM;
    ok = ok && c->cell && (!strcmp(opt->valuestring, "sgd") || !strcmp(opt->valuestring, "adam") || !strcmp(opt->valuestring, "adamw"));
    c->steps = (int)loom_tool_jnum(o, "seq_len", 1, LOOM_TOOL_MAX_SEQ, &ok);
    c->batch = (int)loom_tool_jnum(o, "batch", 1, LOOM_TOOL_MAX_BATCH, &ok);
    c->hidden = (int)loom_tool_jnum(o, "hidden", 1, LOOM_TOOL_MAX_WIDTH, &ok);
    c->layers = (int)loom_tool_jnum(o, "layers", 1, LOOM_RNN_MAX_LAYERS, &ok);
    c->lr = (float)loom_tool_jnum(o, "lr", 0, 1e6, &ok);
    c->clip = loom_tool_jnum(o, "clip", 0, 1e9, &ok);
    c->seed = (uint64_t)loom_tool_jnum(o, "seed", 0, 1 << 30, &ok);
    cJSON_Delete(o);
    return ok;
}

/* The trainer's state, the task's configuration and the model's fingerprint. */
static int save(const task_model *m, const loom_task_config *c)
{
    loom_st *f = loom_st_new();
    char *cfg = config_json(c), fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)loom_graph_fingerprint(m->g));
    bool ok = f && cfg && !loom_st_set_meta(f, "loom.task", cfg) && !loom_st_set_meta(f, "loom.fingerprint", fp) &&
              !loom_trainer_save(m->t, f);
    int rc = 0;
    if (!ok) fprintf(stderr, "loom train: checkpoint: %s\n", f ? loom_trainer_error(m->t) : "out of memory"), rc = 1;
    else if (loom_checkpoint_write(f, c->save)) fprintf(stderr, "loom train: %s\n", loom_st_error(f)), rc = 1;
    free(cfg);
    loom_st_free(f);
    return rc;
}

/* Accuracy on a batch: adding — |prediction − target| < 0.04; copy — the
 * symbols of the last K steps predicted exactly. */
static double accuracy(const loom_task_config *c, const float *out, const void *y)
{
    int B = c->batch, hits = 0, total = 0;
    if (c->task == LOOM_TASK_ADDING) {
        for (int b = 0; b < B; b++) hits += fabsf(out[b] - ((const float *)y)[b]) < 0.04f, total++;
    } else {
        int L = COPY_K + c->steps + COPY_K, C = COPY_A + 2;
        for (int t = L - COPY_K; t < L; t++)
            for (int b = 0; b < B; b++) {
                const float *l = out + ((size_t)t * B + b) * C;
                int best = 0;
                for (int k = 1; k < C; k++) best = l[k] > l[best] ? k : best;
                hits += best == ((const int32_t *)y)[t * B + b], total++;
            }
    }
    return (double)hits / total;
}

static void make_batch(const loom_task_config *c, uint64_t seed, void *x, void *y)
{
    if (c->task == LOOM_TASK_ADDING) loom_task_adding(c->steps, c->batch, seed, x, y);
    else loom_task_copy(c->steps, COPY_K, COPY_A, c->batch, seed, x, y);
}

/* The checkpoint to resume from, its configuration taken over c's. */
static int open_resume(loom_task_config *c, loom_st **ck)
{
    if (!(*ck = loom_st_new())) return fprintf(stderr, "loom train: out of memory\n"), 1;
    if (loom_checkpoint_read(*ck, c->resume)) return fprintf(stderr, "loom train: %s\n", loom_st_error(*ck)), 2;
    if (!read_config(c, loom_st_meta(*ck, "loom.task")))
        return fprintf(stderr, "loom train: %s: its task configuration is missing or out of range\n", c->resume), 2;
    return 0;
}

/* ---- the loop's callbacks (loom_trainer_fit) ---- */

typedef struct {
    const loom_task_config *c;
    task_model *m;
    loom_metrics **metrics;
    double vloss, vacc; /* the last held-out loss and accuracy */
    int rc;             /* the exit status a callback failed with */
} loop_ctx;

static bool interrupted(void *ctx) { return (void)ctx, loom_tool_caught(); }

/* The batch of this step, whoever runs it (a resumed run draws the same). */
static loom_status next_batch(void *ctx, loom_trainer *t)
{
    loop_ctx *l = ctx;
    make_batch(l->c, l->c->seed * 1000003u + (uint64_t)loom_trainer_steps(t) + 2, l->m->xb, l->m->yb);
    return LOOM_OK;
}

/* One held-out batch, never trained on: its loss (the score) and accuracy. */
static loom_status evaluate(void *ctx, loom_trainer *t, double *score)
{
    loop_ctx *l = ctx;
    make_batch(l->c, l->c->seed * 7919 + 1, l->m->xb, l->m->yb);
    loom_trainer_eval_begin(t);
    loom_status st = loom_trainer_eval_batch(t, &l->vloss);
    if (st) return st;
    l->vacc = accuracy(l->c, loom_trainer_output(t, l->m->out), l->m->yb);
    *score = l->vloss;
    return LOOM_OK;
}

static loom_status progress(void *ctx, const loom_fit_report *f)
{
    loop_ctx *l = ctx;
    const loom_task_config *c = l->c;
    const loom_train_step *s = &f->step;
    if (f->evaluated)
        fprintf(stderr, "step %lld/%lld  loss %.4f  grad norm %.2f  held-out %s %.4f  accuracy %.1f%%  %.0f s\n",
                (long long)s->step, (long long)f->steps, f->loss_avg, s->grad_norm,
                c->task == LOOM_TASK_ADDING ? "MSE" : "loss", l->vloss, 100 * l->vacc, f->seconds);
    if (*l->metrics) {
        char v[64] = ",";
        if (f->evaluated) snprintf(v, sizeof v, "%.6f,%.4f", l->vloss, l->vacc);
        if (loom_metrics_row(*l->metrics, "%lld,%.6f,%.6f,%.6g,%s", (long long)s->step, s->loss, s->grad_norm, s->lr, v))
            return fprintf(stderr, "loom train: --metrics: out of memory\n"), l->rc = 1, LOOM_ERR_NOMEM;
        if ((f->evaluated || loom_metrics_age(*l->metrics) > 10) && (l->rc = loom_tool_flush_metrics("loom train", l->metrics)))
            return LOOM_ERR_IO;
    }
    return LOOM_OK;
}

static loom_status save_now(void *ctx, loom_trainer *t)
{
    loop_ctx *l = ctx;
    (void)t;
    return (l->rc = loom_tool_flush_metrics("loom train", l->metrics)) || (l->rc = save(l->m, l->c)) ? LOOM_ERR_IO : LOOM_OK;
}

int loom_train_task(const loom_task_config *given)
{
    loom_task_config cfg = *given, *c = &cfg;
    loom_st *ck = NULL;
    task_model m = {0};
    loom_metrics *metrics = NULL;
    int rc = c->resume ? open_resume(c, &ck) : 0;
    if (!rc) rc = loom_tool_open_outputs("loom train", c->save, c->metrics, "step,loss,grad_norm,lr,valid_loss,valid_accuracy",
                                         ck ? loom_tool_checkpoint_step(ck) : -1, &metrics);
    if (rc) goto done;
    rc = 1;
    bool adding = c->task == LOOM_TASK_ADDING;
    int B = c->batch;
    loom_error err = {LOOM_ERR_NOMEM, "out of memory"};
    if (!build(&m, c, &err)) {
        fprintf(stderr, "loom train: %s\n", err.msg);
        rc = loom_tool_exit(err.status);
        goto done;
    }
    if (ck && (rc = restore(&m, ck, "loom train", c->resume))) goto done;
    rc = 1;
    printf("%s task, T = %d: %s, hidden %d, layers %d, B=%d, %s lr %g, %ld steps%s\n", adding ? "adding" : "copy", c->steps,
           c->cell->name, c->hidden, c->layers, B, optim_names[c->optimizer], c->lr, c->total,
           adding ? " (predicting the mean scores MSE ≈ 0.167)" : "");
    loop_ctx lc = {.c = c, .m = &m, .metrics = &metrics, .vloss = NAN, .vacc = NAN};
    double t0 = loom_tool_now();
    long step0 = (long)loom_trainer_steps(m.t);
    loom_status st = loom_trainer_fit(m.t, &(loom_fit_opts){.steps = c->total, .eval_every = c->eval_every,
                                                            .save_every = c->save ? c->save_every : 0, .ctx = &lc,
                                                            .next_batch = next_batch, .evaluate = evaluate,
                                                            .progress = progress, .save = save_now, .stop = interrupted});
    if (st) {
        if (!lc.rc) fprintf(stderr, "loom train: %s%s\n", loom_trainer_error(m.t), st == LOOM_ERR_VALUE ? "; stopping" : "");
        rc = lc.rc ? lc.rc : st == LOOM_ERR_VALUE ? 1 : loom_tool_exit(st);
        goto done;
    }
    if (loom_tool_caught()) {
        rc = loom_tool_flush_metrics("loom train", &metrics);
        if (!rc && c->save) rc = save(&m, c);
        rc = loom_tool_interrupted("loom train", (long)loom_trainer_steps(m.t), c->total, c->save, rc);
        goto done;
    }
    double vloss = lc.vloss, vacc = lc.vacc;
    printf("trained %ld steps in %.1f s: held-out %s %.4f, accuracy %.1f%%\n", c->total > step0 ? c->total - step0 : 0,
           loom_tool_now() - t0, adding ? "MSE" : "cross-entropy", vloss, 100 * vacc);
    rc = loom_tool_flush_metrics("loom train", &metrics);
    if (!rc && c->save) rc = save(&m, c);
done:
    if (rc) loom_tool_flush_metrics("loom train", &metrics); /* the rows of a run that stopped */
    loom_metrics_free(metrics);
    loom_st_free(ck);
    release(&m);
    return rc;
}

int loom_eval_task(const char *path)
{
    loom_task_config cfg = {.resume = path}, *c = &cfg;
    loom_st *ck = NULL;
    task_model m = {0};
    int rc = open_resume(c, &ck);
    if (rc) goto done;
    bool adding = c->task == LOOM_TASK_ADDING;
    loom_error err = {LOOM_ERR_NOMEM, "out of memory"};
    if (!build(&m, c, &err)) {
        fprintf(stderr, "loom eval: %s\n", err.msg);
        rc = loom_tool_exit(err.status);
        goto done;
    }
    double loss;
    if ((rc = restore(&m, ck, "loom eval", path))) goto done;
    make_batch(c, c->seed * 7919 + 1, m.xb, m.yb); /* the held-out batch the run evaluated on */
    loom_trainer_eval_begin(m.t);
    if (loom_trainer_eval_batch(m.t, &loss)) {
        fprintf(stderr, "loom eval: %s\n", loom_trainer_error(m.t));
        rc = 1;
        goto done;
    }
    printf("%s task, T = %d, after %lld steps: held-out %s %.4f, accuracy %.1f%%\n", adding ? "adding" : "copy", c->steps,
           (long long)loom_trainer_steps(m.t), adding ? "MSE" : "cross-entropy", loss,
           100 * accuracy(c, loom_trainer_output(m.t, m.out), m.yb));
done:
    loom_st_free(ck);
    release(&m);
    return rc;
}
