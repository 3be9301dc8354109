/* `loom word2vec`: word vectors from a text (loom/embed.h: skip-gram or
 * CBOW with negative sampling, trained by the trainer), saved as a
 * checkpoint that resumes bit for bit and that `loom embed` and `loom plot
 * --tsne` read. */
#include "tool.h"

#include "loom/loom.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char word2vec_help[] = "word vectors from a text: word2vec's skip-gram (default) or CBOW with negative sampling\n"
                             "and subsampling of frequent words; at the end, the nearest words of a few frequent ones\n";

typedef struct {
    const char *data, *save, *resume, *metrics;
    bool cbow, letters_only, lr_given;
    long dim, window, negatives, min_count, batch, steps, epochs, save_every, seed, threads, optimizer;
    double subsample, lr, min_lr;
} w2v_args;

#define W(field) offsetof(w2v_args, field)
const tool_opt word2vec_opts[] = {
    {"--data", OPT_PATH, W(data), .arg = "FILE", .help = "UTF-8 text, words split at white space and punctuation, lower-cased (required)"},
    {"--letters-only", OPT_FLAG, W(letters_only), .help = "d2l's preprocessing: runs of non-letters become one space"},
    {"--cbow", OPT_FLAG, W(cbow), .help = "CBOW: the context's mean vector predicts the word (default: skip-gram)"},
    {"--dim", OPT_INT, W(dim), 1, LOOM_MODEL_MAX_EMBED, .arg = "E", .help = "vector size (default 100)"},
    {"--window", OPT_INT, W(window), 1, 1000, .arg = "N", .help = "context words up to N away, N drawn from 1..N (default 5)"},
    {"--negatives", OPT_INT, W(negatives), 0, 1000, .arg = "K", .help = "noise words per example, unigram^0.75 (default 5)"},
    {"--subsample", OPT_REAL, W(subsample), 0, 1, .arg = "T", .help = "keep a word of frequency f with (√(f/T) + 1)·T/f (default 1e-3; 0: all)"},
    {"--min-count", OPT_INT, W(min_count), 1, 1L << 30, .arg = "N", .help = "rarer words are left out (default 5)"},
    {"--batch", OPT_INT, W(batch), 1, LOOM_MODEL_MAX_W2V_BATCH, .arg = "B", .help = "examples per step (default 256)"},
    {"--steps", OPT_INT, W(steps), 1, 1L << 40, .arg = "N", .help = "optimiser steps (default: --epochs 5)"},
    {"--epochs", OPT_INT, W(epochs), 1, 1L << 20, .arg = "N", .help = "steps for N examples per word of the text"},
    {"--optimizer", OPT_CHOICE, W(optimizer), .choices = (const char *const[]){"sgd", "adam", "adamw", NULL}, .arg = "sgd|adam",
     .help = "(default sgd, word2vec's)"},
    {"--lr", OPT_REAL, W(lr), 0, 1e6, .arg = "LR",
     .help = "learning rate, falling linearly to 1e-4 of it (default: sgd 0.025 per\n"
             "example, i.e. 0.025·B on the batch's mean loss; adam 0.01)"},
    {"--min-lr", OPT_REAL, W(min_lr), 0, 1e6, .arg = "LR", .help = "the rate it falls to (default 1e-4 of --lr; = --lr: constant)"},
    {"--seed", OPT_INT, W(seed), 0, 1L << 30, .arg = "S", .help = "(default 1)"},
    {"--save", OPT_PATH, W(save), .arg = "FILE", .help = "the checkpoint (vectors, vocabulary, optimiser state; atomic)"},
    {"--save-every", OPT_INT, W(save_every), 1, 1L << 40, .arg = "N", .help = "also save every N steps"},
    {"--resume", OPT_PATH, W(resume), .arg = "FILE", .help = "continue a checkpoint's run up to --steps in all"},
    {"--metrics", OPT_PATH, W(metrics), .arg = "FILE", .help = "CSV: step,loss,lr"},
    {"--threads", OPT_INT, W(threads), 1, 1024, .arg = "N", .help = "threads (default: all)"},
};
#undef W
const int n_word2vec_opts = (int)(sizeof word2vec_opts / sizeof *word2vec_opts);

typedef struct {
    w2v_args *a;
    loom_w2v_opts o;
    loom_train_desc d;
    loom_text *text;
    loom_vocab *vocab; /* a resumed run's */
    loom_w2v_data *data;
    loom_graph *g;
    loom_w2v m;
    loom_store *store;
    loom_trainer *t;
    int32_t *in, *out;
    float *mask;
    loom_metrics *metrics;
    int rc;
    loom_fit_report last;
    char path[4096];
} run;

