/* loom train of an encoder–decoder: its checkpoints — the model's,
 * training's and task's description (loom/model.h), the vocabularies, the
 * trainer's state and the pairs' position — written, and read back to
 * resume. */
#include "seq2seq.h"

#include "loom/loom.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

static const char cmd[] = "loom train";
static const char *const task_names[] = {"seq2seq", "reverse", "dates"};

static int fail(const char *what, const char *why) { return tool_fail(cmd, what, why); }

/* What the run trains on, as the checkpoint's loom.data: the task, its
 * files, or a synthetic task's generator settings. */
static char *data_json(const train_args *a)
{
    cJSON *j = cJSON_CreateObject();
    bool ok = j && cJSON_AddStringToObject(j, "task", task_names[a->task - TASK_SEQ2SEQ]) &&
              (!a->data || cJSON_AddStringToObject(j, "path", a->data)) &&
              (!a->valid || cJSON_AddStringToObject(j, "valid", a->valid)) &&
              cJSON_AddNumberToObject(j, "pairs", (double)a->pairs) && cJSON_AddNumberToObject(j, "min_len", (double)a->min_len) &&
              cJSON_AddNumberToObject(j, "min_freq", (double)a->min_freq);
    char *s = ok ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}

int s2s_save(s2s *r)
{
    loom_st *f = loom_st_new();
    char *data = data_json(r->a), *v0 = loom_vocab_to_string(loom_pairs_vocab(r->d.pairs, 0));
    char *v1 = loom_vocab_to_string(loom_pairs_vocab(r->d.pairs, 1));
    loom_model_desc m = {.kind = LOOM_MODEL_SEQ2SEQ, .seq2seq = r->mo};
    bool ok = f && data && v0 && v1 && !loom_checkpoint_describe(f, &m, &r->train, data) &&
              !loom_st_set_meta(f, "loom.src_vocab", v0) && !loom_st_set_meta(f, "loom.tgt_vocab", v1) &&
              loom_pair_batches_save(r->batches, f);
    int rc = 0;
    if (ok && loom_trainer_save(r->t, f)) rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "checkpoint", loom_trainer_error(r->t));
    else if (!ok) rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "checkpoint", f ? loom_st_error(f) : "out of memory");
    else rc = tool_write_checkpoint(cmd, f, r->a->save, r->comm);
    free(data), free(v0), free(v1);
    loom_st_free(f);
    return rc;
}

/* The checkpoint's model, task and optimiser replace the options; what the
 * run does next (--steps, --save, --eval-every, --metrics) stays the user's.
 * Its vocabularies come back in v. */
int s2s_resume_config(train_args *a, const loom_st *ck, loom_vocab **v, char *data_buf, size_t data_len)
{
    loom_seq2seq_opts m;
    loom_train_desc t;
    train_args task = {0};
    int rc = s2s_describe(cmd, ck, a->resume, &m, &t, v, &task, data_buf, data_len / 2);
    if (rc) return rc;
    if (task.task < TASK_SEQ2SEQ)
        return fail(a->resume, "its synthetic task's settings are missing: it cannot be resumed");
    a->task = task.task, a->m.cell = m.cell, a->m.hidden = m.hidden, a->m.layers = m.layers, a->embed = m.embed;
    a->m.stacking = m.stacking, a->dec_layers = m.dec_layers;
    a->m.bidirectional = m.bidirectional, a->attention = m.attention, a->m.batch = m.batch, a->dropout = m.dropout;
    a->m.steps = task.m.steps, a->m.seed = task.m.seed, a->pairs = task.pairs, a->min_len = task.min_len;
    a->min_freq = task.min_freq;
    a->optimizer = t.optim.kind, a->lr = t.optim.lr, a->momentum = t.optim.momentum, a->weight_decay = t.optim.weight_decay;
    a->clip = t.clip_norm, a->schedule = t.schedule.kind, a->warmup = t.schedule.warmup, a->teacher_forcing = t.teacher_forcing;
    if (!a->data) a->data = task.data;
    if (!a->valid) a->valid = task.valid;
    if (a->task == TASK_SEQ2SEQ && !a->data) return fail(a->resume, "it does not name its pairs: give --data");
    return 0;
}

/* The weights, the optimiser, the data order and position, the random
 * draws and the dropout counter: the run goes on as if it had not stopped. */
int s2s_restore(s2s *r, const loom_st *ck)
{
    if (!loom_pair_batches_restore(r->batches, ck))
        return fail(r->a->resume, "its data position is missing or does not fit its pairs");
    if (loom_trainer_restore(r->t, ck)) return fail(r->a->resume, loom_trainer_error(r->t));
    r->step0 = (long)loom_trainer_steps(r->t);
    if (r->step0 >= r->a->steps)
        fprintf(stderr, "%s: the checkpoint has %ld steps already; --steps %ld asks for no more\n", cmd, r->step0, r->a->steps);
    return 0;
}

