/* loom/model.h — the models loom trains as data: a description (kind and
 * options) that goes to and from JSON, and the one checkpoint schema that
 * carries it.
 *
 * Checkpoint schema, format 1 (every kind of model; metadata of the
 * safetensors file, beside the weights under their names):
 *   loom.format_version  "1"
 *   loom.model           the model: {"kind": "lm" | "seq2seq" | "adding" | "copy" | "sine" |
 *                        "temporal-order" | "classify" | "tag" | "word2vec", its options;
 *                        cells and enums by name, numbers as numbers}
 *   loom.training        how it trains: optimizer, schedule, clipping, truncation (by name), seed
 *   loom.data            what it trains on (the program's: a text's path, a task's sizes)
 *   loom.vocab, loom.src_vocab, loom.tgt_vocab   vocabularies (loom_vocab_to_string)
 *   loom.fingerprint     the graph's (loom_graph_fingerprint), 16 hex digits
 *   the trainer's part   loom_trainer_save: loom.step, loom.optim_steps, loom.plan_runs,
 *                        loom.epoch, loom.batch, optim.m.NAME, optim.v.NAME, state.I
 *   the batches' part    loom_pair_batches_save: data.order, loom.rng, loom.pos
 *   loom.checksum        loom_checkpoint_write's
 * Files written before format 1 (loom.config, loom.seq2seq or loom.task in
 * place of loom.model and loom.training) are read as format 0 and
 * described the same way; a newer format is refused, saying which.
 */
#ifndef LOOM_MODEL_H
#define LOOM_MODEL_H

#include "loom/data.h"
#include "loom/embed.h"
#include "loom/layers.h"
#include "loom/safetensors.h"
#include "loom/seq2seq.h"
#include "loom/train.h"
#include "loom/trainer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LOOM_FORMAT_VERSION 1

/* The largest sizes a description may give (larger ones in a file are
 * refused before anything is allocated). */
#define LOOM_MODEL_MAX_STEPS 100000
#define LOOM_MODEL_MAX_BATCH 4096
#define LOOM_MODEL_MAX_WIDTH 4096
#define LOOM_MODEL_MAX_EMBED 65536
#define LOOM_MODEL_MAX_VOCAB (1 << 24)
#define LOOM_MODEL_MAX_W2V_BATCH 65536

typedef enum {
    LOOM_MODEL_LM = 0,
    LOOM_MODEL_SEQ2SEQ,
    LOOM_MODEL_ADDING,
    LOOM_MODEL_COPY,
    LOOM_MODEL_SINE,
    LOOM_MODEL_ORDER,
    LOOM_MODEL_CLASSIFY,
    LOOM_MODEL_TAG,
    LOOM_MODEL_WORD2VEC
} loom_model_kind;

/* The task models: a stack of any cell with a head, trained on batches
 * drawn from a seed (the synthetic tasks) or read from a file (classify,
 * tag: loom_pairs of kind LOOM_PAIRS_LABELLED or LOOM_PAIRS_TAGGED).
 *   ADDING:   x f32 (T, B, 2) → stack → the last step's output → linear → one
 *             number per sequence; MSE against the sum of the two marked
 *             values (predicting the mean scores ≈ 0.167).
 *   COPY:     LOOM_COPY_SYMBOLS symbols of LOOM_COPY_ALPHABET, one-hot over
 *             T + 2·symbols steps → stack → linear per step → cross-entropy.
 *   SINE:     forecasting (d2l 8.1): a window x f32 (T, B, 1) of the noisy
 *             sine (loom_task_sine_series) → stack → linear per step → the
 *             next value, MSE against y f32 (T, B), the window shifted by one.
 *             Training windows lie in the series' first LOOM_SINE_TRAIN
 *             points, the held-out batch's after them.
 *   ORDER:    the temporal-order problem (Hochreiter & Schmidhuber 1997,
 *             task 6a; loom_task_order): x i32 (T, B) one-hot over 8 symbols
 *             → stack → pooled (loom_rnn_pool) → linear → 4 classes,
 *             cross-entropy against y i32 (B).
 *   CLASSIFY: many-to-one: tokens x i32 (T, B) with lengths i32 (B) →
 *             embedding (one-hot when embed = 0) → stack → pooled → linear
 *             → `classes` logits, cross-entropy against y i32 (B).
 *   TAG:      one label per step: x and lengths as CLASSIFY → stack →
 *             linear per step → (T, B, classes), cross-entropy against y
 *             i32 (T, B) over the valid steps.
 * ORDER, CLASSIFY and TAG may read both directions. */