static const char cmd[] = "loom word2vec";

static void release(run *r)
{
    loom_trainer_free(r->t), loom_store_free(r->store), loom_graph_free(r->g), loom_w2v_data_free(r->data);
    loom_text_free(r->text), loom_vocab_free(r->vocab), loom_metrics_free(r->metrics);
    free(r->in), free(r->out), free(r->mask);
}

/* A checkpoint's model, training and text into r (0, or the exit status). */
static int open_resume(run *r, loom_st **ck)
{
    w2v_args *a = r->a;
    loom_model_desc m;
    loom_error err = {0};
    if (!(*ck = loom_st_new())) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    if (loom_checkpoint_read(*ck, a->resume)) return tool_fail(cmd, loom_st_error(*ck), NULL);
    if (loom_checkpoint_model(*ck, &m, &r->d, &err)) return tool_fail(cmd, a->resume, err.msg);
    if (m.kind != LOOM_MODEL_WORD2VEC) return tool_fail(cmd, a->resume, "not a word2vec checkpoint");
    r->o = m.w2v;
    char *j = loom_checkpoint_data(*ck);
    cJSON *o = j ? cJSON_Parse(j) : NULL;
    free(j);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
    bool ok = cJSON_IsString(p) && strlen(p->valuestring) < sizeof r->path;
    if (ok && !a->data) strcpy(r->path, p->valuestring), a->data = r->path; /* --data: the text moved */
    a->letters_only = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "letters_only"));
    cJSON_Delete(o);
    if (!ok) return tool_fail(cmd, a->resume, "its data description (loom.data) is missing or bad");
    r->vocab = loom_vocab_from_string(loom_st_meta(*ck, "loom.vocab"));
    if (!r->vocab || loom_vocab_size(r->vocab) != r->o.vocab) return tool_fail(cmd, a->resume, "its vocabulary is missing, bad, or not its model's");
    return 0;
}

static int save(run *r)
{
    loom_st *f = loom_st_new();
    loom_model_desc m = {.kind = LOOM_MODEL_WORD2VEC, .w2v = r->o};
    cJSON *j = cJSON_CreateObject();
    bool ok = j && cJSON_AddStringToObject(j, "path", r->a->data) && cJSON_AddBoolToObject(j, "letters_only", r->a->letters_only) &&
              cJSON_AddNumberToObject(j, "min_count", (double)r->a->min_count);
    char *data = ok ? cJSON_PrintUnformatted(j) : NULL, *v = loom_vocab_to_string(loom_text_vocab(r->text));
    ok = f && data && v && !loom_checkpoint_describe(f, &m, &r->d, data) && !loom_st_set_meta(f, "loom.vocab", v) &&
         !loom_trainer_save(r->t, f);
    int rc = !ok ? tool_fail_st(cmd, LOOM_ERR_NOMEM, "checkpoint", "out of memory")
                 : loom_checkpoint_write(f, r->a->save) ? tool_fail(cmd, loom_st_error(f), NULL) : 0;
    cJSON_Delete(j), free(data), free(v), loom_st_free(f);
    return rc;
}

static loom_status next_batch(void *ctx, loom_trainer *t)
{
    run *r = ctx;
    loom_w2v_batch(r->data, &r->o, r->d.seed, loom_trainer_steps(t), r->in, r->mask, r->out);
    return LOOM_OK;
}

static loom_status progress(void *ctx, const loom_fit_report *f)
{
    run *r = ctx;
    r->last = *f;
    if (f->evaluated || f->step.step % 100 == 0)
        fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.4g  %.0f s\n", (long long)f->step.step, (long long)f->steps, f->loss_avg,
                f->step.lr, f->seconds);
    if (r->metrics && loom_metrics_row(r->metrics, "%lld,%.6f,%.6g", (long long)f->step.step, f->step.loss, f->step.lr))
        return r->rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "--metrics", "out of memory"), LOOM_ERR_NOMEM;
    if (r->metrics && loom_metrics_age(r->metrics) > 10 && (r->rc = tool_flush_metrics(cmd, &r->metrics))) return LOOM_ERR_IO;
    return LOOM_OK;
}

static loom_status save_now(void *ctx, loom_trainer *t)
{
    run *r = ctx;
    (void)t;
    return (r->rc = tool_flush_metrics(cmd, &r->metrics)) || (r->rc = save(r)) ? LOOM_ERR_IO : LOOM_OK;
}

