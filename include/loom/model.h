/* loom/model.h — the models loom trains as data: a description (kind and
 * options) that goes to and from JSON, and the one checkpoint schema that
 * carries it.
 *
 * Checkpoint schema, format 1 (every kind of model; metadata of the
 * safetensors file, beside the weights under their names):
 *   loom.format_version  "1"
 *   loom.model           the model: {"kind": "lm" | "seq2seq" | "adding" | "copy", its options;
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
#include "loom/layers.h"
#include "loom/safetensors.h"
#include "loom/seq2seq.h"
#include "loom/train.h"

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

typedef enum { LOOM_MODEL_LM = 0, LOOM_MODEL_SEQ2SEQ, LOOM_MODEL_ADDING, LOOM_MODEL_COPY } loom_model_kind;

/* The synthetic long-range tasks' model: the adding problem (x (T, B, 2) →
 * stack → the last step's output → linear → one number, MSE against the
 * sum of the marked values; predicting the mean scores ≈ 0.167) and the
 * copy task (LOOM_COPY_SYMBOLS symbols of LOOM_COPY_ALPHABET, one-hot over
 * T + 2·symbols steps → stack → linear per step → cross-entropy). */
#define LOOM_COPY_SYMBOLS 10
#define LOOM_COPY_ALPHABET 8
typedef struct {
    loom_model_kind kind; /* LOOM_MODEL_ADDING or LOOM_MODEL_COPY */
    const loom_cell_def *cell;
    int steps, batch, hidden, layers;
    loom_stacking stacking;
} loom_task_opts;

typedef struct {
    loom_task_opts o;
    loom_rnn rnn;
    loom_tensor x, y;  /* inputs: adding f32 (T, B, 2) and (B); copy i32 (T', B) and (T', B) */
    loom_tensor out;   /* adding: the predictions (B); copy: logits (T', B, alphabet + 2) */
    loom_tensor loss;
} loom_task_model;

/* Builds the model into g; errors go to the graph. */
loom_status loom_task_build(loom_graph *g, loom_task_model *m, const loom_task_opts *o);
/* Bytes of the batch buffers bound to m->x and m->y. */
size_t loom_task_x_bytes(const loom_task_opts *o);
size_t loom_task_y_bytes(const loom_task_opts *o);
/* The batch of the task drawn from seed into x and y. */
void loom_task_batch(const loom_task_opts *o, uint64_t seed, void *x, void *y);
/* The seed of a run's batch: of training step `step` (0-based), or of the
 * held-out batch it evaluates on (LOOM_TASK_HELD_OUT), for a run seeded
 * `seed` (loom_train_desc.seed). */
#define LOOM_TASK_HELD_OUT (-1)
uint64_t loom_task_seed(uint64_t seed, int64_t step);
/* The accuracy of out (the model's output for the batch y): adding, the
 * share of predictions within 0.04 of the sum; copy, the share of the
 * symbols to reproduce predicted right. */
double loom_task_accuracy(const loom_task_opts *o, const float *out, const void *y);

/* A model, described. */
typedef struct {
    loom_model_kind kind;
    loom_lm_opts lm;           /* kind LM */
    loom_seq2seq_opts seq2seq; /* kind SEQ2SEQ */
    loom_task_opts task;       /* kind ADDING, COPY */
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
