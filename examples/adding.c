/* The adding problem (Hochreiter & Schmidhuber, 1997) through loom's
 * trainer: a vanilla RNN against an LSTM. Each sequence holds T random
 * values, two of them marked; the model must output their sum. Predicting
 * the mean scores an MSE of about 0.167; a model that remembers does far
 * better, and over long sequences only the gated cell learns to.
 *   build/adding [T] [STEPS]                                               */
#include <loom/loom.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    loom_task_opts o;
    void *x, *y; /* the buffers bound to the model's inputs */
    double mse;  /* the last held-out MSE */
} run;

static loom_status next_batch(void *ctx, loom_trainer *t)
{
    run *r = ctx; /* a new batch every step, drawn from the step number */
    loom_task_batch(&r->o, 1000, loom_trainer_steps(t), r->x, r->y);
    return LOOM_OK;
}

static loom_status held_out(void *ctx, loom_trainer *t, double *mse)
{
    run *r = ctx; /* one batch never trained on */
    loom_task_batch(&r->o, 1000, LOOM_TASK_HELD_OUT, r->x, r->y);
    loom_trainer_eval_begin(t);
    loom_status st = loom_trainer_eval_batch(t, mse);
    r->mse = *mse;
    return st;
}

static loom_status report(void *ctx, const loom_fit_report *f)
{
    if (f->evaluated) printf("  %s step %lld: held-out MSE %.4f\n", ((run *)ctx)->o.cell->name, (long long)f->step.step, f->score);
    return LOOM_OK;
}

int main(int argc, char **argv)
{
    int T = argc > 1 ? atoi(argv[1]) : 50, steps = argc > 2 ? atoi(argv[2]) : 2000;
    const loom_cell_def *cells[] = {&loom_cell_rnn_tanh, &loom_cell_lstm};
    double mse[2];
    for (int c = 0; c < 2; c++) {
        run r = {.o = {.kind = LOOM_MODEL_ADDING, .cell = cells[c], .steps = T, .batch = 64, .hidden = 64, .layers = 1}};
        loom_graph *g = loom_graph_new();
        loom_task_model m;
        if (loom_task_build(g, &m, &r.o)) return fprintf(stderr, "%s\n", loom_graph_error(g)), 2;
        loom_store *weights = loom_store_new(g);
        loom_store_init(weights, 1);
        loom_error err = {0};
        loom_trainer *t = loom_trainer_new(g, weights, &(loom_trainer_opts){.loss = m.loss,
                                           .optim = {.kind = LOOM_OPT_ADAM, .lr = 0.003f}, .clip_norm = 1}, &err);
        r.x = malloc(loom_task_x_bytes(&r.o)), r.y = malloc(loom_task_y_bytes(&r.o));
        if (!t || !r.x || !r.y) return fprintf(stderr, "%s\n", t ? "out of memory" : err.msg), 1;
        loom_trainer_bind(t, m.x, r.x), loom_trainer_bind(t, m.y, r.y);
        if (loom_trainer_fit(t, &(loom_fit_opts){.steps = steps, .eval_every = steps / 4 > 0 ? steps / 4 : 1, .ctx = &r,
                                                 .next_batch = next_batch, .evaluate = held_out, .progress = report}))
            return fprintf(stderr, "%s\n", loom_trainer_error(t)), 1;
        mse[c] = r.mse;
        free(r.x), free(r.y);
        loom_trainer_free(t), loom_store_free(weights), loom_graph_free(g);
    }
    printf("adding problem, T = %d, %d steps: final held-out MSE %s %.4f, %s %.4f (the mean scores about 0.167)\n", T, steps,
           cells[0]->name, mse[0], cells[1]->name, mse[1]);
    return isfinite(mse[0]) && isfinite(mse[1]) ? 0 : 1;
}
