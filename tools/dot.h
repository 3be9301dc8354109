/* Internal to loom dot (tools/dot.c: its options and the picture;
 * tools/dot_model.c: the models it draws and their gradient heat). */
#ifndef TOOLS_DOT_H
#define TOOLS_DOT_H

#include "tool.h"

typedef struct {
    tool_model m;
    long truncate, shown;
    float heat_lo, heat_hi;
    bool backward, norms, random_trunc, help;
    int view, loss;  /* op or cell; all or last */
    const char *out, *fmt, *title, *load, *data, *heat;
    int seq2seq; /* −1: a recurrent stack; else the encoder–decoder's loom_attention */
} dot_args;

typedef struct {
    loom_graph *g;
    loom_rnn rnn;
    loom_seq2seq s2s; /* --seq2seq */
    loom_tensor x, loss;
    uint64_t rng;
    tool_lm lm; /* --load: the trained model and its window of text */
} dot_model;

/* x → stack → per-step losses l_t = Σ y_t ⊙ r_t (r_t fixed random), L = Σ_t l_t. */
void dot_build(dot_model *dm, const dot_args *a);
/* An untrained encoder–decoder and its loss. */
void dot_build_seq2seq(dot_model *dm, const dot_args *a);
/* ‖∂L/∂h_t‖ per (step, layer, direction) on seeded random data, or (loaded)
 * on the checkpoint's window of text; false with the graph's error. */
bool dot_heat(dot_model *dm, const dot_args *a, float *norms);
bool dot_heat_loaded(dot_model *dm, const dot_args *a, float *norms);
/* The gradients of the loss w.r.t. every parameter, as roots to draw (their count). */
int dot_backward(dot_model *dm, loom_tensor *roots);

#endif
