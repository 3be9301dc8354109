/* `loom train`: a language model on a text — tokens, minibatches, any cell,
 * an optimiser with clipping and a schedule, progress, held-out
 * perplexity, a metrics file, the weights saved, and generated text at the
 * end. With no arguments: a character LSTM on the built-in corpus (H. G.
 * Wells' The Time Machine, with d2l's preprocessing). */
#include "tool.h"

#include "loom/loom.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The built-in corpus: installed with loom, or in the source tree it was
 * built from (set by meson). */
#ifndef LOOM_CORPUS
#define LOOM_CORPUS "/usr/local/share/loom/timemachine.txt"
#endif
#ifndef LOOM_CORPUS_SRC
#define LOOM_CORPUS_SRC "data/corpus/timemachine.txt"
#endif

/* The built-in corpus: the source tree's copy when there is one, else the installed one. */
static const char *builtin_corpus(void) { return access(LOOM_CORPUS_SRC, R_OK) == 0 ? LOOM_CORPUS_SRC : LOOM_CORPUS; }

const char train_help[] =
    "train a recurrent language model on a text and print generated text, or an\n"
    "encoder–decoder on pairs (--task seq2seq, reverse, dates)\n"
    "(no options: a character LSTM on the built-in The Time Machine)\n"
    "  --task T              lm (default; charlm and wordlm: lm with --tokens char or word);\n"
    "                        a synthetic long-range task: adding (the adding problem, MSE) or\n"
    "                        copy (the copy task, accuracy), --seq-len is its length; or an\n"
    "                        encoder–decoder: seq2seq (--data PAIRS.tsv, source TAB target per\n"
    "                        line, as the Tatoeba files; --seq-len is num_steps, default 10),\n"
    "                        reverse (reverse --seq-len letters, default 30) or dates (human\n"
    "                        dates to ISO 8601); held-out loss, BLEU and exact match as it trains\n"
    "  --attention A         encoder–decoder: none, additive (default) or dot\n"
    "  --teacher-forcing R   the share of decoder steps that read the gold token (default 1;\n"
    "                        below 1: the model's own previous token otherwise)\n"
    "  --pairs N             reverse, dates: training pairs (default 20000, 40000; held out: N/10)\n"
    "  --min-len N           reverse: lengths drawn from N..--seq-len (default: all --seq-len)\n"
    "  --min-freq N          seq2seq: rarer words become <unk> (default 2)\n"
    "  --eval-pairs N        held-out pairs translated for BLEU and exact match (default 1000)\n"
    "  --data FILE           UTF-8 text (default: the built-in corpus, letters only as d2l)\n"
    "  --valid FILE          held-out text (default: the last 10% of the data); with --task seq2seq,\n"
    "                        held-out pairs (default: 10% of the pairs)\n"
    "  --tokens char|word    character (code point) or word tokens (default char)\n"
    "  --letters-only        d2l's preprocessing: runs of non-letters become one space, lower case\n"
    "  --embed E             embedding size (default 0: one-hot input)\n"
    "  --dropout P           between layers, on the embedding and the output (default 0)\n"
    "  --steps N             optimiser steps (default 600)\n"
    "  --epochs N            instead of --steps: N whole passes over the training text\n"
    "  --optimizer sgd|adam|adamw  (default adam)\n"
    "  --lr LR               learning rate (default 0.01 for adam, 1 for sgd)\n"
    "  --momentum M          SGD momentum (default 0)\n"
    "  --weight-decay W      (default 0)\n"
    "  --schedule constant|cosine|step|exp  learning-rate schedule (default constant)\n"
    "  --warmup N            linear warm-up steps (default 0)\n"
    "  --clip NORM           clip the global gradient norm (default 1; 0: off)\n"
    "  --truncate K          truncated BPTT: cut the gradient every K steps inside a window\n"
    "                        (K < --seq-len; windows are always cut from each other)\n"
    "  --random-truncation   with --truncate K: cut at random, K steps apart on average, and\n"
    "                        weight what crosses a boundary uncut by K/(K-1), so that the\n"
    "                        expected gradient is the full one (Tallec & Ollivier; d2l 9.7)\n"
    "  --sampling random|sequential  minibatches (default sequential: state carried)\n"
    "  --eval-every N        held-out perplexity every N steps (default 100)\n"
    "  --metrics FILE        CSV: step,loss,perplexity,grad_norm,lr,tokens_per_s,valid_perplexity\n"
    "  --save FILE           a checkpoint at the end (and every --save-every N steps): the weights\n"
    "                        under PyTorch names, optimiser state, data position, carried state,\n"
    "                        vocabulary, configuration; checksummed, written atomically\n"
    "  --save-every N        also save every N steps (default: only at the end)\n"
    "  --resume FILE         continue a checkpoint's run (its model, data position, optimiser)\n"
    "                        up to --steps in all, exactly as if it had not stopped (language\n"
    "                        models and encoder–decoders alike)\n"
    "  --init FILE           start from the weights in a safetensors file (e.g. a PyTorch state_dict)\n"
    "  --generate N          tokens generated at the end (default 200)\n"
    "  --prefix TEXT         what generation starts from (default \"time traveller\")\n"
    "  --temperature T       sampling temperature (default 0.6; 0: greedy)\n"
    "  --threads N           threads (default: LOOM_NUM_THREADS, else OMP_NUM_THREADS, else all)\n";


static const char *command = "loom train"; /* the subcommand whose messages these are */

static bool flag_double(const char *f, const char *v, double lo, double hi, double *out)
{
    char *end = NULL;
    double x = v ? strtod(v, &end) : NAN;
    if (!v || !*v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "%s: %s needs a number in [%g, %g], got '%s'\n", command, f, lo, hi, v ? v : "");
        return false;
    }
    *out = x;
    return true;
}

static int pick(const char *f, const char *v, const char *const *names, int n)
{
    for (int i = 0; v && i < n; i++)
        if (!strcmp(v, names[i])) return i;
    fprintf(stderr, "loom train: %s must be one of", f);
    for (int i = 0; i < n; i++) fprintf(stderr, " %s", names[i]);
    fprintf(stderr, ", got '%s'\n", v ? v : "");
    return -1;
}

