/* Speed of an encoder–decoder: a training step (forward, masked
 * cross-entropy, backward through both stacks and the attention, clipping,
 * Adam) and greedy decoding of a batch, on the shapes of `loom train --task
 * dates` (or others given).
 *   build/bench/seq2seq_bench [--attention none|additive|dot] [--cell lstm] [--batch 64]
 *       [--src-len 32] [--tgt-len 11] [--embed 32] [--hidden 128] [--layers 1] [--iters 20]
 * Prints the median milliseconds of --iters runs after one warm-up, and
 * pairs per second. bench/seq2seq_torch.py times the same model in PyTorch. */
#include "loom/loom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int B = 64, Ts = 32, Tt = 11, E = 32, H = 128, L = 1, iters = 20, att = LOOM_ATTN_ADDITIVE, V_src = 41, V_tgt = 15;
    const char *cell_name = "lstm";
    for (int a = 1; a + 1 < argc; a += 2) {
        const char *f = argv[a], *v = argv[a + 1];
        if (!strcmp(f, "--cell")) cell_name = v;
        else if (!strcmp(f, "--attention")) att = !strcmp(v, "none") ? 0 : !strcmp(v, "dot") ? 2 : 1;
        else if (!strcmp(f, "--batch")) B = atoi(v);
        else if (!strcmp(f, "--src-len")) Ts = atoi(v);
        else if (!strcmp(f, "--tgt-len")) Tt = atoi(v);
        else if (!strcmp(f, "--embed")) E = atoi(v);
        else if (!strcmp(f, "--hidden")) H = atoi(v);
        else if (!strcmp(f, "--layers")) L = atoi(v);
        else if (!strcmp(f, "--iters")) iters = atoi(v);
        else {
            fprintf(stderr, "seq2seq_bench: unknown option '%s'\n", f);
            return 2;
        }
    }
    const loom_cell_def *cell = loom_cell_by_name(cell_name);
    if (!cell || iters < 1) {
        fprintf(stderr, "seq2seq_bench: bad options\n");
        return 2;
    }
    loom_seq2seq_opts o = {.cell = cell, .src_vocab = V_src, .tgt_vocab = V_tgt, .embed = E, .hidden = H, .layers = L,
                           .attention = (loom_attention)att, .src_steps = Ts, .tgt_steps = Tt, .batch = B};
    loom_graph *g = loom_graph_new();
    loom_seq2seq m;
    if (loom_seq2seq_build(g, &m, &o)) {
        fprintf(stderr, "seq2seq_bench: %s\n", loom_graph_error(g));
        return 1;
    }
    loom_store *s = loom_store_new(g);
    int np = loom_store_count(s);
    loom_tensor *outs = malloc((size_t)(np + 1) * sizeof *outs);
    outs[0] = m.loss;
    loom_backward(g, m.loss, loom_store_tensors(s), np, outs + 1);
    loom_plan *p = loom_plan_new(g, outs, np + 1, NULL);
    if (!p) {
        fprintf(stderr, "seq2seq_bench: %s\n", loom_graph_error(g));
        return 1;
    }
    loom_store_init(s, 1);
    loom_store_bind(s, p);
    /* every source and target of full length, random tokens */
    int32_t *src = malloc((size_t)Ts * B * sizeof *src), *sl = malloc((size_t)B * sizeof *sl);
    int32_t *tgt = malloc((size_t)Tt * B * sizeof *tgt), *din = malloc((size_t)Tt * B * sizeof *din);
    int32_t *tl = malloc((size_t)B * sizeof *tl), *srow = malloc((size_t)Ts * B * sizeof *srow);
    uint64_t r = 7;
    for (int i = 0; i < Ts * B; i++) r = r * 6364136223846793005ull + 1, src[i] = 4 + (int32_t)((r >> 33) % (uint64_t)(V_src - 4));
    for (int i = 0; i < Tt * B; i++) r = r * 6364136223846793005ull + 1, tgt[i] = 4 + (int32_t)((r >> 33) % (uint64_t)(V_tgt - 4));
    for (int b = 0; b < B; b++) {
        sl[b] = Ts, tl[b] = Tt;
        for (int t = 0; t < Tt; t++) din[t * B + b] = t ? tgt[(t - 1) * B + b] : LOOM_BOS;
        for (int t = 0; t < Ts; t++) srow[b * Ts + t] = src[t * B + b];
    }
    loom_bind(p, m.src, src), loom_bind(p, m.src_len, sl), loom_bind(p, m.dec_in, din);
    loom_bind(p, m.tgt, tgt), loom_bind(p, m.tgt_len, tl);
    loom_optim *opt = loom_optim_for_store(&(loom_optim_opts){.kind = LOOM_OPT_ADAM, .lr = 1e-3f}, s, NULL);
    float **grads = malloc((size_t)np * sizeof *grads);
    int64_t *sizes = malloc((size_t)np * sizeof *sizes);
    for (int i = 0; i < np; i++) sizes[i] = loom_store_numel(s, i);
    double *tt = malloc((size_t)(iters + 1) * sizeof *tt), *ti = malloc((size_t)(iters + 1) * sizeof *ti);
    for (int k = 0; k <= iters; k++) { /* the first run warms up */
        double t0 = now();
        if (loom_run(p)) {
            fprintf(stderr, "seq2seq_bench: %s\n", loom_plan_error(p));
            return 1;
        }
        for (int i = 0; i < np; i++) grads[i] = (float *)loom_plan_output(p, outs[1 + i]);
        loom_clip_grad_norm(grads, sizes, np, 1.0);
        loom_optim_step(opt, (const float *const *)grads, 1e-3f);
        tt[k] = now() - t0;
    }
    loom_store_data_by_name(s, "decoder.dense.bias")[LOOM_EOS] = -100.0f; /* every step decoded, as the PyTorch side */
    loom_translator *tr = loom_translator_new(&o, s, 1, NULL);
    int32_t *out = malloc((size_t)B * Tt * sizeof *out), *ol = malloc((size_t)B * sizeof *ol);
    for (int k = 0; tr && k <= iters; k++) {
        double t0 = now();
        if (loom_translate(tr, srow, sl, B, &(loom_search_opts){.max_len = Tt}, out, ol, NULL, NULL, NULL)) break;
        ti[k] = now() - t0;
    }
    qsort(tt + 1, (size_t)iters, sizeof *tt, cmp);
    qsort(ti + 1, (size_t)iters, sizeof *ti, cmp);
    double mt = tt[1 + iters / 2], mi = ti[1 + iters / 2];
    printf("loom seq2seq %s, attention %s, B=%d Ts=%d Tt=%d E=%d H=%d layers %d: train step %.2f ms (%.0f pairs/s), "
           "greedy decode %.2f ms (%.0f pairs/s)\n",
           cell->name, (const char *[]){"none", "additive", "dot"}[att], B, Ts, Tt, E, H, L, 1e3 * mt, B / mt, 1e3 * mi,
           B / mi);
    loom_translator_free(tr);
    loom_optim_free(opt);
    loom_plan_free(p);
    loom_store_free(s);
    loom_graph_free(g);
    free(outs), free(src), free(sl), free(tgt), free(din), free(tl), free(srow), free(grads), free(sizes), free(tt), free(ti);
    free(out), free(ol);
    return 0;
}
