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

/* The language model's window of T tokens and its targets, from the held-out
 * text or the start of the training text. */
static loom_status lm_window(loom_probe *p, const loom_st *f, const loom_probe_opts *o, int T, loom_error *err)
{
    loom_vocab *v = loom_vocab_from_string(loom_st_meta(f, "loom.vocab"));
    if (!v || loom_vocab_size(v) != p->model.lm.vocab) {
        loom_vocab_free(v);
        return loom_error_set(err, LOOM_ERR_FORMAT, "its vocabulary is missing, bad, or not its model's");
    }
    loom_text *text = NULL;
    int64_t held = 0, n = 0;
    loom_status st = loom_lm_held_out(f, v, o->text, &text, &held, err);
    const int32_t *ids = st ? NULL : loom_text_ids(text, &n);
    int64_t at = o->from == LOOM_BATCH_TRAINING ? 0 : held;
    if (!st && at + T + 1 > n) at = n - T - 1; /* a held-out part shorter than the window: the text's last window */
    if (!st && at < 0)
        st = loom_error_set(err, LOOM_ERR_ARG, "the text (%lld tokens) is too short for one window of %d steps", (long long)n, T);
    if (!st && (!(p->x = malloc((size_t)T * sizeof(int32_t))) || !(p->y = malloc((size_t)T * sizeof(int32_t)))))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    for (int t = 0; !st && t < T; t++) ((int32_t *)p->x)[t] = ids[at + t], ((int32_t *)p->y)[t] = ids[at + t + 1];
    loom_text_free(text);
    loom_vocab_free(v);
    return st;
}

/* The cross-entropy of the last of T steps alone. */
static loom_tensor last_loss(loom_graph *g, loom_tensor logits, loom_tensor targets, int T)
{
    return loom_cross_entropy(g, loom_slice(g, logits, 0, T - 1, 1), loom_slice(g, targets, 0, T - 1, 1), LOOM_NO_MASK);
}

loom_status loom_probe_open(loom_probe *p, const char *ckpt, const loom_probe_opts *opts, loom_error *err)
{
    loom_probe_opts o = opts ? *opts : (loom_probe_opts){0};
    memset(p, 0, sizeof *p);
    loom_st *f = loom_st_new();
    if (!f || !(p->g = loom_graph_new())) {
        loom_st_free(f);
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    }
    loom_status st = loom_checkpoint_read(f, ckpt);
    if (st) loom_error_set(err, st, "%s", loom_st_error(f));
    if (!st) st = loom_checkpoint_model(f, &p->model, NULL, err);
    loom_model_kind kind = p->model.kind;
    if (!st && kind == LOOM_MODEL_SEQ2SEQ)
        st = loom_error_set(err, LOOM_ERR_ARG, "an encoder–decoder's checkpoint: only a language model's or a synthetic "
                                               "task's (adding, copy) can be looked inside this way");
    if (!st && kind != LOOM_MODEL_LM && (o.text || o.steps))
        st = loom_error_set(err, LOOM_ERR_ARG, "a synthetic task's checkpoint: it runs on its own batches, of its own length "
                                               "(no text, no window length)");
    loom_graph *g = p->g;
    int T = 0, B = 1;
    if (!st && kind == LOOM_MODEL_LM) {
        loom_lm_opts m = p->model.lm; /* evaluation: no dropout, no truncation */
        T = m.steps = o.steps ? o.steps : m.steps, m.batch = 1, m.dropout = 0, m.trunc = LOOM_TRUNC_NONE, m.truncate = 0;
        if (!(st = lm_window(p, f, &o, T, err))) {
            loom_lm_build(g, &p->lm, &m);
            p->rnn = &p->lm.rnn;
            p->loss = o.last_step ? last_loss(g, p->lm.logits, p->lm.targets, T) : p->lm.loss;
        }
    } else if (!st) {
        loom_task_opts *t = &p->model.task;
        loom_task_build(g, &p->task, t);
        p->rnn = &p->task.rnn;
        T = (int)loom_graph_node(g, p->task.x)->shape.d[0], B = t->batch;
        p->loss = o.last_step && kind == LOOM_MODEL_COPY ? last_loss(g, p->task.out, p->task.y, T) : p->task.loss;
        p->x = malloc(loom_task_x_bytes(t)), p->y = malloc(loom_task_y_bytes(t));
        loom_train_desc d;
        if (!p->x || !p->y) st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        else if (!(st = loom_checkpoint_model(f, NULL, &d, err)))
            loom_task_batch(t, loom_task_seed(d.seed, o.from == LOOM_BATCH_TRAINING ? 0 : LOOM_TASK_HELD_OUT), p->x, p->y);
    }
    if (!st && loom_graph_failed(g)) st = loom_error_set(err, loom_graph_status(g), "%s", loom_graph_error(g));
    if (!st) st = loom_store_fits(g, f, err);
    if (!st) {
        p->store = loom_store_new(g);
        if ((st = loom_store_status(p->store)) || (st = loom_store_load(p->store, f, false)))
            loom_error_set(err, st, "%s", loom_store_error(p->store));
    }
    int64_t count, first;
    int bad = st ? -1 : loom_store_non_finite(p->store, &count, &first);
    if (bad >= 0)
        st = loom_error_set(err, LOOM_ERR_VALUE, "%s holds %lld values that are not finite (the run diverged)",
                            loom_store_name(p->store, bad), (long long)count);
    int S = st ? 0 : p->rnn->o.cell->n_states, np = st ? 0 : loom_store_count(p->store);
    size_t zn = st ? 0 : (size_t)p->rnn->o.layers * p->rnn->dirs * B * p->rnn->o.hidden_size;
    if (!st && (!(p->own_binds = malloc((size_t)(np + 2 + S) * sizeof *p->own_binds)) || !(p->zero = calloc(zn, sizeof(float)))))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    if (!st) {
        int nb = loom_store_bindings(p->store, p->own_binds, np);
        if (kind == LOOM_MODEL_LM) {
            p->own_binds[nb++] = (loom_binding){p->lm.tokens, p->x};
            p->own_binds[nb++] = (loom_binding){p->lm.targets, p->y};
            for (int s = 0; s < S; s++) p->own_binds[nb++] = (loom_binding){p->lm.init[s], p->zero};
        } else {
            p->own_binds[nb++] = (loom_binding){p->task.x, p->x};
            p->own_binds[nb++] = (loom_binding){p->task.y, p->y};
        }
        p->binds = p->own_binds, p->n_binds = nb;
        p->grid = (loom_state_grid){T, p->rnn->o.layers, p->rnn->dirs, S};
    }
    loom_st_free(f);
    if (st) loom_probe_close(p);
    return st;
}