static bool parse_option(train_args *a, int argc, char **argv, int *i)
{
    const char *f = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (tool_is_help(f)) return a->help = true;
    if (!strcmp(f, "--letters-only")) return a->letters_only = true;
    if (!strcmp(f, "--random-truncation")) return a->random_trunc = true;
    static const char *const valued[] = {"--data", "--valid", "--tokens", "--embed", "--dropout", "--steps", "--epochs", "--optimizer", "--task",
                                         "--resume", "--init", "--save-every",
                                         "--lr", "--momentum", "--weight-decay", "--schedule", "--warmup", "--clip",
                                         "--sampling", "--eval-every", "--metrics", "--save", "--generate", "--prefix",
                                         "--temperature", "--threads", "--attention", "--teacher-forcing", "--pairs",
                                         "--min-len", "--min-freq", "--eval-pairs", "--truncate"};
    if (!tool_valued("loom train", f, v, valued, (int)(sizeof valued / sizeof *valued), "loom train --help"))
        return false;
    (*i)++;
    int k;
    if (!strcmp(f, "--data")) return (a->data = v) != NULL;
    if (!strcmp(f, "--valid")) return (a->valid = v) != NULL;
    if (!strcmp(f, "--metrics")) return (a->metrics = v) != NULL;
    if (!strcmp(f, "--save")) return (a->save = v) != NULL;
    if (!strcmp(f, "--resume")) return (a->resume = v) != NULL;
    if (!strcmp(f, "--init")) return (a->init = v) != NULL;
    if (!strcmp(f, "--save-every")) return tool_int(f, v, 1, 1L << 40, &a->save_every);
    if (!strcmp(f, "--prefix")) return tool_text("loom train", f, v) && (a->prefix = v) != NULL;
    if (!strcmp(f, "--embed")) return tool_int(f, v, 0, TOOL_MAX_EMBED, &a->embed);
    if (!strcmp(f, "--steps")) return (a->steps_given = true) && tool_int(f, v, 1, 1L << 40, &a->steps);
    if (!strcmp(f, "--epochs")) return tool_int(f, v, 1, 1L << 20, &a->epochs);
    if (!strcmp(f, "--warmup")) return tool_int(f, v, 0, 1L << 40, &a->warmup);
    if (!strcmp(f, "--truncate")) return tool_int(f, v, 1, TOOL_MAX_SEQ, &a->truncate);
    if (!strcmp(f, "--eval-every")) return tool_int(f, v, 1, 1L << 40, &a->eval_every);
    if (!strcmp(f, "--generate")) return tool_int(f, v, 0, 1000000, &a->generate);
    if (!strcmp(f, "--threads")) return tool_int(f, v, 1, 1024, &a->threads);
    if (!strcmp(f, "--dropout")) return flag_double(f, v, 0, 0.99, &a->dropout);
    if (!strcmp(f, "--lr")) return flag_double(f, v, 0, 1e6, &a->lr);
    if (!strcmp(f, "--momentum")) return flag_double(f, v, 0, 1, &a->momentum);
    if (!strcmp(f, "--weight-decay")) return flag_double(f, v, 0, 1e6, &a->weight_decay);
    if (!strcmp(f, "--clip")) return flag_double(f, v, 0, 1e9, &a->clip);
    if (!strcmp(f, "--temperature")) return flag_double(f, v, 0, 100, &a->temperature);
    if (!strcmp(f, "--tokens")) return (k = pick(f, v, (const char *[]){"char", "word"}, 2)) >= 0 && (a->tokens = k, true);
    if (!strcmp(f, "--task")) {
        static const char *const tasks[] = {"lm", "adding", "copy", "seq2seq", "reverse", "dates", "charlm", "wordlm"};
        if ((k = pick(f, v, tasks, 8)) < 0) return false;
        a->task = k > 5 ? TASK_LM : k;
        if (k == 7) a->tokens = LOOM_TOKENS_WORD;
        return true;
    }
    if (!strcmp(f, "--attention"))
        return (k = pick(f, v, (const char *[]){"none", "additive", "dot"}, 3)) >= 0 && (a->attention = k, true);
    if (!strcmp(f, "--teacher-forcing")) return flag_double(f, v, 0, 1, &a->teacher_forcing);
    if (!strcmp(f, "--pairs")) return tool_int(f, v, 1, TOOL_MAX_PAIRS, &a->pairs);
    if (!strcmp(f, "--min-len")) return tool_int(f, v, 1, 100000, &a->min_len);
    if (!strcmp(f, "--min-freq")) return tool_int(f, v, 1, 1L << 30, &a->min_freq);
    if (!strcmp(f, "--eval-pairs")) return tool_int(f, v, 1, 1L << 30, &a->eval_pairs);
    if (!strcmp(f, "--sampling"))
        return (k = pick(f, v, (const char *[]){"random", "sequential"}, 2)) >= 0 && (a->sequential = k == 1, true);
    if (!strcmp(f, "--optimizer"))
        return (k = pick(f, v, (const char *[]){"sgd", "adam", "adamw"}, 3)) >= 0 && (a->optimizer = k, true);
    k = pick(f, v, (const char *[]){"constant", "step", "exp", "cosine"}, 4); /* --schedule */
    return k >= 0 && (a->schedule = k, true);
}

/* Whether flag was given. */
static bool given(const train_args *a, const char *flag)
{
    for (int i = 0; i < a->n_given; i++)
        if (!strcmp(a->given[i], flag)) return true;
    return false;
}

/* A flag the run would not use is refused, never ignored: each kind of run
 * lists the flags it cannot honour, and a resumed run takes its model,
 * data and optimiser from its checkpoint. */
static bool honoured(const train_args *a)
{
    static const char *const not_lm[] = {"--attention", "--teacher-forcing", "--pairs", "--min-len", "--min-freq",
                                         "--eval-pairs", "--input", NULL};
    static const char *const not_task[] = {"--data", "--valid", "--tokens", "--letters-only", "--embed", "--dropout",
                                           "--momentum", "--weight-decay", "--schedule", "--warmup", "--sampling",
                                           "--init", "--generate", "--prefix",
                                           "--temperature", "--attention", "--teacher-forcing", "--pairs", "--min-len",
                                           "--min-freq", "--eval-pairs", "--input", "--bidirectional", "--truncate",
                                           "--random-truncation", NULL};
    static const char *const not_s2s[] = {"--tokens", "--letters-only", "--sampling", "--generate", "--prefix",
                                          "--temperature", "--input", "--truncate", "--random-truncation", NULL};
    static const char *const not_resumed[] = {"--task", "--cell", "--hidden", "--layers", "--bidirectional", "--embed",
                                              "--dropout", "--seq-len", "--batch", "--seed", "--tokens", "--letters-only",
                                              "--optimizer", "--lr", "--momentum", "--weight-decay", "--schedule",
                                              "--warmup", "--clip", "--sampling", "--attention", "--teacher-forcing",
                                              "--pairs", "--min-len", "--min-freq", "--epochs", "--truncate",
                                              "--random-truncation", NULL};
    static const char *const names[] = {"a language model", "--task adding", "--task copy", "--task seq2seq",
                                        "--task reverse", "--task dates"};
    const char *const *no = a->task == TASK_LM ? not_lm : a->task < TASK_SEQ2SEQ ? not_task : not_s2s;
    for (int i = 0; no[i]; i++)
        if (given(a, no[i])) {
            fprintf(stderr, "loom train: %s is not used by %s; leave it out (see 'loom train --help')\n", no[i],
                    names[a->task]);
            return false;
        }
    const char *extra = (a->task == TASK_REVERSE || a->task == TASK_DATES) && given(a, "--data") ? "--data"
                        : a->task == TASK_SEQ2SEQ && given(a, "--pairs")                          ? "--pairs"
                        : (a->task == TASK_SEQ2SEQ || a->task == TASK_DATES) && given(a, "--min-len") ? "--min-len"
                                                                                                 : NULL;
    if (extra) {
        fprintf(stderr, "loom train: %s is not used by %s%s\n", extra, names[a->task],
                !strcmp(extra, "--data") ? " (it makes its own pairs)" : "");
        return false;
    }
    for (int i = 0; a->resume && not_resumed[i]; i++)
        if (given(a, not_resumed[i])) {
            fprintf(stderr, "loom train: %s with --resume: a resumed run continues its checkpoint's model, data order and "
                            "optimiser as they were; to change them, start a new run from its weights with --init\n",
                    not_resumed[i]);
            return false;
        }
    return true;
}

