/* Models as data (loom/model.h): descriptions to and from JSON, and the
 * checkpoint schema that carries them — format 1, and format 0 (before
 * versions) read into the same description. */
#include "loom/model.h"
#include "loom/data.h"
#include "graph/error.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON: enums by name, numbers range-checked ---- */

static const char *const kind_names[] = {"lm",     "seq2seq", "adding",         "copy",
                                         "sine",   "temporal-order", "classify", "tag", "word2vec"};
static const char *const w2v_names[] = {"skipgram", "cbow"};
static const char *const pool_names[] = {"last", "mean"};
static const char *const optim_names[] = {"sgd", "adam", "adamw"};
static const char *const sched_names[] = {"constant", "step", "exp", "cosine", "linear"};
static const char *const trunc_names[] = {"none", "fixed", "random"};
static const char *const attention_names[] = {"none", "additive", "dot", "plain"};
static const char *const stacking_names[] = {"plain", "residual", "highway", "dense"};

#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

const char *loom_model_kind_name(loom_model_kind k) { return k >= 0 && k < COUNT(kind_names) ? kind_names[k] : "?"; }

/* What a reader found wrong first (the rest is not looked at). */
typedef struct {
    const cJSON *o;
    const char *what; /* "model", "training" */
    loom_error *err;
    bool ok;
} reader;

static void bad(reader *r, const char *key, const char *why)
{
    if (r->ok && r->err) {
        if (*key) loom_error_set(r->err, LOOM_ERR_FORMAT, "its %s: '%s' %s", r->what, key, why);
        else loom_error_set(r->err, LOOM_ERR_FORMAT, "its %s %s", r->what, why);
    }
    r->ok = false;
}

static double num(reader *r, const char *key, double lo, double hi, bool integer)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->o, key);
    if (!cJSON_IsNumber(v)) return bad(r, key, "is missing or not a number"), lo;
    double x = v->valuedouble;
    if (!(x >= lo && x <= hi) || (integer && x != floor(x))) return bad(r, key, "is out of range"), lo;
    return x;
}

static int name(reader *r, const char *key, const char *const *names, int n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->o, key);
    for (int i = 0; cJSON_IsString(v) && i < n; i++)
        if (!strcmp(v->valuestring, names[i])) return i;
    return bad(r, key, "is missing or not one of its names"), 0;
}

static bool flag(reader *r, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->o, key);
    if (!cJSON_IsBool(v)) return bad(r, key, "is missing or not true or false"), false;
    return cJSON_IsTrue(v);
}

/* The cell by name; a cell made from equations comes with them
 * ("cell_source"), so that it loads where its file is not. */
static const loom_cell_def *cell(reader *r, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->o, key), *src = cJSON_GetObjectItemCaseSensitive(r->o, "cell_source");
    if (!cJSON_IsString(v)) return bad(r, key, "is missing or not a name"), NULL;
    const loom_cell_def *c = NULL;
    char why[1200];
    if (src) {
        loom_error e = {0};
        c = cJSON_IsString(src) ? loom_cell_parse(src->valuestring, NULL, &e) : NULL;
        if (!c) {
            snprintf(why, sizeof why, "does not hold a cell's equations%s%s", *e.msg ? ": " : "", e.msg);
            return bad(r, "cell_source", why), NULL;
        }
        if (strcmp(c->name, v->valuestring))
            return bad(r, "cell_source", "holds the equations of another cell than 'cell' names"), NULL;
        return c;
    }
    if (!(c = loom_cell_by_name(v->valuestring))) {
        snprintf(why, sizeof why, "names '%.64s', a cell this program does not know: a cell written in C, which must be "
                 "registered before the file is read (loom --cell-lib, or loom_cell_register)", v->valuestring);
        bad(r, key, why);
    }
    return c;
}

/* "cell": its name, and "cell_source": its equations when it has them. */
static bool add_cell(cJSON *o, const loom_cell_def *c)
{
    const char *src = c ? loom_cell_source(c) : NULL;
    return c && cJSON_AddStringToObject(o, "cell", c->name) && (!src || cJSON_AddStringToObject(o, "cell_source", src));
}

#define INT(r, key, lo, hi) ((int)num(r, key, lo, hi, true))

/* A float as the shortest decimal that reads back as it (0.01f is written
 * 0.01, not 0.00999999977648258). */