#define LOOM_COPY_SYMBOLS 10
#define LOOM_COPY_ALPHABET 8
#define LOOM_SINE_POINTS 1000
#define LOOM_SINE_TRAIN 600
#define LOOM_SINE_MAX_STEPS 300 /* a held-out window and its targets fit after LOOM_SINE_TRAIN */
#define LOOM_ORDER_SYMBOLS 8     /* a b c d (distractors), X, Y, B (begin), E (end) */
#define LOOM_ORDER_CLASSES 4     /* XX, XY, YX, YY */
typedef struct {
    loom_model_kind kind; /* ADDING, COPY, SINE, ORDER, CLASSIFY or TAG */
    const loom_cell_def *cell;
    int steps, batch, hidden, layers;
    loom_stacking stacking;
    bool bidirectional; /* ORDER, CLASSIFY, TAG */
    loom_pool pool;     /* ORDER, CLASSIFY: the sequence's vector */
    int vocab, embed, classes; /* CLASSIFY, TAG: token ids, embedding size (0: one-hot), labels */
    bool unit_forget_bias;     /* an LSTM's forget gates start at bias 1 (loom_rnn_opts) */
} loom_task_opts;

typedef struct {
    loom_task_opts o;
    loom_rnn rnn;
    loom_tensor x, y;    /* inputs, as above */
    loom_tensor lengths; /* CLASSIFY, TAG: i32 (B) valid steps (else invalid) */
    loom_tensor out;     /* predictions (ADDING (B), SINE (T, B)) or logits (COPY, TAG (T, B, C), ORDER, CLASSIFY (B, C)) */
    loom_tensor loss;
} loom_task_model;

/* Builds the model into g; errors go to the graph. */
loom_status loom_task_build(loom_graph *g, loom_task_model *m, const loom_task_opts *o);
/* Whether a task reads a file (CLASSIFY, TAG) rather than drawing its batches. */
bool loom_task_reads_data(loom_model_kind k);
/* Bytes of the batch buffers bound to m->x and m->y. */
size_t loom_task_x_bytes(const loom_task_opts *o);
size_t loom_task_y_bytes(const loom_task_opts *o);
/* A synthetic task's batch into x and y: the one of training step `step`
 * (0-based) or, for step LOOM_TASK_HELD_OUT − k, the k-th held-out batch
 * (k ≥ 0) a run evaluates on, of a run seeded `seed`
 * (loom_train_desc.seed); the sine series is the run's (seed's) too.
 * Nothing for CLASSIFY and TAG. */
#define LOOM_TASK_HELD_OUT (-1)
void loom_task_batch(const loom_task_opts *o, uint64_t seed, int64_t step, void *x, void *y);
/* Data parallelism: rank `rank` of `ranks`'s part of that batch — the
 * batch of o->batch × ranks sequences one process would draw, cut by
 * sequences (columns), rank·o->batch … — into x and y of o->batch
 * sequences. LOOM_ERR_NOMEM when the whole batch cannot be drawn. */
loom_status loom_task_batch_shard(const loom_task_opts *o, uint64_t seed, int64_t step, int rank, int ranks, void *x, void *y);
/* The accuracy of out (the model's output for the batch y): adding, the
 * share of predictions within 0.04 of the sum; copy, the share of the
 * symbols to reproduce predicted right; ORDER and CLASSIFY, of sequences
 * classified right; TAG, of valid steps tagged right (lengths: the
 * batch's, for TAG; the <eos> a sequence ends with is not counted); NaN
 * for SINE (its score is the MSE). */
double loom_task_accuracy(const loom_task_opts *o, const float *out, const void *y, const int32_t *lengths);

