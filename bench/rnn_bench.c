/* Forward + backward time of an unrolled recurrent stack.
 *   build/bench/rnn_bench [--cell lstm] [--seq-len 35] [--batch 20] [--hidden 200] [--layers 1] [--iters 50]
 * Prints milliseconds per iteration (one plan run: forward and BPTT for every
 * parameter), and what the graph build, the backward graph and the plan
 * took (long unrolls: --seq-len 3000 --layers 4 --iters 1). bench/rnn_torch.py
 * measures PyTorch on the same shapes. */
#include "loom/loom.h"

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

int main(int argc, char **argv)
{
    int T = 35, B = 20, H = 200, layers = 1, iters = 50;
    const char *cell_name = "lstm";
    for (int a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--cell")) cell_name = argv[a + 1];
        else if (!strcmp(argv[a], "--seq-len")) T = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--batch")) B = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--hidden")) H = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--layers")) layers = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--iters")) iters = atoi(argv[a + 1]);
        else {
            fprintf(stderr, "rnn_bench: unknown option '%s'\n", argv[a]);
            return 2;
        }
    }
    const loom_cell_def *cell = loom_cell_by_name(cell_name);
    if (!cell || T < 1 || B < 1 || H < 1 || layers < 1 || layers > LOOM_RNN_MAX_LAYERS || iters < 1) {
        int n;
        const loom_cell_def *const *cells = loom_cells(&n);
        fprintf(stderr, "rnn_bench: bad options (sizes >= 1; cell one of");
        for (int i = 0; i < n; i++) fprintf(stderr, " %s", cells[i]->name);
        fprintf(stderr, ")\n");
        return 2;
    }
    double t0 = now();
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = cell, .input_size = H, .hidden_size = H, .layers = layers});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, H));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    loom_tensor loss = loom_sum_all(g, o.output), wrt[LOOM_RNN_MAX_LAYERS * LOOM_CELL_MAX_PARAMS],
                outs[1 + LOOM_RNN_MAX_LAYERS * LOOM_CELL_MAX_PARAMS];
    int n = 0;
    for (int l = 0; l < layers; l++)
        for (int i = 0; i < rnn.n_params; i++) wrt[n++] = rnn.param[l][0][i];
    outs[0] = loss;
    double t1 = now();
    loom_backward(g, loss, wrt, n, outs + 1);
    double t2 = now();
    loom_plan *p = loom_plan_new(g, outs, 1 + n, NULL);
    double t3 = now();
    loom_store *s = p ? loom_store_new(g) : NULL;
    float *xv = malloc((size_t)T * B * H * sizeof *xv);
    if (!p || loom_store_status(s) || !xv) {
        fprintf(stderr, "rnn_bench: %s\n", !p ? loom_graph_error(g) : xv ? loom_store_error(s) : "out of memory");
        return 1;
    }
    loom_store_init(s, 1);
    loom_store_bind(s, p);
    for (long i = 0; i < (long)T * B * H; i++) xv[i] = (float)(i % 13) * 0.05f - 0.3f;
    loom_bind(p, x, xv);
    loom_run(p); /* warm-up */
    double t4 = now();
    for (int i = 0; i < iters; i++) loom_run(p);
    double ms = (now() - t4) / iters * 1e3;
    loom_plan_stats st = loom_plan_get_stats(p);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("loom  %-8s T=%d B=%d H=%d L=%d  forward+backward %8.2f ms/iter  (build %.0f + backward %.0f + plan %.0f ms; "
           "%d kernels, %d ready sets, arena %.1f MB, matmul %s, OPENBLAS_CORETYPE %s)\n",
           cell->name, T, B, H, layers, ms, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, st.nodes, st.levels,
           (double)st.arena_bytes / 1e6, loom_blas_enabled() ? "CBLAS" : "portable", ct ? ct : "unset");
    free(xv);
    loom_store_free(s);
    loom_plan_free(p);
    loom_graph_free(g);
    return 0;
}
