/* `loom train`: its options (one table), the checks of what they may be
 * together, and the run they ask for — a language model (tools/lm.c), a
 * synthetic task (tools/tasks.c) or an encoder–decoder (tools/seq2seq.c).
 * With no arguments: a character LSTM on the built-in corpus (H. G. Wells'
 * The Time Machine, with d2l's preprocessing). */
#include "tool.h"

#include "loom/loom.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char train_help[] =
    "train a recurrent language model on a text and print generated text; a task model\n"
    "(--task adding, copy, sine, temporal-order, classify, tag); or an encoder–decoder on\n"
    "pairs (--task seq2seq, reverse, dates)\n"
    "(no options: a character LSTM on the built-in The Time Machine)\n";

/* in task_kind's order, then the language models' other names */
static const char *const tasks[] = {"lm",      "adding",  "copy",  "sine",   "temporal-order", "classify", "tag",
                                    "seq2seq", "reverse", "dates", "charlm", "wordlm",         NULL};
#define A(field) offsetof(train_args, field)
const tool_opt train_opts[] = {
    {"--task", OPT_CHOICE, A(task_name), .choices = tasks, .arg = "T",
     .help = "lm (default; charlm and wordlm: lm with --tokens char or word);\n"
             "a synthetic long-range task, --seq-len its length: adding (the\n"
             "adding problem, MSE), copy (the copy task, accuracy) or\n"
             "temporal-order (Hochreiter & Schmidhuber's, 4 classes, accuracy);\n"
             "sine: forecasting d2l's noisy sine from windows of --seq-len, with\n"
             "its k-step-ahead errors at the end; or an\n"
             "encoder–decoder: seq2seq (--data PAIRS.tsv, source TAB target per\n"
             "line, as the Tatoeba files; --seq-len is num_steps, default 10),\n"
             "reverse (reverse --seq-len letters, default 30) or dates (human\n"
             "dates to ISO 8601); held-out loss, BLEU and exact match as it trains"},
    {"--attention", OPT_CHOICE, A(attention), .choices = (const char *const[]){"none", "additive", "dot", "plain", NULL}, .arg = "A",
     .help = "encoder–decoder: none, additive (default), dot (q·W_k k / √H) or plain (q·k)"},
    {"--pool", OPT_CHOICE, A(pool), .choices = (const char *const[]){"last", "mean", NULL}, .arg = "last|mean",
     .help = "temporal-order: a sequence's vector for its class: the last state of\n"
             "each direction (default) or the outputs' mean over the steps"},
    {"--dec-layers", OPT_INT, A(dec_layers), 1, LOOM_RNN_MAX_LAYERS, .arg = "N",
     .help = "encoder–decoder: the decoder's layers (default --layers, the encoder's);\n"
             "the top layers start from the encoder's top layers, extra ones at zero"},
    {"--teacher-forcing", OPT_REAL, A(teacher_forcing), 0, 1, .arg = "R",
     .help = "the share of decoder steps that read the gold token (default 1;\n"
             "below 1: the model's own previous token otherwise)"},
    {"--pairs", OPT_INT, A(pairs), 1, TOOL_MAX_PAIRS, .arg = "N",
     .help = "reverse, dates: training pairs (default 20000, 40000; held out: N/10)"},
    {"--min-len", OPT_INT, A(min_len), 1, 100000, .arg = "N", .help = "reverse: lengths drawn from N..--seq-len (default: all --seq-len)"},
    {"--min-freq", OPT_INT, A(min_freq), 1, 1L << 30, .arg = "N", .help = "seq2seq: rarer words become <unk> (default 2)"},
    {"--eval-pairs", OPT_INT, A(eval_pairs), 1, 1L << 30, .arg = "N",
     .help = "held-out pairs translated for BLEU and exact match (default 1000)"},
    {"--data", OPT_PATH, A(data), .arg = "FILE", .help = "UTF-8 text (default: the built-in corpus, letters only as d2l)"},
    {"--valid", OPT_PATH, A(valid), .arg = "FILE",
     .help = "held-out text (default: the last 10% of the data); with --task seq2seq,\n"
             "held-out pairs (default: 10% of the pairs)"},
    {"--tokens", OPT_CHOICE, A(tokens), .choices = (const char *const[]){"char", "word", NULL}, .arg = "char|word",
     .help = "character (code point) or word tokens (default char)"},
    {"--letters-only", OPT_FLAG, A(letters_only), .help = "d2l's preprocessing: runs of non-letters become one space, lower case"},
    {"--embed", OPT_INT, A(embed), 0, TOOL_MAX_EMBED, .arg = "E", .help = "embedding size (default 0: one-hot input)"},
    {"--variational", OPT_FLAG, A(variational),
     .help = "a language model's --dropout with one mask per sequence for every step (Gal & Ghahramani)"},
    {"--dropout-state", OPT_REAL, A(state_dropout), 0, 0.99, .arg = "P",
     .help = "variational dropout of the hidden state passed from step to step"},
    {"--weight-drop", OPT_REAL, A(weight_drop), 0, 0.99, .arg = "P",
     .help = "DropConnect on the recurrent weights, one mask per batch (AWD-LSTM)"},
    {"--zoneout", OPT_REAL, A(zoneout), 0, 0.99, .arg = "P", .help = "each state unit keeps its value with probability P per step"},
    {"--dropout-embed", OPT_REAL, A(dropout_embed), 0, 0.99, .arg = "P", .help = "whole words dropped from the embedding"},
    {"--sampled-softmax", OPT_INT, A(sampled_softmax), 1, LOOM_MODEL_MAX_VOCAB, .arg = "K",
     .help = "a language model trains on a sampled softmax: the target and K words\n"
             "drawn per step from the log-uniform distribution (large vocabularies;\n"
             "evaluated with the full softmax)"},
    {"--unit-forget-bias", OPT_FLAG, A(unit_forget_bias),
     .help = "an LSTM's forget gates start at bias 1 (Keras's unit_forget_bias; Gers\n"
             "et al.): it keeps its state until it learns not to"},
    {"--tie-weights", OPT_FLAG, A(tie_weights),
     .help = "a language model's decoder weight is its embedding's (Press & Wolf): needs --embed = --hidden"},
    {"--dropout", OPT_REAL, A(dropout), 0, 0.99, .arg = "P", .help = "between layers, on the embedding and the output (default 0)"},
    {"--steps", OPT_INT, A(steps), 1, 1L << 40, .arg = "N", .help = "optimiser steps (default 600)"},
    {"--epochs", OPT_INT, A(epochs), 1, 1L << 20, .arg = "N", .help = "instead of --steps: N whole passes over the training text"},
    {"--optimizer", OPT_CHOICE, A(optimizer), .choices = (const char *const[]){"sgd", "adam", "adamw", NULL},
     .arg = "sgd|adam|adamw", .help = "(default adam)"},
    {"--lr", OPT_REAL, A(lr), 0, 1e6, .arg = "LR", .help = "learning rate (default 0.01 for adam, 1 for sgd)"},
    {"--momentum", OPT_REAL, A(momentum), 0, 1, .arg = "M", .help = "SGD momentum (default 0)"},
    {"--weight-decay", OPT_REAL, A(weight_decay), 0, 1e6, .arg = "W", .help = "(default 0)"},
    {"--schedule", OPT_CHOICE, A(schedule), .choices = (const char *const[]){"constant", "step", "exp", "cosine", NULL},
     .arg = "S", .help = "learning-rate schedule: constant (default), step, exp or cosine"},
    {"--warmup", OPT_INT, A(warmup), 0, 1L << 40, .arg = "N", .help = "linear warm-up steps (default 0)"},
    {"--clip", OPT_REAL, A(clip), 0, 1e9, .arg = "NORM", .help = "clip the global gradient norm (default 1; 0: off)"},
    {"--strict", OPT_FLAG, A(strict),
     .help = "a run that diverged (its loss, smoothed, ended above its first step's)\n"
             "fails with status 1 (by default a warning)"},
    {"--truncate", OPT_INT, A(truncate), 1, TOOL_MAX_SEQ, .arg = "K",
     .help = "truncated BPTT: cut the gradient every K steps inside a window\n"
             "(K < --seq-len; windows are always cut from each other)"},
    {"--recompute", OPT_AUTO, A(recompute), 0, TOOL_MAX_SEQ, .arg = "N",
     .help = "long sequences in less memory: keep the carried states every N\n"
             "steps and recompute the rest in the backward pass (auto: N = √T;\n"
             "the same numbers, one more forward pass of work)"},
    {"--precision", OPT_CHOICE, A(precision), .choices = tool_precisions, .arg = "f32|bf16",
     .help = "the matrix products' operands (default f32); bf16 rounds them to\n"
             "bfloat16 and sums in f32 — parameters, gradients and the optimiser\n"
             "stay f32 — on a CPU with AVX512_BF16 or AMX (refused elsewhere)"},
    {"--random-truncation", OPT_FLAG, A(random_trunc),
     .help = "with --truncate K: cut at random, K steps apart on average, and\n"
             "weight what crosses a boundary uncut by K/(K-1), so that the\n"
             "expected gradient is the full one (Tallec & Ollivier; d2l 9.7)"},
    {"--sampling", OPT_CHOICE, A(sampling), .choices = (const char *const[]){"random", "sequential", NULL},
     .arg = "random|sequential", .help = "minibatches (default sequential: state carried)"},
    {"--eval-every", OPT_INT, A(eval_every), 1, 1L << 40, .arg = "N", .help = "held-out perplexity every N steps (default 100)"},
    {"--metrics", OPT_PATH, A(metrics), .arg = "FILE", .help = "CSV: step,loss,perplexity,grad_norm,lr,tokens_per_s,valid_perplexity"},
    {"--norms-every", OPT_INT, A(norms_every), 1, 1L << 40, .arg = "N",
     .help = "every N steps (and before the first), ||dL/ds_t|| of every carried state\n"
             "on the held-out batch (as loom dot --load --norms-csv) into --norms-csv"},
    {"--norms-csv", OPT_PATH, A(norms_csv), .arg = "FILE",
     .help = "CSV: step,t,layer,direction,state,norm,norm64 (norm64 in float64)"},
    {"--save", OPT_PATH, A(save), .arg = "FILE",
     .help = "a checkpoint at the end (and every --save-every N steps): the weights\n"
             "under PyTorch names, optimiser state, data position, carried state,\n"
             "vocabulary, the model's description; checksummed, written atomically"},
    {"--save-every", OPT_INT, A(save_every), 1, 1L << 40, .arg = "N", .help = "also save every N steps (default: only at the end)"},
    {"--resume", OPT_PATH, A(resume), .arg = "FILE",
     .help = "continue a checkpoint's run (its model, data position, optimiser)\n"
             "up to --steps in all, exactly as if it had not stopped (every kind\n"
             "of model; checkpoints of any format this loom reads)"},
    {"--init", OPT_PATH, A(init), .arg = "FILE", .help = "start from the weights in a safetensors file (e.g. a PyTorch state_dict)"},
    {"--generate", OPT_INT, A(generate), 0, 1000000, .arg = "N", .help = "tokens generated at the end (default 200)"},
    {"--prefix", OPT_TEXT, A(prefix), .arg = "TEXT", .help = "what generation starts from (default \"time traveller\")"},
    {"--temperature", OPT_REAL, A(temperature), 0, 100, .arg = "T", .help = "sampling temperature (default 0.6; 0: greedy)"},
    {"--threads", OPT_INT, A(threads), 1, 1024, .arg = "N",
     .help = "threads (default: LOOM_NUM_THREADS, else OMP_NUM_THREADS, else all)"},
};
#undef A
const int n_train_opts = (int)(sizeof train_opts / sizeof *train_opts);

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
                                         "--eval-pairs", "--input", "--pool", "--dec-layers", NULL};
    static const char *const not_task[] = {"--data", "--valid", "--tokens", "--letters-only", "--embed", "--tie-weights", "--dropout",
                                           "--sampled-softmax", "--dec-layers",
                                           "--variational", "--dropout-state", "--weight-drop", "--zoneout", "--dropout-embed",
                                           "--momentum", "--weight-decay", "--schedule", "--warmup", "--sampling",
                                           "--init", "--generate", "--prefix",
                                           "--temperature", "--attention", "--teacher-forcing", "--pairs", "--min-len",
                                           "--min-freq", "--eval-pairs", "--input", "--truncate",
                                           "--random-truncation", NULL};
    static const char *const not_data[] = {"--letters-only", "--tie-weights", "--dropout", "--variational", "--dropout-state",
                                           "--sampled-softmax", "--dec-layers",
                                           "--weight-drop", "--zoneout", "--dropout-embed", "--momentum", "--weight-decay",
                                           "--schedule", "--warmup", "--sampling", "--init", "--generate", "--prefix",
                                           "--temperature", "--attention", "--teacher-forcing", "--pairs", "--min-len",
                                           "--eval-pairs", "--input", "--truncate", "--random-truncation", NULL};
    static const char *const not_s2s[] = {"--tokens", "--letters-only", "--sampling", "--generate", "--prefix", "--tie-weights",
                                          "--sampled-softmax", "--unit-forget-bias",
                                          "--variational", "--dropout-state", "--weight-drop", "--zoneout", "--dropout-embed",
                                          "--temperature", "--input", "--truncate", "--random-truncation",
                                          "--norms-every", "--norms-csv", "--pool", NULL};
    static const char *const not_resumed[] = {"--task", "--cell", "--hidden", "--layers", "--stacking", "--bidirectional", "--embed",
                                              "--sampled-softmax", "--dec-layers", "--unit-forget-bias",
                                              "--tie-weights", "--variational", "--dropout-state", "--weight-drop", "--zoneout",
                                              "--dropout-embed",
                                              "--dropout", "--seq-len", "--batch", "--seed", "--tokens", "--letters-only",
                                              "--optimizer", "--lr", "--momentum", "--weight-decay", "--schedule",
                                              "--warmup", "--clip", "--sampling", "--attention", "--teacher-forcing",
                                              "--pairs", "--min-len", "--min-freq", "--epochs", "--truncate",
                                              "--random-truncation", "--pool", NULL};
    static const char *const names[] = {"a language model", "--task adding", "--task copy", "--task sine",
                                        "--task temporal-order", "--task classify", "--task tag", "--task seq2seq",
                                        "--task reverse", "--task dates"};
    const char *const *no = a->task == TASK_LM                                  ? not_lm
                            : a->task == TASK_CLASSIFY || a->task == TASK_TAG ? not_data
                            : a->task < TASK_SEQ2SEQ                          ? not_task
                                                                              : not_s2s;
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
    /* what only some tasks read */
    if (a->unit_forget_bias && a->m.cell != &loom_cell_lstm)
        return fprintf(stderr, "loom train: --unit-forget-bias sets an LSTM's forget gates: give --cell lstm\n"), false;
    bool pooled = a->task == TASK_ORDER || a->task == TASK_CLASSIFY; /* one class per sequence */
    if (given(a, "--pool") && !pooled)
        return fprintf(stderr, "loom train: --pool is for --task temporal-order and classify (one class per sequence)\n"), false;
    if (given(a, "--bidirectional") && a->task > TASK_LM && a->task < TASK_SEQ2SEQ && a->task != TASK_ORDER &&
        a->task != TASK_CLASSIFY && a->task != TASK_TAG)
        return fprintf(stderr, "loom train: --bidirectional is not used by %s (it predicts from what came before)\n",
                       names[a->task]),
               false;
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
                           .optimizer = LOOM_OPT_ADAM, .sampling = 1, .lr = -1, .prefix = "time traveller",
                           .attention = LOOM_ATTN_ADDITIVE, .teacher_forcing = 1};
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-' && a->n_given < (int)(sizeof a->given / sizeof *a->given)) a->given[a->n_given++] = argv[i];
        if (tool_is_help(argv[i])) return a->help = true, 0;
        int r = tool_model_flag(&a->m, argc, argv, &i);
        if (!r) r = tool_opt_parse("loom train", train_opts, n_train_opts, a, argc, argv, &i);
        if (r < 0) return 2;
        if (!r) return fprintf(stderr, "loom train: unknown option '%s' (see 'loom train --help')\n", argv[i]), 2;
    }
    a->steps_given = given(a, "--steps");
    a->task = a->task_name > TASK_DATES ? TASK_LM : (task_kind)a->task_name; /* charlm, wordlm: a language model */
    if (a->task_name == TASK_DATES + 2) a->tokens = LOOM_TOKENS_WORD;
    a->sequential = a->sampling == 1;
    /* --save may be --resume: a run continued into its own checkpoint (read
     * whole first, replaced atomically); no other output replaces an input */
    if (!a->norms_every != !a->norms_csv) {
        fprintf(stderr, "loom train: --norms-every N and --norms-csv FILE go together\n");
        return 2;
    }
    if (!tool_outputs_ok("loom train", (tool_file[]){{"--save", a->save}, {"--metrics", a->metrics}, {"--norms-csv", a->norms_csv}}, 3,
                              (tool_file[]){{"--data", a->data}, {"--valid", a->valid}, {"--init", a->init},
                                                 {"--resume", a->save && a->resume && tool_same_file(a->save, a->resume) ? NULL : a->resume}},
                              4))
        return 2;
    if (a->resume) { /* its own task, in fact (adding or copy: its file says which) */
        task_kind k = tool_checkpoint_kind(a->resume);
        if (k == TASK_WORD2VEC)
            return fprintf(stderr, "loom train: %s is a word2vec checkpoint: continue it with loom word2vec --resume\n", a->resume), 2;
        if (k != TASK_LM) a->task = k;
    }
    if (!honoured(a)) return 2;
    bool s2s = a->task >= TASK_SEQ2SEQ;
    if (a->m.bidirectional && a->task == TASK_LM) {
        fprintf(stderr, "loom train: a language model reads left to right: --bidirectional is for the encoder of "
                        "--task seq2seq, reverse or dates\n");
        return 2;
    }
    bool lines = a->task == TASK_CLASSIFY || a->task == TASK_TAG;
    if (a->epochs && (a->steps_given || (a->task != TASK_LM && a->task != TASK_SEQ2SEQ && !lines))) {
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
    } else if (lines) { /* a sentence's tokens and <eos>; an embedding */
        if (!a->data && !a->resume)
            return fprintf(stderr, "loom train: --task %s needs --data FILE (%s per line)\n", tasks[a->task],
                           a->task == TASK_CLASSIFY ? "label TAB text" : "tokens TAB as many tags"),
                   2;
        if (!a->m.steps) a->m.steps = 32;
        if (!a->m.hidden) a->m.hidden = 128;
        if (!a->m.layers) a->m.layers = 1;
        if (!a->m.batch) a->m.batch = 32;
        if (a->embed < 0) a->embed = 64;
        if (!a->min_freq) a->min_freq = 1;
        if (!a->steps_given && !a->epochs) a->steps = 600;
        if (a->m.steps > LOOM_SEQ2SEQ_MAX_STEPS)
            return fprintf(stderr, "loom train: --seq-len %ld: sentences of at most %d tokens\n", a->m.steps, LOOM_SEQ2SEQ_MAX_STEPS), 2;
    } else {
        if (!a->m.steps) a->m.steps = a->task == TASK_SINE ? 16 : a->task == TASK_ORDER ? 100 : 35;
        if (!a->m.hidden) a->m.hidden = 256;
        if (!a->m.layers) a->m.layers = 1;
        if (!a->m.batch) a->m.batch = 32;
        if (a->embed < 0) a->embed = 0;
        if (!a->steps_given && !a->epochs) a->steps = 600;
        if (a->task == TASK_SINE && a->m.steps > LOOM_SINE_MAX_STEPS)
            return fprintf(stderr, "loom train: --seq-len %ld: sine windows of at most %d steps (a held-out window and its "
                                   "targets fit in the series' last %d points)\n",
                           a->m.steps, LOOM_SINE_MAX_STEPS, LOOM_SINE_POINTS - LOOM_SINE_TRAIN),
                   2;
        if (a->task == TASK_ORDER && a->m.steps < 10)
            return fprintf(stderr, "loom train: --seq-len %ld: temporal-order sequences have at least 10 steps\n", a->m.steps), 2;
        if (a->dropout_embed > 0 && !a->embed && !a->resume) {
            fprintf(stderr, "loom train: --dropout-embed drops words from an embedding: give --embed E\n");
            return 2;
        }
        if (a->tie_weights && a->embed != a->m.hidden && !a->resume) {
            fprintf(stderr, "loom train: --tie-weights shares the embedding with the decoder: give --embed %ld (= --hidden)\n",
                    a->m.hidden);
            return 2;
        }
    }
    if (!a->data && a->task == TASK_LM && !a->resume) { /* d2l's settings for d2l's text */
        a->data = tool_corpus();
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

/* What a task's run is told (the options; comm: data parallelism). */
static task_config task_cfg(const train_args *a, loom_comm *comm)
{
    return (task_config){.task = a->task, .cell = a->m.cell, .steps = (int)a->m.steps, .batch = (int)a->m.batch,
                         .hidden = (int)a->m.hidden, .layers = (int)a->m.layers,
                         .stacking = (loom_stacking)a->m.stacking, .bidirectional = a->m.bidirectional,
                         .pool = (loom_pool)a->pool, .data = a->data, .valid = a->valid,
                         .min_freq = (int)a->min_freq, .embed = (int)a->embed,
                         .chars = given(a, "--tokens") && a->tokens == LOOM_TOKENS_CHAR, .epochs = a->epochs,
                         .unit_forget_bias = a->unit_forget_bias,
                         .total = a->steps,
                         .eval_every = a->eval_every, .optimizer = a->optimizer,
                         .lr = (float)(a->lr_given ? a->lr : 0.003), .clip = a->clip,
                         .seed = (uint64_t)a->m.seed, .metrics = a->metrics, .save = a->save,
                         .resume = a->resume, .save_every = a->save_every, .strict = a->strict,
                         .norms_csv = a->norms_csv, .norms_every = a->norms_every,
                         .recompute = (int32_t)a->recompute,
                         .precision = (loom_precision)a->precision, .comm = comm};
}

/* One rank of `mpirun -np N loom train` (any task), each rank its share
 * (--batch) of the global batch. A rank that fails ends every rank
 * (some may be waiting for it in an exchange it will not join). */
static int train_ranks(const train_args *a)
{
    loom_error err = {0};
    loom_comm *c = loom_comm_world(&err);
    if (!c) return fprintf(stderr, "loom train: started by mpirun, but %s\n", err.msg), 2;
    tool_ranks_quiet(loom_comm_rank(c), loom_comm_size(c));
    task_config tc = task_cfg(a, c);
    int rc = a->task == TASK_LM ? train_lm(a, c) : a->task >= TASK_SEQ2SEQ ? train_seq2seq(a, c) : train_task(&tc);
    /* 128 + a signal: every rank stopped after the same step and saved together */
    if (rc && rc < 128 && loom_comm_size(c) > 1) {
        fflush(NULL);
        loom_comm_abort(c, rc);
    }
    loom_comm_free(c);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    train_args a;
    int rc = parse(&a, argc, argv);
    if (rc) return rc;
    if (a.help) {
        tool_help("train [options]", train_help, train_opts, n_train_opts, true);
        return 0;
    }
    if (!tool_threads(a.threads)) return 2;
    tool_catch_signals();
    if (loom_comm_launched()) /* mpirun -np N: one rank of a data-parallel run */
        return train_ranks(&a);
    if (a.task >= TASK_SEQ2SEQ) return train_seq2seq(&a, NULL);
    if (a.task != TASK_LM) {
        task_config tc = task_cfg(&a, NULL);
        return train_task(&tc);
    }
    return train_lm(&a, NULL);
}