/* A synthetic task's held-out score: the mean loss and accuracy over its
 * first `batches` held-out batches (LOOM_TASK_HELD_OUT − k), drawn into x
 * and y — the buffers bound to m->x and m->y — and run through the
 * trainer's evaluation plan (opts.eval_outputs must hold m->out). A
 * trainer with a communicator shares each batch of the global batch
 * between the ranks (loom_task_batch_shard) and every rank gets the means
 * one process would (collective). */
loom_status loom_task_evaluate(loom_trainer *t, const loom_task_model *m, uint64_t seed, int batches, void *x, void *y,
                               double *loss, double *accuracy);
/* The lines a classify or tag model reads (loom_pairs of its kind:
 * LOOM_PAIRS_LABELLED, LOOM_PAIRS_TAGGED): a file's, a tenth held out after
 * a seeded shuffle, or with `valid` that file's lines as the held-out part;
 * or, to score a file (`whole`), every line of it in order as one part. */
typedef struct {
    const char *path, *valid; /* valid may be NULL */
    int steps, min_freq;      /* tokens per line, <eos> included; rarer tokens become <unk> */
    bool chars;               /* character tokens (else split at white space) */
    uint64_t seed;
} loom_task_data;
typedef struct {
    loom_pairs *pairs, *valid; /* the file's lines; the valid file's, or NULL */
    const loom_pairs *held;    /* the held-out lines: valid, or pairs' held-out part */
    bool held_part;            /* loom_pairs_count's `valid` for held */
} loom_task_lines;
/* Reads them into l, with the vocabularies vocab (a checkpoint's, which
 * must outlive l) or, when NULL, building them from path. The reason in
 * err: a file that cannot be read, no line of the kind, too few lines for
 * a training and a held-out part (LOOM_ERR_VALUE; the pairs are kept, bad
 * lines and all: free them with loom_task_lines_free either way). */
loom_status loom_task_lines_read(loom_task_lines *l, loom_model_kind kind, const loom_task_data *d, const loom_vocab *const *vocab,
                                 bool whole, loom_error *err);
void loom_task_lines_free(loom_task_lines *l);
/* The description a checkpoint keeps of them (loom.data): {"path", "valid",
 * "min_freq", "tokens"} (malloc'd; NULL when out of memory); and back into
 * d — the paths copied into paths (2 × n bytes), steps and seed left as
 * they were — LOOM_ERR_FORMAT when it is missing or bad. */
char *loom_task_data_json(const loom_task_data *d);
loom_status loom_task_data_parse(const char *json, loom_task_data *d, char *paths, size_t n, loom_error *err);

/* A classify or tag model's inputs bound to the buffers of pair batches
 * (loom_pair_batches_buffers of pairs of kind LOOM_PAIRS_LABELLED or
 * LOOM_PAIRS_TAGGED): x the tokens, lengths their valid lengths, y the
 * labels (the target side's first step) or tags. */
loom_status loom_task_bind_pairs(loom_trainer *t, const loom_task_model *m, const loom_pair_batch *buf);
/* A classify or tag model's score on every line of a part of p once (its
 * held-out part, or a file's pairs read with the model's vocabularies):
 * the mean cross-entropy per sequence (CLASSIFY) or per valid step (TAG)
 * and the accuracy as loom_task_accuracy counts it, both from the logits of
 * the evaluation plan (opts.eval_outputs must hold m->out), through the
 * batches b whose buffers are bound to the model (loom_task_bind_pairs). */
loom_status loom_task_evaluate_pairs(loom_trainer *t, const loom_task_model *m, loom_pair_batches *b, const loom_pairs *p,
                                     bool valid, double *loss, double *accuracy);
/* k-step-ahead forecasts (d2l 8.1) by a sine model m through its trainer:
 * for each horizon ks[h] (1 ≤ k ≤ 1000) and every held-out point j in
 * [LOOM_SINE_TRAIN, LOOM_SINE_POINTS), the prediction of x_j from the
 * observed points up to x_{j−k} alone — the model fed its own predictions
 * for the k − 1 points between — in pred[h·LOOM_SINE_POINTS + j] (NaN for
 * j < LOOM_SINE_TRAIN), and the mean squared error over those points in
 * mse[h]. Runs the evaluation plan (opts.eval_outputs must hold m->out)
 * with m->x and m->y bound to buffers of its own, which it leaves bound
 * (bind the caller's again before training on). seed: the run's. */
