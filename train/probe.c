/* A trained model on one batch (see loom/inspect.h: loom_probe). */
#include "loom/inspect.h"
#include "loom/checkpoint.h"
#include "graph/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void loom_probe_close(loom_probe *p)
{
    loom_store_free(p->store);
    loom_graph_free(p->g);
    free(p->x), free(p->y), free(p->zero), free(p->own_binds);
    memset(p, 0, sizeof *p);
}

/* The cross-entropy of the last of T steps alone. */
static loom_tensor last_loss(loom_graph *g, loom_tensor logits, loom_tensor targets, int T)
{
    return loom_cross_entropy(g, loom_slice(g, logits, 0, T - 1, 1), loom_slice(g, targets, 0, T - 1, 1), LOOM_NO_MASK);
}

/* The model p->model over one batch, into p->g (graph errors stay in the graph). */
static loom_status build(loom_probe *p, const loom_probe_opts *o, loom_error *err)
{
    loom_graph *g = p->g = loom_graph_new();
    if (!g) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_model_kind kind = p->model.kind;
    if (kind == LOOM_MODEL_SEQ2SEQ)
        return loom_error_set(err, LOOM_ERR_ARG, "an encoder–decoder's checkpoint: only a language model's or a synthetic "
                                                 "task's (adding, copy) can be looked inside this way");
    if (kind == LOOM_MODEL_WORD2VEC)
        return loom_error_set(err, LOOM_ERR_ARG, "a word2vec checkpoint: it has no recurrent layers to look inside (loom embed reads "
                                                 "its vectors)");
    if (loom_task_reads_data(kind))
        return loom_error_set(err, LOOM_ERR_ARG, "a %s model's checkpoint: only a language model's or a synthetic task's can be "
                                                 "looked inside this way (its sentences are in a file)",
                              loom_model_kind_name(kind));
    if (kind != LOOM_MODEL_LM && (o->text || o->steps))
        return loom_error_set(err, LOOM_ERR_ARG, "a synthetic task's checkpoint: it runs on its own batches, of its own "
                                                 "length (no text, no window length)");
    int T, B = 1;
    if (kind == LOOM_MODEL_LM) {
        loom_lm_opts m = p->model.lm; /* evaluation: no dropout, no truncation */
        T = m.steps = o->steps ? o->steps : m.steps, m.batch = 1, m.dropout = 0, m.trunc = LOOM_TRUNC_NONE, m.truncate = 0;
        loom_lm_build(g, &p->lm, &m);
        p->rnn = &p->lm.rnn;
        p->loss = o->last_step ? last_loss(g, p->lm.logits, p->lm.targets, T) : p->lm.loss;
    } else {
        loom_task_opts *t = &p->model.task;
        loom_task_build(g, &p->task, t);
        p->rnn = &p->task.rnn;
        T = loom_graph_failed(g) ? 0 : (int)loom_graph_node(g, p->task.x)->shape.d[0], B = t->batch;
        p->loss = o->last_step && kind == LOOM_MODEL_COPY ? last_loss(g, p->task.out, p->task.y, T) : p->task.loss;
    }
    if (loom_graph_failed(g)) return loom_error_set(err, loom_graph_status(g), "%s", loom_graph_error(g));
    int S = p->rnn->o.cell->n_states;
    size_t zn = (size_t)p->rnn->o.layers * p->rnn->dirs * B * p->rnn->o.hidden_size;
    bool lm = kind == LOOM_MODEL_LM;
    p->x = malloc(lm ? (size_t)T * sizeof(int32_t) : loom_task_x_bytes(&p->model.task));
    p->y = malloc(lm ? (size_t)T * sizeof(int32_t) : loom_task_y_bytes(&p->model.task));
    p->zero = calloc(zn, sizeof(float));
    p->own_binds = malloc((size_t)(loom_graph_params(g, NULL, 0) + 2 + S) * sizeof *p->own_binds);
    if (!p->x || !p->y || !p->zero || !p->own_binds) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    p->grid = (loom_state_grid){T, p->rnn->o.layers, p->rnn->dirs, S};
    return LOOM_OK;
}

/* The batch: a language model's window of T tokens at ids[at..] and its
 * targets, or the task's batch drawn from its seed. */
static loom_status fill_batch(loom_probe *p, const int32_t *ids, int64_t n, int64_t at, uint64_t seed, int64_t step,
                              loom_error *err)
{
    if (p->model.kind != LOOM_MODEL_LM) {
        loom_task_batch(&p->model.task, seed, step, p->x, p->y);
        return LOOM_OK;
    }
    int T = p->grid.steps;
    if (at + T + 1 > n) at = n - T - 1; /* a held-out part shorter than the window: the text's last window */
    if (at < 0)
        return loom_error_set(err, LOOM_ERR_ARG, "the text (%lld tokens) is too short for one window of %d steps", (long long)n, T);
    for (int t = 0; t < T; t++) ((int32_t *)p->x)[t] = ids[at + t], ((int32_t *)p->y)[t] = ids[at + t + 1];
    return LOOM_OK;
}