static double shortest(float f)
{
    char buf[32];
    for (int digits = 6; digits < 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if ((float)strtod(buf, NULL) == f) return strtod(buf, NULL);
    }
    return (double)f;
}

static char *print(cJSON *o, bool ok)
{
    char *s = ok && o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* "stacking": written for stacks that are not plain (files of plain ones stay as they were) */
static bool add_stacking(cJSON *o, loom_stacking s)
{
    return s == LOOM_STACK_PLAIN ||
           ((int)s > 0 && (int)s < (int)COUNT(stacking_names) && cJSON_AddStringToObject(o, "stacking", stacking_names[s]));
}

char *loom_model_json(const loom_model_desc *m)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && m && m->kind >= 0 && m->kind < COUNT(kind_names) && cJSON_AddStringToObject(o, "kind", kind_names[m->kind]);
    if (ok && m->kind == LOOM_MODEL_LM) {
        const loom_lm_opts *l = &m->lm;
        ok = add_cell(o, l->cell) && cJSON_AddNumberToObject(o, "vocab", l->vocab) &&
             cJSON_AddNumberToObject(o, "embed", l->embed) && cJSON_AddNumberToObject(o, "hidden", l->hidden) &&
             cJSON_AddNumberToObject(o, "layers", l->layers ? l->layers : 1) &&
             cJSON_AddNumberToObject(o, "dropout", shortest(l->dropout)) && cJSON_AddNumberToObject(o, "steps", l->steps) &&
             cJSON_AddNumberToObject(o, "batch", l->batch) && cJSON_AddNumberToObject(o, "seed", (double)l->seed) &&
             cJSON_AddStringToObject(o, "truncation", trunc_names[l->trunc]) &&
             cJSON_AddNumberToObject(o, "truncate", l->truncate) && add_stacking(o, l->stacking) &&
             (!l->tie_weights || cJSON_AddBoolToObject(o, "tie_weights", true)) &&
             (!l->sampled_softmax || cJSON_AddNumberToObject(o, "sampled_softmax", l->sampled_softmax)) &&
             (!l->unit_forget_bias || cJSON_AddBoolToObject(o, "unit_forget_bias", true)) &&
             (!l->variational || cJSON_AddBoolToObject(o, "variational", true)) &&
             (!l->state_dropout || cJSON_AddNumberToObject(o, "state_dropout", shortest(l->state_dropout))) &&
             (!l->weight_drop || cJSON_AddNumberToObject(o, "weight_drop", shortest(l->weight_drop))) &&
             (!l->zoneout || cJSON_AddNumberToObject(o, "zoneout", shortest(l->zoneout))) &&
             (!l->dropout_embed || cJSON_AddNumberToObject(o, "dropout_embed", shortest(l->dropout_embed)));
    } else if (ok && m->kind == LOOM_MODEL_SEQ2SEQ) {
        const loom_seq2seq_opts *s = &m->seq2seq;
        ok = add_cell(o, s->cell) &&
             cJSON_AddNumberToObject(o, "src_vocab", s->src_vocab) && cJSON_AddNumberToObject(o, "tgt_vocab", s->tgt_vocab) &&
             cJSON_AddNumberToObject(o, "embed", s->embed) && cJSON_AddNumberToObject(o, "hidden", s->hidden) &&
             cJSON_AddNumberToObject(o, "layers", s->layers ? s->layers : 1) &&
             cJSON_AddBoolToObject(o, "bidirectional", s->bidirectional) &&
             cJSON_AddNumberToObject(o, "dropout", shortest(s->dropout)) &&
             cJSON_AddStringToObject(o, "attention", attention_names[s->attention]) &&
             cJSON_AddNumberToObject(o, "src_steps", s->src_steps) && cJSON_AddNumberToObject(o, "tgt_steps", s->tgt_steps) &&
             cJSON_AddNumberToObject(o, "batch", s->batch) && cJSON_AddBoolToObject(o, "sampled", s->sampled) &&
             cJSON_AddNumberToObject(o, "seed", (double)s->seed) && add_stacking(o, s->stacking) &&
             (!s->dec_layers || s->dec_layers == (s->layers ? s->layers : 1) || cJSON_AddNumberToObject(o, "dec_layers", s->dec_layers));
    } else if (ok && m->kind == LOOM_MODEL_WORD2VEC) {
        const loom_w2v_opts *w = &m->w2v;
        ok = w->kind >= 0 && w->kind < COUNT(w2v_names) && cJSON_AddStringToObject(o, "model", w2v_names[w->kind]) &&
             cJSON_AddNumberToObject(o, "vocab", w->vocab) && cJSON_AddNumberToObject(o, "dim", w->dim) &&
             cJSON_AddNumberToObject(o, "window", w->window) && cJSON_AddNumberToObject(o, "negatives", w->negatives) &&
             cJSON_AddNumberToObject(o, "batch", w->batch) && cJSON_AddNumberToObject(o, "subsample", shortest(w->subsample));
    } else if (ok) {
        const loom_task_opts *t = &m->task;
        bool pooled = t->kind == LOOM_MODEL_ORDER || t->kind == LOOM_MODEL_CLASSIFY, data = loom_task_reads_data(t->kind);
        ok = add_cell(o, t->cell) && cJSON_AddNumberToObject(o, "steps", t->steps) &&
             cJSON_AddNumberToObject(o, "batch", t->batch) && cJSON_AddNumberToObject(o, "hidden", t->hidden) &&
             cJSON_AddNumberToObject(o, "layers", t->layers ? t->layers : 1) && add_stacking(o, t->stacking) &&
             (!t->bidirectional || cJSON_AddBoolToObject(o, "bidirectional", true)) &&
             (!t->unit_forget_bias || cJSON_AddBoolToObject(o, "unit_forget_bias", true)) &&
             (!pooled || cJSON_AddStringToObject(o, "pool", pool_names[t->pool == LOOM_POOL_MEAN])) &&
             (!data || (cJSON_AddNumberToObject(o, "vocab", t->vocab) && cJSON_AddNumberToObject(o, "embed", t->embed) &&
                        cJSON_AddNumberToObject(o, "classes", t->classes)));
    }
    return print(o, ok);
}

