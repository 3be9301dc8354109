/* `loom train --task adding|copy`: the synthetic long-range tasks, where a
 * gated cell learns and a vanilla RNN does not.
 *   adding: x (T, B, 2) → stack → the last step's output → linear → one
 *           number, mean squared error against the sum of the two marked
 *           values (predicting the mean scores ≈ 0.167);
 *   copy:   one-hot symbols (T + 20 steps) → stack → linear per step →
 *           cross-entropy; accuracy over the 10 symbols to reproduce. */
#include "tool.h"

#include "loom/loom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { COPY_K = 10, COPY_A = 8 };

typedef struct {
    loom_graph *g;
    loom_rnn rnn;
    loom_tensor x, y, out, loss;
    loom_plan *plan, *eval;
    loom_store *store;
    int n_params;
    loom_tensor *outs;
} task_model;

/* The model and its plans (training: loss, output, every gradient;
 * evaluation: loss and output). */
static bool build(task_model *m, const loom_task_config *c)
{
    loom_graph *g = m->g = loom_graph_new();
    if (!g) return false;
    bool adding = c->task == LOOM_TASK_ADDING;
    int T = adding ? c->steps : COPY_K + c->steps + COPY_K, B = c->batch, H = c->hidden, C = COPY_A + 2;
    loom_rnn_init(g, &m->rnn, &(loom_rnn_opts){.cell = c->cell, .input_size = adding ? 2 : C, .hidden_size = H,
                                               .layers = c->layers, .prefix = "rnn."});
    if (adding) {
        m->x = loom_input(g, "x", loom_shape3(T, B, 2));
        m->y = loom_input(g, "y", loom_shape1(B));
    } else {
        m->x = loom_input_i32(g, "x", loom_shape2(T, B));
        m->y = loom_input_i32(g, "y", loom_shape2(T, B));
    }
    loom_rnn_out o = loom_rnn_apply(g, &m->rnn, adding ? m->x : loom_one_hot(g, m->x, C), NULL);
    if (adding) {
        loom_tensor last = loom_reshape(g, loom_slice(g, o.output, 0, T - 1, 1), loom_shape2(B, H));
        m->out = loom_reshape(g, loom_linear(g, "decoder", last, 1), loom_shape1(B));
        m->loss = loom_mse(g, m->out, m->y);
    } else {
        m->out = loom_linear(g, "decoder", o.output, C);
        m->loss = loom_cross_entropy(g, m->out, m->y, LOOM_NO_MASK);
    }
    m->store = loom_store_new(g);
    if (loom_graph_failed(g) || loom_store_status(m->store)) return false;
    m->n_params = loom_store_count(m->store);
    m->outs = malloc((size_t)(2 + m->n_params) * sizeof *m->outs);
    if (!m->outs) return false;
    m->outs[0] = m->loss, m->outs[1] = m->out;
    loom_backward(g, m->loss, loom_store_tensors(m->store), m->n_params, m->outs + 2);
    m->plan = loom_plan_new(g, m->outs, 2 + m->n_params, &(loom_plan_opts){.seed = c->seed});
    m->eval = m->plan ? loom_plan_new(g, m->outs, 2, &(loom_plan_opts){.eval = true}) : NULL;
    if (!m->eval) return false;
    loom_store_init(m->store, c->seed);
    loom_store_bind(m->store, m->plan), loom_store_bind(m->store, m->eval);
    return true;
}

/* Accuracy on a batch: adding — |prediction − target| < 0.04; copy — the
 * symbols of the last K steps predicted exactly. */
static double accuracy(const loom_task_config *c, const float *out, const void *y)
{
    int B = c->batch, hits = 0, total = 0;
    if (c->task == LOOM_TASK_ADDING) {
        for (int b = 0; b < B; b++) hits += fabsf(out[b] - ((const float *)y)[b]) < 0.04f, total++;
    } else {
        int L = COPY_K + c->steps + COPY_K, C = COPY_A + 2;
        for (int t = L - COPY_K; t < L; t++)
            for (int b = 0; b < B; b++) {
                const float *l = out + ((size_t)t * B + b) * C;
                int best = 0;
                for (int k = 1; k < C; k++) best = l[k] > l[best] ? k : best;
                hits += best == ((const int32_t *)y)[t * B + b], total++;
            }
    }
    return (double)hits / total;
}

static void make_batch(const loom_task_config *c, uint64_t seed, void *x, void *y)
{
    if (c->task == LOOM_TASK_ADDING) loom_task_adding(c->steps, c->batch, seed, x, y);
    else loom_task_copy(c->steps, COPY_K, COPY_A, c->batch, seed, x, y);
}

