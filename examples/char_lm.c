/* A character language model with a cell of your own (the MGU of mgu_cell.c)
 * through loom's trainer: train with held-out perplexity, save a checkpoint
 * that `loom --cell-lib libmgu_cell.so eval|generate|train --resume` read
 * (the command loads the cell from the shared object), resume from it
 * exactly, generate.   build/char_lm TEXT.txt [STEPS] [CHECKPOINT] */
#include <loom/loom.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mgu_cell.h"

typedef struct { const int32_t *ids; int64_t n; } held_out;

static loom_status perplexity(void *h, loom_trainer *t, double *ppl)
{
    loom_status st = loom_trainer_eval_stream(t, ((held_out *)h)->ids, ((held_out *)h)->n, ppl);
    return *ppl = exp(*ppl), st;
}

static loom_status report(void *ctx, const loom_fit_report *r)
{
    if (r->evaluated) printf("step %lld  perplexity %.2f  held-out %.2f\n", (long long)r->step.step, exp(r->loss_avg), r->score);
    return (void)ctx, LOOM_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) return fprintf(stderr, "usage: %s TEXT.txt [STEPS] [CHECKPOINT]\n", argv[0]), 2;
    const char *ckpt = argc > 3 ? argv[3] : NULL;
    loom_text *text = loom_text_new(&(loom_text_opts){.kind = LOOM_TOKENS_CHAR, .lower = true});
    if (loom_text_read(text, argv[1])) return fprintf(stderr, "%s\n", loom_text_error(text)), 2;
    int64_t n;
    const int32_t *ids = loom_text_ids(text, &n);
    const loom_vocab *vocab = loom_text_vocab(text);
    loom_cell_register(&mgu_cell); /* known by name: the checkpoint describes the model */

    loom_model_desc model = {.kind = LOOM_MODEL_LM, .lm = {.cell = &mgu_cell, .vocab = loom_vocab_size(vocab), .embed = 32,
                                                           .hidden = 128, .layers = 1, .steps = 35, .batch = 32}};
    loom_train_desc how = {.optim = {.kind = LOOM_OPT_ADAM, .lr = 0.01f}, .clip_norm = 1, .sequential = true};
    loom_graph *g = loom_graph_new();
    loom_lm lm;
    loom_lm_build(g, &lm, &model.lm);
    loom_store *weights = loom_store_new(g);
    loom_store_init(weights, 1);
    loom_batches *batches = loom_batches_new(ids, n - n / 10, 35, 32, LOOM_SAMPLE_SEQUENTIAL, 1); /* 10 % held out */
    loom_error err = {0};
    loom_trainer *tr = loom_trainer_new(g, weights, &(loom_trainer_opts){.loss = lm.loss, .state_in = lm.init,
                                        .state_out = lm.out.final, .n_states = 1, .batches = batches, .tokens = lm.tokens,
                                        .targets = lm.targets, .optim = how.optim, .clip_norm = how.clip_norm}, &err);
    loom_st *ck = loom_st_new();
    if (!tr) return fprintf(stderr, "%s\n", err.msg), 1;
    if (ckpt && access(ckpt, F_OK) == 0 && (loom_checkpoint_read(ck, ckpt) || loom_trainer_restore(tr, ck)))
        return fprintf(stderr, "%s: %s%s\n", ckpt, loom_st_error(ck), loom_trainer_error(tr)), 2;
    if (loom_trainer_steps(tr)) printf("resumed after step %lld\n", (long long)loom_trainer_steps(tr));
    held_out h = {ids + (n - n / 10), n / 10};
    if (loom_trainer_fit(tr, &(loom_fit_opts){.steps = argc > 2 ? atoi(argv[2]) : 300, .eval_every = 50, .ctx = &h,
                                              .evaluate = perplexity, .progress = report}))
        return fprintf(stderr, "%s\n", loom_trainer_error(tr)), 1;
    loom_st_free(ck), ck = loom_st_new();
    char *voc = loom_vocab_to_string(vocab);
    if (ckpt && (loom_checkpoint_describe(ck, &model, &how, NULL) || loom_st_set_meta(ck, "loom.vocab", voc) ||
                 loom_trainer_save(tr, ck) || loom_checkpoint_write(ck, ckpt)))
        return fprintf(stderr, "%s: %s%s\n", ckpt, loom_st_error(ck), loom_trainer_error(tr)), 1;

    loom_generator *gen = loom_generator_new(&model.lm, weights, &err);
    int32_t seq[200];
    int64_t k = loom_vocab_encode(vocab, "the ", 4, seq, 4);
    if (!gen || loom_generate(gen, seq, k, 150, &(loom_search_opts){.temperature = 0.6}, seq + k, &err) < 0)
        return fprintf(stderr, "%s\n", err.msg), 1;
    char out[1024];
    loom_vocab_decode(vocab, seq, k + 150, out, sizeof out);
    printf("%s\n", out);
    loom_generator_free(gen), loom_trainer_free(tr), loom_batches_free(batches), loom_store_free(weights);
    free(voc), loom_st_free(ck), loom_graph_free(g), loom_text_free(text);
    return 0;
}
