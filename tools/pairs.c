/* An encoder–decoder's data for training, translation and evaluation:
 * its pairs (a file, or a synthetic task's text) and the description a
 * checkpoint keeps of them. */
#include "tool.h"

#include "loom/loom.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const task_names[] = {"seq2seq", "reverse", "dates"};

void s2s_report_bad_lines(const char *cmd, const loom_pairs *p, const char *path)
{
    const int64_t *bad;
    int64_t n = loom_pairs_bad_lines(p, &bad);
    if (!n) return;
    fprintf(stderr, "%s: %s: %lld line%s without a tab or with an empty side, not used: line", cmd, path, (long long)n,
            n > 1 ? "s" : "");
    for (int64_t i = 0; i < n && i < 10; i++) fprintf(stderr, "%s %lld", i ? "," : "", (long long)bad[i]);
    fprintf(stderr, "%s\n", n > 10 ? ", ..." : "");
}

int s2s_pairs(const char *cmd, const train_args *a, const loom_vocab *const *vocab, s2s_data *r)
{
    int64_t n_valid = a->pairs / 10 > 0 ? a->pairs / 10 : 1;
    loom_pairs_opts po = {.num_steps = (int)a->m.steps, .min_freq = (int)a->min_freq, .valid_frac = 0.1,
                          .seed = (uint64_t)a->m.seed};
    char *text = NULL;
    if (a->task == TASK_REVERSE) {
        int len = (int)a->m.steps;
        po.num_steps = len + 1;
        text = loom_task_reverse_pairs(a->pairs + n_valid, a->min_len ? (int)a->min_len : len, len, (uint64_t)a->m.seed);
    } else if (a->task == TASK_DATES) {
        po.target_steps = 11; /* yyyy-mm-dd and <eos> */
        char *train = loom_task_date_pairs(a->pairs, false, (uint64_t)a->m.seed);
        char *held = loom_task_date_pairs(n_valid, true, (uint64_t)a->m.seed + 1);
        size_t nt = train ? strlen(train) : 0, nh = held ? strlen(held) : 0;
        if (train && held && (text = malloc(nt + nh + 1))) memcpy(text, train, nt), memcpy(text + nt, held, nh + 1);
        free(train), free(held);
    }
    if (a->task != TASK_SEQ2SEQ) {
        if (a->min_len > a->m.steps) return tool_fail(cmd, "--min-len", "must not exceed --seq-len");
        if (!text) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
        po.chars = po.keep_order = true;
        po.valid_frac = (double)n_valid / (double)(a->pairs + n_valid);
    }
    if (vocab) po.vocab[0] = vocab[0], po.vocab[1] = vocab[1];
    if (a->valid) po.valid_frac = 0; /* the held-out pairs are the --valid file's */
    r->pairs = loom_pairs_new(&po);
    loom_status st = !r->pairs ? LOOM_ERR_NOMEM : text ? loom_pairs_parse(r->pairs, text, strlen(text)) : loom_pairs_read(r->pairs, a->data);
    free(text);
    if (st) return tool_fail(cmd, r->pairs ? loom_pairs_error(r->pairs) : "out of memory", NULL);
    if (a->task == TASK_SEQ2SEQ) s2s_report_bad_lines(cmd, r->pairs, a->data);
    r->held = r->pairs, r->held_part = true;
    if (a->valid) {
        po.vocab[0] = loom_pairs_vocab(r->pairs, 0), po.vocab[1] = loom_pairs_vocab(r->pairs, 1);
        po.keep_order = true;
        if (!(r->valid = loom_pairs_new(&po))) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
        if (loom_pairs_read(r->valid, a->valid)) return tool_fail(cmd, loom_pairs_error(r->valid), NULL);
        s2s_report_bad_lines(cmd, r->valid, a->valid);
        r->held = r->valid, r->held_part = false;
    }
    if (loom_pairs_count(r->pairs, false) < 1 || loom_pairs_count(r->held, r->held_part) < 1)
        return tool_fail(cmd, a->data ? a->data : "the task", "too few pairs for a training and a held-out part");
    return 0;
}

void s2s_data_free(s2s_data *d)
{
    loom_pairs_free(d->pairs), loom_pairs_free(d->valid);
    *d = (s2s_data){0};
}

/* An encoder–decoder checkpoint's description: its model, training and
 * vocabularies, and its task with its data (paths, a synthetic task's
 * generator settings) in t — the paths copied into paths (2 × n bytes).
 * 0, or exit status 2 with a message. */
