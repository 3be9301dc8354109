/* An encoder–decoder with additive attention that learns to write dates
 * ("thursday, 9 march 1961", "3/9/61", …) in ISO 8601, through loom's
 * trainer: pairs → vocabularies → minibatches with scheduled sampling →
 * GRU encoder and decoder → Adam → greedy translations of held-out dates
 * and their exact-match rate.   build/seq2seq [STEPS] [PAIRS]           */
#include <loom/loom.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    loom_pair_batches *batches;
    loom_translator *tr;
    const loom_pairs *p;
    double exact;
} run;

static loom_status next_batch(void *ctx, loom_trainer *t)
{
    (void)t;
    loom_pair_batches_next(((run *)ctx)->batches);
    return LOOM_OK;
}

/* The share of the first 64 held-out dates translated exactly (greedy decoding). */
static loom_status exact_match(void *ctx, loom_trainer *t, double *score)
{
    run *r = ctx;
    int64_t n = loom_pairs_count(r->p, true) < 64 ? loom_pairs_count(r->p, true) : 64;
    double bleu;
    loom_error err = {0};
    (void)t;
    if (loom_translate_score(r->tr, r->p, true, n, &(loom_search_opts){.max_len = loom_pairs_steps(r->p, 1)}, &bleu, score, &err))
        return fprintf(stderr, "%s\n", err.msg), err.status;
    return r->exact = *score, LOOM_OK;
}

static loom_status report(void *ctx, const loom_fit_report *f)
{
    if (f->evaluated) printf("step %lld  loss %.3f  held-out exact match %.1f%%\n", (long long)f->step.step, f->loss_avg, 100 * f->score);
    return (void)ctx, LOOM_OK;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 1500, n = argc > 2 ? atoi(argv[2]) : 20000, held = 200;
    char *train = loom_task_date_pairs(n, false, 1), *test = loom_task_date_pairs(held, true, 2);
    char *text = malloc(strlen(train) + strlen(test) + 1);
    strcat(strcpy(text, train), test); /* the held-out dates last */
    loom_pairs *p = loom_pairs_new(&(loom_pairs_opts){.num_steps = 32, .target_steps = 11, .chars = true, .keep_order = true,
                                                      .valid_frac = (double)held / (n + held)});
    if (loom_pairs_parse(p, text, strlen(text))) return fprintf(stderr, "%s\n", loom_pairs_error(p)), 1;

    loom_seq2seq_opts o = {.cell = &loom_cell_gru, .src_vocab = loom_vocab_size(loom_pairs_vocab(p, 0)),
                           .tgt_vocab = loom_vocab_size(loom_pairs_vocab(p, 1)), .embed = 32, .hidden = 128, .layers = 1,
                           .attention = LOOM_ATTN_ADDITIVE, .src_steps = 32, .tgt_steps = 11, .batch = 64, .sampled = true};
    loom_graph *g = loom_graph_new();
    loom_seq2seq m;
    if (loom_seq2seq_build(g, &m, &o)) return fprintf(stderr, "%s\n", loom_graph_error(g)), 2;
    loom_store *weights = loom_store_new(g);
    loom_store_init(weights, 1);
    loom_error err = {0};
    loom_trainer *t = loom_trainer_new(g, weights, &(loom_trainer_opts){.loss = m.loss,
                                       .optim = {.kind = LOOM_OPT_ADAM, .lr = 0.005f}, .clip_norm = 1}, &err);
    if (!t) return fprintf(stderr, "%s\n", err.msg), 1;
    run r = {.batches = loom_pair_batches_new(p, o.batch, 0.75, 1), .p = p}; /* 3 of 4 steps read the gold token */
    const loom_pair_batch *b = loom_pair_batches_buffers(r.batches);
    loom_tensor in[6] = {m.src, m.src_len, m.dec_in, m.tgt, m.tgt_len, m.gold};
    const void *data[6] = {b->src, b->src_len, b->dec_in, b->tgt, b->tgt_len, b->gold};
    for (int i = 0; i < 6; i++) loom_trainer_bind(t, in[i], data[i]);
    if (!(r.tr = loom_translator_new(&o, weights, 1, &err))) return fprintf(stderr, "%s\n", err.msg), 1;
    if (loom_trainer_fit(t, &(loom_fit_opts){.steps = steps, .eval_every = steps / 5 > 0 ? steps / 5 : 1, .ctx = &r,
                                             .next_batch = next_batch, .evaluate = exact_match, .progress = report}))
        return fprintf(stderr, "%s\n", loom_trainer_error(t)), 1;

    int Tt = loom_pairs_steps(p, 1);
    int32_t src[64], tgt[16], out[16], len, out_len;
    for (int i = 0; i < 3; i++) { /* a few held-out dates */
        char s[128], y[64];
        loom_pairs_get(p, true, i, src, &len, tgt, &out_len);
        loom_translate(r.tr, src, &len, 1, &(loom_search_opts){.max_len = Tt}, out, &out_len, NULL, NULL, NULL);
        loom_vocab_decode(loom_pairs_vocab(p, 0), src, len - 1, s, sizeof s);
        loom_vocab_decode(loom_pairs_vocab(p, 1), out, out_len, y, sizeof y);
        printf("%-32s → %s\n", s, y);
    }
    printf("held-out exact match %.1f%%\n", 100 * r.exact);
    loom_translator_free(r.tr), loom_pair_batches_free(r.batches), loom_trainer_free(t), loom_store_free(weights);
    loom_graph_free(g), loom_pairs_free(p), free(train), free(test), free(text);
    return 0;
}