/* "stacking", absent from plain stacks' descriptions */
static loom_stacking stacking(reader *r, const cJSON *o)
{
    if (!cJSON_GetObjectItemCaseSensitive(o, "stacking")) return LOOM_STACK_PLAIN;
    return (loom_stacking)name(r, "stacking", stacking_names, COUNT(stacking_names));
}

loom_status loom_model_parse(const char *json, loom_model_desc *m, loom_error *err)
{
    cJSON *o = cJSON_Parse(json ? json : "");
    reader r = {o, "model", err, true};
    memset(m, 0, sizeof *m);
    if (!o) bad(&r, "", "is not a JSON object");
    if (r.ok) m->kind = (loom_model_kind)name(&r, "kind", kind_names, COUNT(kind_names));
    if (r.ok && m->kind == LOOM_MODEL_LM) {
        loom_lm_opts *l = &m->lm;
        l->cell = cell(&r, "cell");
        l->vocab = INT(&r, "vocab", 1, LOOM_MODEL_MAX_VOCAB);
        l->embed = INT(&r, "embed", 0, LOOM_MODEL_MAX_EMBED);
        l->hidden = INT(&r, "hidden", 1, LOOM_MODEL_MAX_WIDTH);
        l->layers = INT(&r, "layers", 1, LOOM_RNN_MAX_LAYERS);
        l->dropout = (float)num(&r, "dropout", 0, 0.99, false);
        l->steps = INT(&r, "steps", 1, LOOM_MODEL_MAX_STEPS);
        l->batch = INT(&r, "batch", 1, LOOM_MODEL_MAX_BATCH);
        l->seed = (uint64_t)num(&r, "seed", 0, 9007199254740992.0, true);
        l->trunc = (loom_trunc)name(&r, "truncation", trunc_names, COUNT(trunc_names));
        l->truncate = l->trunc ? INT(&r, "truncate", 1, l->steps > 1 ? l->steps - 1 : 1) : 0;
        l->stacking = stacking(&r, o);
        l->tie_weights = cJSON_GetObjectItemCaseSensitive(o, "tie_weights") && flag(&r, "tie_weights"); /* absent: untied */
        l->sampled_softmax = cJSON_GetObjectItemCaseSensitive(o, "sampled_softmax") ? INT(&r, "sampled_softmax", 1, l->vocab > 1 ? l->vocab - 1 : 1) : 0;
        l->unit_forget_bias = cJSON_GetObjectItemCaseSensitive(o, "unit_forget_bias") && flag(&r, "unit_forget_bias");
        /* the regularisers: absent, none */
        l->variational = cJSON_GetObjectItemCaseSensitive(o, "variational") && flag(&r, "variational");
        l->state_dropout = cJSON_GetObjectItemCaseSensitive(o, "state_dropout") ? (float)num(&r, "state_dropout", 0, 0.99, false) : 0;
        l->weight_drop = cJSON_GetObjectItemCaseSensitive(o, "weight_drop") ? (float)num(&r, "weight_drop", 0, 0.99, false) : 0;
        l->zoneout = cJSON_GetObjectItemCaseSensitive(o, "zoneout") ? (float)num(&r, "zoneout", 0, 0.99, false) : 0;
        l->dropout_embed = cJSON_GetObjectItemCaseSensitive(o, "dropout_embed") ? (float)num(&r, "dropout_embed", 0, 0.99, false) : 0;
    } else if (r.ok && m->kind == LOOM_MODEL_SEQ2SEQ) {
        loom_seq2seq_opts *s = &m->seq2seq;
        s->cell = cell(&r, "cell");
        s->src_vocab = INT(&r, "src_vocab", 4, LOOM_MODEL_MAX_VOCAB);
        s->tgt_vocab = INT(&r, "tgt_vocab", 4, LOOM_MODEL_MAX_VOCAB);
        s->embed = INT(&r, "embed", 1, LOOM_MODEL_MAX_EMBED);
        s->hidden = INT(&r, "hidden", 1, LOOM_MODEL_MAX_WIDTH);
        s->layers = INT(&r, "layers", 1, LOOM_RNN_MAX_LAYERS);
        s->bidirectional = flag(&r, "bidirectional");
        s->dropout = (float)num(&r, "dropout", 0, 0.99, false);
        s->attention = (loom_attention)name(&r, "attention", attention_names, COUNT(attention_names));
        s->src_steps = INT(&r, "src_steps", 1, LOOM_SEQ2SEQ_MAX_STEPS);
        s->tgt_steps = INT(&r, "tgt_steps", 1, LOOM_SEQ2SEQ_MAX_STEPS);
        s->batch = INT(&r, "batch", 1, LOOM_MODEL_MAX_BATCH);
        s->sampled = flag(&r, "sampled");
        s->seed = (uint64_t)num(&r, "seed", 0, 9007199254740992.0, true);
        s->stacking = stacking(&r, o);
        s->dec_layers = cJSON_GetObjectItemCaseSensitive(o, "dec_layers") ? INT(&r, "dec_layers", 1, LOOM_RNN_MAX_LAYERS) : 0; /* absent: the encoder's */
    } else if (r.ok && m->kind == LOOM_MODEL_WORD2VEC) {
        loom_w2v_opts *w = &m->w2v;
        w->kind = (loom_w2v_kind)name(&r, "model", w2v_names, COUNT(w2v_names));
        w->vocab = INT(&r, "vocab", 2, LOOM_MODEL_MAX_VOCAB);
        w->dim = INT(&r, "dim", 1, LOOM_MODEL_MAX_EMBED);
        w->window = INT(&r, "window", 1, 1000);
        w->negatives = INT(&r, "negatives", 0, 1000);
        w->batch = INT(&r, "batch", 1, LOOM_MODEL_MAX_W2V_BATCH);
        w->subsample = num(&r, "subsample", 0, 1, false);
    } else if (r.ok) {
        loom_task_opts *t = &m->task;
        t->kind = m->kind;
        t->cell = cell(&r, "cell");
        t->steps = INT(&r, "steps", 1, LOOM_MODEL_MAX_STEPS);
        t->batch = INT(&r, "batch", 1, LOOM_MODEL_MAX_BATCH);
        t->hidden = INT(&r, "hidden", 1, LOOM_MODEL_MAX_WIDTH);
        t->layers = INT(&r, "layers", 1, LOOM_RNN_MAX_LAYERS);
        t->stacking = stacking(&r, o);
        /* absent: one direction, the last state */
        t->bidirectional = cJSON_GetObjectItemCaseSensitive(o, "bidirectional") && flag(&r, "bidirectional");
        t->unit_forget_bias = cJSON_GetObjectItemCaseSensitive(o, "unit_forget_bias") && flag(&r, "unit_forget_bias");
        if (cJSON_GetObjectItemCaseSensitive(o, "pool")) t->pool = (loom_pool)name(&r, "pool", pool_names, COUNT(pool_names));
        if (loom_task_reads_data(t->kind)) {
            t->vocab = INT(&r, "vocab", 1, LOOM_MODEL_MAX_VOCAB);
            t->embed = INT(&r, "embed", 0, LOOM_MODEL_MAX_EMBED);
            t->classes = INT(&r, "classes", 1, LOOM_MODEL_MAX_VOCAB);
        }
        if (t->kind == LOOM_MODEL_SINE && t->steps > LOOM_SINE_MAX_STEPS) bad(&r, "steps", "is more than a sine window may be");
        if (t->kind == LOOM_MODEL_ORDER && t->steps < 10) bad(&r, "steps", "is less than a temporal-order sequence may be");
    }
    cJSON_Delete(o);
    return r.ok ? LOOM_OK : LOOM_ERR_FORMAT;
}