static int parse(train_args *a, int argc, char **argv)
{
    /* sizes left 0 (and embed −1) take the task's defaults below */
    *a = (train_args){.m = {&loom_cell_lstm, 0, 0, 0, 0, 0, 1, false}, .embed = -1,
                           .eval_every = 100, .generate = 200, .clip = 1, .temperature = 0.6,
                           .optimizer = LOOM_OPT_ADAM, .sequential = true, .lr = -1, .prefix = "time traveller",
                           .attention = LOOM_ATTN_ADDITIVE, .teacher_forcing = 1};
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-' && a->n_given < (int)(sizeof a->given / sizeof *a->given)) a->given[a->n_given++] = argv[i];
        int r = tool_model_flag(&a->m, argc, argv, &i);
        if (r < 0 || (!r && !parse_option(a, argc, argv, &i))) return 2;
        if (a->help) return 0;
    }
    /* --save may be --resume: a run continued into its own checkpoint (read
     * whole first, replaced atomically); no other output replaces an input */
    if (!tool_outputs_ok("loom train", (tool_file[]){{"--save", a->save}, {"--metrics", a->metrics}}, 2,
                              (tool_file[]){{"--data", a->data}, {"--valid", a->valid}, {"--init", a->init},
                                                 {"--resume", a->save && a->resume && tool_same_file(a->save, a->resume) ? NULL : a->resume}},
                              4))
        return 2;
    if (a->resume) { /* its own task, in fact (adding or copy: its file says which) */
        task_kind k = tool_checkpoint_kind(a->resume);
        if (k != TASK_LM) a->task = k;
    }
    if (!honoured(a)) return 2;
    bool s2s = a->task >= TASK_SEQ2SEQ;
    if (a->m.bidirectional && !s2s) {
        fprintf(stderr, "loom train: a language model reads left to right: --bidirectional is for the encoder of "
                        "--task seq2seq, reverse or dates\n");
        return 2;
    }
    if (a->epochs && (a->steps_given || (a->task != TASK_LM && a->task != TASK_SEQ2SEQ))) {
        fprintf(stderr, "loom train: %s\n", a->steps_given ? "give --steps or --epochs, not both"
                                                          : "--epochs counts passes over a text: the synthetic tasks "
                                                            "draw new sequences every step, use --steps");
        return 2;
    }
    if (s2s && a->valid && a->task != TASK_SEQ2SEQ) {
        fprintf(stderr, "loom train: --valid is for --task seq2seq (the synthetic tasks hold out their own pairs)\n");
        return 2;
    }
    if (s2s && a->resume && a->init) {
        fprintf(stderr, "loom train: --resume and --init: choose one (a checkpoint carries its weights)\n");
        return 2;
    }
    if (a->task == TASK_SEQ2SEQ && !a->data && !a->resume) {
        fprintf(stderr, "loom train: --task seq2seq needs --data PAIRS.tsv (source TAB target per line)\n");
        return 2;
    }
    if (s2s) { /* d2l's sizes for translation; the synthetic tasks' lengths */
        long len = a->task == TASK_REVERSE ? 30 : a->task == TASK_DATES ? 32 : 10;
        if (!a->m.steps) a->m.steps = len;
        if (!a->m.hidden) a->m.hidden = a->task == TASK_SEQ2SEQ ? 256 : 128;
        if (!a->m.layers) a->m.layers = a->task == TASK_SEQ2SEQ ? 2 : 1;
        if (!a->m.batch) a->m.batch = 64;
        if (a->embed < 0) a->embed = a->task == TASK_SEQ2SEQ ? 256 : 32;
        if (a->embed < 1) {
            fprintf(stderr, "loom train: an encoder–decoder needs --embed >= 1\n");
            return 2;
        }
        if (!a->steps_given && !a->epochs) a->steps = 2000;
        if (!a->eval_pairs) a->eval_pairs = 1000;
        if (!a->min_freq) a->min_freq = a->task == TASK_SEQ2SEQ ? 2 : 1;
        if (!a->pairs) a->pairs = a->task == TASK_DATES ? 40000 : 20000;
        long most = LOOM_SEQ2SEQ_MAX_STEPS - (a->task == TASK_REVERSE); /* reversal: the letters, then <eos> */
        if (a->m.steps > most) { /* said before any pair is made */
            fprintf(stderr, "loom train: --seq-len %ld: an encoder–decoder reads at most %d source steps, so --seq-len "
                            "may be %ld at most%s\n",
                    a->m.steps, LOOM_SEQ2SEQ_MAX_STEPS, most, a->task == TASK_REVERSE ? " (the letters and <eos>)" : "");
            return 2;
        }
    } else {
        if (!a->m.steps) a->m.steps = 35;
        if (!a->m.hidden) a->m.hidden = 256;
        if (!a->m.layers) a->m.layers = 1;
        if (!a->m.batch) a->m.batch = 32;
        if (a->embed < 0) a->embed = 0;
        if (!a->steps_given && !a->epochs) a->steps = 600;
    }
    if (!a->data && a->task == TASK_LM && !a->resume) { /* d2l's settings for d2l's text */
        a->data = builtin_corpus();
        a->letters_only = true;
    }
    if (a->random_trunc && !a->truncate) {
        fprintf(stderr, "loom train: --random-truncation needs --truncate K, the mean segment length\n");
        return 2;
    }
    if (a->truncate && !a->resume && a->truncate >= a->m.steps) {
        fprintf(stderr, "loom train: --truncate %ld cuts nothing inside a window of --seq-len %ld steps (windows are cut "
                        "from each other already): give K < %ld\n", a->truncate, a->m.steps, a->m.steps);
        return 2;
    }
    a->lr_given = a->lr >= 0;
    if (a->lr < 0) a->lr = a->optimizer == LOOM_OPT_SGD ? 1.0 : s2s ? 0.005 : 0.01;
    return 0;
}