int loom_train_task(const loom_task_config *c)
{
    bool adding = c->task == LOOM_TASK_ADDING;
    int T = adding ? c->steps : COPY_K + c->steps + COPY_K, B = c->batch;
    size_t xs = adding ? (size_t)T * B * 2 * sizeof(float) : (size_t)T * B * sizeof(int32_t);
    size_t ys = adding ? (size_t)B * sizeof(float) : (size_t)T * B * sizeof(int32_t);
    task_model m = {0};
    void *x = malloc(xs), *y = malloc(ys), *vx = malloc(xs), *vy = malloc(ys);
    float **grads = NULL;
    int64_t *sizes = NULL;
    loom_optim *opt = NULL;
    loom_metrics *metrics = NULL;
    int rc = 1;
    if (!x || !y || !vx || !vy || !build(&m, c)) {
        fprintf(stderr, "loom train: %s\n", m.g && loom_graph_failed(m.g) ? loom_graph_error(m.g) : "out of memory");
        goto done;
    }
    const char *err = NULL;
    opt = loom_optim_for_store(&(loom_optim_opts){.kind = c->optimizer, .lr = c->lr}, m.store, &err);
    grads = malloc((size_t)m.n_params * sizeof *grads);
    sizes = malloc((size_t)m.n_params * sizeof *sizes);
    if (!opt || !grads || !sizes) {
        fprintf(stderr, "loom train: %s\n", err ? err : "out of memory");
        goto done;
    }
    for (int i = 0; i < m.n_params; i++) sizes[i] = loom_store_numel(m.store, i);
    if ((rc = loom_tool_open_outputs("loom train", NULL, c->metrics, "step,loss,grad_norm,lr,valid_loss,valid_accuracy", -1,
                                     &metrics)))
        goto done;
    rc = 1;
    make_batch(c, c->seed * 7919 + 1, vx, vy); /* one held-out batch, never trained on */
    loom_bind(m.plan, m.x, x), loom_bind(m.plan, m.y, y), loom_bind(m.eval, m.x, vx), loom_bind(m.eval, m.y, vy);
    printf("%s task, T = %d: %s, hidden %d, layers %d, B=%d, %s lr %g, %ld steps%s\n", adding ? "adding" : "copy", c->steps,
           c->cell->name, c->hidden, c->layers, B, (const char *[]){"sgd", "adam", "adamw"}[c->optimizer], c->lr, c->total,
           adding ? " (predicting the mean scores MSE ≈ 0.167)" : "");
    double t0 = loom_tool_now(), vloss = NAN, vacc = NAN, avg = 0;
    for (long step = 0; step < c->total; step++) {
        if (loom_tool_caught()) {
            rc = loom_tool_flush_metrics("loom train", &metrics);
            rc = loom_tool_interrupted("loom train", step, c->total, NULL, rc);
            goto done;
        }
        make_batch(c, c->seed * 1000003u + (uint64_t)step + 2, x, y);
        if (loom_run(m.plan)) {
            fprintf(stderr, "loom train: %s\n", loom_plan_error(m.plan));
            goto done;
        }
        double loss = loom_plan_output(m.plan, m.loss)[0];
        for (int i = 0; i < m.n_params; i++) grads[i] = (float *)loom_plan_output(m.plan, m.outs[2 + i]);
        double norm = loom_clip_grad_norm(grads, sizes, m.n_params, c->clip > 0 ? c->clip : INFINITY);
        if (!isfinite(loss) || !isfinite(norm)) {
            fprintf(stderr, "loom train: step %ld: the %s is not finite; stopping\n", step + 1, isfinite(loss) ? "gradient" : "loss");
            goto done;
        }
        loom_optim_step(opt, (const float *const *)grads, c->lr);
        avg = step ? 0.95 * avg + 0.05 * loss : loss;
        bool eval = (step + 1) % c->eval_every == 0 || step + 1 == c->total;
        if (eval) {
            if (loom_run(m.eval)) {
                fprintf(stderr, "loom train: %s\n", loom_plan_error(m.eval));
                goto done;
            }
            vloss = loom_plan_output(m.eval, m.loss)[0];
            vacc = accuracy(c, loom_plan_output(m.eval, m.out), vy);
            fprintf(stderr, "step %ld/%ld  loss %.4f  grad norm %.2f  held-out %s %.4f  accuracy %.1f%%  %.0f s\n", step + 1,
                    c->total, avg, norm, adding ? "MSE" : "loss", vloss, 100 * vacc, loom_tool_now() - t0);
        }
        if (metrics) {
            char v[64] = ",";
            if (eval) snprintf(v, sizeof v, "%.6f,%.4f", vloss, vacc);
            if (loom_metrics_row(metrics, "%ld,%.6f,%.6f,%.6g,%s", step + 1, loss, norm, c->lr, v)) {
                fprintf(stderr, "loom train: --metrics: out of memory\n");
                goto done;
            }
            if ((eval || loom_metrics_age(metrics) > 10) && loom_tool_flush_metrics("loom train", &metrics)) goto done;
        }
    }
    printf("trained %ld steps in %.1f s: held-out %s %.4f, accuracy %.1f%%\n", c->total, loom_tool_now() - t0,
           adding ? "MSE" : "cross-entropy", vloss, 100 * vacc);
    rc = loom_tool_flush_metrics("loom train", &metrics);
done:
    if (rc) loom_tool_flush_metrics("loom train", &metrics); /* the rows of a run that stopped */
    loom_metrics_free(metrics);
    loom_optim_free(opt);
    free(grads), free(sizes), free(x), free(y), free(vx), free(vy), free(m.outs);
    loom_plan_free(m.plan), loom_plan_free(m.eval);
    loom_store_free(m.store);
    loom_graph_free(m.g);
    return rc;
}