char *loom_train_desc_json(const loom_train_desc *t)
{
    cJSON *o = cJSON_CreateObject();
    const loom_optim_opts *p = &t->optim;
    const loom_schedule *s = &t->schedule;
    bool ok = o && p->kind >= 0 && p->kind < COUNT(optim_names) && s->kind >= 0 && s->kind < COUNT(sched_names) &&
              cJSON_AddStringToObject(o, "optimizer", optim_names[p->kind]) && cJSON_AddNumberToObject(o, "lr", shortest(p->lr)) &&
              cJSON_AddNumberToObject(o, "momentum", shortest(p->momentum)) && cJSON_AddNumberToObject(o, "dampening", shortest(p->dampening)) &&
              cJSON_AddBoolToObject(o, "nesterov", p->nesterov) && cJSON_AddNumberToObject(o, "weight_decay", shortest(p->weight_decay)) &&
              cJSON_AddNumberToObject(o, "beta1", shortest(p->beta1)) && cJSON_AddNumberToObject(o, "beta2", shortest(p->beta2)) &&
              cJSON_AddNumberToObject(o, "eps", shortest(p->eps)) && cJSON_AddStringToObject(o, "schedule", sched_names[s->kind]) &&
              cJSON_AddNumberToObject(o, "gamma", shortest(s->gamma)) && cJSON_AddNumberToObject(o, "step_size", (double)s->step_size) &&
              cJSON_AddNumberToObject(o, "total", (double)s->total) && cJSON_AddNumberToObject(o, "min_lr", shortest(s->min_lr)) &&
              cJSON_AddNumberToObject(o, "warmup", (double)s->warmup) && cJSON_AddNumberToObject(o, "clip_norm", t->clip_norm) &&
              cJSON_AddNumberToObject(o, "clip_value", shortest(t->clip_value)) &&
              cJSON_AddStringToObject(o, "truncation", trunc_names[t->trunc]) &&
              cJSON_AddNumberToObject(o, "truncate", t->truncate) &&
              cJSON_AddStringToObject(o, "sampling", t->sequential ? "sequential" : "random") &&
              cJSON_AddNumberToObject(o, "teacher_forcing", t->teacher_forcing) &&
              cJSON_AddNumberToObject(o, "seed", (double)t->seed);
    return print(o, ok);
}