int train_parse(int argc, char **argv)
{
    train_args a;
    return parse(&a, argc, argv);
}

/* Everything a run holds. */
typedef struct {
    train_args a;
    loom_text *text, *held;
    const int32_t *train_ids, *valid_ids;
    int64_t n_train, n_valid;
    loom_graph *g;
    loom_lm lm;
    loom_store *store;
    loom_trainer *t;        /* gradients, plans, optimiser, carried states, batches */
    loom_batches *batches;  /* the training text's windows */
    loom_metrics *metrics;
    loom_st *ck;          /* the checkpoint resumed from */
    loom_vocab *ck_vocab; /* its vocabulary */
    cJSON *ck_data;       /* its data description (r->a.data may point into it) */
    loom_train_desc train; /* how the model trains, as a checkpoint describes it */
    long step0;           /* the first step this run makes */
    double best, last_print, loss_avg; /* the best held-out perplexity; when progress was last printed */
    int rc;                  /* the exit status a callback of the loop failed with */
} run;


static int fail(const char *what, const char *why)
{
    fprintf(stderr, "%s: %s%s%s\n", command, what, why && *why ? ": " : "", why ? why : "");
    return 2;
}

/* A failure whose exit status follows its status: 1 for out of memory and
 * i/o, 2 for bad input. */
static int fail_st(loom_status st, const char *what, const char *why)
{
    fail(what, why);
    return tool_exit(st ? st : LOOM_ERR_ARG);
}

/* The text, split into training and held-out tokens. */
static int load_text(run *r)
{
    const train_args *a = &r->a;
    r->text = loom_text_new(&(loom_text_opts){.kind = a->tokens, .letters_only = a->letters_only});
    if (!r->text) return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    /* resuming: the checkpoint's vocabulary, so that ids mean what they meant */
    if (r->ck_vocab ? loom_text_read_with(r->text, a->data, r->ck_vocab) : loom_text_read(r->text, a->data))
        return fail(loom_text_error(r->text), NULL);
    int64_t n;
    const int32_t *ids = loom_text_ids(r->text, &n);
    if (a->valid) {
        r->held = loom_text_new(NULL);
        if (!r->held || loom_text_read_with(r->held, a->valid, loom_text_vocab(r->text)))
            return fail(r->held ? loom_text_error(r->held) : "out of memory", NULL);
        r->train_ids = ids, r->n_train = n;
        r->valid_ids = loom_text_ids(r->held, &r->n_valid);
    } else { /* the last 10% */
        r->n_valid = n / 10;
        r->train_ids = ids, r->n_train = n - r->n_valid;
        r->valid_ids = ids + r->n_train;
    }
    int64_t T = a->m.steps, B = a->m.batch;
    if ((r->n_valid - 1) / B / T < 1)
        fprintf(stderr, "%s: warning: the held-out text (%lld tokens) is shorter than one batch of --seq-len × --batch "
                        "(%lld tokens): no held-out perplexity\n",
                command, (long long)r->n_valid, (long long)(T * B + 1));
    if (r->n_train - T - 1 < T * B) { /* before the model is built: a forged seq_len costs nothing */
        fprintf(stderr, "%s: the training text (%lld tokens) is too short for one batch of --seq-len × --batch = %lld "
                        "tokens\n", command, (long long)r->n_train, (long long)(T * B + T + 1));
        return 2;
    }
    return 0;
}


/* The model, its weights, its batches and its trainer (training and
 * evaluation plans, optimiser, schedule, clipping, carried states). */
static int build(run *r)
{
    const train_args *a = &r->a;
    int V = loom_vocab_size(loom_text_vocab(r->text)), T = (int)a->m.steps, B = (int)a->m.batch;
    r->g = loom_graph_new();
    if (!r->g) return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    loom_lm_build(r->g, &r->lm, &(loom_lm_opts){.cell = a->m.cell, .vocab = V, .embed = (int)a->embed,
                                                 .hidden = (int)a->m.hidden, .layers = (int)a->m.layers,
                                                 .dropout = (float)a->dropout, .steps = T, .batch = B,
                                                 .seed = (uint64_t)a->m.seed,
                                                 .trunc = !a->truncate ? LOOM_TRUNC_NONE
                                                          : a->random_trunc ? LOOM_TRUNC_RANDOM : LOOM_TRUNC_FIXED,
                                                 .truncate = (int)a->truncate});
    loom_error fit = {0};
    if (r->ck && !loom_graph_failed(r->g) && loom_store_fits(r->g, r->ck, &fit)) return fail(a->resume, fit.msg);
    r->store = loom_store_new(r->g);
    if (loom_graph_failed(r->g)) return fail_st(loom_graph_status(r->g), loom_graph_error(r->g), NULL);
    if (loom_store_status(r->store)) return fail_st(loom_store_status(r->store), loom_store_error(r->store), NULL);
    r->batches = loom_batches_new(r->train_ids, r->n_train, T, B, a->sequential ? LOOM_SAMPLE_SEQUENTIAL : LOOM_SAMPLE_RANDOM,
                                  (uint64_t)a->m.seed);
    if (!r->batches) return fail("the training text is too short for one batch of --seq-len × --batch tokens", NULL);
    if (a->epochs) { /* the steps of N epochs (each has its own random offset, hence its own count) */
        r->a.steps = 0;
        for (int64_t e = 0; e < a->epochs; e++) {
            loom_batches_seek(r->batches, e, 0);
            r->a.steps += loom_batches_per_epoch(r->batches);
        }
        loom_batches_seek(r->batches, 0, 0);
    }
    loom_error err = {0};
    loom_train_desc *d = &r->train;
    *d = (loom_train_desc){.optim = {.kind = a->optimizer, .lr = (float)a->lr, .momentum = (float)a->momentum,
                                     .weight_decay = (float)a->weight_decay},
                           .schedule = {.kind = a->schedule, .gamma = a->schedule == LOOM_SCHED_EXP ? 0.999f : 0.5f,
                                        .step_size = r->a.steps / 3 > 0 ? r->a.steps / 3 : 1, .total = r->a.steps,
                                        .warmup = a->warmup},
                           .clip_norm = a->clip, .trunc = r->lm.o.trunc, .truncate = r->lm.o.truncate,
                           .sequential = a->sequential, .teacher_forcing = 1, .seed = (uint64_t)a->m.seed};
    r->t = loom_trainer_new(r->g, r->store,
                            &(loom_trainer_opts){.loss = r->lm.loss, .state_in = r->lm.init, .state_out = r->lm.out.final,
                                                 .n_states = a->m.cell->n_states, .optim = d->optim, .schedule = d->schedule,
                                                 .clip_norm = d->clip_norm, .seed = d->seed, .trunc_xi = r->lm.trunc_xi,
                                                 .trunc_mean = d->truncate, .batches = r->batches, .tokens = r->lm.tokens,
                                                 .targets = r->lm.targets, .fresh_states = !d->sequential},
                            &err);
    if (!r->t) return fail_st(err.status, err.msg, NULL);
    loom_store_init(r->store, (uint64_t)a->m.seed);
    return 0;
}

