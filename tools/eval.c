/* `loom eval`: a checkpoint of any kind on held-out data — a language
 * model's perplexity on a text (the state carried through it), an
 * encoder–decoder's BLEU, exact match and perplexity, a synthetic task's
 * held-out loss and accuracy. */
#include "tool.h"

#include "loom/loom.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

typedef struct {
    const char *load, *data, *horizons, *plot;
    long beam, baseline;
} eval_args;

#define E(field) offsetof(eval_args, field)
const tool_opt eval_opts[] = {
    {"--load", OPT_PATH, E(load), .arg = "CKPT", .help = "the checkpoint (required)"},
    {"--data", OPT_PATH, E(data), .arg = "FILE",
     .help = "a language model: a text, scored whole (default: the text the run held\n"
             "out — its --valid file, else the last tenth of its training text);\n"
             "an encoder–decoder: pairs, source TAB target (default: a synthetic\n"
             "task's own held-out pairs); a classify or tag model: lines of its kind,\n"
             "each scored (default: the lines its run held out)"},
    {"--beam", OPT_INT, E(beam), 1, 1024, .arg = "K", .help = "an encoder–decoder's beam width (default 1: greedy)"},
    {"--baseline", OPT_INT, E(baseline), 1, LOOM_NGRAM_MAX_ORDER, .arg = "N",
     .help = "a language model: also the perplexity of the order-N n-gram model with\n"
             "Laplace smoothing, counted on the text the model trained on (ε chosen\n"
             "on that text's own last tenth), on the same tokens"},
    {"--horizons", OPT_TEXT, E(horizons), .arg = "K,...",
     .help = "a sine model: the k-step-ahead forecasts to score (default 1,4,16,64)"},
    {"--plot", OPT_PATH, E(plot), .arg = "FILE", .help = "a sine model: the series and its forecasts drawn (.svg or .png)"},
};
#undef E
const int n_eval_opts = (int)(sizeof eval_opts / sizeof *eval_opts);
const char eval_help[] = "a checkpoint on held-out data: a language model's perplexity on a text (the state carried\n"
                         "through it); an encoder–decoder's BLEU, exact match and perplexity on pairs; a task\n"
                         "model's held-out loss and accuracy (classify, tag: on --data's lines too), a sine\n"
                         "model's k-step-ahead forecasts\n";

/* A language model's perplexity on a text (whole), or on the part its run
 * held out, through an evaluation-only trainer. */
/* The order-k n-gram model counted on the text the model trained on,
 * scored on ids[0..n): its perplexity, or NaN with the reason said. */
static double ngram_baseline(const char *cmd, const lm_ckpt *l, int k, const int32_t *ids, int64_t n, double *eps)
{
    loom_text *train = NULL;
    int64_t n_train = 0;
    loom_error err = {0};
    double ppl[LOOM_NGRAM_MAX_ORDER], used[LOOM_NGRAM_MAX_ORDER];
    loom_status st = loom_lm_training_text(l->ck, l->vocab, &train, &n_train, &err);
    if (!st)
        st = loom_ngrams_baseline(loom_text_ids(train, NULL), n_train, loom_vocab_size(l->vocab), k, 0, ids, n, ppl, used, &err);
    loom_text_free(train);
    if (st) return tool_fail_st(cmd, st, "--baseline", err.msg), NAN;
    *eps = used[k - 1];
    return ppl[k - 1];
}