loom_status loom_train_desc_parse(const char *json, loom_train_desc *t, loom_error *err)
{
    static const char *const sampling[] = {"random", "sequential"};
    cJSON *o = cJSON_Parse(json ? json : "");
    reader r = {o, "training", err, true};
    memset(t, 0, sizeof *t);
    if (!o) bad(&r, "", "is not a JSON object");
    loom_optim_opts *p = &t->optim;
    loom_schedule *s = &t->schedule;
    p->kind = (loom_optimizer)name(&r, "optimizer", optim_names, COUNT(optim_names));
    p->lr = (float)num(&r, "lr", 0, 1e6, false);
    p->momentum = (float)num(&r, "momentum", 0, 1, false);
    p->dampening = (float)num(&r, "dampening", 0, 1, false);
    p->nesterov = flag(&r, "nesterov");
    p->weight_decay = (float)num(&r, "weight_decay", 0, 1e6, false);
    p->beta1 = (float)num(&r, "beta1", 0, 1, false);
    p->beta2 = (float)num(&r, "beta2", 0, 1, false);
    p->eps = (float)num(&r, "eps", 0, 1, false);
    s->kind = (loom_sched_kind)name(&r, "schedule", sched_names, COUNT(sched_names));
    s->gamma = (float)num(&r, "gamma", 0, 1e6, false);
    s->step_size = (int64_t)num(&r, "step_size", 0, 1e15, true);
    s->total = (int64_t)num(&r, "total", 0, 1e15, true);
    s->min_lr = (float)num(&r, "min_lr", 0, 1e6, false);
    s->warmup = (int64_t)num(&r, "warmup", 0, 1e15, true);
    t->clip_norm = num(&r, "clip_norm", 0, 1e9, false);
    t->clip_value = (float)num(&r, "clip_value", 0, 1e9, false);
    t->trunc = (loom_trunc)name(&r, "truncation", trunc_names, COUNT(trunc_names));
    t->truncate = t->trunc ? INT(&r, "truncate", 1, LOOM_MODEL_MAX_STEPS) : 0;
    t->sequential = name(&r, "sampling", sampling, 2) == 1;
    t->teacher_forcing = num(&r, "teacher_forcing", 0, 1, false);
    t->seed = (uint64_t)num(&r, "seed", 0, 9007199254740992.0, true);
    cJSON_Delete(o);
    return r.ok ? LOOM_OK : LOOM_ERR_FORMAT;
}