/* ---- checkpoints ---- */

/* What the run trains on, as the checkpoint's loom.data. */
static char *data_json(const train_args *a)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "path", a->data) &&
              cJSON_AddStringToObject(o, "tokens", a->tokens == LOOM_TOKENS_WORD ? "word" : "char") &&
              cJSON_AddBoolToObject(o, "letters_only", a->letters_only);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* The checkpoint's description replaces the model's, optimiser's and
 * data's options; what the run does next (--steps, --save, ...) stays the
 * user's. The text's path, if it names one, in *path (the object's: valid
 * until o is deleted). */
static bool take_checkpoint(train_args *a, const loom_st *f, const char *name, cJSON **o, const char **path)
{
    loom_model_desc m;
    loom_train_desc t;
    loom_error err = {0};
    if (loom_checkpoint_model(f, &m, &t, &err)) return fail(name, err.msg), false;
    if (m.kind != LOOM_MODEL_LM)
        return fail(name, "not a language model's checkpoint (loom eval and loom train --resume read every kind)"), false;
    const loom_lm_opts *l = &m.lm;
    a->m.cell = l->cell, a->m.hidden = l->hidden, a->m.layers = l->layers, a->embed = l->embed, a->dropout = l->dropout;
    a->m.steps = l->steps, a->m.batch = l->batch, a->m.seed = (long)l->seed;
    a->truncate = l->truncate, a->random_trunc = l->trunc == LOOM_TRUNC_RANDOM;
    a->optimizer = t.optim.kind, a->lr = t.optim.lr, a->momentum = t.optim.momentum, a->weight_decay = t.optim.weight_decay;
    a->schedule = t.schedule.kind, a->warmup = t.schedule.warmup, a->clip = t.clip_norm, a->sequential = t.sequential;
    char *data = loom_checkpoint_data(f);
    *o = cJSON_Parse(data ? data : "");
    free(data);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(*o, "tokens"), *p = cJSON_GetObjectItemCaseSensitive(*o, "path");
    a->tokens = cJSON_IsString(tokens) && !strcmp(tokens->valuestring, "word") ? LOOM_TOKENS_WORD : LOOM_TOKENS_CHAR;
    a->letters_only = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*o, "letters_only"));
    *path = cJSON_IsString(p) ? p->valuestring : NULL;
    return *o != NULL || (fail_st(LOOM_ERR_NOMEM, "out of memory", NULL), false);
}

/* Everything the run needs to continue as if it had not stopped. */
static int save_checkpoint(run *r)
{
    const train_args *a = &r->a;
    loom_st *f = loom_st_new();
    char *data = data_json(a), *voc = loom_vocab_to_string(loom_text_vocab(r->text));
    loom_model_desc m = {.kind = LOOM_MODEL_LM, .lm = r->lm.o};
    bool ok = f && data && voc && !loom_checkpoint_describe(f, &m, &r->train, data) && !loom_st_set_meta(f, "loom.vocab", voc);
    int rc = 0;
    if (ok && loom_trainer_save(r->t, f)) rc = fail_st(LOOM_ERR_NOMEM, "checkpoint", loom_trainer_error(r->t));
    else if (!ok) rc = fail_st(LOOM_ERR_NOMEM, "checkpoint", f ? loom_st_error(f) : "out of memory");
    else if (loom_checkpoint_write(f, a->save)) rc = fail(loom_st_error(f), NULL), rc = 1;
    free(data), free(voc);
    loom_st_free(f);
    return rc;
}

/* Reads the checkpoint and takes its configuration and vocabulary (before
 * the text is read and the model built). */
static int open_checkpoint(run *r)
{
    r->ck = loom_st_new();
    if (!r->ck) return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    if (loom_checkpoint_read(r->ck, r->a.resume)) return fail(loom_st_error(r->ck), NULL);
    const char *own;
    if (!take_checkpoint(&r->a, r->ck, r->a.resume, &r->ck_data, &own)) return 2;
    if (!(r->ck_vocab = loom_vocab_from_string(loom_st_meta(r->ck, "loom.vocab"))) || tool_checkpoint_step(r->ck) < 0)
        return fail(r->a.resume, "not a checkpoint of loom train (its vocabulary or step is missing or bad)");
    if (!r->a.data) { /* the text it was trained on (the data order refers to it) */
        if (!own) return fail(r->a.resume, "it does not name its training text: give --data");
        bool builtin = !strcmp(own, LOOM_CORPUS_SRC) || !strcmp(own, LOOM_CORPUS);
        if (!builtin && access(own, R_OK) != 0)
            return fprintf(stderr, "loom train: %s was trained on %s, which cannot be read here: give --data\n", r->a.resume, own),
                   2;
        r->a.data = builtin ? builtin_corpus() : own;
    }
    return 0;
}

/* Weights, optimiser state, data position, carried state and dropout
 * counter from the checkpoint, into the model just built. */
static int restore(run *r)
{
    const loom_st *f = r->ck;
    if (loom_trainer_restore(r->t, f)) return fail(r->a.resume, loom_trainer_error(r->t));
    r->step0 = (long)loom_trainer_steps(r->t);
    if (r->step0 >= r->a.steps)
        fprintf(stderr, "loom train: the checkpoint has %ld steps already; --steps %ld asks for no more\n", r->step0,
                r->a.steps);
    return 0;
}

#define LM_COLUMNS "step,loss,perplexity,grad_norm,lr,tokens_per_s,valid_perplexity"

static int flush_metrics(run *r) { return tool_flush_metrics(command, &r->metrics); }

/* ---- the loop's callbacks (loom_trainer_fit) ---- */

static bool interrupted(void *ctx) { return (void)ctx, tool_caught(); }

/* Perplexity on the held-out tokens (NAN when they hold no window). */
static loom_status evaluate(void *ctx, loom_trainer *t, double *ppl)
{
    run *r = ctx;
    double mean;
    loom_status st = loom_trainer_eval_stream(t, r->valid_ids, r->n_valid, &mean);
    if (st) return r->rc = fail_st(st, "held-out evaluation", loom_trainer_error(t)), st;
    *ppl = exp(mean);
    if (*ppl < r->best) r->best = *ppl;
    return LOOM_OK;
}

