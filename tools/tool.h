/* The loom command's subcommands and what they share. Each subcommand is a
 * function taking its own arguments and returning the exit status: 0 done,
 * 1 the work failed (a gradient check failed, out of memory, cannot write),
 * 2 bad usage or bad input (message on stderr). Tests call them directly.
 * `--help` where an option may stand prints the command's help (exit 0). */
#ifndef TOOLS_TOOL_H
#define TOOLS_TOOL_H

#include "loom/data.h"
#include "loom/inspect.h"
#include "loom/layers.h"
#include "loom/rnn.h"
#include "loom/store.h"
#include "loom/train.h"
#include "loom/trainer.h"
#include "loom/generate.h"
#include "loom/model.h"
#include "loom/seq2seq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct tool_opt tool_opt;
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis; /* "dot -o FILE [options]" */
    const char *help;     /* what it does, then (without a table) its own options, one per line */
    const tool_opt *opts; /* its options' table, if it has one */
    const int *n_opts;
} tool_command;

int cmd_gradcheck(int argc, char **argv);
int cmd_cell(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_dot(int argc, char **argv);
int cmd_rnn_run(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_word2vec(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_search_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* --precision's names, by loom_precision (train, bench). */
extern const char *const tool_precisions[];
extern const char gradcheck_help[], dot_help[], rnn_run_help[], train_help[], generate_help[],
    eval_help[], plot_help[], bench_help[], cell_help[], inspect_help[], stats_help[], word2vec_help[], embed_help[], search_demo_help[];
/* Only a command's argument parsing (for the fuzzer): 0 if the arguments
 * would run, else the exit status the command would give. */
int gradcheck_parse(int argc, char **argv);
int dot_parse(int argc, char **argv);
int rnn_run_parse(int argc, char **argv);
int train_parse(int argc, char **argv);

/* A language model's checkpoint read into its model (over T steps and B
 * sequences; 0: its own) with its weights, for generation and evaluation
 * (tools/generate.c): 0, or the exit status with a message from cmd. */
typedef struct {
    loom_st *ck;
    loom_vocab *vocab;
    char *data; /* its data description (JSON) */
    loom_graph *g;
    loom_lm lm;
    loom_store *store;
} lm_ckpt;
int lm_ckpt_load(lm_ckpt *l, const char *cmd, const char *path, int T, int B);
void lm_ckpt_free(lm_ckpt *l);
/* The text its data description names, if it can be read (copied into buf). */
const char *lm_ckpt_text(const lm_ckpt *l, char *buf, size_t n);
/* Text from a model with the weights of store after prefix, on stdout. */
int generate_text(const char *cmd, const loom_lm_opts *model, const loom_store *store, const loom_vocab *v, const char *prefix,
                  long length, const loom_search_opts *so);


/* loom train --task adding|copy|sine|temporal-order|classify|tag (tools/tasks.c),
 * seq2seq|reverse|dates (tools/seq2seq.c). */
typedef enum {
    TASK_LM = 0,
    TASK_ADDING, /* the task models (loom_task_opts), in loom_model_kind's order */
    TASK_COPY,
    TASK_SINE,
    TASK_ORDER,
    TASK_CLASSIFY,
    TASK_TAG,
    TASK_SEQ2SEQ,
    TASK_REVERSE,
    TASK_DATES,
    TASK_WORD2VEC /* not a --task: loom word2vec's checkpoints */
} task_kind;

typedef struct {
    task_kind task;
    const loom_cell_def *cell;
    int steps, batch, hidden, layers; /* steps: the sequence length T */
    loom_stacking stacking;
    bool bidirectional;
    loom_pool pool;
    /* classify, tag: the lines (label TAB text, or tokens TAB tags), held-out
     * lines (default: a tenth of data's), rarer tokens <unk>, character
     * tokens, the embedding (0: one-hot); vocab and classes from the data */
    const char *data, *valid;
    int min_freq, embed, vocab, classes;
    bool chars;
    long epochs; /* classify, tag: instead of total, passes over the training lines */
    bool unit_forget_bias;
    long total, eval_every;           /* optimiser steps; held-out evaluation every */
    loom_optimizer optimizer;
    float lr;
    double clip;
    uint64_t seed;
    const char *metrics;
    const char *save, *resume; /* a checkpoint at the end (and every save_every steps); one to continue */
    long save_every;
    bool strict;               /* a diverged run fails */
    const char *norms_csv;     /* the carried states' gradient norms every norms_every steps */
    long norms_every;
    int32_t recompute;         /* loom_trainer_opts.recompute */
    loom_precision precision;  /* loom_trainer_opts.precision */
    loom_comm *comm;           /* data parallelism (mpirun: the synthetic tasks), else NULL */
} task_config;
int train_task(const task_config *c);
/* loom eval of a task model's checkpoint: its held-out batches (classify,
 * tag: its held-out lines, or data's when given); a sine
 * model's k-step-ahead forecast errors for each of ks[0..n_ks) (and the
 * forecasts drawn into plot, when given). */
int eval_task(const char *path, const int *ks, int n_ks, const char *plot, const char *data);

/* ---- options by table: one row per option, the help made from the rows ---- */
typedef enum {
    OPT_FLAG,   /* no value: a bool set true */
    OPT_INT,    /* a long in [lo, hi] */
    OPT_AUTO,   /* a long in [lo, hi], or "auto" (stored as −1) */
    OPT_REAL,   /* a double in [lo, hi] */
    OPT_TEXT,   /* a const char *, valid UTF-8 */
    OPT_PATH,   /* a const char * */
    OPT_CHOICE, /* an int: the index of one of choices (NULL-terminated) */
    OPT_CELL,   /* a const loom_cell_def *, by name */
} opt_kind;
struct tool_opt {
    const char *name; /* "--steps" */
    opt_kind kind;
    size_t at;        /* offsetof the field of the command's options it sets */
    double lo, hi;
    const char *const *choices;
    const char *arg;  /* the value's name in the help ("N", "FILE"); NULL for a flag */
    const char *help; /* one line or several */
};
/* Reads argv[*i] if it is one of the table's n options (advancing *i past
 * its value) into the struct at args: 1 if it was, 0 if it is not one of
 * them, −1 if its value is missing or bad (said on stderr). */
int tool_opt_parse(const char *cmd, const tool_opt *t, int n, void *args, int argc, char **argv, int *i);
/* Every argument by the table (and the model flags into m, unless m is
 * NULL): 0, or 2 for an unknown option or a bad value (said on stderr);
 * *help when --help or -h was given. */
typedef struct tool_model tool_model;
int tool_opts(const char *cmd, const tool_opt *t, int n, void *args, tool_model *m, int argc, char **argv, bool *help);
/* The same for a command that takes arguments besides its options: each
 * is added to pos (room for argc), *n_pos counts them. */
int tool_opts_pos(const char *cmd, const tool_opt *t, int n, void *args, tool_model *m, int argc, char **argv, bool *help,
                  const char **pos, int *n_pos);
/* The table as help lines. */
void tool_opt_help(FILE *f, const tool_opt *t, int n);
/* The commands whose options are a table: the table and its size. */
extern const tool_opt generate_opts[], eval_opts[], train_opts[], translate_opts[], dot_opts[], gradcheck_opts[],
    plot_opts[], bench_opts[], rnn_run_opts[], cell_opts[], inspect_opts[], stats_opts[], word2vec_opts[], embed_opts[], search_demo_opts[];
extern const int n_generate_opts, n_eval_opts, n_train_opts, n_translate_opts, n_dot_opts, n_gradcheck_opts, n_plot_opts,
    n_bench_opts, n_rnn_run_opts, n_cell_opts, n_inspect_opts, n_stats_opts, n_word2vec_opts, n_embed_opts, n_search_demo_opts;
/* A number in [lo, hi] from v, or false with "CMD: FLAG needs a number in [lo, hi], got 'v'". */
bool tool_real(const char *cmd, const char *flag, const char *v, double lo, double hi, double *out);

/* v with `decimals` decimals, or in scientific notation past a million
 * (a diverged perplexity); buf returned. */
const char *tool_num(char *buf, size_t n, double v, int decimals);
/* After a fit: when it diverged with a finite loss (loom_fit_diverged), a
 * warning naming the losses; 1 with strict (the run fails), else 0. */
int tool_diverged(const char *cmd, const loom_fit_report *r, bool strict);

/* loom train --norms-every N --norms-csv FILE (loom_norms_log): opened
 * when path is given (a resumed run keeps its rows up to step resumed; −1:
 * a new run), a step's rows written; 0, or the exit status with a message. */
int tool_norms_open(loom_norms_log *n, const char *cmd, const char *path, long every, const loom_model_desc *d, uint64_t seed,
                    const loom_store *weights, const int32_t *ids, int64_t n_ids, int64_t resumed);
int tool_norms_step(loom_norms_log *n, const char *cmd, int64_t step);

/* A new CSV at path (nothing when path is NULL), its header `columns`, its
 * rows added by fill(ctx, m), written atomically: 0, or the exit status
 * with a message from cmd. */
int tool_write_rows(const char *cmd, const char *path, const char *columns, loom_status (*fill)(const void *, loom_metrics *),
                    const void *ctx);

/* "CMD: WHAT: WHY" on stderr; 2. */
int tool_fail(const char *cmd, const char *what, const char *why);
/* The same, with the exit status of st (1 for out of memory and i/o, else 2). */
int tool_fail_st(const char *cmd, loom_status st, const char *what, const char *why);
/* The built-in corpus (The Time Machine): the source tree's copy when there
 * is one, else the installed one; and whether path is either. */
const char *tool_corpus(void);
bool tool_is_corpus(const char *path);


/* rnn-run's work: 0 on success; 2 for a bad or inconsistent case file
 * (message in err); 1 for other failures (out of memory, cannot write). */
int rnn_run(const char *case_path, const char *out_path, bool refuse_non_finite, char *err, size_t err_len);

/* The exit status for a failure: 1 for out of memory or i/o, 2 for the
 * rest (bad arguments, shapes, files). */
int tool_exit(loom_status st);
/* A file a command reads or writes, and the flag that named it (path NULL:
 * not given). */
typedef struct {
    const char *flag, *path;
} tool_file;
/* Whether a and b name one file: the same path, or (when both exist) the
 * same device and inode, so links and symlinks too. */
bool tool_same_file(const char *a, const char *b);
/* Whether the outputs may be written: none is the file of an input or of
 * another output (the same path, or the same file by device and inode:
 * links too); "-" is stdout. Otherwise a message naming both, false. */
bool tool_outputs_ok(const char *cmd, const tool_file *out, int n_out, const tool_file *in, int n_in);
/* Before a run: --save can be written, and the --metrics file is opened
 * (a resumed run keeps its rows up to step `resumed`; -1: a new run). 0,
 * or the exit status with a message. */
int tool_open_outputs(const char *cmd, const char *save, const char *metrics, const char *columns, int64_t resumed,
                           loom_metrics **out);
/* Writes the metrics file with every row so far: 0, or 1 with a message
 * (the file is then closed: the run stops). */
int tool_flush_metrics(const char *cmd, loom_metrics **m);
/* Whether every weight of s (read from path) is finite; a message naming
 * the first parameter that is not, otherwise. */
bool tool_finite_weights(const char *cmd, const char *path, const loom_store *s);
/* SIGINT and SIGTERM end a training run between two steps: the handler
 * only records the first signal (a second one cannot interrupt the
 * checkpoint being written); loops ask tool_caught() before each
 * step. */
void tool_catch_signals(void);
/* Rank `rank` of `ranks` of a data-parallel run: ranks > 0 print only
 * their errors (tool_fail's, to the stderr they had, naming the rank). */
void tool_ranks_quiet(int rank, int ranks);
/* Whether a fit ended before `steps` by a signal: to this process, or, with
 * processes, to any (every one stops after the same step). */
bool tool_stopped(const loom_trainer *t, long steps);
/* " per process × N processes" with processes, else "" (into buf). */
const char *tool_per_process(const loom_comm *comm, char *buf, size_t n);
/* f written to path (atomically); with processes (comm), by rank 0 while
 * every rank waits to learn whether it was: 0, or 1 with a message. */
int tool_write_checkpoint(const char *cmd, loom_st *f, const char *path, loom_comm *comm);
int tool_caught(void); /* the signal caught, or 0 */
/* Whether one was caught, as loom_trainer_fit's stop poll. */
bool tool_stop(void *ctx);
/* Says where a run stopped and how to resume it (saved: the checkpoint
 * save's status, 0 when written); returns the exit status, 128 + the
 * signal (130 for SIGINT, 143 for SIGTERM), or the save's failure. */
int tool_interrupted(const char *cmd, long step, long steps, const char *save, int saved);
/* Whether a flag's value v is UTF-8 text; "CMD: FLAG is not valid UTF-8
 * text (byte N ...)" on stderr otherwise. */
bool tool_text(const char *cmd, const char *flag, const char *v);
/* --help or -h, where an option is expected. */
bool tool_is_help(const char *arg);


/* The number under key k of a checkpoint's configuration object, which
 * must lie in [lo, hi]; otherwise *ok becomes false and lo is returned. */
struct cJSON;
double tool_jnum(const struct cJSON *o, const char *k, double lo, double hi, bool *ok);

/* The sizes a model may have, the same whether they come from a flag or
 * from a checkpoint's configuration (read before anything is built). */
#define TOOL_MAX_SEQ 100000   /* --seq-len */
#define TOOL_MAX_BATCH 4096   /* --batch */
#define TOOL_MAX_WIDTH 4096   /* --input, --hidden */
#define TOOL_MAX_EMBED 65536  /* --embed */
#define TOOL_MAX_PAIRS (1L << 24) /* --pairs of a synthetic translation task */
/* The most optimiser steps a run may take (--steps), and the most plan runs
 * a checkpoint may record: the trainer's limits. */
#define TOOL_MAX_STEPS LOOM_TRAINER_MAX_STEPS
#define TOOL_MAX_RUNS LOOM_TRAINER_MAX_RUNS

/* What made the checkpoint at path (loom_checkpoint_model), read once:
 * TASK_SEQ2SEQ (an encoder–decoder), its task for a task model
 * (TASK_ADDING ... TASK_TAG), else TASK_LM (a file that is no checkpoint too: its reader
 * says why later). */
task_kind tool_checkpoint_kind(const char *path);
/* The step a training checkpoint was written after (loom.step), or -1 when
 * missing or out of range. */
int64_t tool_checkpoint_step(const loom_st *ck);

/* Seconds on the monotonic clock (progress, rates, benchmarks). */
double tool_now(void);

/* ---- flags ---- */

/* Parses an integer flag value in [lo, hi]; false (with a message) otherwise. */
bool tool_int(const char *flag, const char *s, long lo, long hi, long *out);
/* The thread count: --threads N when given (flag > 0), else
 * LOOM_NUM_THREADS, else OpenMP's (OMP_NUM_THREADS, or every core); false
 * (with a message) for a malformed LOOM_NUM_THREADS. */
bool tool_threads(long flag);
/* "rnn_tanh, rnn_relu, gru or lstm": the known cells, for messages. */
const char *tool_cell_names(char *buf, size_t n);

/* The model gradcheck and dot build: cell, stack and sizes. */
struct tool_model {
    const loom_cell_def *cell;
    long steps, batch, input, hidden, layers, seed;
    bool bidirectional;
    int stacking; /* loom_stacking */
};

/* Reads argv[*a] if it is a model flag (advancing *a past its value):
 * 1 if it was one, 0 if not, -1 if its value is bad (message printed). */
int tool_model_flag(tool_model *m, int argc, char **argv, int *a);
/* The model flags' help text. */
void tool_model_help(FILE *f);
/* `loom <synopsis>`, the command's help (and its options' table, if it
 * has one), and the model flags if it takes them, on stdout (for `loom
 * <command> --help`). */
void tool_help(const char *synopsis, const char *help, const tool_opt *opts, int n_opts, bool model_flags);

/* loom train's options (model sizes left 0 by the user take the task's defaults). */
typedef struct {
    tool_model m;
    const char *data, *valid, *metrics, *save, *prefix, *resume, *init, *norms_csv;
    int tokens;   /* loom_token_kind */
    int sampling; /* 0 random, 1 sequential */
    int task_name; /* the --task given: a task_kind, or charlm, wordlm */
    int pool;      /* loom_pool */
    bool letters_only, help, sequential, lr_given, steps_given, strict, tie_weights, variational;
    double state_dropout, weight_drop, zoneout, dropout_embed;
    long epochs, embed, steps, warmup, eval_every, generate, threads, save_every, norms_every;
    long truncate;     /* truncated BPTT inside a window: every K steps (0: full) */
    long recompute;    /* keep the carried states every N steps, recompute the rest going back (0: none, −1: auto) */
    int precision;     /* loom_precision of the products */
    long sampled_softmax; /* a language model trained on a sampled softmax of K classes (0: the full one) */
    long dec_layers;      /* an encoder–decoder's decoder layers (0: --layers) */
    bool unit_forget_bias; /* an LSTM's forget gates start at bias 1 */
    bool random_trunc; /* ... or at random, K steps apart on average, unbiased */
    double dropout, lr, momentum, weight_decay, clip, temperature;
    int optimizer; /* loom_optimizer */
    int schedule;  /* loom_sched_kind */
    task_kind task;
    /* sequence to sequence */
    int attention;           /* loom_attention */
    double teacher_forcing;  /* the share of steps that read the gold token */
    long pairs, min_len, min_freq, eval_pairs;
    const char *given[64]; /* the options given, in order (a flag that cannot be honoured is refused) */
    int n_given;
} train_args;
/* loom train of a language model (tools/lm.c). */
/* comm: data parallelism (mpirun), else NULL. */
int train_lm(const train_args *a, loom_comm *comm);
/* loom train --task seq2seq|reverse|dates. */
int train_seq2seq(const train_args *a, loom_comm *comm);
/* An encoder–decoder's pairs (tools/seq2seq.c): a file, or a synthetic
 * task's text (training pairs, then the held-out ones), read with the
 * given vocabularies (NULL: their own); the held-out pairs are --valid's
 * or the pairs' held-out part. 0, or the exit status with a message. */
typedef struct {
    loom_pairs *pairs, *valid;
    const loom_pairs *held; /* valid's every pair, or pairs' held-out part */
    bool held_part;         /* the part of held they are */
} s2s_data;
int s2s_pairs(const char *cmd, const train_args *a, const loom_vocab *const *vocab, s2s_data *d);
void s2s_data_free(s2s_data *d);
void s2s_report_bad_lines(const char *cmd, const loom_pairs *p, const char *path);
/* An encoder–decoder checkpoint's description: its model, training and
 * vocabularies, and its task with its data (paths, a synthetic task's
 * generator settings) in t, the paths copied into paths (2 × n bytes). 0,
 * or exit status 2 with a message. */
int s2s_describe(const char *cmd, const loom_st *ck, const char *path, loom_seq2seq_opts *mo, loom_train_desc *train,
                 loom_vocab **v, train_args *t, char *paths, size_t n);
/* A checkpoint of an encoder–decoder read: its model, task, vocabularies,
 * weights, and its decoding graph for `batch` sentences and `rows` rows
 * (tools/pairs.c). */
typedef struct {
    loom_st *ck;
    loom_vocab *v[2];
    train_args task; /* a synthetic task's generator settings (task, seed, pairs, lengths) */
    char paths[8192];     /* the data and valid paths of its description */
    loom_seq2seq_opts mo;
    loom_graph *g;
    loom_seq2seq m;
    loom_store *store;
} s2s_ckpt;
int s2s_load(s2s_ckpt *l, const char *cmd, const char *path, int batch, int rows);
/* A token as a picture's label: a space drawn ␣, a newline ↵, an id out of range "?" (tools/pairs.c). */
const char *tool_token_label(const loom_vocab *v, int32_t id);
void s2s_unload(s2s_ckpt *l);
int cmd_translate(int argc, char **argv);
extern const char translate_help[];
/* loom eval of a checkpoint of a sequence-to-sequence model. */
int eval_seq2seq(const char *ckpt, const char *data, long beam);

#endif