/* ---- the checkpoint schema ---- */

loom_status loom_checkpoint_describe(loom_st *f, const loom_model_desc *m, const loom_train_desc *t, const char *data)
{
    char *mj = loom_model_json(m), *tj = t ? loom_train_desc_json(t) : NULL;
    bool ok = mj && (!t || tj) && !loom_st_set_meta_int(f, "loom.format_version", LOOM_FORMAT_VERSION) &&
              !loom_st_set_meta(f, "loom.model", mj) && (!tj || !loom_st_set_meta(f, "loom.training", tj)) &&
              (!data || !loom_st_set_meta(f, "loom.data", data));
    free(mj), free(tj);
    return ok ? LOOM_OK : LOOM_ERR_NOMEM;
}

int loom_checkpoint_format(const loom_st *f)
{
    int64_t v;
    if (!loom_st_meta(f, "loom.format_version")) return 0;
    return loom_st_meta_int(f, "loom.format_version", 1, 1 << 30, &v) ? (int)v : -1;
}

/* Format 0: the model and training in one configuration object per kind
 * of run — loom.config (a language model; its vocabulary's size from
 * loom.vocab), loom.seq2seq (an encoder–decoder; optimiser and schedule as
 * numbers), loom.task (adding, copy). */
static int vocab_size(const loom_st *f, const char *key)
{
    loom_vocab *v = loom_vocab_from_string(loom_st_meta(f, key));
    int n = v ? loom_vocab_size(v) : 0;
    loom_vocab_free(v);
    return n;
}