/* A metrics row and, every so often, a progress line. */
static loom_status progress(void *ctx, const loom_fit_report *f)
{
    run *r = ctx;
    const train_args *a = &r->a;
    const loom_train_step *s = &f->step;
    long done = (long)(s->step - f->first_step + 1);
    double tps = (double)done * a->m.steps * a->m.batch / f->seconds, vppl = f->evaluated ? f->score : NAN;
    if (r->metrics) {
        char v[32] = "";
        if (!isnan(vppl)) snprintf(v, sizeof v, "%.4f", vppl);
        if (loom_metrics_row(r->metrics, "%lld,%.6f,%.4f,%.6f,%.6g,%.1f,%s", (long long)s->step, s->loss, exp(s->loss),
                             s->grad_norm, s->lr, tps, v))
            return r->rc = fail("--metrics", "out of memory"), r->rc = 1, LOOM_ERR_NOMEM;
        if ((f->evaluated || loom_metrics_age(r->metrics) > 10) && (r->rc = flush_metrics(r))) return LOOM_ERR_IO;
    }
    bool tty = isatty(2);
    if (f->evaluated || (tty && f->seconds - r->last_print > 0.25) || (!tty && f->seconds - r->last_print > 10) || done == 1) {
        r->last_print = f->seconds;
        double eta = f->seconds / (double)done * (double)(f->steps - s->step);
        fprintf(stderr, "%sstep %lld/%lld  loss %.3f  perplexity %.2f  grad norm %.2f  %.0f tokens/s  ETA %.0f s",
                tty ? "\r" : "", (long long)s->step, (long long)f->steps, f->loss_avg, exp(f->loss_avg), s->grad_norm, tps, eta);
        if (!isnan(vppl)) fprintf(stderr, "  held-out perplexity %.2f", vppl);
        fprintf(stderr, tty && isnan(vppl) ? "   " : "\n");
    }
    r->loss_avg = f->loss_avg;
    return LOOM_OK;
}

static loom_status save_now(void *ctx, loom_trainer *t)
{
    run *r = ctx;
    (void)t;
    return (r->rc = flush_metrics(r)) || (r->rc = save_checkpoint(r)) ? LOOM_ERR_IO : LOOM_OK;
}

static int train(run *r)
{
    const train_args *a = &r->a;
    r->best = INFINITY;
    double t0 = tool_now();
    loom_status st = loom_trainer_fit(r->t, &(loom_fit_opts){.steps = a->steps, .eval_every = a->eval_every,
                                                             .save_every = a->save ? a->save_every : 0, .ctx = r,
                                                             .evaluate = evaluate, .progress = progress, .save = save_now,
                                                             .stop = interrupted});
    long step = (long)loom_trainer_steps(r->t);
    if (st == LOOM_ERR_VALUE) {
        fprintf(stderr, "\n%s: %s; stopping (lower --lr, or --clip)\n", command, loom_trainer_error(r->t));
        return 1;
    }
    if (st) return r->rc ? r->rc : fail_st(st, "run", loom_trainer_error(r->t));
    if (tool_caught()) { /* SIGINT, SIGTERM: the steps done so far, saved */
        int rc = flush_metrics(r);
        if (!rc && a->save) rc = save_checkpoint(r);
        return tool_interrupted(command, step, a->steps, a->save, rc);
    }
    double el = tool_now() - t0;
    long done = a->steps > r->step0 ? a->steps - r->step0 : 0;
    char held[96] = "no held-out perplexity (the held-out text is shorter than one batch)";
    if (isfinite(r->best)) snprintf(held, sizeof held, "best held-out perplexity %.2f", r->best);
    printf("trained %ld steps in %.1f s (%.0f tokens/s): final training perplexity %.2f, %s\n", done, el,
           (double)done * a->m.steps * a->m.batch / el, exp(r->loss_avg), held);
    int rc = flush_metrics(r);
    return !rc && a->save ? save_checkpoint(r) : rc;
}

/* Tokens → text on stdout after a label. */
static void print_text(const char *label, const loom_vocab *v, const int32_t *ids, int64_t n)
{
    size_t len = loom_vocab_decode(v, ids, n, NULL, 0);
    char *buf = malloc(len + 1);
    if (!buf) return;
    loom_vocab_decode(v, ids, n, buf, len + 1);
    printf("%s%s\n", label, buf);
    free(buf);
}

/* Text from the model with the weights of `store`, after `prefix`. */
static int generate_text(const loom_lm_opts *model, const loom_store *store, const loom_vocab *v, const char *prefix,
                         long length, const loom_sample_opts *so)
{
    char err[512];
    loom_generator *gen = loom_generator_new(model, store, err, sizeof err);
    if (!gen) return fail(err, NULL);
    int64_t np = loom_vocab_encode(v, prefix, strlen(prefix), NULL, 0);
    if (np < 1) {
        loom_generator_free(gen);
        return fail("--prefix", np < 0 ? "not valid UTF-8 text" : "holds no token the model reads (it starts from one)");
    }
    int32_t *seq = malloc((size_t)(np + length) * sizeof *seq);
    int rc = 0;
    if (!seq) {
        rc = fail_st(LOOM_ERR_NOMEM, "out of memory", NULL), rc = 1;
    } else {
        loom_vocab_encode(v, prefix, strlen(prefix), seq, np);
        if (loom_generate(gen, seq, np, length, so, seq + np, err, sizeof err) < 0) rc = fail(err, NULL);
        else {
            char label[96];
            if (so->beam > 1) snprintf(label, sizeof label, "generated (beam %d): ", so->beam);
            else snprintf(label, sizeof label, "generated (temperature %.2g): ", so->temperature);
            print_text(label, v, seq, np + length);
        }
    }
    free(seq);
    loom_generator_free(gen);
    return rc;
}

static int generate(run *r)
{
    if (!r->a.generate) return 0;
    return generate_text(&r->lm.o, r->store, loom_text_vocab(r->text), r->a.prefix, r->a.generate,
                         &(loom_sample_opts){.temperature = r->a.temperature, .seed = (uint64_t)r->a.m.seed});
}

static void release(run *r)
{
    loom_batches_free(r->batches);
    loom_trainer_free(r->t);
    loom_store_free(r->store);
    loom_graph_free(r->g);
    loom_text_free(r->held), loom_text_free(r->text);
    loom_st_free(r->ck);
    loom_vocab_free(r->ck_vocab);
    cJSON_Delete(r->ck_data);
    loom_metrics_free(r->metrics);
}