int s2s_describe(const char *cmd, const loom_st *ck, const char *path, loom_seq2seq_opts *mo, loom_train_desc *train, loom_vocab **v,
                    train_args *t, char *paths, size_t n)
{
    loom_model_desc m;
    loom_error err = {0};
    if (loom_checkpoint_model(ck, &m, train, &err)) return tool_fail(cmd, path, err.msg);
    if (m.kind != LOOM_MODEL_SEQ2SEQ)
        return tool_fail(cmd, path, m.kind == LOOM_MODEL_LM ? "a language model's checkpoint, not an encoder–decoder's"
                                                  : "a synthetic task's checkpoint (adding or copy), not an encoder–decoder's");
    *mo = m.seq2seq;
    v[0] = loom_vocab_from_string(loom_st_meta(ck, "loom.src_vocab"));
    v[1] = v[0] ? loom_vocab_from_string(loom_st_meta(ck, "loom.tgt_vocab")) : NULL;
    if (!v[1] || loom_vocab_size(v[0]) != mo->src_vocab || loom_vocab_size(v[1]) != mo->tgt_vocab)
        return tool_fail(cmd, path, "its vocabularies are missing, bad, or not its model's");
    char *json = loom_checkpoint_data(ck);
    cJSON *o = cJSON_Parse(json ? json : "");
    free(json);
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(o, "task");
    t->task = TASK_SEQ2SEQ;
    for (int k = 0; k < 3; k++)
        if (cJSON_IsString(task) && !strcmp(task->valuestring, task_names[k])) t->task = TASK_SEQ2SEQ + k;
    bool known = true; /* the generator's settings: only a synthetic task needs them */
    t->pairs = (long)tool_jnum(o, "pairs", 1, TOOL_MAX_PAIRS, &known);
    t->min_len = (long)tool_jnum(o, "min_len", 0, LOOM_SEQ2SEQ_MAX_STEPS, &known);
    bool ok = true;
    t->min_freq = (long)tool_jnum(o, "min_freq", 0, 1 << 30, &ok);
    if (!known && t->task != TASK_SEQ2SEQ) t->task = TASK_LM; /* cannot be regenerated */
    t->m.seed = (long)train->seed;
    t->m.steps = t->task == TASK_REVERSE ? mo->src_steps - 1 : mo->src_steps;
    const char *key[2] = {"path", "valid"};
    const char **into[2] = {&t->data, &t->valid};
    for (int k = 0; k < 2; k++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, key[k]);
        if (cJSON_IsString(p) && strlen(p->valuestring) < n) *into[k] = strcpy(paths + k * n, p->valuestring);
    }
    cJSON_Delete(o);
    return 0;
}

void s2s_unload(s2s_ckpt *l)
{
    loom_store_free(l->store);
    loom_graph_free(l->g);
    loom_vocab_free(l->v[0]), loom_vocab_free(l->v[1]);
    loom_st_free(l->ck);
}

/* The checkpoint's model, its decoding graph for `batch` sentences and
 * `rows` rows, and its weights. */
int s2s_load(s2s_ckpt *l, const char *cmd, const char *path, int batch, int rows)
{
    memset(l, 0, sizeof *l);
    if (!path) return tool_fail(cmd, "--load CKPT is required", NULL);
    if (!(l->ck = loom_st_new()) || !(l->g = loom_graph_new())) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    if (loom_checkpoint_read(l->ck, path)) return tool_fail(cmd, loom_st_error(l->ck), NULL);
    loom_train_desc train;
    int rc = s2s_describe(cmd, l->ck, path, &l->mo, &train, l->v, &l->task, l->paths, sizeof l->paths / 2);
    if (rc) return rc;
    l->mo.batch = batch;
    loom_seq2seq_build_decoder(l->g, &l->m, &l->mo, rows);
    loom_error err = {0};
    if (!loom_graph_failed(l->g) && loom_store_fits(l->g, l->ck, &err)) return tool_fail(cmd, path, err.msg);
    l->store = loom_store_new(l->g);
    if (loom_graph_failed(l->g)) return tool_fail_st(cmd, loom_graph_status(l->g), loom_graph_error(l->g), NULL);
    if (loom_store_status(l->store) || loom_store_load(l->store, l->ck, false)) return tool_fail_st(cmd, loom_store_status(l->store), loom_store_error(l->store), NULL);
    return tool_finite_weights(cmd, path, l->store) ? 0 : 2;
}

const char *tool_token_label(const loom_vocab *v, int32_t id)
{
    const char *t = loom_vocab_token(v, id);
    return !t ? "?" : !strcmp(t, " ") ? "\u2423" : !strcmp(t, "\n") ? "\u21b5" : t;
}
