/* How costs grow with size — each should be linear:
 *   BPTT of a tanh RNN w.r.t. its input sliced per step: build + plan + run
 *   time and the plan's arena, against T;
 *   DOT export of an unrolled LSTM with its backward graph, against T;
 *   the safetensors reader, against the number of tensors.
 *   build/bench/scaling [--quick]
 * Prints one line per size and the ratio of the last two sizes' costs to
 * the ratio of their sizes (1.0: linear). */
#include "loom/loom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* h_t = tanh(h_{t-1} w + x_t), L = h_T; the gradient w.r.t. x (T, 1, 1). */
static void bptt(int T, double *secs, double *arena_mb)
{
    double t0 = now();
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape3(T, 1, 1)), w = loom_param(g, "w", loom_shape2(1, 1));
    loom_tensor h = loom_fill(g, loom_shape2(1, 1), 0.0f), gx;
    for (int t = 0; t < T; t++)
        h = loom_tanh(g, loom_add(g, loom_matmul(g, h, w, false, true),
                                  loom_reshape(g, loom_slice(g, x, 0, t, 1), loom_shape2(1, 1))));
    loom_backward(g, loom_sum_all(g, h), &x, 1, &gx);
    loom_plan *p = loom_plan_new(g, &gx, 1, NULL);
    float *xv = calloc((size_t)T, sizeof *xv), wv = 0.5f;
    if (!p || !xv) {
        fprintf(stderr, "scaling: %s\n", loom_graph_error(g));
        exit(1);
    }
    loom_bind(p, x, xv);
    loom_bind(p, w, &wv);
    loom_run(p);
    *secs = now() - t0;
    *arena_mb = (double)loom_plan_get_stats(p).arena_bytes / 1e6;
    free(xv);
    loom_plan_free(p);
    loom_graph_free(g);
}

static double dot(int T)
{
    double t0 = now();
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 3, .hidden_size = 4});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, 2, 3));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    loom_tensor loss = loom_sum_all(g, o.output), grads[LOOM_CELL_MAX_PARAMS];
    loom_backward(g, loss, rnn.param[0][0], rnn.n_params, grads);
    char *text;
    size_t len;
    loom_error err = {0};
    if (loom_dot_string(g, &(loom_dot_opts){.view = LOOM_DOT_CELLS, .part = LOOM_DOT_BOTH}, &text, &len, &err)) {
        fprintf(stderr, "scaling: %s\n", err.msg);
        exit(1);
    }
    free(text);
    loom_graph_free(g);
    return now() - t0;
}

static double reader(int n, const char *path)
{
    loom_st *f = loom_st_new();
    char name[32];
    for (int i = 0; i < n; i++) {
        float v = (float)i;
        snprintf(name, sizeof name, "layer%d.weight", i);
        loom_st_add(f, name, LOOM_F32, loom_shape1(1), &v);
    }
    if (loom_st_write(f, path)) {
        fprintf(stderr, "scaling: %s\n", loom_st_error(f));
        exit(1);
    }
    double t0 = now();
    if (loom_st_read(f, path)) {
        fprintf(stderr, "scaling: %s\n", loom_st_error(f));
        exit(1);
    }
    double s = now() - t0;
    loom_st_free(f);
    unlink(path);
    return s;
}

static void ratio(const char *what, double size_ratio, double cost_ratio)
{
    printf("  %-28s %.0f× the size: %.1f× the cost (%.2f of linear)\n", what, size_ratio, cost_ratio,
           cost_ratio / size_ratio);
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    int steps[] = {1000, 4000, 16000}, n_steps = quick ? 2 : 3;
    double secs[3], mb[3];
    printf("BPTT w.r.t. a per-step-sliced input (tanh RNN, B = I = H = 1): build + plan + run\n");
    for (int i = 0; i < n_steps; i++) {
        bptt(steps[i], &secs[i], &mb[i]);
        printf("  T = %6d  %7.3f s  arena %8.3f MB\n", steps[i], secs[i], mb[i]);
    }
    ratio("time", (double)steps[n_steps - 1] / steps[n_steps - 2], secs[n_steps - 1] / secs[n_steps - 2]);
    ratio("memory", (double)steps[n_steps - 1] / steps[n_steps - 2], mb[n_steps - 1] / mb[n_steps - 2]);

    int dsteps[] = {2000, 8000, 32000};
    double dsecs[3];
    printf("DOT of an LSTM with its backward graph, cell view, all steps\n");
    for (int i = 0; i < n_steps; i++) {
        dsecs[i] = dot(dsteps[i]);
        printf("  T = %6d  %7.3f s\n", dsteps[i], dsecs[i]);
    }
    ratio("time", (double)dsteps[n_steps - 1] / dsteps[n_steps - 2], dsecs[n_steps - 1] / dsecs[n_steps - 2]);

    int tensors[] = {10000, 40000, 160000};
    double rsecs[3];
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom-scaling-%d.safetensors", (int)getpid());
    printf("safetensors reader\n");
    for (int i = 0; i < n_steps; i++) {
        rsecs[i] = reader(tensors[i], path);
        printf("  %6d tensors  %7.3f s\n", tensors[i], rsecs[i]);
    }
    ratio("time", (double)tensors[n_steps - 1] / tensors[n_steps - 2], rsecs[n_steps - 1] / rsecs[n_steps - 2]);
    return 0;
}