int cmd_train(int argc, char **argv)
{
    command = "loom train";
    run r = {0};
    int rc = parse(&r.a, argc, argv);
    if (rc) return rc;
    if (r.a.help) {
        tool_help("train [options]", train_help, true);
        return 0;
    }
    if (!tool_threads(r.a.threads)) return 2;
    tool_catch_signals();
    if (r.a.task >= TASK_SEQ2SEQ) return train_seq2seq(&r.a);
    if (r.a.task != TASK_LM) {
        const train_args *a = &r.a;
        return train_task(&(task_config){.task = a->task, .cell = a->m.cell, .steps = (int)a->m.steps,
                                                   .batch = (int)a->m.batch, .hidden = (int)a->m.hidden,
                                                   .layers = (int)a->m.layers, .total = a->steps,
                                                   .eval_every = a->eval_every, .optimizer = a->optimizer,
                                                   .lr = (float)(a->lr_given ? a->lr : 0.003), .clip = a->clip,
                                                   .seed = (uint64_t)a->m.seed, .metrics = a->metrics, .save = a->save,
                                                   .resume = a->resume, .save_every = a->save_every});
    }
    if (r.a.resume && r.a.init) return fail("--resume and --init", "choose one (a checkpoint carries its weights)");
    if (r.a.resume) rc = open_checkpoint(&r);
    if (!rc) rc = tool_open_outputs(command, r.a.save, r.a.metrics, LM_COLUMNS, r.ck ? tool_checkpoint_step(r.ck) : -1,
                                         &r.metrics);
    if (!rc && !(rc = load_text(&r)) && !(rc = build(&r)) && !(rc = r.a.resume ? restore(&r) : 0)) {
        if (r.a.init && loom_store_load_file(r.store, r.a.init, false)) {
            rc = fail_st(loom_store_status(r.store), loom_store_error(r.store), NULL);
            goto out;
        }
        if (r.a.init && !tool_finite_weights(command, r.a.init, r.store)) {
            rc = 2;
            goto out;
        }
        const train_args *a = &r.a;
        printf("%s language model: %s tokens, vocabulary %d, %" PRId64 " training and %" PRId64
               " held-out tokens; hidden %ld, layers %ld, T=%ld B=%ld, %s lr %g, %ld steps\n",
               a->m.cell->name, a->tokens == LOOM_TOKENS_WORD ? "word" : "character",
               loom_vocab_size(loom_text_vocab(r.text)), r.n_train, r.n_valid, a->m.hidden, a->m.layers, a->m.steps,
               a->m.batch, (const char *[]){"sgd", "adam", "adamw"}[a->optimizer], a->lr, a->steps);
        fflush(stdout);
        if (!rc) rc = train(&r);
        if (rc) flush_metrics(&r); /* the rows of a run that stopped */
        if (!rc) rc = generate(&r);
    }
out:
    release(&r);
    return rc;
}

/* ---- loom generate, loom eval: a checkpoint of loom train ---- */

const char generate_help[] =
    "text from a checkpoint of loom train\n"
    "  --load CKPT           the checkpoint (required)\n"
    "  --prefix TEXT         what the model reads first (default \"time traveller\")\n"
    "  --length N            tokens to generate (default 200)\n"
    "  --temperature T       sampling temperature (default 0.6; 0: greedy)\n"
    "  --top-k K             sample among the K most likely tokens (default: all)\n"
    "  --top-p P             sample among the most likely tokens that reach probability P\n"
    "  --beam W              beam search of width W instead of sampling\n"
    "  --length-norm A       beam scores divided by length^A (default 0)\n"
    "  --seed S              sampling seed (default 1)\n";

const char eval_help[] =
    "a checkpoint on held-out data: a language model's perplexity on a text (the state carried\n"
    "through it); an encoder–decoder's BLEU, exact match and perplexity on pairs\n"
    "  --load CKPT           the checkpoint (required)\n"
    "  --data FILE           the text (default: the built-in corpus), or the pairs (source TAB target;\n"
    "                        default for --task reverse and dates: the run's own held-out pairs)\n"
    "  --beam K              encoder–decoder: beam search of width K (default 1: greedy)\n";

/* The checkpoint's configuration and vocabulary, and a store of its model's
 * weights for a model of T steps and B sequences. */
typedef struct {
    loom_st *ck;
    loom_vocab *vocab;
    char *data; /* its data description (JSON) */
    loom_graph *g;
    loom_lm lm; /* the checkpoint's model, over its own or the caller's T and B */
    loom_store *store;
} loaded;

static void unload(loaded *l)
{
    loom_store_free(l->store);
    loom_graph_free(l->g);
    loom_vocab_free(l->vocab);
    loom_st_free(l->ck);
    free(l->data);
}

/* The text path a checkpoint's data description names, if it can be read. */
static const char *own_text(const loaded *l, char *buf, size_t n)
{
    cJSON *o = cJSON_Parse(l->data ? l->data : "");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
    bool ok = cJSON_IsString(p) && strlen(p->valuestring) < n && access(p->valuestring, R_OK) == 0;
    if (ok) strcpy(buf, p->valuestring);
    cJSON_Delete(o);
    return ok ? buf : NULL;
}

static int load(loaded *l, const char *path, int T, int B)
{
    if (!path) return fail("--load CKPT is required", NULL);
    if (!(l->ck = loom_st_new()) || !(l->g = loom_graph_new())) return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    if (loom_checkpoint_read(l->ck, path)) return fail(loom_st_error(l->ck), NULL);
    loom_model_desc m;
    loom_error err = {0};
    if (loom_checkpoint_model(l->ck, &m, NULL, &err)) return fail(path, err.msg);
    if (m.kind == LOOM_MODEL_SEQ2SEQ)
        return fail(path, "an encoder–decoder's checkpoint, not a language model's: use loom translate or loom eval");
    if (m.kind != LOOM_MODEL_LM)
        return fail(path, "a synthetic task's checkpoint (--task adding or copy), not a language model's: loom eval "
                          "and loom train --resume read it");
    if (!(l->vocab = loom_vocab_from_string(loom_st_meta(l->ck, "loom.vocab"))) || loom_vocab_size(l->vocab) != m.lm.vocab)
        return fail(path, "its vocabulary is missing, bad, or not its model's");
    if (!(l->data = loom_checkpoint_data(l->ck))) return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    loom_lm_opts o = m.lm; /* for evaluation and generation: no dropout, no truncation */
    o.steps = T ? T : o.steps, o.batch = B ? B : o.batch, o.dropout = 0, o.trunc = LOOM_TRUNC_NONE, o.truncate = 0;
    loom_lm_build(l->g, &l->lm, &o);
    if (!loom_graph_failed(l->g) && loom_store_fits(l->g, l->ck, &err)) return fail(path, err.msg);
    l->store = loom_store_new(l->g);
    if (loom_graph_failed(l->g)) return fail_st(loom_graph_status(l->g), loom_graph_error(l->g), NULL);
    if (loom_store_status(l->store) || loom_store_load(l->store, l->ck, false))
        return fail_st(loom_store_status(l->store), loom_store_error(l->store), NULL);
    return tool_finite_weights(command, path, l->store) ? 0 : 2;
}