static loom_status format0(const loom_st *f, loom_model_desc *m, loom_train_desc *t, loom_error *err)
{
    const char *lm = loom_st_meta(f, "loom.config"), *s2s = loom_st_meta(f, "loom.seq2seq"), *task = loom_st_meta(f, "loom.task");
    const char *json = lm ? lm : s2s ? s2s : task;
    if (!json) return loom_error_set(err, LOOM_ERR_FORMAT, "not a checkpoint of loom (it describes no model)");
    cJSON *o = cJSON_Parse(json);
    reader r = {o, "configuration", err, true};
    if (!o) bad(&r, "", "is not a JSON object");
    memset(m, 0, sizeof *m), memset(t, 0, sizeof *t);
    static const char *const sampling[] = {"random", "sequential"};
    if (r.ok && lm) {
        loom_lm_opts *l = &m->lm;
        m->kind = LOOM_MODEL_LM;
        l->cell = cell(&r, "cell");
        l->vocab = vocab_size(f, "loom.vocab");
        if (l->vocab < 1) bad(&r, "loom.vocab", "is missing or bad");
        l->embed = INT(&r, "embed", 0, LOOM_MODEL_MAX_EMBED);
        l->hidden = INT(&r, "hidden", 1, LOOM_MODEL_MAX_WIDTH);
        l->layers = INT(&r, "layers", 1, LOOM_RNN_MAX_LAYERS);
        l->dropout = (float)num(&r, "dropout", 0, 0.99, false);
        l->steps = INT(&r, "seq_len", 1, LOOM_MODEL_MAX_STEPS);
        l->batch = INT(&r, "batch", 1, LOOM_MODEL_MAX_BATCH);
        l->seed = t->seed = (uint64_t)num(&r, "seed", 0, 1 << 30, true);
        /* truncation came with its own keys, absent from the files before it (full BPTT) */
        if (cJSON_GetObjectItemCaseSensitive(o, "truncation")) {
            t->trunc = l->trunc = (loom_trunc)name(&r, "truncation", trunc_names, COUNT(trunc_names));
            t->truncate = l->truncate = l->trunc ? INT(&r, "truncate", 1, l->steps > 1 ? l->steps - 1 : 1) : 0;
        }
        t->optim.kind = (loom_optimizer)name(&r, "optimizer", optim_names, COUNT(optim_names));
        t->schedule.kind = (loom_sched_kind)name(&r, "schedule", sched_names, COUNT(sched_names));
        t->sequential = name(&r, "sampling", sampling, 2) == 1;
        t->teacher_forcing = 1;
    } else if (r.ok && s2s) {
        loom_seq2seq_opts *s = &m->seq2seq;
        m->kind = LOOM_MODEL_SEQ2SEQ;
        s->cell = cell(&r, "cell");
        s->src_vocab = vocab_size(f, "loom.src_vocab"), s->tgt_vocab = vocab_size(f, "loom.tgt_vocab");
        if (s->src_vocab < 4 || s->tgt_vocab < 4) bad(&r, "loom.src_vocab", "or loom.tgt_vocab is missing or bad");
        s->embed = INT(&r, "embed", 1, LOOM_MODEL_MAX_EMBED);
        s->hidden = INT(&r, "hidden", 1, LOOM_MODEL_MAX_WIDTH);
        s->layers = INT(&r, "layers", 1, LOOM_RNN_MAX_LAYERS);
        s->bidirectional = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "bidirectional"));
        s->dropout = (float)num(&r, "dropout", 0, 0.99, false);
        s->attention = (loom_attention)name(&r, "attention", attention_names, COUNT(attention_names));
        s->src_steps = INT(&r, "src_steps", 1, LOOM_SEQ2SEQ_MAX_STEPS);
        s->tgt_steps = INT(&r, "tgt_steps", 1, LOOM_SEQ2SEQ_MAX_STEPS);
        s->batch = INT(&r, "batch", 1, LOOM_MODEL_MAX_BATCH);
        s->seed = t->seed = (uint64_t)num(&r, "seed", 0, 1 << 30, true);
        t->optim.kind = (loom_optimizer)INT(&r, "optimizer", 0, COUNT(optim_names) - 1);
        t->schedule.kind = (loom_sched_kind)INT(&r, "schedule", 0, LOOM_SCHED_COSINE); /* format 0 knew these */
        t->teacher_forcing = num(&r, "teacher_forcing", 0, 1, false);
        s->sampled = t->teacher_forcing < 1;
    } else if (r.ok) {
        static const char *const tasks[] = {"adding", "copy"};
        loom_task_opts *k = &m->task;
        m->kind = k->kind = LOOM_MODEL_ADDING + name(&r, "task", tasks, 2);
        k->cell = cell(&r, "cell");
        k->steps = INT(&r, "seq_len", 1, LOOM_MODEL_MAX_STEPS);
        k->batch = INT(&r, "batch", 1, LOOM_MODEL_MAX_BATCH);
        k->hidden = INT(&r, "hidden", 1, LOOM_MODEL_MAX_WIDTH);
        k->layers = INT(&r, "layers", 1, LOOM_RNN_MAX_LAYERS);
        t->optim.kind = (loom_optimizer)name(&r, "optimizer", optim_names, COUNT(optim_names));
        t->seed = (uint64_t)num(&r, "seed", 0, 1 << 30, true);
        t->teacher_forcing = 1;
    }
    /* what every kind kept under the same names */
    t->optim.lr = (float)num(&r, "lr", 0, 1e6, false);
    t->clip_norm = num(&r, "clip", 0, 1e9, false);
    if (!task) {
        t->optim.momentum = (float)num(&r, "momentum", 0, 1, false);
        t->optim.weight_decay = (float)num(&r, "weight_decay", 0, 1e6, false);
        t->schedule.warmup = (int64_t)num(&r, "warmup", 0, 1e15, true);
    }
    cJSON_Delete(o);
    return r.ok ? LOOM_OK : LOOM_ERR_FORMAT;
}