static int lm_perplexity(const char *cmd, const char *ck, const char *data, int baseline)
{
    lm_ckpt l;
    int rc = lm_ckpt_load(&l, cmd, ck, 0, 0);
    loom_text *text = NULL;
    loom_trainer *t = NULL;
    int64_t held = 0, n = 0;
    loom_error err = {0};
    if (rc) goto done;
    if (data) {
        text = loom_text_new(NULL);
        if (!text || loom_text_read_with(text, data, l.vocab)) {
            rc = tool_fail(cmd, text ? loom_text_error(text) : "out of memory", NULL);
            goto done;
        }
    } else if (loom_lm_held_out(l.ck, l.vocab, NULL, &text, &held, &err)) {
        rc = err.status == LOOM_ERR_NOMEM ? tool_fail_st(cmd, err.status, err.msg, NULL) : tool_fail(cmd, ck, err.msg);
        goto done;
    }
    const int32_t *ids = loom_text_ids(text, &n) + held;
    n -= held;
    t = loom_trainer_new(l.g, l.store,
                         &(loom_trainer_opts){.loss = l.lm.loss, .state_in = l.lm.init, .state_out = l.lm.out.final,
                                              .n_states = l.lm.o.cell->n_states, .tokens = l.lm.tokens,
                                              .targets = l.lm.targets, .eval_only = true},
                         &err);
    double mean = NAN;
    if (!t || loom_trainer_eval_stream(t, ids, n, &mean)) {
        rc = tool_fail(cmd, "eval", t ? loom_trainer_error(t) : err.msg);
        goto done;
    }
    if (isnan(mean)) {
        rc = tool_fail(cmd, "the text is too short for one window of the model's batch", NULL);
        goto done;
    }
    char ppl[32];
    printf("perplexity %s on %s (%lld tokens)\n", tool_num(ppl, sizeof ppl, exp(mean), 4),
           data ? data : held ? "the held-out tenth of its training text" : "its held-out text", (long long)n);
    if (baseline) {
        double eps, b = ngram_baseline(cmd, &l, baseline, ids, n, &eps);
        if (isnan(b)) rc = 1;
        else printf("%d-gram baseline (Laplace, ε = %g): perplexity %s on the same tokens\n", baseline, eps,
                    tool_num(ppl, sizeof ppl, b, 4));
    }
done:
    loom_trainer_free(t);
    loom_text_free(text);
    lm_ckpt_free(&l);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    static const char cmd[] = "loom eval";
    eval_args a = {0};
    bool help = false;
    int rc = tool_opts(cmd, eval_opts, n_eval_opts, &a, NULL, argc, argv, &help);
    if (rc || help) {
        if (help)
            tool_help("eval --load CKPT [--data FILE] [--beam K] [--baseline N] [--horizons K,...] [--plot FILE]", eval_help, eval_opts,
                      n_eval_opts, false);
        return rc;
    }
    task_kind kind = a.load ? tool_checkpoint_kind(a.load) : TASK_LM;
    if (a.baseline && kind != TASK_LM)
        return fprintf(stderr, "%s: --baseline is the n-gram language model beside a language model's checkpoint\n", cmd), 2;
    if (kind == TASK_SEQ2SEQ) return eval_seq2seq(a.load, a.data, a.beam ? a.beam : 1);
    if (kind == TASK_WORD2VEC)
        return fprintf(stderr, "%s: %s is a word2vec checkpoint: loom embed --load shows its neighbours and analogies\n", cmd,
                       a.load), 2;
    if (kind != TASK_LM) {
        if (a.beam) return fprintf(stderr, "%s: --beam is for encoder–decoder checkpoints\n", cmd), 2;
        int ks[64], n = 0;
        for (const char *h = a.horizons; h && *h; n++) { /* 1,4,16,64 */
            char *end;
            long k = strtol(h, &end, 10);
            if (n == 64 || end == h || k < 1 || k > 1000 || (*end && *end != ','))
                return fprintf(stderr, "%s: --horizons: give up to 64 whole numbers from 1 to 1000, separated by commas\n", cmd), 2;
            ks[n] = (int)k, h = *end ? end + 1 : end;
        }
        if (a.plot && !tool_outputs_ok(cmd, &(tool_file){"--plot", a.plot}, 1, &(tool_file){"--load", a.load}, 1)) return 2;
        return eval_task(a.load, ks, n, a.plot, a.data);
    }
    if (a.horizons || a.plot)
        return fprintf(stderr, "%s: --horizons and --plot are a sine model's forecasts (loom train --task sine)\n", cmd), 2;
    if (a.beam) return fprintf(stderr, "%s: --beam is for encoder–decoder checkpoints\n", cmd), 2;
    return lm_perplexity(cmd, a.load, a.data, (int)a.baseline);
}