loom_status loom_task_forecast(loom_trainer *t, const loom_task_model *m, uint64_t seed, const int *ks, int n_ks, float *pred,
                               double *mse);
/* The series of a run seeded `seed` and the forecasts pred of each horizon
 * ks[h] (loom_task_forecast's) on the held-out points, drawn into path
 * (.svg or .png; loom_plot_series). */
loom_status loom_task_forecast_plot(uint64_t seed, const int *ks, int n_ks, const float *pred, const char *path, loom_error *err);

/* A model, described. */
typedef struct {
    loom_model_kind kind;
    loom_lm_opts lm;           /* kind LM */
    loom_seq2seq_opts seq2seq; /* kind SEQ2SEQ */
    loom_task_opts task;       /* kind ADDING ... TAG */
    loom_w2v_opts w2v;         /* kind WORD2VEC */
} loom_model_desc;

const char *loom_model_kind_name(loom_model_kind k);
/* The description as JSON (malloc'd; NULL when out of memory). */
char *loom_model_json(const loom_model_desc *m);
/* A description from JSON: every field checked (a known cell, numbers in
 * range); LOOM_ERR_FORMAT with the reason in err otherwise. */
loom_status loom_model_parse(const char *json, loom_model_desc *m, loom_error *err);

/* How a model trains, described: what loom_trainer_opts takes that is not
 * a tensor. */
typedef struct {
    loom_optim_opts optim;
    loom_schedule schedule;
    double clip_norm;
    float clip_value;
    loom_trunc trunc;
    int truncate;
    bool sequential;        /* language models: windows in order, the state carried (else random) */
    double teacher_forcing; /* encoder–decoders: the share of decoder steps that read the gold token */
    uint64_t seed;
} loom_train_desc;

char *loom_train_desc_json(const loom_train_desc *t);
loom_status loom_train_desc_parse(const char *json, loom_train_desc *t, loom_error *err);

/* Adds loom.format_version, loom.model and loom.training to f (data: the
 * program's loom.data JSON, or NULL). */
loom_status loom_checkpoint_describe(loom_st *f, const loom_model_desc *m, const loom_train_desc *t, const char *data);
/* The format of f's description: LOOM_FORMAT_VERSION, 0 for a file written
 * before versions, −1 when it names a format that is not a number. */
int loom_checkpoint_format(const loom_st *f);
/* The model and training of a checkpoint of any format this loom reads
 * (either pointer may be NULL); the reason in err otherwise — a newer
 * format, a file that is no loom checkpoint, a bad field. */
loom_status loom_checkpoint_model(const loom_st *f, loom_model_desc *m, loom_train_desc *t, loom_error *err);
/* What f was trained on, as the JSON object its program wrote (loom.data);
 * for format 0, the same keys gathered from where that format kept them:
 * a language model's "path", "tokens", "letters_only"; an encoder–
 * decoder's "task", "path", "valid", "pairs", "min_len", "min_freq".
 * "{}" when it names nothing; malloc'd, NULL when out of memory. */
char *loom_checkpoint_data(const loom_st *f);

/* A language model's held-out text, as its run split it: the data
 * description's "valid" file, else the last tenth of its "path" (or of
 * `text` when given, a file to use in its place). *held is the index of
 * the first held-out token of the text returned in *out (0 for a valid
 * file; tokenised with v). LOOM_ERR_IO/FORMAT with the reason when the
 * file cannot be read (moved or deleted: give one). */
loom_status loom_lm_held_out(const loom_st *f, const loom_vocab *v, const char *text, loom_text **out, int64_t *held,
                             loom_error *err);
/* The text a language model trained on: its data description's "path",
 * tokenised with v, of which the first *n_train tokens were trained on (all
 * of it when the run held out a "valid" file, else all but the last tenth). */
loom_status loom_lm_training_text(const loom_st *f, const loom_vocab *v, loom_text **out, int64_t *n_train, loom_error *err);
#ifdef __cplusplus
}
#endif
#endif
