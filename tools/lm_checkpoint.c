/* loom train of a language model: its checkpoints — the model's,
 * training's and text's description (loom/model.h), the vocabulary and
 * the trainer's state — written, and read back to resume. */
#include "lm.h"

#include "loom/loom.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char command[] = "loom train";

static int fail(const char *what, const char *why) { return tool_fail(command, what, why); }
static int fail_st(loom_status st, const char *what, const char *why) { return tool_fail_st(command, st, what, why); }

/* What the run trains on, as the checkpoint's loom.data. */
static char *data_json(const train_args *a)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "path", a->data) &&
              cJSON_AddStringToObject(o, "tokens", a->tokens == LOOM_TOKENS_WORD ? "word" : "char") &&
              cJSON_AddBoolToObject(o, "letters_only", a->letters_only) &&
              (!a->valid || cJSON_AddStringToObject(o, "valid", a->valid));
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* The checkpoint's description replaces the model's, optimiser's and
 * data's options; what the run does next (--steps, --save, ...) stays the
 * user's. The text's path, if it names one, in *path (the object's: valid
 * until o is deleted). */
static bool take_checkpoint(train_args *a, const loom_st *f, const char *name, cJSON **o, const char **path)
{
    loom_model_desc m;
    loom_train_desc t;
    loom_error err = {0};
    if (loom_checkpoint_model(f, &m, &t, &err)) return fail(name, err.msg), false;
    if (m.kind != LOOM_MODEL_LM)
        return fail(name, "not a language model's checkpoint (loom eval and loom train --resume read every kind)"), false;
    const loom_lm_opts *l = &m.lm;
    a->m.cell = l->cell, a->m.hidden = l->hidden, a->m.layers = l->layers, a->embed = l->embed, a->dropout = l->dropout;
    a->m.stacking = l->stacking, a->tie_weights = l->tie_weights, a->variational = l->variational;
    a->sampled_softmax = l->sampled_softmax, a->unit_forget_bias = l->unit_forget_bias;
    a->state_dropout = l->state_dropout, a->weight_drop = l->weight_drop, a->zoneout = l->zoneout, a->dropout_embed = l->dropout_embed;
    a->m.steps = l->steps, a->m.batch = l->batch, a->m.seed = (long)l->seed;
    a->truncate = l->truncate, a->random_trunc = l->trunc == LOOM_TRUNC_RANDOM;
    a->optimizer = t.optim.kind, a->lr = t.optim.lr, a->momentum = t.optim.momentum, a->weight_decay = t.optim.weight_decay;
    a->schedule = t.schedule.kind, a->warmup = t.schedule.warmup, a->clip = t.clip_norm, a->sequential = t.sequential;
    char *data = loom_checkpoint_data(f);
    *o = cJSON_Parse(data ? data : "");
    free(data);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(*o, "tokens"), *p = cJSON_GetObjectItemCaseSensitive(*o, "path");
    a->tokens = cJSON_IsString(tokens) && !strcmp(tokens->valuestring, "word") ? LOOM_TOKENS_WORD : LOOM_TOKENS_CHAR;
    a->letters_only = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*o, "letters_only"));
    *path = cJSON_IsString(p) ? p->valuestring : NULL;
    return *o != NULL || (fail_st(LOOM_ERR_NOMEM, "out of memory", NULL), false);
}

/* Everything the run needs to continue as if it had not stopped. */
int lm_save(run *r)
{
    const train_args *a = &r->a;
    loom_st *f = loom_st_new();
    char *data = data_json(a), *voc = loom_vocab_to_string(loom_text_vocab(r->text));
    loom_model_desc m = {.kind = LOOM_MODEL_LM, .lm = r->lm.o};
    bool ok = f && data && voc && !loom_checkpoint_describe(f, &m, &r->train, data) && !loom_st_set_meta(f, "loom.vocab", voc);
    int rc = 0;
    if (ok && loom_trainer_save(r->t, f)) rc = fail_st(LOOM_ERR_NOMEM, "checkpoint", loom_trainer_error(r->t));
    else if (!ok) rc = fail_st(LOOM_ERR_NOMEM, "checkpoint", f ? loom_st_error(f) : "out of memory");
    else rc = tool_write_checkpoint(command, f, a->save, r->comm); /* every rank gathered its states, rank 0 writes */
    free(data), free(voc);
    loom_st_free(f);
    return rc;
}

/* Reads the checkpoint and takes its configuration and vocabulary (before
 * the text is read and the model built). */
int lm_open(run *r)
{
    r->ck = loom_st_new();
    if (!r->ck) return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    if (loom_checkpoint_read(r->ck, r->a.resume)) return fail(loom_st_error(r->ck), NULL);
    const char *own;
    if (!take_checkpoint(&r->a, r->ck, r->a.resume, &r->ck_data, &own)) return 2;
    if (!(r->ck_vocab = loom_vocab_from_string(loom_st_meta(r->ck, "loom.vocab"))) || tool_checkpoint_step(r->ck) < 0)
        return fail(r->a.resume, "not a checkpoint of loom train (its vocabulary or step is missing or bad)");
    if (!r->a.data) { /* the text it was trained on (the data order refers to it) */
        if (!own) return fail(r->a.resume, "it does not name its training text: give --data");
        bool builtin = tool_is_corpus(own);
        if (!builtin && access(own, R_OK) != 0)
            return fprintf(stderr, "loom train: %s was trained on %s, which cannot be read here: give --data\n", r->a.resume, own),
                   2;
        r->a.data = builtin ? tool_corpus() : own;
    }
    return 0;
}

/* Weights, optimiser state, data position, carried state and dropout
 * counter from the checkpoint, into the model just built. */
int lm_restore(run *r)
{
    const loom_st *f = r->ck;
    if (loom_trainer_restore(r->t, f)) return fail(r->a.resume, loom_trainer_error(r->t));
    r->step0 = (long)loom_trainer_steps(r->t);
    if (r->step0 >= r->a.steps)
        fprintf(stderr, "loom train: the checkpoint has %ld steps already; --steps %ld asks for no more\n", r->step0,
                r->a.steps);
    return 0;
}

