/* A character language model with a cell of your own (the MGU of
 * mgu_cell.c), trained with loom's pieces: text → vocabulary → minibatches
 * → model → Adam with clipping → held-out perplexity → generated text.
 *   build/char_lm TEXT.txt [STEPS]                                         */
#include <loom/loom.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgu_cell.h"

int main(int argc, char **argv)
{
    if (argc < 2) return fprintf(stderr, "usage: %s TEXT.txt [STEPS]\n", argv[0]), 2;
    int T = 35, B = 32, H = 128, steps = argc > 2 ? atoi(argv[2]) : 300;
    loom_text *text = loom_text_new(&(loom_text_opts){.kind = LOOM_TOKENS_CHAR, .lower = true});
    if (loom_text_read(text, argv[1])) return fprintf(stderr, "%s\n", loom_text_error(text)), 2;
    int64_t n;
    const int32_t *ids = loom_text_ids(text, &n);
    const loom_vocab *vocab = loom_text_vocab(text);

    loom_graph *g = loom_graph_new();
    loom_lm lm;
    loom_lm_opts model = {.cell = &mgu_cell, .vocab = loom_vocab_size(vocab), .embed = 32, .hidden = H, .steps = T, .batch = B};
    loom_lm_build(g, &lm, &model);
    int np = loom_graph_params(g, NULL, 0);
    loom_tensor params[8], outs[2 + 8];
    loom_graph_params(g, params, np);
    outs[0] = lm.loss, outs[1] = lm.out.final[0];
    loom_backward(g, lm.loss, params, np, outs + 2);
    loom_plan *plan = loom_plan_new(g, outs, 2 + np, NULL);
    loom_store *weights = loom_store_new(g);
    if (!plan || loom_store_status(weights)) return fprintf(stderr, "%s\n", loom_graph_error(g)), 1;
    loom_store_init(weights, 1);
    loom_store_bind(weights, plan);

    int32_t *x = malloc(sizeof(int32_t) * T * B), *y = malloc(sizeof(int32_t) * T * B);
    float *h = calloc((size_t)B * H, sizeof(float)), *grads[8];
    int64_t sizes[8];
    loom_bind(plan, lm.tokens, x), loom_bind(plan, lm.targets, y), loom_bind(plan, lm.init[0], h);
    int64_t n_train = n - n / 10; /* the last 10 % is held out */
    loom_batches *batches = loom_batches_new(ids, n_train, T, B, LOOM_SAMPLE_SEQUENTIAL, 1);
    loom_optim *adam = loom_optim_for_store(&(loom_optim_opts){.kind = LOOM_OPT_ADAM, .lr = 0.01f}, weights, NULL);
    for (int i = 0; i < np; i++) sizes[i] = loom_store_numel(weights, i);

    for (int step = 1; step <= steps; step++) {
        if (loom_batches_next(batches, x, y)) memset(h, 0, sizeof(float) * B * H); /* a new epoch: a fresh state */
        if (loom_run(plan)) return fprintf(stderr, "%s\n", loom_plan_error(plan)), 1;
        for (int i = 0; i < np; i++) grads[i] = (float *)loom_plan_output(plan, outs[2 + i]);
        double norm = loom_clip_grad_norm(grads, sizes, np, 1.0);
        loom_optim_step(adam, (const float *const *)grads, 0.01f);
        memcpy(h, loom_plan_output(plan, lm.out.final[0]), sizeof(float) * B * H); /* carried, detached */
        if (step % 50 == 0) printf("step %d  perplexity %.2f  gradient norm %.2f\n", step, exp(loom_plan_output(plan, lm.loss)[0]), norm);
    }

    char err[256];
    loom_generator *gen = loom_generator_new(&model, weights, err, sizeof err);
    int32_t seq[200];
    int64_t k = loom_vocab_encode(vocab, "the ", 4, seq, 4);
    if (!gen || loom_generate(gen, seq, k, 150, &(loom_sample_opts){.temperature = 0.6}, seq + k, err, sizeof err) < 0)
        return fprintf(stderr, "%s\n", err), 1;
    char out[1024];
    loom_vocab_decode(vocab, seq, k + 150, out, sizeof out);
    printf("%s\n", out);

    loom_generator_free(gen), loom_optim_free(adam), loom_batches_free(batches), loom_store_free(weights);
    loom_plan_free(plan), loom_graph_free(g), loom_text_free(text);
    free(x), free(y), free(h);
    return 0;
}
