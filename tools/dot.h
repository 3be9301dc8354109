/* Internal to loom dot (tools/dot.c: its options and the picture;
 * tools/dot_model.c: the models it draws and their gradient heat). */
#ifndef TOOLS_DOT_H
#define TOOLS_DOT_H

#include "tool.h"
#include "loom/inspect.h"

typedef struct {
    tool_model m;
    long truncate, shown;
    float heat_lo, heat_hi;
    bool backward, norms, random_trunc, help;
    int view, loss;  /* op or cell; DOT_LOSS_* */
    int batch_from;  /* --load: loom_batch_from */
    int edges;       /* loom_dot_edges */
    int style;       /* loom_dot_style */
    const char *out, *fmt, *title, *load, *data, *heat, *norms_csv, *source;
    int seq2seq; /* −1: a recurrent stack; else the encoder–decoder's loom_attention */
} dot_args;

enum { DOT_LOSS_DEFAULT = -1, DOT_LOSS_ALL = 0, DOT_LOSS_LAST = 1 };

typedef struct {
    loom_graph *g;
    loom_rnn rnn;
    loom_seq2seq s2s; /* --seq2seq */
    loom_tensor x, y, loss;
    loom_state_grid grid; /* the stack's carried states */
    loom_probe probe;     /* --load: the trained model on one batch */
    /* --load of an encoder–decoder: its checkpoint, and the model on one sentence */
    s2s_ckpt ck;
    loom_seq2seq_probe sp;
    bool s2s_loaded;
} dot_model;

/* An encoder–decoder's attention weights over one sentence, for the page. */
typedef struct {
    float *w;   /* rows × cols */
    int rows, cols;
    const char **row_labels, **col_labels; /* tokens (a trained model's), or NULL */
} dot_attention;

/* x → stack → per step an output o_t and its loss L_t against random
 * targets, L = Σ_t L_t (or the last step's). */
void dot_build(dot_model *dm, const dot_args *a);
/* An untrained encoder–decoder and its loss. */
void dot_build_seq2seq(dot_model *dm, const dot_args *a);
/* A trained model on one batch (--load; an encoder–decoder: on one sentence,
 * --source or its first held-out pair, and the model's own translation): 0,
 * or the exit status with a message. */
int dot_load(dot_model *dm, const dot_args *a);
void dot_model_free(dot_model *dm);
/* ‖∂L/∂s_t‖ of every carried state (dm->grid) in float32 and float64, on
 * seeded random data or (loaded) the model's batch; false with the
 * graph's error said. */
bool dot_norms(dot_model *dm, const dot_args *a, float *norm, double *norm64);
/* For the page: every value the roots need (loom_value_stats) — a trained
 * model's on its batch, an untrained encoder–decoder's on seeded random
 * sentences (weights from their initialisers, every sentence of full
 * length) — and an encoder–decoder's attention weights over its first
 * sentence (with a trained model's tokens). false with the reason said. */
bool dot_values(dot_model *dm, const dot_args *a, const loom_tensor *roots, int n_roots, float *stats, dot_attention *att);
void dot_attention_free(dot_attention *att);
/* The gradients of the loss w.r.t. every parameter, as roots to draw (their count). */
int dot_backward(dot_model *dm, loom_tensor *roots);

#endif