/* Every binding: the weights (from `weights` by name), the batch, zero states. */
static loom_status bind(loom_probe *p, const loom_store *weights, loom_error *err)
{
    int np = loom_graph_params(p->g, NULL, 0), nb = 0;
    loom_tensor *params = malloc((size_t)np * sizeof *params);
    if (!params) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_graph_params(p->g, params, np);
    loom_status st = LOOM_OK;
    for (int i = 0; !st && i < np; i++) {
        const char *name = loom_tensor_name(p->g, params[i]);
        float *data = loom_store_data_by_name(weights, name);
        if (!data) st = loom_error_set(err, LOOM_ERR_ARG, "the weights have no parameter %s", name);
        p->own_binds[nb++] = (loom_binding){params[i], data};
    }
    free(params);
    if (st) return st;
    if (p->model.kind == LOOM_MODEL_LM) {
        p->own_binds[nb++] = (loom_binding){p->lm.tokens, p->x};
        p->own_binds[nb++] = (loom_binding){p->lm.targets, p->y};
        for (int s = 0; s < p->grid.states; s++) p->own_binds[nb++] = (loom_binding){p->lm.init[s], p->zero};
    } else {
        p->own_binds[nb++] = (loom_binding){p->task.x, p->x};
        p->own_binds[nb++] = (loom_binding){p->task.y, p->y};
    }
    p->binds = p->own_binds, p->n_binds = nb;
    return LOOM_OK;
}

loom_status loom_probe_new(loom_probe *p, const loom_model_desc *m, uint64_t seed, const loom_store *weights,
                           const int32_t *ids, int64_t n, const loom_probe_opts *opts, loom_error *err)
{
    loom_probe_opts o = opts ? *opts : (loom_probe_opts){0};
    o.text = NULL;
    memset(p, 0, sizeof *p);
    p->model = *m;
    loom_status st = build(p, &o, err);
    if (!st) st = fill_batch(p, ids, n, 0, seed, o.from == LOOM_BATCH_TRAINING ? 0 : LOOM_TASK_HELD_OUT, err);
    if (!st) st = bind(p, weights, err);
    if (st) loom_probe_close(p);
    return st;
}

loom_status loom_probe_open(loom_probe *p, const char *ckpt, const loom_probe_opts *opts, loom_error *err)
{
    loom_probe_opts o = opts ? *opts : (loom_probe_opts){0};
    memset(p, 0, sizeof *p);
    loom_st *f = loom_st_new();
    if (!f) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_train_desc d = {0};
    loom_status st = loom_checkpoint_read(f, ckpt);
    if (st) loom_error_set(err, st, "%s", loom_st_error(f));
    if (!st) st = loom_checkpoint_model(f, &p->model, &d, err);
    if (!st) st = build(p, &o, err);
    if (!st) st = loom_store_fits(p->g, f, err);
    if (!st) {
        p->store = loom_store_new(p->g);
        if ((st = loom_store_status(p->store)) || (st = loom_store_load(p->store, f, false)))
            loom_error_set(err, st, "%s", loom_store_error(p->store));
    }
    int64_t count, first;
    int bad = st ? -1 : loom_store_non_finite(p->store, &count, &first);
    if (bad >= 0)
        st = loom_error_set(err, LOOM_ERR_VALUE, "%s holds %lld values that are not finite (the run diverged)",
                            loom_store_name(p->store, bad), (long long)count);
    if (!st && p->model.kind == LOOM_MODEL_LM) { /* the window: at the start of the held-out text, or of the text */
        loom_vocab *v = loom_vocab_from_string(loom_st_meta(f, "loom.vocab"));
        loom_text *text = NULL;
        int64_t held = 0, n = 0;
        if (!v || loom_vocab_size(v) != p->model.lm.vocab)
            st = loom_error_set(err, LOOM_ERR_FORMAT, "its vocabulary is missing, bad, or not its model's");
        if (!st) st = loom_lm_held_out(f, v, o.text, &text, &held, err);
        const int32_t *ids = st ? NULL : loom_text_ids(text, &n);
        if (!st) st = fill_batch(p, ids, n, o.from == LOOM_BATCH_TRAINING ? 0 : held, 0, 0, err);
        loom_text_free(text);
        loom_vocab_free(v);
    } else if (!st) {
        fill_batch(p, NULL, 0, 0, d.seed, o.from == LOOM_BATCH_TRAINING ? 0 : LOOM_TASK_HELD_OUT, err);
    }
    if (!st) st = bind(p, p->store, err);
    loom_st_free(f);
    if (st) loom_probe_close(p);
    return st;
}

loom_status loom_norms_log_open(loom_norms_log *n, const char *path, long every, const loom_model_desc *d, uint64_t seed,
                                const loom_store *weights, const int32_t *ids, int64_t n_ids, int64_t resumed, loom_error *err)
{
    *n = (loom_norms_log){.every = every > 0 ? every : 1};
    if (!(n->m = loom_metrics_open(path, "step," LOOM_STATE_NORMS_COLUMNS, resumed, err))) return err ? err->status : LOOM_ERR_IO;
    loom_status st = loom_probe_new(&n->probe, d, seed, weights, ids, n_ids, NULL, err);
    if (st) {
        loom_norms_log_close(n);
        return st;
    }
    size_t count = loom_state_count(&n->probe.grid);
    n->norm = malloc(count * sizeof *n->norm), n->norm64 = malloc(count * sizeof *n->norm64);
    if (n->norm && n->norm64) return LOOM_OK;
    loom_norms_log_close(n);
    return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
}

loom_status loom_norms_log_step(loom_norms_log *n, int64_t step, loom_error *err)
{
    if (!n->m || step % n->every) return LOOM_OK;
    loom_probe *p = &n->probe;
    loom_status st = loom_state_grad_norms(p->g, p->loss, &p->grid, p->binds, p->n_binds, n->norm, n->norm64);
    if (st) return loom_error_set(err, st, "%s", loom_graph_error(p->g));
    if ((st = loom_state_norms_rows(n->m, p->g, &p->grid, n->norm, n->norm64, step)))
        return loom_error_set(err, st, "out of memory");
    return loom_metrics_flush(n->m, err);
}

void loom_norms_log_close(loom_norms_log *n)
{
    if (n->probe.g) loom_probe_close(&n->probe);
    loom_metrics_free(n->m);
    free(n->norm), free(n->norm64);
    *n = (loom_norms_log){0};
}