/* The nearest words of five frequent ones (ranks 10–14 of the vocabulary:
 * past the commonest function words). */
static void show_neighbours(const run *r)
{
    const loom_vocab *v = loom_text_vocab(r->text);
    const float *E = loom_store_data(r->store, r->m.embedding);
    for (int w = 10; w < 15 && w < r->o.vocab; w++) {
        int32_t ids[5];
        float sims[5];
        int k = loom_embed_nearest(E, r->o.vocab, r->o.dim, E + (size_t)w * r->o.dim, 5, &(int32_t){w}, 1, ids, sims);
        printf("  %-12s", loom_vocab_token(v, w));
        for (int i = 0; i < k; i++) printf(" %s (%.2f)", loom_vocab_token(v, ids[i]), sims[i]);
        printf("\n");
    }
}

int cmd_word2vec(int argc, char **argv)
{
    w2v_args a = {.dim = 100, .window = 5, .negatives = 5, .subsample = 1e-3, .min_count = 5, .batch = 256, .seed = 1, .lr = -1, .min_lr = -1};
    run r = {.a = &a};
    loom_st *ck = NULL;
    bool help = false;
    int rc = tool_opts(cmd, word2vec_opts, n_word2vec_opts, &a, NULL, argc, argv, &help);
    if (rc || help) {
        if (help) tool_help("word2vec --data TEXT [options]", word2vec_help, word2vec_opts, n_word2vec_opts, false);
        return rc;
    }
    for (int i = 0; i < argc && a.resume; i++) /* a resumed run continues its own model and optimiser */
        for (const char *const *f = (const char *const[]){"--cbow", "--dim", "--window", "--negatives", "--subsample", "--min-count",
                                                          "--batch", "--optimizer", "--lr", "--min-lr", "--seed", "--letters-only", "--epochs",
                                                          NULL};
             *f; f++)
            if (!strcmp(argv[i], *f)) return tool_fail(cmd, *f, "with --resume: the run continues its checkpoint's model and optimiser");
    if (!a.data && !a.resume) return fprintf(stderr, "%s: --data TEXT is required (see 'loom word2vec --help')\n", cmd), 2;
    if (a.steps && a.epochs) return tool_fail(cmd, "--steps", "give --steps or --epochs, not both");
    if (!tool_outputs_ok(cmd, (tool_file[]){{"--save", a.save}, {"--metrics", a.metrics}}, 2,
                         (tool_file[]){{"--data", a.data}, {"--resume", a.save && a.resume && tool_same_file(a.save, a.resume) ? NULL : a.resume}}, 2))
        return 2;
    if (!tool_threads(a.threads)) return 2;
    tool_catch_signals();
    if (a.resume && (rc = open_resume(&r, &ck))) goto done;
    /* the text: its words (rarer ones <unk>, left out of training) */
    r.text = loom_text_new(&(loom_text_opts){.kind = LOOM_TOKENS_WORD, .lower = true, .letters_only = a.letters_only,
                                             .min_freq = (int)a.min_count});
    loom_status st = !r.text ? LOOM_ERR_NOMEM : r.vocab ? loom_text_read_with(r.text, a.data, r.vocab) : loom_text_read(r.text, a.data);
    if (st) {
        rc = tool_fail_st(cmd, st, r.text ? loom_text_error(r.text) : "out of memory", NULL);
        goto done;
    }
    int64_t n;
    const int32_t *ids = loom_text_ids(r.text, &n);
    if (!a.resume) {
        r.o = (loom_w2v_opts){.kind = a.cbow ? LOOM_W2V_CBOW : LOOM_W2V_SKIPGRAM, .vocab = loom_vocab_size(loom_text_vocab(r.text)),
                              .dim = (int)a.dim, .window = (int)a.window, .negatives = (int)a.negatives, .batch = (int)a.batch,
                              .subsample = a.subsample};
        if (r.o.vocab < 2) {
            rc = tool_fail(cmd, a.data, "no word occurs --min-count times");
            goto done;
        }
    }
    loom_error err = {LOOM_ERR_NOMEM, "out of memory"};
    if (!(r.data = loom_w2v_data_new(ids, n, loom_text_vocab(r.text), &r.o, &err))) {
        rc = tool_fail_st(cmd, err.status, a.data, err.msg);
        goto done;
    }
    if (!a.resume) {
        int64_t per_epoch = (loom_w2v_data_words(r.data) + r.o.batch - 1) / r.o.batch, steps = a.steps ? a.steps : (a.epochs ? a.epochs : 5) * per_epoch;
        float lr = (float)(a.lr >= 0 ? a.lr : a.optimizer == LOOM_OPT_SGD ? 0.025 * r.o.batch : 0.01);
        r.d = (loom_train_desc){.optim = {.kind = (loom_optimizer)a.optimizer, .lr = lr},
                                .schedule = {.kind = LOOM_SCHED_LINEAR, .total = steps, .min_lr = a.min_lr >= 0 ? (float)a.min_lr : lr * 1e-4f},
                                .seed = (uint64_t)a.seed};
    }
    int64_t total = a.steps ? a.steps : r.d.schedule.total;
    if ((rc = tool_open_outputs(cmd, a.save, a.metrics, "step,loss,lr", ck ? tool_checkpoint_step(ck) : -1, &r.metrics))) goto done;
    /* the model and its trainer */
    r.g = loom_graph_new();
    if (r.g) loom_w2v_build(r.g, &r.m, &r.o);
    if (!r.g || loom_graph_failed(r.g)) {
        rc = tool_fail_st(cmd, r.g ? loom_graph_status(r.g) : LOOM_ERR_NOMEM, r.g ? loom_graph_error(r.g) : "out of memory", NULL);
        goto done;
    }
    if (ck && loom_store_fits(r.g, ck, &err)) {
        rc = tool_fail(cmd, a.resume, err.msg);
        goto done;
    }
    r.store = loom_store_new(r.g);
    r.t = loom_trainer_new(r.g, r.store, &(loom_trainer_opts){.loss = r.m.loss, .optim = r.d.optim, .schedule = r.d.schedule, .seed = r.d.seed},
                           &err);
    size_t C = r.o.kind == LOOM_W2V_CBOW ? 2 * (size_t)r.o.window : 1, B = (size_t)r.o.batch;
    r.in = malloc(B * C * sizeof *r.in), r.out = malloc(B * (1 + (size_t)r.o.negatives) * sizeof *r.out);
    r.mask = C > 1 ? malloc(B * C * sizeof *r.mask) : NULL;
    if (!r.t || !r.in || !r.out || (C > 1 && !r.mask)) {
        rc = tool_fail_st(cmd, r.t ? LOOM_ERR_NOMEM : err.status, r.t ? "out of memory" : err.msg, NULL);
        goto done;
    }
    loom_store_init(r.store, r.d.seed);
    loom_trainer_bind(r.t, r.m.in, r.in), loom_trainer_bind(r.t, r.m.out, r.out);
    if (r.mask) loom_trainer_bind(r.t, r.m.in_mask, r.mask);
    if (ck && loom_trainer_restore(r.t, ck)) {
        rc = tool_fail(cmd, a.resume, loom_trainer_error(r.t));
        goto done;
    }
    printf("word2vec %s: %d words (%lld in the text, <unk> left out), E = %d, window %d, %d negatives, B = %d, %s lr %g, %lld steps\n",
           r.o.kind == LOOM_W2V_CBOW ? "CBOW" : "skip-gram", r.o.vocab, (long long)loom_w2v_data_words(r.data), r.o.dim, r.o.window,
           r.o.negatives, r.o.batch, (const char *[]){"sgd", "adam", "adamw"}[r.d.optim.kind], r.d.optim.lr, (long long)total);
    int64_t step0 = loom_trainer_steps(r.t);
    st = loom_trainer_fit(r.t, &(loom_fit_opts){.steps = total, .save_every = a.save ? a.save_every : 0, .ctx = &r,
                                                .next_batch = next_batch, .progress = progress, .save = save_now, .stop = tool_stop});
    if (st) {
        rc = r.rc ? r.rc : tool_fail_st(cmd, st, loom_trainer_error(r.t), NULL);
        goto done;
    }
    if (tool_caught()) {
        rc = tool_flush_metrics(cmd, &r.metrics);
        if (!rc && a.save) rc = save(&r);
        rc = tool_interrupted(cmd, (long)loom_trainer_steps(r.t), (long)total, a.save, rc);
        goto done;
    }
    printf("trained %lld steps: loss %.4f\nnearest words:\n", (long long)(total > step0 ? total - step0 : 0), r.last.loss_avg);
    show_neighbours(&r);
    rc = tool_flush_metrics(cmd, &r.metrics);
    if (!rc && a.save) rc = save(&r);
done:
    loom_st_free(ck);
    release(&r);
    return rc;
}