/* loom dot --load: the checkpoint's model unrolled over T steps (0: its
 * own) for one sequence, the window at the start of the last tenth of the
 * text (the held-out part when the text is the training text): data, else
 * the checkpoint's training text, else the built-in corpus. */
int train_load_window(const char *ck, const char *data, int T, tool_lm *out)
{
    loaded l = {0};
    loom_text *text = NULL;
    *out = (tool_lm){0};
    command = "loom dot";
    int rc = load(&l, ck, T, 1);
    if (!rc) {
        char buf[4096];
        const char *own = own_text(&l, buf, sizeof buf);
        if (!data) data = own ? own : builtin_corpus();
        text = loom_text_new(NULL);
        if (!text || loom_text_read_with(text, data, l.vocab)) rc = fail(text ? loom_text_error(text) : "out of memory", NULL);
    }
    int64_t n = 0;
    const int32_t *ids = rc ? NULL : loom_text_ids(text, &n);
    T = l.lm.o.steps;
    int64_t at = n - n / 10;
    if (!rc && at + T + 1 > n) at = n - T - 1;
    if (!rc && at < 0) rc = fail(data, "too short for one window of the model");
    if (!rc && (!(out->x = malloc((size_t)T * sizeof *out->x)) || !(out->y = malloc((size_t)T * sizeof *out->y))))
        rc = fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    for (int t = 0; !rc && t < T; t++) out->x[t] = ids[at + t], out->y[t] = ids[at + t + 1];
    loom_text_free(text);
    if (rc) {
        free(out->x), free(out->y);
        unload(&l);
        return rc;
    }
    out->g = l.g, out->lm = l.lm, out->store = l.store;
    loom_vocab_free(l.vocab);
    loom_st_free(l.ck);
    free(l.data);
    return 0;
}

void train_window_free(tool_lm *w)
{
    loom_store_free(w->store);
    loom_graph_free(w->g);
    free(w->x), free(w->y);
}

int cmd_generate(int argc, char **argv)
{
    const char *ck = NULL, *prefix = "time traveller";
    long length = 200, top_k = 0, beam = 0, seed = 1;
    double temperature = 0.6, top_p = 0, length_norm = 0;
    command = "loom generate";
    for (int i = 0; i < argc; i += 2) { /* every option takes a value */
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (tool_is_help(f)) {
            tool_help("generate --load CKPT [options]", generate_help, false);
            return 0;
        }
        bool ok = v != NULL;
        if (!strcmp(f, "--load")) ck = v;
        else if (!strcmp(f, "--prefix")) ok = tool_text("loom generate", f, v) && (prefix = v) != NULL;
        else if (!strcmp(f, "--length")) ok = tool_int(f, v, 1, 1000000, &length);
        else if (!strcmp(f, "--top-k")) ok = tool_int(f, v, 0, 1L << 30, &top_k);
        else if (!strcmp(f, "--beam")) ok = tool_int(f, v, 1, 1024, &beam);
        else if (!strcmp(f, "--seed")) ok = tool_int(f, v, 0, 1L << 30, &seed);
        else if (!strcmp(f, "--temperature")) ok = flag_double(f, v, 0, 100, &temperature);
        else if (!strcmp(f, "--top-p")) ok = flag_double(f, v, 0, 1, &top_p);
        else if (!strcmp(f, "--length-norm")) ok = flag_double(f, v, 0, 10, &length_norm);
        else {
            fprintf(stderr, "loom generate: unknown option '%s' (see 'loom generate --help')\n", f);
            return 2;
        }
        if (!v) fprintf(stderr, "loom generate: %s needs a value\n", f);
        if (!ok) return 2;
    }
    loaded l = {0};
    int rc = load(&l, ck, 1, 1);
    if (!rc)
        rc = generate_text(&l.lm.o, l.store, l.vocab, prefix, length,
                           &(loom_sample_opts){.temperature = temperature, .top_k = (int)top_k, .top_p = top_p,
                                               .beam = (int)beam, .length_norm = length_norm, .seed = (uint64_t)seed});
    unload(&l);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    const char *ck = NULL, *data = NULL, *beam_s = NULL;
    for (int i = 0; i < argc; i += 2) { /* every option takes a value */
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (tool_is_help(f)) {
            tool_help("eval --load CKPT [--data FILE] [--beam K]", eval_help, false);
            return 0;
        }
        if (!tool_valued("loom eval", f, v, (const char *[]){"--load", "--data", "--beam"}, 3, "loom eval --help")) return 2;
        *(!strcmp(f, "--load") ? &ck : !strcmp(f, "--data") ? &data : &beam_s) = v;
    }
    long beam = 1;
    if (beam_s && !tool_int("--beam", beam_s, 1, 1024, &beam)) return 2;
    task_kind kind = ck ? tool_checkpoint_kind(ck) : TASK_LM;
    if (kind == TASK_SEQ2SEQ) return eval_seq2seq(ck, data, beam);
    if (kind == TASK_ADDING) {
        if (data || beam_s) return fprintf(stderr, "loom eval: %s is a synthetic task's checkpoint: it is evaluated on its own held-out batch (no --data, --beam)\n", ck), 2;
        return eval_task(ck);
    }
    if (beam_s) {
        fprintf(stderr, "loom eval: --beam is for encoder–decoder checkpoints\n");
        return 2;
    }
    loaded l = {0};
    command = "loom eval";
    int rc = load(&l, ck, 0, 0);
    loom_text *text = NULL;
    loom_trainer *t = NULL;
    if (rc) goto done;
    if (!data) data = builtin_corpus();
    text = loom_text_new(NULL);
    if (!text || loom_text_read_with(text, data, l.vocab)) {
        rc = fail(text ? loom_text_error(text) : "out of memory", NULL);
        goto done;
    }
    int64_t n;
    const int32_t *ids = loom_text_ids(text, &n);
    loom_error err = {0};
    t = loom_trainer_new(l.g, l.store,
                         &(loom_trainer_opts){.loss = l.lm.loss, .state_in = l.lm.init, .state_out = l.lm.out.final,
                                              .n_states = l.lm.o.cell->n_states, .tokens = l.lm.tokens,
                                              .targets = l.lm.targets, .eval_only = true},
                         &err);
    double mean = NAN;
    if (!t || loom_trainer_eval_stream(t, ids, n, &mean)) {
        rc = fail("eval", t ? loom_trainer_error(t) : err.msg);
        goto done;
    }
    if (isnan(mean)) {
        rc = fail("the text is too short for one window of the model's batch", NULL);
        goto done;
    }
    printf("perplexity %.4f\n", exp(mean));
done:
    loom_trainer_free(t);
    loom_text_free(text);
    unload(&l);
    return rc;
}