loom_status loom_checkpoint_model(const loom_st *f, loom_model_desc *m, loom_train_desc *t, loom_error *err)
{
    loom_model_desc dm;
    loom_train_desc dt;
    loom_error local = {0};
    m = m ? m : &dm, t = t ? t : &dt, err = err ? err : &local;
    int v = loom_checkpoint_format(f);
    if (v < 0) return loom_error_set(err, LOOM_ERR_FORMAT, "its format version (loom.format_version) is not a number");
    if (v > LOOM_FORMAT_VERSION)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "it was written by a newer loom (checkpoint format %d; this loom reads formats 0 to %d)", v,
                              LOOM_FORMAT_VERSION);
    if (v == 0) return format0(f, m, t, err);
    loom_status st = loom_model_parse(loom_st_meta(f, "loom.model"), m, err);
    if (!st) st = loom_train_desc_parse(loom_st_meta(f, "loom.training"), t, err);
    return st;
}

/* A format-0 value copied into the data description (if f had it). */
static bool copy_key(cJSON *to, const cJSON *from, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);
    return !v || cJSON_AddItemToObject(to, key, cJSON_Duplicate(v, true));
}

char *loom_checkpoint_data(const loom_st *f)
{
    const char *data = loom_st_meta(f, "loom.data");
    if (loom_checkpoint_format(f) >= 1) {
        cJSON *o = cJSON_Parse(data ? data : "{}");
        return print(o && cJSON_IsObject(o) ? o : (cJSON_Delete(o), cJSON_CreateObject()), true);
    }
    const char *lm = loom_st_meta(f, "loom.config"), *s2s = loom_st_meta(f, "loom.seq2seq");
    cJSON *o = cJSON_CreateObject(), *cfg = cJSON_Parse(lm ? lm : s2s ? s2s : "{}");
    bool ok = o != NULL;
    if (ok && lm) /* the path was loom.data itself */
        ok = (!data || cJSON_AddStringToObject(o, "path", data)) && copy_key(o, cfg, "tokens") && copy_key(o, cfg, "letters_only");
    if (ok && s2s) {
        ok = copy_key(o, cfg, "task") && copy_key(o, cfg, "valid") && copy_key(o, cfg, "pairs") && copy_key(o, cfg, "min_len") &&
             copy_key(o, cfg, "min_freq");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(cfg, "data");
        ok = ok && (!cJSON_IsString(path) || cJSON_AddStringToObject(o, "path", path->valuestring));
    }
    cJSON_Delete(cfg);
    return print(o, ok);
}

/* A file tokenised with v into *out; the reason, and the hint, in err. */
static loom_status read_text(const char *file, const loom_vocab *v, const char *hint, loom_text **out, loom_error *err)
{
    loom_status st = LOOM_OK;
    if (!file) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "the checkpoint names no text it trained on: give one");
    } else if (!(*out = loom_text_new(NULL))) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    } else if ((st = loom_text_read_with(*out, file, v))) {
        loom_error_set(err, st, "%s%s", loom_text_error(*out), hint);
        loom_text_free(*out), *out = NULL;
    }
    return st;
}

/* A checkpoint's data description's string `key` (malloc'd), or NULL. */
static char *data_str(const loom_st *f, const char *key)
{
    char *data = loom_checkpoint_data(f);
    cJSON *o = cJSON_Parse(data ? data : "");
    free(data);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
    char *r = cJSON_IsString(s) ? strdup(s->valuestring) : NULL;
    cJSON_Delete(o);
    return r;
}

loom_status loom_lm_held_out(const loom_st *f, const loom_vocab *v, const char *text, loom_text **out, int64_t *held,
                             loom_error *err)
{
    *out = NULL, *held = 0;
    char *valid = text ? NULL : data_str(f, "valid"), *path = text || valid ? NULL : data_str(f, "path");
    loom_status st = read_text(text ? text : valid ? valid : path, v,
                               text    ? ""
                               : valid ? " (the held-out text the model trained with: give it, or another)"
                                       : " (the text the model trained on: give it, or another)",
                               out, err);
    if (!st && !valid) {
        int64_t n;
        loom_text_ids(*out, &n);
        *held = n - n / 10; /* as loom train splits a text without --valid */
    }
    free(valid), free(path);
    return st;
}

loom_status loom_lm_training_text(const loom_st *f, const loom_vocab *v, loom_text **out, int64_t *n_train, loom_error *err)
{
    *out = NULL, *n_train = 0;
    char *valid = data_str(f, "valid"), *path = data_str(f, "path");
    loom_status st = read_text(path, v, " (the text the model trained on: give it, or another)", out, err);
    if (!st) {
        int64_t n;
        loom_text_ids(*out, &n);
        *n_train = valid ? n : n - n / 10; /* without --valid, loom train holds out the last tenth */
    }
    free(valid), free(path);
    return st;
}
